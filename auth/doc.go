// Package auth decides who a Socket.IO client is (authentication, on its
// CONNECT) and which rooms it may join (authorization, on every join). One
// Policy does both; the gateway asks it on every connect and, through
// package rooms, before every join, including the joins of a recovered
// session. Nothing joins a room without its answer.
//
// # Modes (config auth / GATEWAY_AUTH)
//
//   - none (Open): every client is anonymous and may join every room. The
//     development default; production must choose it explicitly and then
//     logs a warning that every client can read every project.
//   - jwt (JWT): the client presents a JSON Web Token. HS256/384/512 are
//     verified with the configured secrets (several, for rotation),
//     RS/PS/ES/EdDSA with PEM public keys and/or a JWKS URL (cached,
//     refreshed on an unknown key id, at most once per RefreshUnknownKID
//     interval). exp is required; exp, nbf, iss and aud are checked with a
//     small leeway. sub is the user. The projects claim (default
//     "projects": a list of ids, or "*") lists the projects the user may
//     see; an optional batches claim the batches. A batch not in the
//     batches claim is allowed when the registry ties it to projects that
//     are all allowed; a job's logs when the registry ties the job to an
//     allowed project, or else when the client names an allowed project.
//     The socket is disconnected at the token's expiry (at the transport
//     level: a client whose auth is a function reconnects with a fresh
//     token).
//   - backend (Backend): the gateway asks the existing backend, as
//     Centrifugo's proxy does. On connect it POSTs the client's forwarded
//     cookies and Authorization header; the answer names the user and
//     optionally the projects (and batches) it may see. On a join not
//     decided by that answer it POSTs the user and the room; the answer
//     allows or denies. Requests carry Standard Webhooks signatures under
//     the auth secret. Join decisions are cached per (user, room) for the
//     cache TTL. A timeout, a 5xx or an unreadable answer denies (fails
//     closed) and is counted.
//
// # Credentials
//
// Extract reads them in this order: the CONNECT auth payload
// (io(url, {auth: {token}})), an Authorization: Bearer header on the
// handshake, the cookie named by auth-cookie (so a front end on the same
// site needs no code change), and the "token" query parameter only when
// auth-query-token is on (a query string ends up in access logs). A token
// is at most MaxTokenBytes.
//
// # Answers the client sees
//
// A refused connect is a Socket.IO CONNECT_ERROR {message: "Unauthorized"},
// which socket.io-client reports as connect_error; a refused join answers
// error {message: "Forbidden"}, joins nothing, and leaves the socket
// connected. The reasons are counted and logged (with the user id, never
// the token), not sent.
package auth
