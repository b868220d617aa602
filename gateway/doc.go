// Package gateway owns the Socket.IO server (zishang520/socket.io v3): the
// Engine.IO transports, the connection lifecycle, the client protocol
// handlers of package rooms, and the delivery of bus events to rooms.
//
// Delivery: Deliver hands the events of one bus read to the room adapter,
// which is the gateway's (fanout.go, installed with the library's
// SetAdapter): it keeps the library's room bookkeeping and replaces
// Broadcast. The payload arrives already encoded as JSON and is embedded
// as is; each event is encoded and framed once as a WebSocket frame and
// appended to every recipient's pending list. Once the batch is queued
// (or its first frame has waited coalesceWindow, 1 ms) the connections
// are written in parallel chunks, one non-blocking sendmsg each carrying
// every frame queued for that connection. Long-polling sessions and
// sessions mid-upgrade get the library's per-socket path.
//
// Handshake gate: the library writes the CONNECT reply before it registers
// the namespace on the client, and an EVENT read in that window makes it
// close the connection ("invalid state"). The React app emits join_batch
// right inside on('connect'), exactly in that window. The gate (gate.go)
// holds every non-CONNECT Socket.IO packet of a connection on the reader's
// goroutine until the gateway's own connection handler has run, which the
// library calls only after the namespace is registered. Nothing is dropped or
// reordered: the reader simply waits, bounded by the connect timeout.
//
// Lean sessions (leanengine.go, leansession.go, leanread.go): a client
// that opens on WebSocket gets the gateway's own Engine.IO v4 session in
// place of the library's engine socket and transport, through the
// engine's prototype dispatch (leanEngine overrides Handshake). The
// library's Socket.IO layer runs on it unchanged. An idle one holds no
// goroutine (reads are driven by one epoll instance, poller_linux.go), one
// runtime timer for the heartbeat, a slice of listeners, the upgrade
// request's fields, and nothing of net/http or gorilla: about 6.5 KiB of
// heap per idle client with the Socket.IO layer (BenchmarkIdleSession),
// against 18 KiB and two goroutines before. Long-polling sessions, and
// sessions that upgrade from polling, stay on the library's engine socket.
//
// WebSocket transport (wstransport.go): the gateway replaces the library's
// WebSocket transport through the engine's SetTransports option. It reads
// as the library does. It writes without a goroutine or queue per
// connection: whoever finds a connection idle writes its pending frames at
// once; a goroutine stays behind only while the kernel's socket buffer is
// full, and a client with more than 8 MiB unread is disconnected. The
// library instead builds a gorilla PreparedMessage per recipient and runs a
// write queue per connection. The engine's heartbeat ping is written after
// a short delay, so the engine has armed its ping timeout before the pong
// can arrive (wsTransport.Send). Long-polling is the library's. The write
// side (framewriter.go) is shared with the lean sessions.
//
// Concurrency: the library calls a socket's event handlers one at a time, in
// arrival order; Deliver may be called from any goroutine.
package gateway
