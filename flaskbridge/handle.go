package flaskbridge

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/meshgen/gateway/flaskqueue"
)

// logPrefixBytes is how much of a refused message goes into the log.
const logPrefixBytes = 32

// handle acts on one message read from the channel. It never panics: a
// panic in the Emitter is logged and counted (Dropped.Failed), so one bad
// message cannot stop the node from serving.
func (b *Bridge) handle(payload []byte) {
	b.cnt.received.Add(1)
	defer func() {
		if r := recover(); r != nil {
			b.cnt.failed.Add(1)
			b.log.Error("flask queue message made the emitter panic; dropped", slog.Any("panic", r), slog.Int("bytes", len(payload)), slog.String("prefix", prefix(payload)))
		}
	}()

	if len(payload) > b.maxBytes {
		b.cnt.tooLarge.Add(1)
		b.log.Warn("flask queue message dropped: too large", slog.Int("bytes", len(payload)), slog.Int("max_bytes", b.maxBytes), slog.String("prefix", prefix(payload)))
		return
	}
	m, err := b.limits.Decode(payload)
	if err != nil {
		b.refuse(err, payload)
		return
	}
	if m.Namespace != "/" {
		b.cnt.foreign.Add(1)
		b.log.Debug("flask queue message for another namespace ignored", slog.String("method", m.Method), slog.String("namespace", m.Namespace))
		return
	}

	switch m.Method {
	case flaskqueue.MethodEmit:
		b.emit(m)
	case flaskqueue.MethodCloseRoom:
		b.em.CloseRoom(m.Rooms[0])
		b.cnt.applied.Add(1)
	case flaskqueue.MethodEnterRoom:
		b.bySID(m, "enter_room", b.em.JoinRoom(m.SID, m.Rooms[0]))
	case flaskqueue.MethodLeaveRoom:
		b.bySID(m, "leave_room", b.em.LeaveRoom(m.SID, m.Rooms[0]))
	case flaskqueue.MethodDisconnect:
		b.bySID(m, "disconnect", b.em.DisconnectSocket(m.SID))
	case flaskqueue.MethodCallback:
		// An acknowledgement addressed to the Python server (HostID) that
		// emitted with a callback; this node never registers callbacks.
		b.cnt.ignored.Add(1)
		b.log.Debug("flask queue callback ignored", slog.String("sid", m.SID), slog.String("host_id", m.HostID))
	default: // flaskqueue only returns the methods above
		b.cnt.unsupported.Add(1)
		b.log.Warn("flask queue message dropped: unsupported method", slog.String("method", m.Method))
	}
}

func (b *Bridge) emit(m flaskqueue.Message) {
	if m.HasBinary() {
		b.cnt.binary.Add(1)
		b.log.Warn("flask queue emit dropped: binary payloads are not forwarded", slog.String("event", m.Event))
		return
	}
	args, err := m.PayloadJSON()
	if err != nil {
		b.cnt.notJSON.Add(1)
		b.log.Warn("flask queue emit dropped: payload has no JSON form", slog.String("event", m.Event), slog.Any("error", err))
		return
	}
	if m.Ack != nil {
		// python-socketio would have the client acknowledge and publish a
		// callback message back; the gateway never publishes on the
		// channel, so the event goes out without an ack request.
		b.log.Debug("flask queue emit asks for a callback; emitted without", slog.String("event", m.Event), slog.String("sid", m.Ack.SID))
	}
	var rooms []string
	if !m.AllRooms {
		rooms = m.Rooms
	}
	b.em.Emit(m.Event, rooms, m.AllRooms, m.SkipSIDs, args)
	b.cnt.emitted.Add(1)
}

// bySID counts a sid-addressed message: applied when the sid is this
// node's, ignored otherwise (every node reads every message; only the one
// holding the client acts).
func (b *Bridge) bySID(m flaskqueue.Message, what string, local bool) {
	if local {
		b.cnt.applied.Add(1)
		return
	}
	b.cnt.ignored.Add(1)
	b.log.Debug("flask queue "+what+" for a sid not on this node ignored", slog.String("sid", m.SID))
}

// refuse counts and logs a message flaskqueue would not decode. The
// message itself is never logged in full.
func (b *Bridge) refuse(err error, payload []byte) {
	attrs := []any{slog.Any("error", err), slog.Int("bytes", len(payload)), slog.String("prefix", prefix(payload))}
	switch {
	case errors.Is(err, flaskqueue.ErrUnsafePickle):
		b.cnt.unsafe.Add(1)
		b.log.Warn("flask queue message refused: unsafe pickle (it would import or call code; someone other than Flask-SocketIO can publish on this channel)", attrs...)
	case errors.Is(err, flaskqueue.ErrUnsupportedMethod):
		b.cnt.unsupported.Add(1)
		b.log.Warn("flask queue message dropped: unsupported method", attrs...)
	case errors.Is(err, flaskqueue.ErrLimit):
		b.cnt.tooLarge.Add(1)
		b.log.Warn("flask queue message dropped: beyond decoding limits", attrs...)
	default:
		b.cnt.malformed.Add(1)
		b.log.Warn("flask queue message dropped: malformed", attrs...)
	}
}

// prefix escapes the first bytes of a message for the log (Go string
// escapes, ASCII only, without the quotes).
func prefix(p []byte) string {
	n := min(len(p), logPrefixBytes)
	q := strconv.QuoteToASCII(string(p[:n]))
	q = q[1 : len(q)-1]
	if n < len(p) {
		q += fmt.Sprintf("... (%d more bytes)", len(p)-n)
	}
	return q
}
