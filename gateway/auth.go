package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"

	"github.com/meshgen/gateway/auth"
	"github.com/meshgen/gateway/rooms"
)

// authTimeout bounds one authentication (a backend call, a JWKS fetch).
const authTimeout = 5 * time.Second

// unauthorized is the CONNECT_ERROR message of a refused connect, which
// socket.io-client reports as connect_error with err.message
// "Unauthorized"; the reason is logged and counted, not sent.
const unauthorized = "Unauthorized"

// authenticate is the namespace middleware: it runs for every CONNECT,
// recovered sessions included, and lets the socket in only with a
// principal from the policy. The open policy answers at once; the others
// run on a goroutine of their own (the library accepts next from any
// goroutine and orders it on the socket's queue), bounded by authTimeout.
func (s *Server) authenticate(sock *socket.Socket, next func(*socket.ExtendedError)) {
	creds := credentialsOf(sock, s.opts.AuthExtract)
	dropHandshake(sock)
	if _, open := s.opts.Auth.(auth.Open); open {
		p, _ := s.opts.Auth.Authenticate(context.Background(), creds)
		sock.SetData(p)
		next(nil)
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), authTimeout)
		defer cancel()
		p, err := s.opts.Auth.Authenticate(ctx, creds)
		if err != nil {
			reason := auth.ReasonOf(err)
			s.opts.Metrics.AuthConnect(string(reason))
			s.quiet.Log(ctx, slog.LevelInfo, "connect refused", slog.String("reason", string(reason)), slog.String("source", creds.Source), slog.String("detail", err.Error()))
			next(socket.NewExtendedError(unauthorized, nil))
			return
		}
		s.opts.Metrics.AuthConnect("ok")
		sock.SetData(p)
		next(nil)
	}()
}

// credentialsOf reads the credentials of sock's handshake. It is the only
// reader of the handshake's headers, query and auth payload, which
// dropHandshake then releases.
func credentialsOf(sock *socket.Socket, opts auth.ExtractOptions) auth.Credentials {
	req := sock.Request()
	h := http.Header{}
	for _, name := range []string{"Authorization", "Cookie"} {
		if v := req.Headers().Peek(name); v != "" {
			h.Set(name, v)
		}
	}
	var query map[string][]string
	if opts.Query {
		if v, ok := req.Query().Get("token"); ok {
			query = map[string][]string{"token": {v}}
		}
	}
	return auth.Extract(auth.Handshake{Auth: sock.Handshake().Auth, Headers: h, Query: query}, opts)
}

// dropHandshake releases the library's copy of the handshake's headers,
// query and auth payload (maps held for the socket's lifetime, about 0.6
// KB per client) once credentialsOf has read them: nothing reads them
// after authenticate (the library only keeps them for Socket.Handshake),
// and credentials are not kept longer than needed. The address, time,
// URL and flags stay.
func dropHandshake(sock *socket.Socket) {
	if h := sock.Handshake(); h != nil {
		h.Headers, h.Query, h.Auth = nil, nil, nil
	}
}

// principalOf returns the principal authenticate stored on sock.
func principalOf(sock *socket.Socket) *auth.Principal {
	if p, ok := sock.Data().(*auth.Principal); ok {
		return p
	}
	return &auth.Principal{} // unreachable: every socket passed authenticate
}

// expireAt closes sock's transport when its credentials expire (a client
// whose auth is a function then reconnects with fresh ones); the returned
// stop cancels it.
func (s *Server) expireAt(sock *socket.Socket, p *auth.Principal) (stop func() bool) {
	if p.ExpiresAt.IsZero() {
		return func() bool { return false }
	}
	t := time.AfterFunc(time.Until(p.ExpiresAt), func() {
		s.opts.Metrics.AuthExpired()
		s.log.Info("credentials expired: client closed", slog.String("sid", string(sock.Id())), slog.String("user", p.User))
		sock.Conn().Close(false)
	})
	return t.Stop
}

// member adapts a library socket to rooms.Member; its joins are
// authorized by the server's policy for its principal.
type member struct {
	s    *Server
	sock *socket.Socket
	p    *auth.Principal
	st   *sessionState // its recovery session; nil with recovery off
	join *joinMark     // its last join, for state on join
}

// joinMark is a client's last join: the room and the newest event of the
// backlog when it joined (events after it reached the client live). Only
// the socket's task queue touches it.
type joinMark struct{ room, at string }

func (m member) ID() string { return string(m.sock.Id()) }
func (m member) Rooms() int { return m.sock.Rooms().Len() - 1 } // its own room left out
func (m member) InRoom(room string) bool {
	return m.sock.Rooms().Has(socket.Room(room))
}
func (m member) Leave(room string) { m.sock.Leave(socket.Room(room)) }

// Join adds the client to room. With a backlog, it joins under the
// delivery lock and marks the position, so the batch state sent after it
// can tell which events reached the client live.
func (m member) Join(room string) {
	if m.s.backlog == nil {
		m.sock.Join(socket.Room(room))
		return
	}
	m.s.deliverMu.Lock()
	m.sock.Join(socket.Room(room))
	at := m.s.backlog.Newest()
	m.s.deliverMu.Unlock()
	*m.join = joinMark{room: room, at: at}
}

// Record implements rooms.Member: the recovery session follows what the
// client holds.
func (m member) Record(ctx context.Context, a rooms.Access, held bool) {
	if m.st != nil {
		m.s.rec.record(ctx, m.st, a, held)
	}
}

// Authorize implements rooms.Member: the policy decides, every refusal is
// counted by kind and reason and logged with the user (never a token).
func (m member) Authorize(ctx context.Context, a rooms.Access) error {
	err := m.s.opts.Auth.Authorize(ctx, m.p, a)
	if err == nil {
		m.s.opts.Metrics.AuthJoin(a.Kind, "ok")
		return nil
	}
	reason := auth.ReasonOf(err)
	m.s.opts.Metrics.AuthJoin(a.Kind, string(reason))
	level := slog.LevelInfo
	if reason == auth.ReasonError {
		level = slog.LevelWarn
	}
	m.s.quiet.Log(ctx, level, "join refused", slog.String("sid", m.ID()), slog.String("user", m.p.User),
		slog.String("kind", a.Kind), slog.String("id", a.ID.Key), slog.String("reason", string(reason)), slog.String("detail", err.Error()))
	return err
}
