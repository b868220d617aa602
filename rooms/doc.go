// Package rooms owns room names, id validation and the client protocol of
// the client protocol (docs/protocol.md): subscribe_project, join_batch, subscribe_logs,
// unsubscribe_logs and the additions unsubscribe_project and leave_batch.
//
// It knows nothing of Socket.IO: the gateway adapts a library socket to the
// small Member interface and hands each client event to Protocol.Handle,
// which answers with the Reply to emit (and to acknowledge with, when the
// client asked for an acknowledgement).
//
// Ids may be JSON strings or integers, as the Flask backend accepted them
// (it built f"project_{id}"); they are echoed back exactly as received.
// Anything else answers an "error" reply and never disconnects the client.
//
// Concurrency: Protocol is safe for concurrent use; Handle for one Member is
// called by the gateway one event at a time, in arrival order.
package rooms
