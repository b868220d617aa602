package rooms

import (
	"context"
	"errors"
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
}

// Reply is what the gateway emits back to the client (and acknowledges
// with, when asked). A zero Reply means nothing is sent.
type Reply struct {
	Event   string
	Payload map[string]any
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
	follows     Follows
}

// NewProtocol returns the client protocol. maxIDLength <= 0 means
// DefaultMaxIDLength; follows tracks which jobs' logs are followed.
func NewProtocol(maxIDLength int, follows Follows) *Protocol {
	if maxIDLength <= 0 {
		maxIDLength = DefaultMaxIDLength
	}
	return &Protocol{maxIDLength: maxIDLength, follows: follows}
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
	switch event {
	case EventSubscribeProject, EventUnsubscribeProject:
		id, reply, ok := p.id(data, "project_id")
		if !ok {
			return reply
		}
		if event == EventSubscribeProject {
			m.Join(ProjectRoom(id))
			return Reply{ReplySubscribedProject, map[string]any{"project_id": id.Raw}}
		}
		m.Leave(ProjectRoom(id))
		return Reply{ReplyUnsubscribedProject, map[string]any{"project_id": id.Raw}}
	case EventJoinBatch, EventLeaveBatch:
		id, reply, ok := p.id(data, "batch_id")
		if !ok {
			return reply
		}
		if event == EventJoinBatch {
			m.Join(BatchRoom(id))
			return Reply{ReplyJoinedBatch, map[string]any{"batch_id": id.Raw}}
		}
		m.Leave(BatchRoom(id))
		return Reply{ReplyLeftBatch, map[string]any{"batch_id": id.Raw}}
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
		m.Join(ProjectRoom(project))
	}
	kind := jobType(job)
	already, err := p.follows.Follow(ctx, Follow{Job: job, Project: project, Type: kind, Member: m.ID()})
	if err != nil {
		return errorReply(unavailableMessage)
	}
	if already {
		return Reply{ReplySubscribed, map[string]any{"job_id": job.Raw, "status": StatusAlreadyActive}}
	}
	return Reply{ReplySubscribed, map[string]any{"job_id": job.Raw, "status": StatusStarted, "type": kind}}
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
