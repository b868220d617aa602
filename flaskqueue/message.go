package flaskqueue

import (
	"fmt"
)

// Methods python-socketio's pub/sub managers publish.
const (
	// MethodEmit asks every server to emit an event to a namespace, a room
	// or a list of rooms.
	MethodEmit = "emit"
	// MethodDisconnect asks the server holding SID to disconnect it.
	MethodDisconnect = "disconnect"
	// MethodEnterRoom asks the server holding SID to put it in a room
	// (python-socketio 5.8+).
	MethodEnterRoom = "enter_room"
	// MethodLeaveRoom asks the server holding SID to take it out of a room
	// (python-socketio 5.8+).
	MethodLeaveRoom = "leave_room"
	// MethodCloseRoom asks every server to empty a room.
	MethodCloseRoom = "close_room"
	// MethodCallback carries a client's acknowledgement back to the server
	// (HostID) that emitted with a callback.
	MethodCallback = "callback"
)

// Format is the wire encoding of a message.
type Format uint8

// Formats Decode recognises.
const (
	// FormatJSON is what python-socketio 5.14 and later publish.
	FormatJSON Format = iota + 1
	// FormatPickle is what python-socketio 5.13 and earlier publish
	// (pickle.dumps with the interpreter's default protocol).
	FormatPickle
)

// String returns "json" or "pickle".
func (f Format) String() string {
	switch f {
	case FormatJSON:
		return "json"
	case FormatPickle:
		return "pickle"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// Message is one validated message from the Flask-SocketIO channel. Which
// fields are set depends on Method; the others are zero.
type Message struct {
	// Method is one of the Method* constants.
	Method string
	// Format is the encoding the message arrived in.
	Format Format
	// HostID is the publishing server's id (a uuid4 hex string), or ""
	// when the publisher did not send one (old versions). For
	// MethodCallback it is the id of the server the ack is addressed to.
	HostID string
	// Namespace is the Socket.IO namespace; "/" when absent, None or "".
	Namespace string

	// Event is the event name (MethodEmit), never empty.
	Event string
	// Data holds the arguments of the event (MethodEmit) or of the
	// acknowledgement (MethodCallback), in order; empty, not nil, for
	// none. Values are those of DecodePickle (JSON numbers decode as
	// int64, *big.Int or float64 the same way); binary attachments are
	// []byte.
	Data []any
	// Rooms are the target rooms of MethodEmit when AllRooms is false
	// (never empty then), or the single room of MethodEnterRoom,
	// MethodLeaveRoom and MethodCloseRoom.
	Rooms []string
	// AllRooms is true for a MethodEmit whose room was None: every client
	// of the namespace.
	AllRooms bool
	// SkipSIDs are the session ids a MethodEmit must not reach.
	SkipSIDs []string
	// Ack is set for a MethodEmit whose sender waits for an
	// acknowledgement; nil otherwise.
	Ack *Ack

	// SID is the session id MethodDisconnect, MethodEnterRoom,
	// MethodLeaveRoom and MethodCallback are about.
	SID string
	// AckID is the acknowledgement id of MethodCallback.
	AckID int64
}

// Ack is the callback triple of an emit: the client (SID) expected to
// acknowledge, its namespace, and the id the emitting server (the
// message's HostID) registered the callback under. The acknowledgement
// goes back as a MethodCallback message.
type Ack struct {
	SID       string
	Namespace string
	ID        int64
}

// Decode decodes and validates one message published on the
// Flask-SocketIO channel, with the default Limits. See Limits.Decode.
func Decode(b []byte) (Message, error) {
	return Limits{}.Decode(b)
}

// Decode decodes and validates one message published on the
// Flask-SocketIO channel.
//
// The format is detected from the first byte: '{' (after optional JSON
// whitespace) is JSON; 0x80 (PROTO, protocols 2-5), '}' (EMPTY_DICT,
// protocol 1) and '(' (MARK, protocol 0) start a pickle of a dict. Anything
// else is refused with ErrMalformed. Pickles are decoded by
// Limits.DecodePickle, so a pickle that would construct an object or call
// code is refused with ErrUnsafePickle and nothing in it is evaluated.
//
// The emit arguments follow what python-socketio's receiving side does:
//
//   - pickle (python-socketio <= 5.13): "data" is the value passed to
//     emit; a tuple is the argument list, None is no argument, anything
//     else (a list included) is the single argument.
//   - JSON (python-socketio >= 5.14): "data" is the argument list; when
//     "binary" is true, data[0] is that list with {"_placeholder": true,
//     "num": n} in place of bytes values and data[1:] are the base64
//     attachments, which are put back as []byte. A one-element list
//     [None] means no argument; a non-list is a single argument.
//
// Errors wrap ErrMalformed, ErrUnsafePickle, ErrUnsupportedMethod or
// ErrLimit. Decode never panics.
func (l Limits) Decode(b []byte) (Message, error) {
	l = l.withDefaults()
	i := 0
	for i < len(b) && isJSONSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return Message{}, fmt.Errorf("%w: empty message", ErrMalformed)
	}
	switch c := b[i]; {
	case c == '{':
		return decodeJSONMessage(b, l)
	case i == 0 && (c == opProto || c == opEmptyDict || c == opMark):
		return decodePickleMessage(b, l)
	default:
		return Message{}, fmt.Errorf("%w: unrecognised format: starts with byte 0x%02x, want JSON object or pickle", ErrMalformed, c)
	}
}

func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

func decodePickleMessage(b []byte, l Limits) (Message, error) {
	d := newDecoder(b, l)
	root, err := d.run()
	if err != nil {
		return Message{}, err
	}
	dict, ok := root.(*pyDict)
	if !ok {
		return Message{}, fmt.Errorf("%w: pickle holds a %s, want dict", ErrMalformed, typeName(root))
	}
	// Only the pickle keeps tuples apart from lists, and for "data" the
	// difference matters: a tuple is the argument list.
	_, dataIsTuple := dict.m["data"].(*pyTuple)
	v, err := d.export(dict, 1)
	if err != nil {
		return Message{}, err
	}
	return fromFields(v.(map[string]any), FormatPickle, dataIsTuple, l)
}
