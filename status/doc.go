// Package status serves the live status page at /status on the main port:
// every node of the cluster (its role, readiness and failing checks,
// clients by transport, rooms, bus lag), rates over the last minutes as
// charts (events emitted, deliveries, webhooks by outcome, publish
// latency), the latest events and the biggest rooms, updated live with
// Server-Sent Events.
//
// What it shows comes through the small interfaces of this package: a
// Probe (this node's readiness and figures, which app reads off package
// health, gateway and metrics), a Cluster (where nodes announce
// themselves: Redis with an expiry, or just this node), and the Recent
// ring, fed with every event this node consumes. Payloads are never kept
// or shown: an event is listed by its name, job id, status, rooms and age.
//
// Access: with a token every route but the static assets needs it, as
// "Authorization: Bearer <token>" or as the session cookie that the login
// form sets (HttpOnly, SameSite=Strict, Secure behind TLS; its value is an
// HMAC of the token, so changing the token ends every session). Tokens are
// compared in constant time. app serves the page only with a token, or in
// development (then without one).
//
// Bounds, each with a default, a count in Limits (gateway_status_limited_total)
// when it trips, and a test that trips it:
//
//   - live streams: at most MaxStreams per node (DefaultMaxStreams); more
//     answer 503 ("streams");
//   - the latest events: a ring of Recent entries (DefaultRecent, at most
//     MaxRecent); each entry pushed out is counted ("recent");
//   - the login form's body: MaxLoginBodyBytes; larger answers 413
//     ("login_body");
//   - wrong tokens: LoginAttempts per minute per node
//     (DefaultLoginAttempts); once spent, logins and bearer tokens answer
//     429 until the minute is over ("login_attempts"); sessions already
//     logged in keep working.
//
// Concurrency: Server.Run owns the one sampling goroutine; each live stream
// is served on its request's goroutine and ends with its request or with
// Close. Every method is safe for concurrent use.
package status
