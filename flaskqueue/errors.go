package flaskqueue

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers can branch with errors.Is; the wrapping text says what was
// wrong and, for pickles, at which byte offset.
var (
	// ErrUnsafePickle reports a pickle that uses an opcode able to import,
	// construct or call anything (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST,
	// OBJ, NEWOBJ, NEWOBJ_EX, EXT1/2/4, PERSID, BINPERSID, NEXT_BUFFER,
	// READONLY_BUFFER) or an opcode this package does not know. Such a
	// message is refused as a whole; nothing in it is evaluated. On a
	// channel that only Flask-SocketIO writes to, it means someone else can
	// publish there.
	ErrUnsafePickle = errors.New("flaskqueue: unsafe pickle")

	// ErrMalformed reports input that is not a well-formed pickle or JSON
	// document, or a decoded message that lacks a required key or carries a
	// value of the wrong type.
	ErrMalformed = errors.New("flaskqueue: malformed message")

	// ErrUnsupportedMethod reports a well-formed message whose "method" is
	// not one of the Method* constants.
	ErrUnsupportedMethod = errors.New("flaskqueue: unsupported method")

	// ErrLimit reports input that exceeds a Limits bound (nesting depth,
	// container elements, bytes of text and binary values, memo entries)
	// or an integer of more than 4300 decimal digits.
	ErrLimit = errors.New("flaskqueue: limit exceeded")

	// ErrNotJSON is returned by Message.PayloadJSON for an argument that has
	// no faithful JSON form: a bytes/bytearray value (a Socket.IO binary
	// attachment) or a NaN or infinite float.
	ErrNotJSON = errors.New("flaskqueue: value not representable as JSON")
)
