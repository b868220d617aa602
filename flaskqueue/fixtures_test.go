package flaskqueue

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const fixtureHost = "8f4e2c1a9b7d4e6f8a0b1c2d3e4f5a6b"

// fixtureCase is what every encoding of one testdata/gen.py case must
// decode to.
type fixtureCase struct {
	name string
	// files is how many fixtures (pickle protocols + JSON) exist.
	files int
	want  Message // Data is checked through payload or data
	// payload is the JSON of each argument, as PayloadJSON returns it.
	payload []string
	// data, when set, is compared with Message.Data instead (binary).
	data []any
}

var fixtureCases = []fixtureCase{
	{
		name: "emit_room", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "log_line", Rooms: []string{"project_42"}},
		payload: []string{`{"job_id":"j1","message":"step 1/3 done"}`},
	},
	{
		name: "emit_rooms_list", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "job_status", Rooms: []string{"project_42", "user_7"}},
		payload: []string{`{"job_id":"j2","state":"running"}`},
	},
	{
		name: "emit_rooms_tuple", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "job_status", Rooms: []string{"project_42", "user_7"}},
		payload: []string{`{"job_id":"j3"}`},
	},
	{
		name: "emit_broadcast", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/jobs", Event: "announcement", AllRooms: true},
		payload: []string{`"maintenance at 22:00"`},
	},
	{
		name: "emit_tuple_args", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "progress", Rooms: []string{"project_42"}},
		payload: []string{`"j1"`, `42`, `{"eta":12.5}`},
	},
	{
		name: "emit_list_arg", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "numbers", Rooms: []string{"r"}},
		payload: []string{`[1,2,3]`},
	},
	{
		name: "emit_no_data", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "ping", Rooms: []string{"r"}},
		payload: []string{},
	},
	{
		name: "emit_unicode", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "chat", Rooms: []string{"salle-é"}},
		payload: []string{`{"msg":"héllo wörld ✓ 日本語 🚀","ключ 🔑":"znak\\n\n\r\u0000\u001a"}`},
	},
	{
		name: "emit_nested", files: 7,
		want: Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "snapshot", Rooms: []string{"project_42"}},
		payload: []string{`{"big":[9223372036854775808,-9223372036854775809,1267650600228229401496703205376],` +
			`"bools":[true,false],"deep":{"a":{"b":{"c":{"d":["e",["f","g"]]}}}},` +
			`"empty":{"dict":{},"list":[],"str":"","tuple":[]},"floats":[1.5,-0,0.1,1e+300,-2.5e-10],` +
			`"ints":[0,1,-1,255,256,65535,65536,2147483647,-2147483648,2147483648,1099511627776,-1099511627776,9223372036854775807,-9223372036854775808],` +
			`"long_text":"` + strings.Repeat("x", 300) + `","none":null,"repeat":["same","same","same"],"shared":[["shared",1],["shared",1]]}`},
	},
	{
		name: "emit_skip_sid", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "typing", Rooms: []string{"project_42"}, SkipSIDs: []string{"sid_abc"}},
		payload: []string{`{"user":"u1"}`},
	},
	{
		name: "emit_skip_sids", files: 7,
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "typing", Rooms: []string{"project_42"}, SkipSIDs: []string{"sid_abc", "sid_def"}},
		payload: []string{`{"user":"u1"}`},
	},
	{
		name: "emit_callback", files: 7,
		want: Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "confirm", Rooms: []string{"sid_abc"},
			Ack: &Ack{SID: "sid_abc", Namespace: "/", ID: 7}},
		payload: []string{`{"q":"ok?"}`},
	},
	{
		name: "emit_no_host_id", files: 7,
		want:    Message{Method: MethodEmit, Namespace: "/", Event: "legacy", Rooms: []string{"r"}},
		payload: []string{`"x"`},
	},
	{
		name: "emit_bytes", files: 4, // protocols 3-5 and JSON
		want: Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "blob", Rooms: []string{"r"}},
		data: []any{map[string]any{"png": []byte("\x89PNG\r\n\x00\xff")}},
	},
	{
		name: "emit_set", files: 2, // protocols 4-5; not JSON-serialisable
		want:    Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "tags", Rooms: []string{"r"}},
		payload: []string{`{"frozen":[9],"ids":[1,2,3]}`},
	},
	{
		name: "emit_bytearray", files: 1, // protocol 5
		want: Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "blob", Rooms: []string{"r"}},
		data: []any{[]byte("abc")},
	},
	{
		name: "emit_large", files: 3, // protocols 2 and 4, JSON
		want: Message{Method: MethodEmit, HostID: fixtureHost, Namespace: "/", Event: "bulk", Rooms: []string{"project_42"}},
		payload: []string{func() string {
			var b strings.Builder
			b.WriteString(`{"rows":[`)
			for i := range 2500 {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.Itoa(i))
			}
			b.WriteString(`],"text":"` + strings.Repeat("x", 70000) + `"}`)
			return b.String()
		}()},
	},
	{
		name: "disconnect", files: 7,
		want: Message{Method: MethodDisconnect, HostID: fixtureHost, Namespace: "/", SID: "sid_abc"},
	},
	{
		name: "disconnect_legacy", files: 7,
		want: Message{Method: MethodDisconnect, Namespace: "/chat", SID: "sid_abc"},
	},
	{
		name: "enter_room", files: 7,
		want: Message{Method: MethodEnterRoom, HostID: fixtureHost, Namespace: "/", SID: "sid_abc", Rooms: []string{"project_42"}},
	},
	{
		name: "leave_room", files: 7,
		want: Message{Method: MethodLeaveRoom, HostID: fixtureHost, Namespace: "/", SID: "sid_abc", Rooms: []string{"project_42"}},
	},
	{
		name: "close_room", files: 7,
		want: Message{Method: MethodCloseRoom, HostID: fixtureHost, Namespace: "/", Rooms: []string{"project_42"}},
	},
	{
		name: "callback", files: 7,
		want:    Message{Method: MethodCallback, HostID: fixtureHost, Namespace: "/", SID: "sid_abc", AckID: 7},
		payload: []string{`"yes"`, `1`},
	},
}

// TestDecodeFixtures decodes every encoding python-socketio produces of
// each case (pickle protocols 0-5 as generated, JSON as 5.14+ publishes)
// and checks they all yield the same Message.
func TestDecodeFixtures(t *testing.T) {
	for _, tc := range fixtureCases {
		t.Run(tc.name, func(t *testing.T) {
			files := append(fixtureNames(t, tc.name+".p"), fixtureNames(t, tc.name+".json")...)
			if len(files) != tc.files {
				t.Fatalf("found %d fixtures %v, want %d (run testdata/gen.py)", len(files), files, tc.files)
			}
			for _, file := range files {
				t.Run(file, func(t *testing.T) {
					m, err := Decode(fixture(t, file))
					if err != nil {
						t.Fatalf("Decode: %v", err)
					}
					wantFormat := FormatPickle
					if strings.HasSuffix(file, ".json") {
						wantFormat = FormatJSON
					}
					if m.Format != wantFormat {
						t.Errorf("Format = %v, want %v", m.Format, wantFormat)
					}
					got, want := m, tc.want
					got.Data, got.Format, want.Format = nil, 0, 0
					if !reflect.DeepEqual(got, want) {
						t.Errorf("Decode =\n %+v\nwant\n %+v", got, want)
					}
					if hasData := m.Method == MethodEmit || m.Method == MethodCallback; hasData != (m.Data != nil) {
						t.Errorf("Data = %#v: want a non-nil slice exactly for emit and callback", m.Data)
					}
					if tc.data != nil {
						if !reflect.DeepEqual(m.Data, tc.data) {
							t.Errorf("Data = %#v, want %#v", m.Data, tc.data)
						}
						if !m.HasBinary() {
							t.Errorf("HasBinary = false")
						}
						if _, err := m.PayloadJSON(); !errors.Is(err, ErrNotJSON) {
							t.Errorf("PayloadJSON err = %v, want ErrNotJSON", err)
						}
						return
					}
					if m.HasBinary() {
						t.Errorf("HasBinary = true")
					}
					payload, err := m.PayloadJSON()
					if err != nil {
						t.Fatalf("PayloadJSON: %v", err)
					}
					if len(payload) != len(tc.payload) {
						t.Fatalf("PayloadJSON gave %d arguments, want %d", len(payload), len(tc.payload))
					}
					for i := range payload {
						if string(payload[i]) != tc.payload[i] {
							t.Errorf("argument %d =\n %.300s\nwant\n %.300s", i, payload[i], tc.payload[i])
						}
					}
				})
			}
		})
	}
}

// TestFixturesCovered fails when gen.py writes a fixture no test expects.
func TestFixturesCovered(t *testing.T) {
	known := map[string]bool{}
	for _, tc := range fixtureCases {
		known[tc.name] = true
	}
	for _, file := range fixtureNames(t, "") {
		if strings.HasPrefix(file, "hostile_") || strings.HasPrefix(file, "refused_") {
			continue
		}
		name, _, _ := strings.Cut(file, ".")
		if !known[name] {
			t.Errorf("fixture %s has no expectation in fixtureCases", file)
		}
	}
}

// TestUnsafeFixtures checks that every pickle that would construct an
// object or call code, as really produced by Python, is refused.
func TestUnsafeFixtures(t *testing.T) {
	files := append(fixtureNames(t, "hostile_"), fixtureNames(t, "refused_")...)
	if len(files) < 40 {
		t.Fatalf("found %d hostile/refused fixtures, want at least 40 (run testdata/gen.py)", len(files))
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			b := fixture(t, file)
			v, err := DecodePickle(b)
			if !errors.Is(err, ErrUnsafePickle) || v != nil {
				t.Fatalf("DecodePickle = %v, %v; want nil, ErrUnsafePickle", v, err)
			}
			if !strings.Contains(err.Error(), "flaskqueue: unsafe pickle: opcode ") {
				t.Errorf("error %q does not name the opcode", err)
			}
			m, err := Decode(b)
			if !errors.Is(err, ErrUnsafePickle) || !reflect.DeepEqual(m, Message{}) {
				t.Fatalf("Decode = %+v, %v; want zero Message, ErrUnsafePickle", m, err)
			}
		})
	}
}

// TestPickleProtocolsAgree checks that DecodePickle gives the same value
// for every protocol of a case.
func TestPickleProtocolsAgree(t *testing.T) {
	for _, tc := range fixtureCases {
		t.Run(tc.name, func(t *testing.T) {
			var first any
			var firstFile string
			for _, file := range fixtureNames(t, tc.name+".p") {
				v, err := DecodePickle(fixture(t, file))
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				if firstFile == "" {
					first, firstFile = v, file
					continue
				}
				if !reflect.DeepEqual(v, first) {
					t.Errorf("%s decodes differently from %s", file, firstFile)
				}
			}
		})
	}
}
