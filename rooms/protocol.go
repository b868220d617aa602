package rooms

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Client events of the protocol (docs/protocol.md), plus the two additions.
const (
	EventSubscribeProject   = "subscribe_project"
	EventUnsubscribeProject = "unsubscribe_project"
	EventJoinBatch          = "join_batch"
	EventLeaveBatch         = "leave_batch"
	EventSubscribeLogs      = "subscribe_logs"
	EventUnsubscribeLogs    = "unsubscribe_logs"
)

// Reply events sent back to the client.
const (
	ReplySubscribedProject   = "subscribed_project"
	ReplyUnsubscribedProject = "unsubscribed_project"
	ReplyJoinedBatch         = "joined_batch"
	ReplyLeftBatch           = "left_batch"
	ReplySubscribed          = "subscribed"
	ReplyUnsubscribed        = "unsubscribed"
	ReplyError               = "error"
)

// Log-follow answers of subscribe_logs.
const (
	StatusStarted       = "started"
	StatusAlreadyActive = "already_active"
	TypeLocal           = "local"
	TypeModal           = "modal"
	localJobPrefix      = "local-"
)

// Member is one connected client as the protocol sees it.
type Member interface {
	// ID identifies the client (the Socket.IO socket id).
	ID() string
	// Join adds the client to room.
	Join(room string)
	// Leave removes the client from room.
	Leave(room string)
	// Rooms is the number of project and batch rooms the client is in.
	Rooms() int
	// InRoom reports whether the client is in room.
	InRoom(room string) bool
	// Authorize asks the gateway's one authorizer whether the client may
	// have a: nil allows; any error refuses (the reply is "Forbidden",
	// whatever the reason: a decision or a failure, which fails closed).
	Authorize(ctx context.Context, a Access) error
	// Record tells the client's session what it now holds (held true) or
	// released: a project or batch room joined or left, a job's logs
	// followed or unfollowed. The gateway keeps it so that a client that
	// reconnects gets it back (connection state recovery).
	Record(ctx context.Context, a Access, held bool)
}

// Kinds of Access.
const (
	AccessProject = "project" // join project_<id>
	AccessBatch   = "batch"   // join batch_<id>
	AccessJob     = "job"     // follow a job's logs
)

// Access is what a client asks for: to join a project or batch room, or
// to follow a job's logs.
type Access struct {
	Kind string
	ID   ID
	// Project is, for AccessJob, the project the client named with the
	// job (zero when none).
	Project ID
}

// Defaults of Limits.
const (
	DefaultMaxRooms   = 100
	DefaultMaxFollows = 20
)

// ForbiddenMessage is the error reply to a refused join.
const ForbiddenMessage = "Forbidden"

// Reply is what the gateway emits back to the client (and acknowledges
// with, when asked). A zero Reply means nothing is sent.
type Reply struct {
	Event   string
	Payload map[string]any
}

// roomEvent is a client event that joins or leaves one project or batch
// room.
type roomEvent struct {
	field string          // the payload's id field
	kind  string          // the Access kind a join asks for
	room  func(ID) string // the room's name
	join  bool            // join (authorized) or leave
	reply string          // the reply event
}

var roomEvents = map[string]roomEvent{
	EventSubscribeProject:   {"project_id", AccessProject, ProjectRoom, true, ReplySubscribedProject},
	EventUnsubscribeProject: {"project_id", AccessProject, ProjectRoom, false, ReplyUnsubscribedProject},
	EventJoinBatch:          {"batch_id", AccessBatch, BatchRoom, true, ReplyJoinedBatch},
	EventLeaveBatch:         {"batch_id", AccessBatch, BatchRoom, false, ReplyLeftBatch},
}

// Handles reports whether event is one of the protocol's client events.
func Handles(event string) bool {
	switch event {
	case EventSubscribeProject, EventUnsubscribeProject, EventJoinBatch,
		EventLeaveBatch, EventSubscribeLogs, EventUnsubscribeLogs:
		return true
	}
	return false
}

// Protocol answers client events. Create it with NewProtocol.
type Protocol struct {
	maxIDLength int
	maxRooms    int
	maxFollows  int
	follows     Follows
	onLimit     func(string)
}

// Options configures a Protocol.
type Options struct {
	// Follows tracks which jobs' logs are followed. Required.
	Follows Follows
	// MaxIDLength bounds ids. Zero means DefaultMaxIDLength.
	MaxIDLength int
	// MaxRooms bounds the project and batch rooms one client may be in;
	// a join past it answers error "Too many rooms (limit N)". Zero means
	// DefaultMaxRooms.
	MaxRooms int
	// MaxFollows bounds the jobs whose logs one client may follow; past it
	// subscribe_logs answers error "Too many log subscriptions (limit N)".
	// Zero means DefaultMaxFollows.
	MaxFollows int
	// OnLimit, when set, is called with LimitRooms or LimitFollows for
	// every request refused by them (for metrics).
	OnLimit func(limit string)
}

// NewProtocol returns the client protocol. It panics without Follows.
func NewProtocol(opts Options) *Protocol {
	if opts.Follows == nil {
		panic("rooms: Options needs Follows")
	}
	if opts.MaxIDLength <= 0 {
		opts.MaxIDLength = DefaultMaxIDLength
	}
	if opts.MaxRooms <= 0 {
		opts.MaxRooms = DefaultMaxRooms
	}
	if opts.MaxFollows <= 0 {
		opts.MaxFollows = DefaultMaxFollows
	}
	return &Protocol{maxIDLength: opts.MaxIDLength, maxRooms: opts.MaxRooms, maxFollows: opts.MaxFollows, follows: opts.Follows, onLimit: opts.OnLimit}
}

// Handle runs one client event and returns the reply. args are the event's
// decoded arguments (an acknowledgement callback already removed).
func (p *Protocol) Handle(ctx context.Context, m Member, event string, args []any) Reply {
	var payload any
	if len(args) > 0 {
		payload = args[0]
	}
	data, ok := payload.(map[string]any)
	if !ok {
		return errorReply("Invalid payload for " + event + ": expected a JSON object")
	}
	if re, ok := roomEvents[event]; ok {
		id, reply, ok := p.id(data, re.field)
		if !ok {
			return reply
		}
		room, access := re.room(id), Access{Kind: re.kind, ID: id}
		if !re.join {
			m.Leave(room)
			m.Record(ctx, access, false)
		} else if err := m.Authorize(ctx, access); err != nil {
			return errorReply(ForbiddenMessage)
		} else if !p.roomFor(m, room) {
			return p.tooManyRooms()
		} else {
			m.Join(room)
			m.Record(ctx, access, true)
		}
		return Reply{re.reply, map[string]any{re.field: id.Raw}}
	}
	switch event {
	case EventSubscribeLogs:
		return p.subscribeLogs(ctx, m, data)
	case EventUnsubscribeLogs:
		job, reply, ok := p.id(data, "job_id")
		if !ok {
			return reply
		}
		ok, err := p.follows.Unfollow(ctx, Follow{Job: job, Type: jobType(job), Member: m.ID()})
		if err != nil {
			return errorReply(unavailableMessage)
		}
		if !ok {
			return errorReply("Not subscribed to this job")
		}
		m.Record(ctx, Access{Kind: AccessJob, ID: job}, false)
		return Reply{ReplyUnsubscribed, map[string]any{"job_id": job.Raw}}
	}
	return errorReply("Unknown event: " + event)
}

func (p *Protocol) subscribeLogs(ctx context.Context, m Member, data map[string]any) Reply {
	job, reply, ok := p.id(data, "job_id")
	if !ok {
		return reply
	}
	var project ID
	if raw, present := data["project_id"]; present && raw != nil && raw != "" {
		var err error
		if project, err = ParseID(raw, p.maxIDLength); err != nil {
			return idError("project_id", err)
		}
		if m.Authorize(ctx, Access{Kind: AccessProject, ID: project}) != nil {
			return errorReply(ForbiddenMessage)
		}
	}
	if m.Authorize(ctx, Access{Kind: AccessJob, ID: job, Project: project}) != nil {
		return errorReply(ForbiddenMessage)
	}
	if project.Key != "" && !p.roomFor(m, ProjectRoom(project)) {
		return p.tooManyRooms()
	}
	if p.follows.Count(m.ID()) >= p.maxFollows {
		p.hit(LimitFollows)
		return errorReply(fmt.Sprintf("Too many log subscriptions (limit %d)", p.maxFollows))
	}
	if project.Key != "" {
		m.Join(ProjectRoom(project))
		m.Record(ctx, Access{Kind: AccessProject, ID: project}, true)
	}
	kind := jobType(job)
	already, err := p.follows.Follow(ctx, Follow{Job: job, Project: project, Type: kind, Member: m.ID()})
	if err != nil {
		return errorReply(unavailableMessage)
	}
	m.Record(ctx, Access{Kind: AccessJob, ID: job, Project: project}, true)
	if already {
		return Reply{ReplySubscribed, map[string]any{"job_id": job.Raw, "status": StatusAlreadyActive}}
	}
	return Reply{ReplySubscribed, map[string]any{"job_id": job.Raw, "status": StatusStarted, "type": kind}}
}

// Limit names given to Options.OnLimit.
const (
	LimitRooms   = "client_rooms"
	LimitFollows = "client_follows"
)

// roomFor reports whether m may be in room: it is already, or it is in
// fewer rooms than the limit.
func (p *Protocol) roomFor(m Member, room string) bool {
	return m.InRoom(room) || m.Rooms() < p.maxRooms
}

func (p *Protocol) tooManyRooms() Reply {
	p.hit(LimitRooms)
	return errorReply(fmt.Sprintf("Too many rooms (limit %d)", p.maxRooms))
}

func (p *Protocol) hit(limit string) {
	if p.onLimit != nil {
		p.onLimit(limit)
	}
}

// unavailableMessage answers a log (un)subscription the cluster could not
// record; the client may retry.
const unavailableMessage = "Log subscriptions are unavailable, try again"

func jobType(job ID) string {
	if strings.HasPrefix(job.Key, localJobPrefix) {
		return TypeLocal
	}
	return TypeModal
}

// RoomOf returns the room a project or batch Access joins; false for a
// job follow, which joins none.
func RoomOf(a Access) (string, bool) {
	switch a.Kind {
	case AccessProject:
		return ProjectRoom(a.ID), true
	case AccessBatch:
		return BatchRoom(a.ID), true
	}
	return "", false
}

// Reauthorize checks again what a recovered session held, for m's
// principal now, as the joins and follows that made it were checked: each
// is authorized afresh (a refusal or a failure drops it), ids are checked
// against this node's length bound, duplicates are dropped and the room and
// follow limits apply. It returns what m may have back, in order; nothing
// is joined or followed yet.
func (p *Protocol) Reauthorize(ctx context.Context, m Member, held []Access) []Access {
	out := make([]Access, 0, len(held))
	seen := make(map[string]bool, len(held))
	roomCount, follows := 0, 0
	for _, a := range held {
		if len(a.ID.Key) > p.maxIDLength || len(a.Project.Key) > p.maxIDLength {
			continue
		}
		key := a.Kind + "\x00" + a.ID.Key
		if seen[key] {
			continue
		}
		switch a.Kind {
		case AccessProject, AccessBatch:
			if roomCount >= p.maxRooms {
				p.hit(LimitRooms)
				continue
			}
			if m.Authorize(ctx, Access{Kind: a.Kind, ID: a.ID}) != nil {
				continue
			}
			roomCount++
		case AccessJob:
			if follows >= p.maxFollows {
				p.hit(LimitFollows)
				continue
			}
			if a.Project.Key != "" && m.Authorize(ctx, Access{Kind: AccessProject, ID: a.Project}) != nil {
				continue
			}
			if m.Authorize(ctx, a) != nil {
				continue
			}
			follows++
		default:
			continue
		}
		seen[key] = true
		out = append(out, a)
	}
	return out
}

// Refollow follows a recovered session's job again, for m (its socket id
// is new).
func (p *Protocol) Refollow(ctx context.Context, m Member, a Access) error {
	_, err := p.follows.Follow(ctx, Follow{Job: a.ID, Project: a.Project, Type: jobType(a.ID), Member: m.ID()})
	return err
}

// Disconnected releases everything m held (its log follows).
func (p *Protocol) Disconnected(ctx context.Context, m Member) {
	p.follows.Drop(ctx, m.ID())
}

// id reads and validates data[field]; on failure it returns the error reply.
func (p *Protocol) id(data map[string]any, field string) (ID, Reply, bool) {
	id, err := ParseID(data[field], p.maxIDLength)
	if err != nil {
		return ID{}, idError(field, err), false
	}
	return id, Reply{}, true
}

func idError(field string, err error) Reply {
	if errors.Is(err, ErrMissingID) {
		return errorReply("Missing " + field)
	}
	reason := strings.TrimPrefix(err.Error(), ErrInvalidID.Error()+": ")
	return errorReply("Invalid " + field + ": " + reason)
}

func errorReply(message string) Reply {
	return Reply{ReplyError, map[string]any{"message": message}}
}
