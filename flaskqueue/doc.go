// Package flaskqueue decodes the messages Python's Flask-SocketIO (through
// python-socketio's pub/sub client managers, e.g. RedisManager) publishes
// on its message-queue channel, "flask-socketio" by default, so that the
// gateway can act on emits issued by any Python process.
//
// It owns only the decoding and validation of one message: subscribing to
// Redis, routing to rooms and encoding Socket.IO packets are elsewhere.
//
// # Formats
//
// Each message is a dict such as
//
//	{"method": "emit", "event": "log_line", "data": {...},
//	 "namespace": "/", "room": "project_42", "skip_sid": None,
//	 "callback": None, "host_id": "<hex>"}
//
// python-socketio 5.14 and later publish it as JSON (with "data" always
// the argument list, plus a "binary" flag); 5.13 and earlier (Debian 12
// ships 5.7.2) publish pickle.dumps(dict), protocol 4 on Python 3.8+, other
// protocols from other interpreters. Decode detects the format, decodes it
// and returns a validated Message; Message.PayloadJSON encodes the emit
// arguments once for every recipient. The methods are emit, disconnect,
// enter_room, leave_room, close_room and callback (see the Method*
// constants for what each carries).
//
// # Safety
//
// Unpickling in Python can import modules and call any function. The
// pickle decoder here (DecodePickle) is a separate, data-only
// implementation of the pickle VM: it never imports, constructs objects or
// calls code. The opcodes that would (GLOBAL, STACK_GLOBAL, REDUCE, BUILD,
// INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, NEXT_BUFFER,
// READONLY_BUFFER) and unknown opcodes make it refuse the whole message
// with ErrUnsafePickle; nothing from such a message is returned. A refused
// message on a channel only Flask-SocketIO should write to means someone
// else can publish there: treat it as a security event.
//
// Every decode is bounded (see Limits): nesting depth, container elements
// and bytes of text and binary values (both counted with references shared
// through the pickle memo expanded, which could otherwise blow up
// exponentially when the result is encoded), memo entries and integer
// size. Lengths
// in the input are checked against the input before anything is
// allocated, memory stays linear in the input size, and no input makes the
// decoder panic (it is fuzzed). Capping the size of what is read from the
// queue is the caller's job.
package flaskqueue
