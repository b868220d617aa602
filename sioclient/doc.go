// Package sioclient is a minimal Socket.IO client (protocol v5 over
// Engine.IO v4, WebSocket transport only, namespace "/"), enough for
// `gateway tail`: it connects, calls OnConnect after every CONNECT (where
// the caller subscribes, as the React app does inside on('connect'), so
// every reconnect resubscribes), hands every server event to OnEvent with
// its first argument as the raw JSON the server sent (key order kept),
// answers the heartbeat, and reconnects by itself with a capped backoff
// until its context ends.
//
// It is not a general client: no polling, no acknowledgements, no binary
// events, no other namespaces.
//
// Concurrency: Run owns one session at a time; the callbacks are called on
// Run's goroutine, one at a time. A session's connection is closed when
// Run's context ends, which ends the session's blocking read.
package sioclient
