// Package gateway owns the Socket.IO server (zishang520/socket.io v3): the
// Engine.IO transports, the connection lifecycle, the client protocol
// handlers of package rooms, and the delivery of bus events to rooms.
//
// Delivery: Deliver emits one bus event to its rooms through the library's
// broadcast operator, which encodes the packet once per event and hands the
// same bytes to every recipient; the payload arrives already encoded as JSON
// and is embedded as is.
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
// WebSocket transport (wstransport.go): the gateway replaces the library's
// WebSocket transport through the engine's SetTransports option. It reads
// as the library does; it writes each broadcast's frame once and hands every
// recipient the same bytes (one writev per flush), where the library builds
// a gorilla PreparedMessage per recipient. Long-polling is the library's.
//
// Concurrency: the library calls a socket's event handlers one at a time, in
// arrival order; Deliver may be called from any goroutine.
package gateway
