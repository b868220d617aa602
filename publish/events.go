package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/eventname"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/rooms"
)

// Batch statuses accepted in batch_status.
var batchStatuses = []string{"processing", "completed", "failed"}

// DefaultError is the job_failed error when the payload carries none.
const DefaultError = "Unknown error"

// TimestampLayout is the layout of the timestamp the gateway fills into a
// log_line without one: UTC, RFC 3339 with milliseconds.
const TimestampLayout = "2006-01-02T15:04:05.000Z07:00"

// maxQuoted bounds a sender's value quoted back in an item error.
const maxQuoted = 64

// ValidateExtraEvents checks the names configured as Config.ExtraEvents
// (eventname.CheckExtra). Config validation calls the same check, so a bad
// list is a clear start-up error; New panics on it.
func ValidateExtraEvents(names []string) error {
	for _, n := range names {
		if err := eventname.CheckExtra(n); err != nil {
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
	maxIDLength int
	maxEvents   int
	extras      map[string]bool
	nowFn       func() time.Time
	// timestamp is the formatted receipt time, computed on first use: every
	// log_line of a request without a timestamp gets the same one.
	timestamp []byte
}

// parse validates body and returns its events, in order; or a
// *requestError / *itemsError and no event at all.
func (p *parser) parse(body []byte) ([]bus.Event, error) {
	body = trimSpace(body)
	if len(body) == 0 || body[0] != '{' || !utf8.Valid(body) || !json.Valid(body) {
		return nil, errInvalidJSON
	}
	top, ok := splitObject(body)
	if !ok {
		return nil, errInvalidJSON
	}
	items := [][]byte{body}
	if list, found := lookup(top, "events"); found {
		if key, dup := duplicateKey(top); dup {
			return nil, &requestError{fmt.Sprintf("Field %q appears twice", quote(key))}
		}
		for _, m := range top {
			if m.key != "events" {
				return nil, &requestError{fmt.Sprintf("Unexpected field %q next to \"events\"", quote(m.key))}
			}
		}
		if items, ok = splitArray(list); !ok {
			return nil, &requestError{`"events" must be a list of events`}
		}
		if len(items) == 0 {
			return nil, &requestError{"No events"}
		}
	}
	if len(items) > p.maxEvents {
		return nil, &requestError{fmt.Sprintf("Too many events: %d (limit %d per request)", len(items), p.maxEvents)}
	}

	events := make([]bus.Event, 0, len(items))
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

// target is where an event goes: a project room, a batch room, or both.
type target struct {
	project, batch rooms.ID
	// projectRaw and batchRaw are the event-level ids as sent, inserted
	// into a payload that lacks them; nil for a room given by name.
	projectRaw, batchRaw []byte
}

func (t target) empty() bool { return t.project.Key == "" && t.batch.Key == "" }

func (t target) rooms() []string {
	out := make([]string, 0, 2)
	if t.project.Key != "" {
		out = append(out, rooms.ProjectRoom(t.project))
	}
	if t.batch.Key != "" {
		out = append(out, rooms.BatchRoom(t.batch))
	}
	return out
}

// event validates one event object; reason is empty when it is valid.
func (p *parser) event(raw []byte) (ev bus.Event, reason string) {
	if !isObject(raw) {
		return bus.Event{}, "an event must be a JSON object"
	}
	fields, ok := splitObject(raw)
	if !ok {
		return bus.Event{}, "an event must be a JSON object"
	}
	if key, dup := duplicateKey(fields); dup {
		return bus.Event{}, fmt.Sprintf("field %q appears twice", quote(key))
	}
	for _, f := range fields {
		if !slices.Contains(eventFields, f.key) {
			return bus.Event{}, fmt.Sprintf("unknown field %q (an event has event, data, room, project_id, batch_id, id)", quote(f.key))
		}
	}

	nameRaw, _ := lookup(fields, "event")
	if isNull(nameRaw) {
		return bus.Event{}, `"event" is required`
	}
	name, ok := decodeString(nameRaw)
	if !isString(nameRaw) || !ok || name == "" {
		return bus.Event{}, `"event" must be a non-empty string`
	}
	extra := p.extras[name]
	if !extra && !slices.Contains(eventname.Protocol, name) {
		return bus.Event{}, fmt.Sprintf("unknown event %q", quote(name))
	}

	dataRaw, _ := lookup(fields, "data")
	if isNull(dataRaw) {
		return bus.Event{}, `"data" is required (the event's payload, a JSON object)`
	}
	if !isObject(dataRaw) {
		return bus.Event{}, `"data" must be a JSON object`
	}
	data, ok := splitObject(dataRaw)
	if !ok {
		return bus.Event{}, `"data" must be a JSON object`
	}
	if key, dup := duplicateKey(data); dup {
		return bus.Event{}, fmt.Sprintf("data.%s appears twice", quote(key))
	}

	tgt, reason := p.target(fields)
	if reason != "" {
		return bus.Event{}, reason
	}

	ev.Name = name
	if idRaw, _ := lookup(fields, "id"); !isNull(idRaw) {
		id, err := rooms.ParseID(value(idRaw), p.maxIDLength)
		if err != nil {
			return bus.Event{}, "\"id\" " + idReason(err)
		}
		ev.DedupeKey = DedupePrefix + id.Key
	}

	if extra {
		if tgt.empty() {
			return bus.Event{}, fmt.Sprintf("event %q needs \"room\", \"project_id\" or \"batch_id\"", quote(name))
		}
		ev.Rooms = tgt.rooms()
		ev.Payload = appendCompact(make([]byte, 0, len(dataRaw)), dataRaw)
		return ev, ""
	}

	c := check{data: data, maxIDLength: p.maxIDLength}
	switch name {
	case eventname.LogLine:
		p.logLine(&c, &tgt)
	case eventname.JobProgress:
		jobProgress(&c, &tgt)
	case eventname.BatchStatus:
		batchStatus(&c, &tgt)
	case eventname.JobCompleted:
		jobCompleted(&c, &tgt)
	case eventname.JobFailed:
		jobFailed(&c, &tgt)
	}
	if c.reason != "" {
		return bus.Event{}, c.reason
	}
	ev.Rooms = tgt.rooms()
	ev.Payload = c.payload(payloadOrder[name])
	return ev, ""
}

// payloadOrder is the key order of each protocol payload (PROTOCOL.md);
// any other key follows, in the order sent.
var payloadOrder = map[string][]string{
	eventname.LogLine:      {"job_id", "message", "timestamp"},
	eventname.JobProgress:  {"batch_id", "job_id", "progress", "status", "message"},
	eventname.BatchStatus:  {"batch_id", "status", "completed_jobs", "total_jobs", "failed_jobs"},
	eventname.JobCompleted: {"project_id", "job_id", "status", "result"},
	eventname.JobFailed:    {"project_id", "job_id", "error"},
}

// target reads the event-level room, project_id and batch_id.
func (p *parser) target(fields []member) (t target, reason string) {
	roomRaw, _ := lookup(fields, "room")
	projectRaw, _ := lookup(fields, "project_id")
	batchRaw, _ := lookup(fields, "batch_id")
	if !isNull(roomRaw) {
		if !isNull(projectRaw) || !isNull(batchRaw) {
			return target{}, `give either "room" or "project_id"/"batch_id", not both`
		}
		room, ok := decodeString(roomRaw)
		if !isString(roomRaw) || !ok {
			return target{}, `"room" must be a string: "project_<id>" or "batch_<id>"`
		}
		var (
			suffix string
			dst    *rooms.ID
		)
		switch {
		case strings.HasPrefix(room, rooms.ProjectPrefix):
			suffix, dst = room[len(rooms.ProjectPrefix):], &t.project
		case strings.HasPrefix(room, rooms.BatchPrefix):
			suffix, dst = room[len(rooms.BatchPrefix):], &t.batch
		default:
			return target{}, fmt.Sprintf("room %q is not a project or batch room (\"project_<id>\" or \"batch_<id>\")", quote(room))
		}
		id, err := rooms.ParseID(suffix, p.maxIDLength)
		if err != nil {
			return target{}, fmt.Sprintf("room %q: the id %s", quote(room), idReason(err))
		}
		*dst = id
		return t, ""
	}
	if !isNull(projectRaw) {
		id, err := rooms.ParseID(value(projectRaw), p.maxIDLength)
		if err != nil {
			return target{}, `"project_id" ` + idReason(err)
		}
		t.project, t.projectRaw = id, projectRaw
	}
	if !isNull(batchRaw) {
		id, err := rooms.ParseID(value(batchRaw), p.maxIDLength)
		if err != nil {
			return target{}, `"batch_id" ` + idReason(err)
		}
		t.batch, t.batchRaw = id, batchRaw
	}
	return t, ""
}

// check validates one protocol payload, keeping the first problem, and
// collects the values the gateway fills in.
type check struct {
	data        []member
	set         []member // filled or replaced values, by key
	maxIDLength int
	reason      string
}

func (c *check) fail(format string, args ...any) {
	if c.reason == "" {
		c.reason = fmt.Sprintf(format, args...)
	}
}

// get returns the value of key (a filled one first); nil when absent or
// null.
func (c *check) get(key string) []byte {
	if v, ok := lookup(c.set, key); ok {
		return v
	}
	v, _ := lookup(c.data, key)
	if isNull(v) {
		return nil
	}
	return v
}

func (c *check) fill(key string, raw []byte) {
	c.set = append(c.set, member{key: key, value: raw})
}

// id validates data.<key>; a missing one fails only when required.
func (c *check) id(key string, required bool) rooms.ID {
	raw := c.get(key)
	if raw == nil {
		if required {
			c.fail("data.%s is required", key)
		}
		return rooms.ID{}
	}
	id, err := rooms.ParseID(value(raw), c.maxIDLength)
	if err != nil {
		c.fail("data.%s %s", key, idReason(err))
	}
	return id
}

// str validates that data.<key> is a string (required: and present).
func (c *check) str(key string, required bool) (string, bool) {
	raw := c.get(key)
	if raw == nil {
		if required {
			c.fail("data.%s is required (a string)", key)
		}
		return "", false
	}
	s, ok := decodeString(raw)
	if !isString(raw) || !ok {
		c.fail("data.%s must be a string", key)
		return "", false
	}
	return s, true
}

// count validates data.<key> as a non-negative integer.
func (c *check) count(key string, required bool) {
	raw := c.get(key)
	if raw == nil {
		if required {
			c.fail("data.%s is required (a non-negative integer)", key)
		}
		return
	}
	f, ok := number(raw)
	if !ok || f < 0 || f != math.Trunc(f) || f > 1<<53 {
		c.fail("data.%s must be a non-negative integer", key)
	}
}

// fillID inserts the event-level id as data.<key> when the payload lacks it.
func (c *check) fillID(key string, eventLevel []byte) {
	if eventLevel != nil && c.get(key) == nil {
		c.fill(key, eventLevel)
	}
}

// route sends the event to the event-level target, or else to the room
// derived from the payload; derive returns that room (or an empty target).
// A payload id of the same kind as a target room must name that room.
func (c *check) route(t *target, project, batch rooms.ID, derive func() target, hint string) {
	if c.reason != "" {
		return
	}
	if t.empty() {
		*t = derive()
		if t.empty() {
			c.fail("no room: give \"room\", \"project_id\" or \"batch_id\", or %s", hint)
			return
		}
	}
	if t.project.Key != "" && project.Key != "" && project.Key != t.project.Key {
		c.fail("data.project_id %q does not match room %s", quote(project.Key), rooms.ProjectRoom(t.project))
	}
	if t.batch.Key != "" && batch.Key != "" && batch.Key != t.batch.Key {
		c.fail("data.batch_id %q does not match room %s", quote(batch.Key), rooms.BatchRoom(t.batch))
	}
}

// log_line {job_id, message, timestamp} -> project_<project_id>.
func (p *parser) logLine(c *check, t *target) {
	c.id("job_id", true)
	c.str("message", true)
	if raw := c.get("timestamp"); raw == nil {
		c.fill("timestamp", p.now())
	} else if s, ok := decodeString(raw); !isString(raw) || !ok || !isTimestamp(s) {
		c.fail("data.timestamp must be an ISO-8601 date-time string, e.g. 2024-05-01T12:00:00.000Z")
	}
	project := c.id("project_id", false)
	c.route(t, project, rooms.ID{}, func() target { return target{project: project} }, "data.project_id")
}

// job_progress {batch_id, job_id, progress, status, message} ->
// batch_<batch_id>, else project_<project_id>.
func jobProgress(c *check, t *target) {
	c.fillID("batch_id", t.batchRaw)
	batch := c.id("batch_id", false)
	c.id("job_id", true)
	if raw := c.get("progress"); raw == nil {
		c.fail("data.progress is required (a number from 0 to 100)")
	} else if f, ok := number(raw); !ok || f < 0 || f > 100 {
		c.fail("data.progress must be a number from 0 to 100")
	}
	if s, ok := c.str("status", true); ok && s == "" {
		c.fail("data.status must not be empty")
	}
	c.str("message", false)
	project := c.id("project_id", false)
	c.route(t, project, batch, func() target {
		if batch.Key != "" {
			return target{batch: batch}
		}
		return target{project: project}
	}, "data.batch_id or data.project_id")
	if c.reason == "" && t.batch.Key != "" && batch.Key == "" {
		c.fail("data.batch_id is required when job_progress goes to a batch room (the batch view filters on it)")
	}
}

// batch_status {batch_id, status, completed_jobs, total_jobs} ->
// batch_<batch_id>.
func batchStatus(c *check, t *target) {
	c.fillID("batch_id", t.batchRaw)
	batch := c.id("batch_id", true)
	if s, ok := c.str("status", true); ok && !slices.Contains(batchStatuses, s) {
		c.fail("data.status must be processing, completed or failed, not %q", quote(s))
	}
	c.count("completed_jobs", true)
	c.count("total_jobs", true)
	c.count("failed_jobs", false)
	c.route(t, rooms.ID{}, batch, func() target { return target{batch: batch} }, "data.batch_id")
}

// job_completed {project_id, job_id, status: "completed", result} ->
// project_<project_id>.
func jobCompleted(c *check, t *target) {
	c.fillID("project_id", t.projectRaw)
	project := c.id("project_id", true)
	c.id("job_id", true)
	if raw := c.get("status"); raw == nil {
		c.fill("status", []byte(`"completed"`))
	} else if s, ok := decodeString(raw); !isString(raw) || !ok || s != "completed" {
		c.fail(`data.status must be "completed" (send job_failed for a failure)`)
	}
	if _, present := lookup(c.data, "result"); !present {
		c.fill("result", []byte("null"))
	}
	c.route(t, project, rooms.ID{}, func() target { return target{project: project} }, "data.project_id")
}

// job_failed {project_id, job_id, error} -> project_<project_id>.
func jobFailed(c *check, t *target) {
	c.fillID("project_id", t.projectRaw)
	project := c.id("project_id", true)
	c.id("job_id", true)
	if c.get("error") == nil {
		c.fill("error", []byte(`"`+DefaultError+`"`))
	}
	c.route(t, project, rooms.ID{}, func() target { return target{project: project} }, "data.project_id")
}

// payload encodes the checked payload once: the protocol keys in order,
// then every other key as sent.
func (c *check) payload(order []string) []byte {
	n := 2
	for _, m := range c.data {
		n += len(m.rawKey) + len(m.value) + 2
	}
	for _, m := range c.set {
		n += len(m.key) + len(m.value) + 4
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	for _, key := range order {
		v, ok := lookup(c.set, key)
		if !ok {
			v, ok = lookup(c.data, key)
		}
		if !ok {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, key...)
		out = append(out, '"', ':')
		out = appendCompact(out, v)
	}
	for _, m := range c.data {
		if slices.Contains(order, m.key) {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, m.rawKey...)
		out = append(out, ':')
		out = appendCompact(out, m.value)
	}
	return append(out, '}')
}

// now returns the JSON string of the request's receipt time.
func (p *parser) now() []byte {
	if p.timestamp == nil {
		p.timestamp = strconv.AppendQuote(nil, p.nowFn().UTC().Format(TimestampLayout))
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

// lookup returns the raw value of key in members.
func lookup(members []member, key string) ([]byte, bool) {
	for i := range members {
		if members[i].key == key {
			return members[i].value, true
		}
	}
	return nil, false
}

// duplicateKey returns a key that appears twice in members.
func duplicateKey(members []member) (string, bool) {
	if len(members) <= 16 {
		for i := 1; i < len(members); i++ {
			for j := 0; j < i; j++ {
				if members[i].key == members[j].key {
					return members[i].key, true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, len(members))
	for _, m := range members {
		if _, dup := seen[m.key]; dup {
			return m.key, true
		}
		seen[m.key] = struct{}{}
	}
	return "", false
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
