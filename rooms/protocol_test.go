package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
)

// fakeMember records joins and leaves; it stands in for a socket. deny
// lists the accesses ("project:77") its authorizer refuses.
type fakeMember struct {
	id    string
	deny  map[string]bool
	mu    sync.Mutex
	rooms []string
	asked []Access
	held  []string // what Record was told, "+project:1" or "-job:9"
}

func (m *fakeMember) Record(_ context.Context, a Access, held bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	sign := "-"
	if held {
		sign = "+"
	}
	m.held = append(m.held, sign+a.Kind+":"+a.ID.Key)
}

func (m *fakeMember) Rooms() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.rooms)
}

func (m *fakeMember) InRoom(room string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Contains(m.rooms, room)
}

func (m *fakeMember) Authorize(_ context.Context, a Access) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = append(m.asked, a)
	if m.deny[a.Kind+":"+a.ID.Key] {
		return errors.New("denied")
	}
	return nil
}

func (m *fakeMember) ID() string { return m.id }
func (m *fakeMember) Join(room string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Contains(m.rooms, room) {
		m.rooms = append(m.rooms, room)
	}
}
func (m *fakeMember) Leave(room string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rooms = slices.DeleteFunc(m.rooms, func(r string) bool { return r == room })
}

// decode turns a JSON literal into what the Socket.IO parser hands over.
func decode(t *testing.T, s string) []any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return []any{v}
}

func TestProtocolHandle(t *testing.T) {
	tests := []struct {
		name      string
		event     string
		payload   string
		wantEvent string
		wantData  string
		wantRooms []string
	}{
		{"subscribe_project string", EventSubscribeProject, `{"project_id":"p1"}`, ReplySubscribedProject, `{"project_id":"p1"}`, []string{"project_p1"}},
		{"subscribe_project number echoed as number", EventSubscribeProject, `{"project_id":42}`, ReplySubscribedProject, `{"project_id":42}`, []string{"project_42"}},
		{"subscribe_project missing", EventSubscribeProject, `{}`, ReplyError, `{"message":"Missing project_id"}`, nil},
		{"subscribe_project null", EventSubscribeProject, `{"project_id":null}`, ReplyError, `{"message":"Missing project_id"}`, nil},
		{"subscribe_project empty", EventSubscribeProject, `{"project_id":""}`, ReplyError, `{"message":"Missing project_id"}`, nil},
		{"subscribe_project nested", EventSubscribeProject, `{"project_id":{"$gt":""}}`, ReplyError, `{"message":"Invalid project_id: must be a string or an integer, not an object"}`, nil},
		{"subscribe_project list", EventSubscribeProject, `{"project_id":["a"]}`, ReplyError, `{"message":"Invalid project_id: must be a string or an integer, not a list"}`, nil},
		{"subscribe_project control chars", EventSubscribeProject, `{"project_id":"a\nb"}`, ReplyError, `{"message":"Invalid project_id: contains control characters"}`, nil},
		{"subscribe_project too long", EventSubscribeProject, `{"project_id":"` + strings.Repeat("x", 200) + `"}`, ReplyError, `{"message":"Invalid project_id: longer than 128 bytes"}`, nil},
		{"subscribe_project string payload", EventSubscribeProject, `"p1"`, ReplyError, `{"message":"Invalid payload for subscribe_project: expected a JSON object"}`, nil},
		{"subscribe_project null payload", EventSubscribeProject, `null`, ReplyError, `{"message":"Invalid payload for subscribe_project: expected a JSON object"}`, nil},
		{"join_batch", EventJoinBatch, `{"batch_id":"b1"}`, ReplyJoinedBatch, `{"batch_id":"b1"}`, []string{"batch_b1"}},
		{"join_batch missing", EventJoinBatch, `{"project_id":"p"}`, ReplyError, `{"message":"Missing batch_id"}`, nil},
		{"join_batch fraction", EventJoinBatch, `{"batch_id":1.5}`, ReplyError, `{"message":"Invalid batch_id: a number id must be an integer"}`, nil},
		{"subscribe_logs modal", EventSubscribeLogs, `{"job_id":"fc-01"}`, ReplySubscribed, `{"job_id":"fc-01","status":"started","type":"modal"}`, nil},
		{"subscribe_logs local joins project", EventSubscribeLogs, `{"job_id":"local-7","project_id":"p9"}`, ReplySubscribed, `{"job_id":"local-7","status":"started","type":"local"}`, []string{"project_p9"}},
		{"subscribe_logs missing", EventSubscribeLogs, `{"project_id":"p9"}`, ReplyError, `{"message":"Missing job_id"}`, nil},
		{"subscribe_logs bad project", EventSubscribeLogs, `{"job_id":"j","project_id":true}`, ReplyError, `{"message":"Invalid project_id: must be a string or an integer, not a boolean"}`, nil},
		{"unsubscribe_logs not subscribed", EventUnsubscribeLogs, `{"job_id":"j"}`, ReplyError, `{"message":"Not subscribed to this job"}`, nil},
		{"unsubscribe_logs missing", EventUnsubscribeLogs, `{}`, ReplyError, `{"message":"Missing job_id"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewProtocol(Options{MaxIDLength: 128, Follows: NewMemoryFollows()})
			m := &fakeMember{id: "s1"}
			got := p.Handle(context.Background(), m, tc.event, decode(t, tc.payload))
			if got.Event != tc.wantEvent {
				t.Fatalf("event = %q, want %q (payload %v)", got.Event, tc.wantEvent, got.Payload)
			}
			gotJSON, _ := json.Marshal(got.Payload)
			var gotV, wantV any
			_ = json.Unmarshal(gotJSON, &gotV)
			_ = json.Unmarshal([]byte(tc.wantData), &wantV)
			if !reflect.DeepEqual(gotV, wantV) {
				t.Fatalf("payload = %s, want %s", gotJSON, tc.wantData)
			}
			if !slices.Equal(m.rooms, tc.wantRooms) {
				t.Fatalf("rooms = %v, want %v", m.rooms, tc.wantRooms)
			}
		})
	}
}

// Every join asks the member's authorizer first; a refusal answers
// Forbidden, joins nothing and follows nothing. Leaving asks nothing.
func TestProtocolAuthorizesEveryJoin(t *testing.T) {
	tests := []struct {
		name      string
		event     string
		payload   string
		deny      string
		wantEvent string
		wantRooms []string
		wantAsked []string
	}{
		{"project allowed", EventSubscribeProject, `{"project_id":42}`, "", ReplySubscribedProject, []string{"project_42"}, []string{"project:42"}},
		{"project denied", EventSubscribeProject, `{"project_id":77}`, "project:77", ReplyError, nil, []string{"project:77"}},
		{"batch denied", EventJoinBatch, `{"batch_id":"b"}`, "batch:b", ReplyError, nil, []string{"batch:b"}},
		{"logs: project denied, job not even asked", EventSubscribeLogs, `{"job_id":"j","project_id":77}`, "project:77", ReplyError, nil, []string{"project:77"}},
		{"logs: job denied", EventSubscribeLogs, `{"job_id":"j","project_id":42}`, "job:j", ReplyError, nil, []string{"project:42", "job:j"}},
		{"logs allowed", EventSubscribeLogs, `{"job_id":"j","project_id":42}`, "", ReplySubscribed, []string{"project_42"}, []string{"project:42", "job:j"}},
		{"leaving asks nothing", EventLeaveBatch, `{"batch_id":"b"}`, "batch:b", ReplyLeftBatch, nil, nil},
		{"an invalid id asks nothing", EventSubscribeProject, `{"project_id":{}}`, "", ReplyError, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewMemoryFollows()
			p := NewProtocol(Options{Follows: f})
			m := &fakeMember{id: "s1", deny: map[string]bool{tc.deny: true}}
			got := p.Handle(context.Background(), m, tc.event, decode(t, tc.payload))
			if got.Event != tc.wantEvent {
				t.Fatalf("reply %s %v, want %s", got.Event, got.Payload, tc.wantEvent)
			}
			if tc.deny != "" && tc.wantEvent == ReplyError && got.Payload["message"] != ForbiddenMessage {
				t.Fatalf("refusal message = %v", got.Payload["message"])
			}
			if !slices.Equal(m.rooms, tc.wantRooms) {
				t.Fatalf("rooms = %v, want %v", m.rooms, tc.wantRooms)
			}
			var asked []string
			for _, a := range m.asked {
				asked = append(asked, a.Kind+":"+a.ID.Key)
			}
			if !slices.Equal(asked, tc.wantAsked) {
				t.Fatalf("asked %v, want %v", asked, tc.wantAsked)
			}
			if tc.event == EventSubscribeLogs && tc.wantEvent == ReplyError && f.Active("j") {
				t.Fatal("a refused subscribe_logs followed the job")
			}
		})
	}
}

func TestProtocolLeave(t *testing.T) {
	p := NewProtocol(Options{Follows: NewMemoryFollows()})
	m := &fakeMember{id: "s1"}
	p.Handle(context.Background(), m, EventSubscribeProject, decode(t, `{"project_id":"p"}`))
	p.Handle(context.Background(), m, EventJoinBatch, decode(t, `{"batch_id":7}`))
	if got := p.Handle(context.Background(), m, EventUnsubscribeProject, decode(t, `{"project_id":"p"}`)); got.Event != ReplyUnsubscribedProject || got.Payload["project_id"] != "p" {
		t.Fatalf("unsubscribe_project = %+v", got)
	}
	if got := p.Handle(context.Background(), m, EventLeaveBatch, decode(t, `{"batch_id":7}`)); got.Event != ReplyLeftBatch || got.Payload["batch_id"] != float64(7) {
		t.Fatalf("leave_batch = %+v", got)
	}
	if len(m.rooms) != 0 {
		t.Fatalf("rooms after leaving = %v", m.rooms)
	}
}

func TestProtocolLogFollows(t *testing.T) {
	f := NewMemoryFollows()
	p := NewProtocol(Options{Follows: f})
	a, b := &fakeMember{id: "a"}, &fakeMember{id: "b"}
	sub := func(m Member) string {
		return p.Handle(context.Background(), m, EventSubscribeLogs, decode(t, `{"job_id":"j1"}`)).Payload["status"].(string)
	}
	unsub := func(m Member) string {
		return p.Handle(context.Background(), m, EventUnsubscribeLogs, decode(t, `{"job_id":"j1"}`)).Event
	}
	steps := []struct {
		name string
		do   func() string
		want string
	}{
		{"a starts", func() string { return sub(a) }, StatusStarted},
		{"a again", func() string { return sub(a) }, StatusAlreadyActive},
		{"b joins active", func() string { return sub(b) }, StatusAlreadyActive},
		{"a leaves", func() string { return unsub(a) }, ReplyUnsubscribed},
		{"a leaves twice", func() string { return unsub(a) }, ReplyError},
		{"still active for b", func() string { return sub(a) }, StatusAlreadyActive},
		{"a leaves again", func() string { return unsub(a) }, ReplyUnsubscribed},
		{"b disconnects", func() string { p.Disconnected(context.Background(), b); return "" }, ""},
		{"job idle: a starts anew", func() string { return sub(a) }, StatusStarted},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: got %q, want %q", s.name, got, s.want)
		}
	}
	if !f.Active("j1") {
		t.Fatal("j1 should be active")
	}
	p.Disconnected(context.Background(), a)
	if f.Active("j1") {
		t.Fatal("j1 should be idle after its last follower left")
	}
}

func TestHandles(t *testing.T) {
	for _, e := range []string{EventSubscribeProject, EventUnsubscribeProject, EventJoinBatch, EventLeaveBatch, EventSubscribeLogs, EventUnsubscribeLogs} {
		if !Handles(e) {
			t.Errorf("Handles(%q) = false", e)
		}
	}
	for _, e := range []string{"", "connect", "subscribe", "SUBSCRIBE_PROJECT"} {
		if Handles(e) {
			t.Errorf("Handles(%q) = true", e)
		}
	}
}

// FuzzHandle feeds arbitrary JSON payloads to every client event: it must
// never panic, always answer, and answer either the event's own reply or an
// error with a message.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{`{"project_id":"p"}`, `{"batch_id":1}`, `{"job_id":"local-1","project_id":2}`, `null`, `"x"`, `[1,2]`, `{"project_id":{"a":[1]}}`, `{"job_id":1e400}`} {
		f.Add(uint8(0), s)
	}
	events := []string{EventSubscribeProject, EventUnsubscribeProject, EventJoinBatch, EventLeaveBatch, EventSubscribeLogs, EventUnsubscribeLogs}
	f.Fuzz(func(t *testing.T, which uint8, payload string) {
		var v any
		if json.Unmarshal([]byte(payload), &v) != nil {
			return // the Socket.IO parser rejects invalid JSON before us
		}
		p := NewProtocol(Options{MaxIDLength: 64, Follows: NewMemoryFollows()})
		m := &fakeMember{id: "s"}
		reply := p.Handle(context.Background(), m, events[int(which)%len(events)], []any{v})
		if reply.Event == "" {
			t.Fatal("no reply")
		}
		if reply.Event == ReplyError {
			if msg, _ := reply.Payload["message"].(string); msg == "" {
				t.Fatalf("error reply without message: %v", reply.Payload)
			}
			return
		}
		for _, r := range m.rooms {
			if strings.ContainsFunc(r, func(c rune) bool { return c < 0x20 || c == 0x7f }) || len(r) > len(BatchPrefix)+64+len(ProjectPrefix) {
				t.Fatalf("bad room name %q", r)
			}
		}
	})
}

// A client is bounded in the rooms it may be in and the jobs it may
// follow; re-joining a room it is in is not a new room.
func TestProtocolLimits(t *testing.T) {
	var hits []string
	f := NewMemoryFollows()
	p := NewProtocol(Options{Follows: f, MaxRooms: 2, MaxFollows: 2, OnLimit: func(l string) { hits = append(hits, l) }})
	m := &fakeMember{id: "s1"}
	ask := func(event, payload string) Reply { return p.Handle(context.Background(), m, event, decode(t, payload)) }
	for _, tc := range []struct {
		event, payload, want string
	}{
		{EventSubscribeProject, `{"project_id":1}`, ReplySubscribedProject},
		{EventJoinBatch, `{"batch_id":1}`, ReplyJoinedBatch},
		{EventSubscribeProject, `{"project_id":2}`, ReplyError},             // a third room
		{EventSubscribeProject, `{"project_id":1}`, ReplySubscribedProject}, // already in it
		{EventSubscribeLogs, `{"job_id":"a","project_id":3}`, ReplyError},   // its project would be a third room
		{EventSubscribeLogs, `{"job_id":"a"}`, ReplySubscribed},
		{EventSubscribeLogs, `{"job_id":"b"}`, ReplySubscribed},
		{EventSubscribeLogs, `{"job_id":"c"}`, ReplyError}, // a third follow
		{EventLeaveBatch, `{"batch_id":1}`, ReplyLeftBatch},
		{EventSubscribeProject, `{"project_id":2}`, ReplySubscribedProject}, // room again after leaving one
	} {
		if got := ask(tc.event, tc.payload); got.Event != tc.want {
			t.Fatalf("%s %s = %s %v, want %s", tc.event, tc.payload, got.Event, got.Payload, tc.want)
		}
	}
	if got := ask(EventSubscribeProject, `{"project_id":9}`); got.Payload["message"] != "Too many rooms (limit 2)" {
		t.Fatalf("room limit message = %v", got.Payload)
	}
	if got := ask(EventSubscribeLogs, `{"job_id":"d"}`); got.Payload["message"] != "Too many log subscriptions (limit 2)" {
		t.Fatalf("follow limit message = %v", got.Payload)
	}
	if f.Active("c") || f.Count("s1") != 2 {
		t.Fatalf("a refused follow was recorded: count %d", f.Count("s1"))
	}
	want := []string{LimitRooms, LimitRooms, LimitFollows, LimitRooms, LimitFollows}
	if !slices.Equal(hits, want) {
		t.Fatalf("limits counted %v, want %v", hits, want)
	}
}

// Every change of what a client holds reaches Record, and only changes
// that happened: a refused join records nothing.
func TestProtocolRecordsWhatTheClientHolds(t *testing.T) {
	p := NewProtocol(Options{Follows: NewMemoryFollows()})
	m := &fakeMember{id: "s1", deny: map[string]bool{"batch:7": true}}
	for _, tc := range []struct{ event, payload string }{
		{EventSubscribeProject, `{"project_id":1}`},
		{EventJoinBatch, `{"batch_id":7}`}, // refused
		{EventJoinBatch, `{"batch_id":"b2"}`},
		{EventSubscribeLogs, `{"job_id":"j","project_id":3}`},
		{EventUnsubscribeLogs, `{"job_id":"j"}`},
		{EventUnsubscribeLogs, `{"job_id":"j"}`}, // not subscribed any more
		{EventLeaveBatch, `{"batch_id":"b2"}`},
	} {
		p.Handle(context.Background(), m, tc.event, decode(t, tc.payload))
	}
	want := []string{"+project:1", "+batch:b2", "+project:3", "+job:j", "-job:j", "-batch:b2"}
	if !slices.Equal(m.held, want) {
		t.Fatalf("recorded %v, want %v", m.held, want)
	}
}

// A recovered session's holdings are authorized again for the principal
// now, within the limits, duplicates and over-long ids dropped.
func TestProtocolReauthorize(t *testing.T) {
	var hits []string
	p := NewProtocol(Options{Follows: NewMemoryFollows(), MaxIDLength: 8, MaxRooms: 2, MaxFollows: 1, OnLimit: func(l string) { hits = append(hits, l) }})
	m := &fakeMember{id: "s1", deny: map[string]bool{"project:2": true, "project:9": true}}
	id := func(v any) ID {
		i, err := ParseID(v, MaxIDLengthLimit)
		if err != nil {
			t.Fatal(err)
		}
		return i
	}
	held := []Access{
		{Kind: AccessProject, ID: id(1.0)},
		{Kind: AccessProject, ID: id(2.0)}, // refused now
		{Kind: AccessProject, ID: id("1")}, // the same room again
		{Kind: AccessBatch, ID: id("a-very-long-batch-id")},
		{Kind: AccessJob, ID: id("j1"), Project: id(9.0)}, // its project refused now
		{Kind: AccessJob, ID: id("j2")},
		{Kind: AccessBatch, ID: id("b")},
		{Kind: AccessJob, ID: id("j3")},  // past the follow limit
		{Kind: AccessBatch, ID: id("c")}, // past the room limit
		{Kind: "other", ID: id("x")},
	}
	got := p.Reauthorize(context.Background(), m, held)
	var keys []string
	for _, a := range got {
		keys = append(keys, a.Kind+":"+a.ID.Key)
	}
	if want := []string{"project:1", "job:j2", "batch:b"}; !slices.Equal(keys, want) {
		t.Fatalf("kept %v, want %v", keys, want)
	}
	if want := []string{LimitFollows, LimitRooms}; !slices.Equal(hits, want) {
		t.Fatalf("limits counted %v, want %v", hits, want)
	}
	if len(m.rooms) != 0 {
		t.Fatalf("Reauthorize joined %v", m.rooms)
	}
	if room, ok := RoomOf(got[2]); !ok || room != "batch_b" {
		t.Fatalf("RoomOf = %q %v", room, ok)
	}
	if _, ok := RoomOf(got[1]); ok {
		t.Fatal("a follow has a room")
	}
}
