// Package cli is the gateway's command line: `gateway serve` (the default,
// so `gateway --port 5001` still serves) and the commands that drive a
// running gateway without openssl or a hand-written client:
//
//	gateway webhook send   a signed Modal webhook
//	gateway publish        one event or a file of events (publish API)
//	gateway jobs register  a job or a batch (job registry)
//	gateway tail           follow rooms as the React app does, one JSON line per event
//	gateway status         readiness and key figures of one or more nodes
//
// Every command reads the configuration the server reads (config.NewFlagSet
// and config.Read: the same file, environment and flags), so the secrets
// a command signs with are MODAL_WEBHOOK_SECRET, GATEWAY_EVENTS_SECRET and
// GATEWAY_JOBS_SECRET (the first of each list), and the default URL is the
// configured host and port. Requests are signed by signature.SignRequest,
// the one place that knows the scheme.
//
// Exit statuses: 0 done, 1 the gateway refused or could not be reached (a
// non-2xx answer, a node not ready), 2 a usage or configuration error.
package cli
