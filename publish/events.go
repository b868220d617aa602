package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/rooms"
)

// maxQuoted bounds a sender's value quoted back in an item error.
const maxQuoted = 64

// ValidateExtraEvents checks the names configured as Config.ExtraEvents
// (event.CheckExtra). Config validation calls the same check, so a bad
// list is a clear start-up error; New panics on it.
func ValidateExtraEvents(names []string) error {
	for _, n := range names {
		if err := event.CheckExtra(n); err != nil {
			return fmt.Errorf("publish: extra event %q: %w", quote(n), err)
		}
	}
	return nil
}

// ItemError says why one event of a request is invalid.
type ItemError = httpapi.ItemError

// requestError rejects a whole body: 400 {"error": msg}.
type requestError struct{ msg string }

func (e *requestError) Error() string { return e.msg }

// itemsError rejects a body with invalid events: 400 {"error": "Invalid
// events", "items": [...]}.
type itemsError struct{ items []ItemError }

func (e *itemsError) Error() string {
	return fmt.Sprintf("%d invalid event(s), first at index %d: %s", len(e.items), e.items[0].Index, e.items[0].Error)
}

var errInvalidJSON = &requestError{"Invalid JSON"}

// parser turns one request body into bus events.
type parser struct {
	splitter
	maxIDLength int
	maxEvents   int
	extras      map[string]bool
	nowFn       func() time.Time
	// timestamp is the formatted receipt time, computed on first use: every
	// log_line of a request without a timestamp gets the same one.
	timestamp string
}

// parse validates body and returns its events, in order; or a
// *requestError / *itemsError and no event at all.
func (p *parser) parse(body []byte) ([]event.Event, error) {
	// The splitter reads every value of the body: it refuses invalid JSON
	// and invalid UTF-8 anywhere in it.
	top, ok := p.members(body)
	if !ok {
		return nil, errInvalidJSON
	}
	items := []json.RawMessage{body}
	if list, found := lookup(top, "events"); found {
		if key, dup := duplicateKey(top); dup {
			return nil, &requestError{fmt.Sprintf("Field %q appears twice", quote(key))}
		}
		for _, m := range top {
			if m.key != "events" {
				return nil, &requestError{fmt.Sprintf("Unexpected field %q next to \"events\"", quote(m.key))}
			}
		}
		if items, ok = p.elements(list); !ok {
			return nil, &requestError{`"events" must be a list of events`}
		}
		if len(items) == 0 {
			return nil, &requestError{"No events"}
		}
	}
	if len(items) > p.maxEvents {
		return nil, &requestError{fmt.Sprintf("Too many events: %d (limit %d per request)", len(items), p.maxEvents)}
	}

	events := make([]event.Event, 0, len(items))
	var (
		bad []ItemError
		ids map[string]int
	)
	for i, raw := range items {
		ev, reason := p.event(raw)
		if reason == "" && ev.DedupeKey != "" {
			if ids == nil {
				ids = make(map[string]int)
			}
			if first, seen := ids[ev.DedupeKey]; seen {
				reason = fmt.Sprintf("\"id\" repeats the id of event %d", first)
			} else {
				ids[ev.DedupeKey] = i
			}
		}
		if reason != "" {
			bad = append(bad, ItemError{Index: i, Error: reason})
			continue
		}
		if bad == nil {
			events = append(events, ev)
		}
	}
	if bad != nil {
		return nil, &itemsError{bad}
	}
	return events, nil
}

// eventFields are the members of an event object.
var eventFields = []string{"event", "data", "room", "project_id", "batch_id", "id"}

// event validates one event object; reason is empty when it is valid.
func (p *parser) event(raw json.RawMessage) (ev event.Event, reason string) {
	fields, ok := p.members(raw)
	if !isObject(raw) || !ok {
		return event.Event{}, "an event must be a JSON object"
	}
	if key, dup := duplicateKey(fields); dup {
		return event.Event{}, fmt.Sprintf("field %q appears twice", quote(key))
	}
	for _, f := range fields {
		if !slices.Contains(eventFields, f.key) {
			return event.Event{}, fmt.Sprintf("unknown field %q (an event has event, data, room, project_id, batch_id, id)", quote(f.key))
		}
	}

	nameRaw, _ := lookup(fields, "event")
	if isNull(nameRaw) {
		return event.Event{}, `"event" is required`
	}
	name, ok := str(nameRaw)
	if !ok || name == "" {
		return event.Event{}, `"event" must be a non-empty string`
	}
	extra := p.extras[name]
	if !extra && !slices.Contains(event.Protocol, name) {
		return event.Event{}, fmt.Sprintf("unknown event %q", quote(name))
	}

	dataRaw, _ := lookup(fields, "data")
	if isNull(dataRaw) {
		return event.Event{}, `"data" is required (the event's payload, a JSON object)`
	}
	data, ok := p.members(dataRaw)
	if !isObject(dataRaw) || !ok {
		return event.Event{}, `"data" must be a JSON object`
	}
	if key, dup := duplicateKey(data); dup {
		return event.Event{}, fmt.Sprintf("data.%s appears twice", quote(key))
	}

	tgt, explicit, reason := p.target(fields)
	if reason != "" {
		return event.Event{}, reason
	}
	var dedupe string
	if idRaw, _ := lookup(fields, "id"); !isNull(idRaw) {
		id, err := rooms.ParseID(value(idRaw), p.maxIDLength)
		if err != nil {
			return event.Event{}, "\"id\" " + idReason(err)
		}
		dedupe = DedupePrefix + id.Key
	}

	var payload event.Payload
	if extra {
		if tgt.Empty() {
			return event.Event{}, fmt.Sprintf("event %q needs \"room\", \"project_id\" or \"batch_id\"", quote(name))
		}
		payload = event.ExtraPayload{Name: name, Data: dataRaw}
	} else {
		c := check{data: data, maxIDLength: p.maxIDLength}
		switch name {
		case event.LogLine:
			payload = p.logLine(&c)
		case event.JobProgress:
			payload = jobProgress(&c, explicit.Batch)
		case event.BatchStatus:
			payload = batchStatus(&c, explicit.Batch)
		case event.JobCompleted:
			payload = jobCompleted(&c, explicit.Project)
		case event.JobFailed:
			payload = jobFailed(&c, explicit.Project)
		}
		c.route(name, &tgt)
		if c.reason != "" {
			return event.Event{}, c.reason
		}
	}
	ev, err := event.New(payload, tgt)
	if err != nil {
		return event.Event{}, "the payload cannot be encoded: " + err.Error()
	}
	ev.DedupeKey = dedupe
	return ev, ""
}

// target reads the event-level room, project_id and batch_id: where the
// event goes when given, and explicit, the event-level ids as sent (never
// those of a room name: a room name does not say whether the id was a
// number or a string, and the front end compares with ===), which fill a
// payload that lacks them.
func (p *parser) target(fields []member) (t, explicit event.Target, reason string) {
	roomRaw, _ := lookup(fields, "room")
	projectRaw, _ := lookup(fields, "project_id")
	batchRaw, _ := lookup(fields, "batch_id")
	if !isNull(roomRaw) {
		if !isNull(projectRaw) || !isNull(batchRaw) {
			return t, t, `give either "room" or "project_id"/"batch_id", not both`
		}
		room, ok := str(roomRaw)
		if !ok {
			return t, t, `"room" must be a string: "project_<id>" or "batch_<id>"`
		}
		var (
			suffix string
			dst    *rooms.ID
		)
		switch {
		case strings.HasPrefix(room, rooms.ProjectPrefix):
			suffix, dst = room[len(rooms.ProjectPrefix):], &t.Project
		case strings.HasPrefix(room, rooms.BatchPrefix):
			suffix, dst = room[len(rooms.BatchPrefix):], &t.Batch
		default:
			return t, t, fmt.Sprintf("room %q is not a project or batch room (\"project_<id>\" or \"batch_<id>\")", quote(room))
		}
		id, err := rooms.ParseID(suffix, p.maxIDLength)
		if err != nil {
			return event.Target{}, t, fmt.Sprintf("room %q: the id %s", quote(room), idReason(err))
		}
		*dst = id
		return t, explicit, ""
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *rooms.ID
	}{{"project_id", projectRaw, &t.Project}, {"batch_id", batchRaw, &t.Batch}} {
		if isNull(f.raw) {
			continue
		}
		id, err := rooms.ParseID(value(f.raw), p.maxIDLength)
		if err != nil {
			return event.Target{}, event.Target{}, fmt.Sprintf("%q %s", f.name, idReason(err))
		}
		*f.dst = id
	}
	return t, t, ""
}

// check validates one protocol payload's members, keeping the first
// problem, and the ids its room rule needs.
type check struct {
	data        []member
	maxIDLength int
	reason      string
	// project and batch are the payload's project_id and batch_id, for
	// the room rule and the match with an explicit room.
	project, batch rooms.ID
}

func (c *check) fail(format string, args ...any) {
	if c.reason == "" {
		c.reason = fmt.Sprintf(format, args...)
	}
}

// get returns the value of data.<key>; nil when absent or null.
func (c *check) get(key string) json.RawMessage {
	v, _ := lookup(c.data, key)
	if isNull(v) {
		return nil
	}
	return v
}

// id validates data.<key>, or else takes fallback (an event-level id); a
// missing one fails only when required.
func (c *check) id(key string, required bool, fallback rooms.ID) rooms.ID {
	raw := c.get(key)
	if raw == nil {
		if required && fallback.Key == "" {
			c.fail("data.%s is required", key)
		}
		return fallback
	}
	id, err := rooms.ParseID(value(raw), c.maxIDLength)
	if err != nil {
		c.fail("data.%s %s", key, idReason(err))
	}
	return id
}

// str validates data.<key> as a string; present is false when it is absent
// (a failure when required).
func (c *check) str(key string, required bool) (s string, present bool) {
	raw := c.get(key)
	if raw == nil {
		if required {
			c.fail("data.%s is required (a string)", key)
		}
		return "", false
	}
	s, ok := str(raw)
	if !ok {
		c.fail("data.%s must be a string", key)
	}
	return s, ok
}

// count validates data.<key> as a non-negative integer; nil when absent
// (a failure when required).
func (c *check) count(key string, required bool) *int64 {
	raw := c.get(key)
	if raw == nil {
		if required {
			c.fail("data.%s is required (a non-negative integer)", key)
		}
		return nil
	}
	f, ok := number(raw)
	if !ok || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		c.fail("data.%s must be a non-negative integer", key)
		return nil
	}
	n := int64(f)
	return &n
}

// extra returns the members that are not the payload's own keys, in the
// order sent.
func (c *check) extra(own ...string) event.Members {
	var out event.Members
	for _, m := range c.data {
		if !slices.Contains(own, m.key) {
			out = append(out, event.Member{Key: m.key, Value: m.value})
		}
	}
	return out
}

// route sends the event to the explicit target, or else to the room the
// protocol's rule derives from the payload. A payload id of the same kind
// as a target room must name that room.
func (c *check) route(name string, t *event.Target) {
	if c.reason != "" {
		return
	}
	if t.Empty() {
		*t = event.Route(name, c.project, c.batch)
		if t.Empty() {
			hint := map[string]string{event.JobProgress: "data.batch_id or data.project_id", event.BatchStatus: "data.batch_id"}[name]
			c.fail("no room: give \"room\", \"project_id\" or \"batch_id\", or %s", cmpOr(hint, "data.project_id"))
			return
		}
	}
	if t.Project.Key != "" && c.project.Key != "" && c.project.Key != t.Project.Key {
		c.fail("data.project_id %q does not match room %s", quote(c.project.Key), rooms.ProjectRoom(t.Project))
	}
	if t.Batch.Key != "" && c.batch.Key != "" && c.batch.Key != t.Batch.Key {
		c.fail("data.batch_id %q does not match room %s", quote(c.batch.Key), rooms.BatchRoom(t.Batch))
	}
	if name == event.JobProgress && t.Batch.Key != "" && c.batch.Key == "" {
		c.fail("data.batch_id is required when job_progress goes to a batch room (the batch view filters on it)")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// log_line {job_id, message, timestamp}; a missing timestamp is the
// request's receipt time. data.project_id names its room.
func (p *parser) logLine(c *check) event.Payload {
	pl := event.LogLinePayload{JobID: c.id("job_id", true, rooms.ID{})}
	pl.Message, _ = c.str("message", true)
	if raw := c.get("timestamp"); raw == nil {
		pl.Timestamp = p.now()
	} else if s, ok := str(raw); !ok || !isTimestamp(s) {
		c.fail("data.timestamp must be an ISO-8601 date-time string, e.g. 2024-05-01T12:00:00.000Z")
	} else {
		pl.Timestamp = s
	}
	c.project = c.id("project_id", false, rooms.ID{})
	pl.Extra = c.extra("job_id", "message", "timestamp")
	return pl
}

// job_progress {batch_id, job_id, progress, status, message}; data.batch_id
// (else the event-level one) and data.project_id name its room.
func jobProgress(c *check, batch rooms.ID) event.Payload {
	pl := event.JobProgressPayload{BatchID: c.id("batch_id", false, batch), JobID: c.id("job_id", true, rooms.ID{})}
	c.batch = pl.BatchID
	if raw := c.get("progress"); raw == nil {
		c.fail("data.progress is required (a number from 0 to 100)")
	} else if f, ok := number(raw); !ok || f < 0 || f > 100 {
		c.fail("data.progress must be a number from 0 to 100")
	} else {
		pl.Progress = f
	}
	if s, ok := c.str("status", true); ok && s == "" {
		c.fail("data.status must not be empty")
	} else {
		pl.Status = s
	}
	if s, ok := c.str("message", false); ok {
		pl.Message = &s
	}
	c.project = c.id("project_id", false, rooms.ID{})
	pl.Extra = c.extra("batch_id", "job_id", "progress", "status", "message")
	return pl
}

// batch_status {batch_id, status, completed_jobs, total_jobs, failed_jobs}.
func batchStatus(c *check, batch rooms.ID) event.Payload {
	pl := event.BatchStatusPayload{BatchID: c.id("batch_id", true, batch)}
	c.batch = pl.BatchID
	if s, ok := c.str("status", true); ok && !slices.Contains(event.BatchStatuses, s) {
		c.fail("data.status must be processing, completed or failed, not %q", quote(s))
	} else {
		pl.Status = s
	}
	if n := c.count("completed_jobs", true); n != nil {
		pl.CompletedJobs = *n
	}
	pl.TotalJobs = c.count("total_jobs", true)
	pl.FailedJobs = c.count("failed_jobs", false)
	pl.Extra = c.extra("batch_id", "status", "completed_jobs", "total_jobs", "failed_jobs")
	return pl
}

// job_completed {project_id, job_id, status: "completed", result}.
func jobCompleted(c *check, project rooms.ID) event.Payload {
	pl := event.JobCompletedPayload{ProjectID: c.id("project_id", true, project), JobID: c.id("job_id", true, rooms.ID{})}
	c.project = pl.ProjectID
	if raw := c.get("status"); raw != nil {
		if s, ok := str(raw); !ok || s != event.StatusCompleted {
			c.fail(`data.status must be "completed" (send job_failed for a failure)`)
		}
	}
	pl.Result, _ = lookup(c.data, "result")
	pl.Extra = c.extra("project_id", "job_id", "status", "result")
	return pl
}

// job_failed {project_id, job_id, error}.
func jobFailed(c *check, project rooms.ID) event.Payload {
	pl := event.JobFailedPayload{ProjectID: c.id("project_id", true, project), JobID: c.id("job_id", true, rooms.ID{}), Error: c.get("error")}
	c.project = pl.ProjectID
	pl.Extra = c.extra("project_id", "job_id", "error")
	return pl
}

// now returns the request's receipt time as a log_line timestamp.
func (p *parser) now() string {
	if p.timestamp == "" {
		p.timestamp = event.Timestamp(p.nowFn())
	}
	return p.timestamp
}

// timestampLayouts are the ISO-8601 date-times accepted in log_line:
// RFC 3339 (JavaScript's toISOString), Python's isoformat() with or without
// an offset, a space instead of the T, minutes-only times. Fractional
// seconds are accepted after the seconds by every layout.
var timestampLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
}

func isTimestamp(s string) bool {
	if len(s) < len("2006-01-02T15:04") || len(s) > 64 {
		return false
	}
	for _, layout := range timestampLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// idReason words the rooms.ParseID error of a present value after the
// field's name.
func idReason(err error) string {
	if errors.Is(err, rooms.ErrMissingID) {
		return "must not be empty"
	}
	return "is invalid: " + strings.TrimPrefix(err.Error(), rooms.ErrInvalidID.Error()+": ")
}

// quote shortens a sender's value for an error message.
func quote(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	cut := maxQuoted
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
