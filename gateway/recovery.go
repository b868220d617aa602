package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/zishang520/socket.io/servers/socket/v3"
	"github.com/zishang520/socket.io/v3/pkg/types"
	"github.com/zishang520/socket.io/v3/pkg/utils"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/recovery"
	"github.com/meshgen/gateway/rooms"
)

// This file is connection state recovery across nodes, for the unchanged
// socket.io-client v4: with recovery on, the library puts a private
// session id (pid) in every CONNECT reply; the client keeps the last
// string argument of each event as its offset and sends {pid, offset} in
// its next CONNECT. Every room broadcast of a bus event carries the
// event's id as that last argument.
//
// A session (its rooms, its log follows, its user) is written to the store
// whenever it changes and refreshed while connected, so it survives its
// node being killed. On a CONNECT with {pid, offset}, the library asks the
// room adapter to RestoreSession (before authentication): the session is
// claimed for the new socket, its window checked, the offset checked to
// be an event the gateway issued, and the events missed in its rooms
// counted (the node's backlog first, then the Redis stream). The library
// then answers CONNECT with the same pid, and socket.io-client reports
// socket.recovered. In onConnection, once authenticated, each room and
// follow is authorized again for the principal, the missed events are
// sent, and the rooms are joined under the lock deliveries take, after
// the last replayed event: every event is sent exactly once, in stream
// order. Anything that cannot finish closes the transport: the client
// reconnects with the offset it really reached and tries again.

// Defaults of Recovery.
const (
	// restoreTimeout bounds the store and stream reads of one recovery.
	restoreTimeout = 3 * time.Second
	// catchUpTimeout bounds the wait for this node's consumer to reach a
	// recovering client's position (it is normally milliseconds behind).
	catchUpTimeout = 3 * time.Second
	// catchUpPoll is how often that wait looks.
	catchUpPoll = 2 * time.Millisecond
)

// Recovery configures connection state recovery.
type Recovery struct {
	// Window is how long after a disconnect a session can be recovered;
	// zero turns recovery off.
	Window time.Duration
	// Store keeps the sessions: in Redis for a cluster. Required with a
	// Window.
	Store recovery.Store
	// History is the bus's stored events, read for offsets older than the
	// node's backlog; nil for the in-process bus.
	History bus.History
	// MaxEvents bounds the events one recovery replays; past it the
	// session is not recovered. Zero means recovery.DefaultMaxEvents.
	MaxEvents int
}

// heartbeatFor is how often a node refreshes its connected sessions: a
// quarter of the window, between 250 ms and 30 s. A node killed without
// warning leaves its sessions as of its last heartbeat.
func heartbeatFor(window time.Duration) time.Duration {
	return min(max(window/4, 250*time.Millisecond), 30*time.Second)
}

// SessionTTL is how long a session is stored after its last write for a
// recovery window: the window, a heartbeat, and one more window in which
// a late attempt is counted as expired rather than unknown.
func SessionTTL(window time.Duration) time.Duration {
	return 2*window + heartbeatFor(window)
}

// BacklogAge is how long the backlog keeps events for a recovery window:
// long enough to hold the end of any session's quiet stretch.
func BacklogAge(window time.Duration) time.Duration { return 2*window + heartbeatFor(window) }

// recoverer is the server's recovery state.
type recoverer struct {
	s       *Server
	opts    Recovery
	planner *recovery.Planner

	// pending holds, by the new socket id, the sessions RestoreSession
	// accepted until onConnection takes them (or a connect timeout passes).
	pending sync.Map // socket.SocketId -> *pendingRestore
	// states holds every connected socket's session state.
	states sync.Map // socket.SocketId -> *sessionState
}

// pendingRestore is a session accepted for recovery and its replay.
type pendingRestore struct {
	session recovery.Session
	replay  recovery.Replay
}

// sessionState is one connected socket's session as the store has it.
type sessionState struct {
	pid  string
	sid  string
	user string

	mu   sync.Mutex
	held []rooms.Access
}

func newRecoverer(s *Server, opts Recovery, backlog *recovery.Backlog, maxBytes int64) *recoverer {
	return &recoverer{s: s, opts: opts, planner: &recovery.Planner{
		Backlog: backlog, History: opts.History, MaxEvents: opts.MaxEvents, MaxBytes: maxBytes,
	}}
}

// privateSessionID returns the pid the library gave sock (and sent in its
// CONNECT reply). The library keeps it unexported, without an accessor;
// it is read (never written) through reflection, and a test fails if the
// field goes away.
func privateSessionID(sock *socket.Socket) string {
	f := reflect.ValueOf(sock).Elem().FieldByName("pid")
	if !f.IsValid() || f.Kind() != reflect.String {
		return ""
	}
	return f.String()
}

// validPID reports whether pid has the form of the library's private
// session ids (18 random bytes, base64url): anything else is not looked
// up.
func validPID(pid string) bool {
	if len(pid) != 24 {
		return false
	}
	for _, c := range pid {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// restore is the adapter's RestoreSession: it runs on the library's
// goroutine for the CONNECT, before authentication. A nil session (and
// nil error) makes the library start a fresh one.
func (r *recoverer) restore(pid, offset string) (*socket.Session, error) {
	if !validPID(pid) {
		r.s.opts.Metrics.Recovery(string(recovery.Unknown))
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout)
	defer cancel()
	sid := utils.Base64Id().GenerateId()
	session, replay, outcome, err := r.plan(ctx, pid, sid, offset)
	if outcome != recovery.Recovered {
		r.s.opts.Metrics.Recovery(string(outcome))
		if err != nil {
			r.s.quiet.Log(ctx, slog.LevelWarn, "session not recovered: the store or the stream could not be read", slog.String("error", err.Error()))
		}
		return nil, nil
	}
	p := &pendingRestore{session: session, replay: replay}
	r.pending.Store(socket.SocketId(sid), p)
	// A client that never completes its connect (refused, gone) leaves no
	// pending restore behind.
	time.AfterFunc(r.s.opts.ConnectTimeout+authTimeout, func() { r.pending.CompareAndDelete(socket.SocketId(sid), p) })
	return &socket.Session{SessionToPersist: &socket.SessionToPersist{
		Sid: socket.SocketId(sid), Pid: socket.PrivateSessionId(pid), Rooms: types.NewSet[socket.Room](),
	}}, nil
}

// plan claims pid's session for sid and checks it can be recovered from
// offset.
func (r *recoverer) plan(ctx context.Context, pid, sid, offset string) (recovery.Session, recovery.Replay, recovery.Outcome, error) {
	session, found, err := r.opts.Store.Claim(ctx, pid, sid)
	switch {
	case err != nil:
		return session, recovery.Replay{}, recovery.Unavailable, err
	case !found:
		return session, recovery.Replay{}, recovery.Unknown, nil
	case time.Since(session.Seen) > r.opts.Window:
		r.forget(ctx, pid, sid)
		return session, recovery.Replay{}, recovery.Expired, nil
	}
	held := heldRooms(session.Held)
	replay, outcome, err := r.planner.Plan(ctx, offset, session.Quiet, func(names []string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return held[n] })
	})
	if outcome != recovery.Recovered {
		r.forget(ctx, pid, sid)
	}
	return session, replay, outcome, err
}

// forget deletes a session that cannot be recovered.
func (r *recoverer) forget(ctx context.Context, pid, sid string) {
	if err := r.opts.Store.Delete(ctx, pid, sid); err != nil {
		r.s.opts.Metrics.SessionError("delete")
	}
}

// heldRooms is the set of rooms of a session's holdings.
func heldRooms(held []rooms.Access) map[string]bool {
	out := make(map[string]bool, len(held))
	for _, a := range held {
		if room, ok := rooms.RoomOf(a); ok {
			out[room] = true
		}
	}
	return out
}

// connected starts tracking sock's session: a recovered one gets its rooms,
// follows and missed events back; a new one is stored. It runs in
// onConnection, on the socket's task queue, so the client's own events
// (its rejoin) wait until it returns.
func (r *recoverer) connected(sock *socket.Socket, m member) *sessionState {
	st := &sessionState{pid: privateSessionID(sock), sid: string(sock.Id()), user: m.p.User}
	if st.pid == "" {
		r.s.quiet.Log(context.Background(), slog.LevelError, "socket without a private session id: its state is not kept for recovery", slog.String("sid", st.sid))
		return nil
	}
	r.states.Store(sock.Id(), st)
	ctx, cancel := context.WithTimeout(context.Background(), restoreTimeout+catchUpTimeout)
	defer cancel()
	if !sock.Recovered() {
		r.save(ctx, st)
		return st
	}
	v, ok := r.pending.LoadAndDelete(sock.Id())
	if !ok {
		r.abandon(ctx, sock, st, "pending restore timed out")
		return st
	}
	p := v.(*pendingRestore)
	if p.session.User != m.p.User {
		// Someone else's session id: nothing of it is given back, and the
		// client's next connect starts afresh.
		r.forget(ctx, st.pid, st.sid)
		r.s.opts.Metrics.Recovery(string(recovery.Unknown))
		r.s.quiet.Log(ctx, slog.LevelWarn, "session of another user presented: closed", slog.String("user", m.p.User))
		sock.Conn().Close(false)
		return st
	}
	kept := r.s.opts.Protocol.Reauthorize(ctx, m, p.session.Held)
	replayed, err := r.replay(ctx, sock, kept, p.replay)
	if err != nil {
		r.abandon(ctx, sock, st, err.Error())
		return st
	}
	st.held = kept
	r.save(ctx, st)
	for _, a := range kept {
		if a.Kind == rooms.AccessJob {
			if err := r.s.opts.Protocol.Refollow(ctx, m, a); err != nil {
				r.s.quiet.Log(ctx, slog.LevelWarn, "log follow not restored", slog.String("job", a.ID.Key), slog.String("error", err.Error()))
			}
		}
	}
	r.s.opts.Metrics.Recovery(string(recovery.Recovered))
	r.s.opts.Metrics.Replayed(replayed)
	r.s.log.Debug("session recovered", slog.String("sid", st.sid), slog.String("user", st.user), slog.Int("replayed", replayed), slog.Int("held", len(kept)))
	return st
}

// abandon closes a recovered socket whose replay could not finish: the
// client reconnects with the offset it really reached and tries again
// (its session is still stored).
func (r *recoverer) abandon(ctx context.Context, sock *socket.Socket, st *sessionState, why string) {
	r.s.opts.Metrics.Recovery(string(recovery.Unavailable))
	r.s.quiet.Log(ctx, slog.LevelWarn, "recovery could not finish: client closed to retry", slog.String("sid", st.sid), slog.String("reason", why))
	r.states.Delete(sock.Id())
	sock.Conn().Close(false)
}

// replay sends a recovered socket what it missed in the rooms of kept and
// joins them: the events read from the stream, then the backlog's after
// the replay's position (outside the delivery lock, while the consumer may
// go on), then, once the consumer has reached that position, the rest
// under the delivery lock, the rooms joined before it is released.
func (r *recoverer) replay(ctx context.Context, sock *socket.Socket, kept []rooms.Access, plan recovery.Replay) (int, error) {
	wanted := heldRooms(kept)
	in := func(names []string) bool { return slices.ContainsFunc(names, func(n string) bool { return wanted[n] }) }
	sent := 0
	for _, e := range plan.Events {
		if in(e.Rooms) {
			r.send(sock, e)
			sent++
		}
	}
	through := plan.Through
	sent += r.sendSince(sock, &through, in)
	if err := r.s.waitDelivered(ctx, through); err != nil {
		return sent, err
	}
	r.s.deliverMu.Lock()
	defer r.s.deliverMu.Unlock()
	if !r.s.backlog.Complete(through) {
		return sent, errors.New("the backlog moved past the replay's position")
	}
	sent += r.sendSince(sock, &through, in)
	for room := range wanted {
		sock.Join(socket.Room(room))
	}
	return sent, nil
}

// sendSince sends the backlog's events after *through that in selects, and
// moves *through to the last event looked at.
func (r *recoverer) sendSince(sock *socket.Socket, through *string, in func([]string) bool) int {
	var events []event.Event
	last := *through
	r.s.backlog.Since(*through, func(e event.Event) bool {
		last = e.ID
		if in(e.Rooms) {
			events = append(events, e)
		}
		return true
	})
	*through = last
	for _, e := range events {
		r.send(sock, e)
	}
	return len(events)
}

// send emits one bus event to one socket, with its offset, as a live
// delivery would.
func (r *recoverer) send(sock *socket.Socket, e event.Event) {
	_ = sock.Emit(e.Name, e.Payload, e.ID)
}

// record updates st after the protocol changed what it holds, and stores
// it.
func (r *recoverer) record(ctx context.Context, st *sessionState, a rooms.Access, held bool) {
	st.mu.Lock()
	i := slices.IndexFunc(st.held, func(h rooms.Access) bool { return h.Kind == a.Kind && h.ID.Key == a.ID.Key })
	switch {
	case held && i < 0:
		st.held = append(st.held, a)
	case held:
		st.held[i] = a // a follow's project may have changed
	case i >= 0:
		st.held = slices.Delete(st.held, i, i+1)
	default:
		st.mu.Unlock()
		return
	}
	st.mu.Unlock()
	r.save(ctx, st)
}

// save writes st to the store.
func (r *recoverer) save(ctx context.Context, st *sessionState) {
	st.mu.Lock()
	s := recovery.Session{PID: st.pid, Owner: st.sid, User: st.user, Held: slices.Clone(st.held), Seen: time.Now()}
	st.mu.Unlock()
	s.Quiet, _ = r.s.backlog.QuietFor(roomList(s.Held))
	if _, err := r.opts.Store.Save(ctx, s); err != nil {
		r.s.opts.Metrics.SessionError("save")
		r.s.quiet.Log(ctx, slog.LevelWarn, "recovery session not saved: this client may not recover its state", slog.String("error", err.Error()))
	}
}

// disconnected ends tracking sock's session: a session the client may come
// back to (a transport close, a ping timeout, a server shutdown) is
// stamped with the time and kept for the window; one the client or the
// server ended on purpose is deleted.
func (r *recoverer) disconnected(sock *socket.Socket, reason string) {
	v, ok := r.states.LoadAndDelete(sock.Id())
	if !ok {
		return
	}
	st := v.(*sessionState)
	ctx, cancel := context.WithTimeout(context.Background(), handlerTimeout)
	defer cancel()
	if !socket.RECOVERABLE_DISCONNECT_REASONS.Has(reason) {
		r.forget(ctx, st.pid, st.sid)
		return
	}
	r.touch(ctx, []*sessionState{st})
}

// ref is st as Store.Touch takes it, with its rooms' quiet stretch now.
func (r *recoverer) ref(st *sessionState) recovery.Ref {
	st.mu.Lock()
	names := roomList(st.held)
	st.mu.Unlock()
	q, _ := r.s.backlog.QuietFor(names)
	return recovery.Ref{PID: st.pid, Owner: st.sid, Quiet: q}
}

func roomList(held []rooms.Access) []string {
	out := make([]string, 0, len(held))
	for _, a := range held {
		if room, ok := rooms.RoomOf(a); ok {
			out = append(out, room)
		}
	}
	return out
}

// heartbeat refreshes every connected session of this node each interval
// until ctx ends: their Seen time (from which the window of a node killed
// without warning counts) and quiet stretch.
func (r *recoverer) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatFor(r.opts.Window))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var states []*sessionState
		r.states.Range(func(_, v any) bool {
			states = append(states, v.(*sessionState))
			return true
		})
		tctx, cancel := context.WithTimeout(ctx, heartbeatFor(r.opts.Window))
		r.touch(tctx, states)
		cancel()
	}
}

// touch refreshes states in the store; a session the store lost (a Redis
// that restarted empty) is saved again whole.
func (r *recoverer) touch(ctx context.Context, states []*sessionState) {
	refs := make([]recovery.Ref, len(states))
	byPID := make(map[string]*sessionState, len(states))
	for i, st := range states {
		refs[i] = r.ref(st)
		byPID[st.pid] = st
	}
	missing, err := r.opts.Store.Touch(ctx, refs, time.Now())
	if err != nil {
		if ctx.Err() == nil || len(states) == 1 {
			r.s.opts.Metrics.SessionError("touch")
			r.s.quiet.Log(ctx, slog.LevelWarn, "recovery sessions not refreshed", slog.Int("sessions", len(refs)), slog.String("error", err.Error()))
		}
		return
	}
	for _, ref := range missing {
		r.save(ctx, byPID[ref.PID])
	}
}

// waitDelivered waits until this node's consumer has delivered position
// (an event id), bounded by catchUpTimeout.
func (s *Server) waitDelivered(ctx context.Context, position string) error {
	if s.opts.Delivered == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, catchUpTimeout)
	defer cancel()
	t := time.NewTicker(catchUpPoll)
	defer t.Stop()
	for {
		if d := s.opts.Delivered(); d != "" && bus.CompareIDs(d, position) >= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("this node's consumer did not reach %s: %w", position, ctx.Err())
		case <-t.C:
		}
	}
}

// sendBatchState sends sock, which just joined room (the room of batch)
// when the backlog's newest event was joinedAt, the batch's current
// batch_status (state on join): the last one this node delivered, or the
// registry's counts. None is sent when a newer one reached the client
// live in between, so the client never sees the batch go backwards.
func (s *Server) sendBatchState(ctx context.Context, sock *socket.Socket, batch rooms.ID, joinedAt string) {
	room := rooms.BatchRoom(batch)
	newer := func(ev event.Event) bool { return joinedAt == "" || bus.CompareIDs(ev.ID, joinedAt) > 0 }
	s.deliverMu.Lock()
	if ev, ok := s.backlog.LastStatus(room); ok {
		if newer(ev) {
			s.opts.Metrics.JoinState("live")
		} else {
			_ = sock.Emit(event.BatchStatus, ev.Payload)
			s.opts.Metrics.JoinState("backlog")
		}
		s.deliverMu.Unlock()
		return
	}
	s.deliverMu.Unlock()

	counts, position, found, err := s.opts.BatchState(ctx, batch.Key)
	if err != nil {
		s.opts.Metrics.JoinState("unavailable")
		s.quiet.Log(ctx, slog.LevelWarn, "batch state not sent: the registry could not be read", slog.String("batch", batch.Key), slog.String("error", err.Error()))
		return
	}
	if !found {
		return
	}
	payload, err := json.Marshal(counts.Payload(batch))
	if err != nil {
		return
	}
	// The counts include every batch event up to position: once this node
	// delivered it, none older can follow the state sent.
	if position != "" {
		if err := s.waitDelivered(ctx, position); err != nil {
			s.opts.Metrics.JoinState("unavailable")
			return
		}
	}
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	if ev, ok := s.backlog.LastStatus(room); ok && newer(ev) {
		s.opts.Metrics.JoinState("live")
		return
	}
	_ = sock.Emit(event.BatchStatus, json.RawMessage(payload))
	s.opts.Metrics.JoinState("registry")
}
