package gateway

import (
	"encoding/json"

	"github.com/meshgen/gateway/event"

	"github.com/zishang520/socket.io/servers/socket/v3"
)

// Emit sends the event name with args (each already JSON-encoded, shared
// by every recipient; invalid UTF-8 in them becomes U+FFFD) to this node's clients: to the clients in any of rooms, or to
// every client when broadcast is true; clients in any of except (rooms or
// socket ids) are skipped. It reaches only this node: the Flask-SocketIO
// queue bridge uses it because every node reads that queue itself.
func (s *Server) Emit(name string, rooms []string, broadcast bool, except []string, args []json.RawMessage) {
	values := make([]any, len(args))
	for i, a := range args {
		values[i] = event.ValidUTF8(a)
	}
	op := s.io.Sockets().Local()
	if !broadcast {
		if len(rooms) == 0 {
			return
		}
		op = op.To(toRooms(rooms)...)
	}
	if len(except) > 0 {
		op = op.Except(toRooms(except)...)
	}
	_ = op.Emit(name, values...)
	s.opts.Metrics.Emitted(name)
}

// CloseRoom makes every client of this node leave room.
func (s *Server) CloseRoom(room string) {
	s.io.Local().In(socket.Room(room)).SocketsLeave(socket.Room(room))
}

// JoinRoom adds the local socket sid to room; false when sid is not
// connected to this node.
func (s *Server) JoinRoom(sid, room string) bool {
	sock, ok := s.io.Sockets().Sockets().Load(socket.SocketId(sid))
	if ok {
		sock.Join(socket.Room(room))
	}
	return ok
}

// LeaveRoom removes the local socket sid from room; false when sid is not
// connected to this node.
func (s *Server) LeaveRoom(sid, room string) bool {
	sock, ok := s.io.Sockets().Sockets().Load(socket.SocketId(sid))
	if ok {
		sock.Leave(socket.Room(room))
	}
	return ok
}

// DisconnectSocket disconnects the local socket sid with a Socket.IO
// DISCONNECT, as a Flask-SocketIO disconnect(sid) does (the client does
// not reconnect); false when sid is not connected to this node.
func (s *Server) DisconnectSocket(sid string) bool {
	sock, ok := s.io.Sockets().Sockets().Load(socket.SocketId(sid))
	if ok {
		sock.Disconnect(true)
	}
	return ok
}

func toRooms(names []string) []socket.Room {
	out := make([]socket.Room, len(names))
	for i, n := range names {
		out[i] = socket.Room(n)
	}
	return out
}
