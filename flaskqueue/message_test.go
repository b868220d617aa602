package flaskqueue

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// emitJSON is a python-socketio 5.14+ emit with the given extra/overriding
// fields, as a JSON document.
func emitJSON(t *testing.T, override map[string]any) []byte {
	t.Helper()
	m := map[string]any{
		"method": "emit", "event": "ev", "data": []any{"a"}, "binary": false,
		"namespace": "/", "room": "r", "skip_sid": nil, "callback": nil, "host_id": "h",
	}
	for k, v := range override {
		if v == deleteKey {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type deleteMarker struct{}

var deleteKey = deleteMarker{}

func TestDecode(t *testing.T) {
	base := Message{Method: MethodEmit, Format: FormatJSON, HostID: "h", Namespace: "/", Event: "ev", Data: []any{"a"}, Rooms: []string{"r"}}
	with := func(f func(*Message)) Message {
		m := base
		f(&m)
		return m
	}
	tests := []struct {
		name    string
		in      func(t *testing.T) []byte
		want    Message
		wantErr error
		errText string
	}{
		{name: "emit", in: func(t *testing.T) []byte { return emitJSON(t, nil) }, want: base},
		{name: "leading whitespace", in: func(t *testing.T) []byte { return append([]byte(" \r\n\t"), emitJSON(t, nil)...) }, want: base},
		{name: "namespace None", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"namespace": nil}) }, want: base},
		{name: "namespace missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"namespace": deleteKey}) }, want: base},
		{name: "namespace empty", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"namespace": ""}) }, want: base},
		{name: "namespace other", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"namespace": "/chat"}) },
			want: with(func(m *Message) { m.Namespace = "/chat" })},
		{name: "room None", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"room": nil}) },
			want: with(func(m *Message) { m.Rooms, m.AllRooms = nil, true })},
		{name: "room missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"room": deleteKey}) },
			want: with(func(m *Message) { m.Rooms, m.AllRooms = nil, true })},
		{name: "rooms list", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"room": []any{"a", "b"}}) },
			want: with(func(m *Message) { m.Rooms = []string{"a", "b"} })},
		{name: "skip_sid list", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"skip_sid": []any{"s1", "s2"}}) },
			want: with(func(m *Message) { m.SkipSIDs = []string{"s1", "s2"} })},
		{name: "host_id missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"host_id": deleteKey}) },
			want: with(func(m *Message) { m.HostID = "" })},
		{name: "binary missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"binary": deleteKey}) }, want: base},
		{name: "data several args", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": []any{"a", 1, nil}}) },
			want: with(func(m *Message) { m.Data = []any{"a", int64(1), nil} })},
		{name: "data one list arg", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": []any{[]any{1, 2}}}) },
			want: with(func(m *Message) { m.Data = []any{[]any{int64(1), int64(2)}} })},
		{name: "data [None] is no arg", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": []any{nil}}) },
			want: with(func(m *Message) { m.Data = []any{} })},
		{name: "data [] is no arg", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": []any{}}) },
			want: with(func(m *Message) { m.Data = []any{} })},
		{name: "data None is no arg", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": nil}) },
			want: with(func(m *Message) { m.Data = []any{} })},
		{name: "data scalar is one arg", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": map[string]any{"k": 1.5}}) },
			want: with(func(m *Message) { m.Data = []any{map[string]any{"k": 1.5}} })},
		{name: "numbers", in: func(t *testing.T) []byte {
			return []byte(`{"method":"emit","event":"e","data":[9223372036854775807,9223372036854775808,-1,1.0,1e2,-0.0]}`)
		}, want: Message{Method: MethodEmit, Format: FormatJSON, Namespace: "/", Event: "e", AllRooms: true,
			Data: []any{int64(math.MaxInt64), new(big.Int).Lsh(big.NewInt(1), 63), int64(-1), 1.0, 100.0, math.Copysign(0, -1)}}},
		{name: "binary attachments", in: func(t *testing.T) []byte {
			return emitJSON(t, map[string]any{"binary": true, "data": []any{
				[]any{map[string]any{"img": map[string]any{"_placeholder": true, "num": 1}}, map[string]any{"_placeholder": true, "num": 0}},
				"AAE=", "aGk=",
			}})
		}, want: with(func(m *Message) { m.Data = []any{map[string]any{"img": []byte("hi")}, []byte{0, 1}} })},
		{name: "binary single arg", in: func(t *testing.T) []byte {
			return emitJSON(t, map[string]any{"binary": true, "data": []any{[]any{map[string]any{"_placeholder": true, "num": 0}}, "AAE="}})
		}, want: with(func(m *Message) { m.Data = []any{[]byte{0, 1}} })},
		{name: "placeholder false is data", in: func(t *testing.T) []byte {
			return emitJSON(t, map[string]any{"binary": true, "data": []any{[]any{map[string]any{"_placeholder": false, "num": 0}}}})
		}, want: with(func(m *Message) { m.Data = []any{map[string]any{"_placeholder": false, "num": int64(0)}} })},
		{name: "callback ack", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"callback": []any{"sid1", "/", 3}}) },
			want: with(func(m *Message) { m.Ack = &Ack{SID: "sid1", Namespace: "/", ID: 3} })},
		{name: "callback ack empty namespace", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"callback": []any{"sid1", "", 3}}) },
			want: with(func(m *Message) { m.Ack = &Ack{SID: "sid1", Namespace: "/", ID: 3} })},
		{name: "callback of other length ignored", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"callback": []any{"sid1", "/"}}) }, want: base},
		{name: "disconnect", in: func(t *testing.T) []byte { return []byte(`{"method":"disconnect","sid":"s","namespace":"/x"}`) },
			want: Message{Method: MethodDisconnect, Format: FormatJSON, Namespace: "/x", SID: "s"}},
		{name: "enter_room", in: func(t *testing.T) []byte { return []byte(`{"method":"enter_room","sid":"s","room":"r"}`) },
			want: Message{Method: MethodEnterRoom, Format: FormatJSON, Namespace: "/", SID: "s", Rooms: []string{"r"}}},
		{name: "callback", in: func(t *testing.T) []byte {
			return []byte(`{"method":"callback","host_id":"h","sid":"s","namespace":"/","id":5,"args":[]}`)
		}, want: Message{Method: MethodCallback, Format: FormatJSON, HostID: "h", Namespace: "/", SID: "s", AckID: 5, Data: []any{}}},
		{name: "extra keys ignored", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"future": []any{1}}) }, want: base},

		// Format detection.
		{name: "empty", in: func(t *testing.T) []byte { return nil }, wantErr: ErrMalformed, errText: "empty message"},
		{name: "only whitespace", in: func(t *testing.T) []byte { return []byte(" \n") }, wantErr: ErrMalformed, errText: "empty message"},
		{name: "garbage", in: func(t *testing.T) []byte { return []byte("hello") }, wantErr: ErrMalformed, errText: "unrecognised format: starts with byte 0x68"},
		{name: "json array", in: func(t *testing.T) []byte { return []byte(`[1]`) }, wantErr: ErrMalformed, errText: "unrecognised format"},
		{name: "json string", in: func(t *testing.T) []byte { return []byte(`"emit"`) }, wantErr: ErrMalformed, errText: "unrecognised format"},
		{name: "pickle after whitespace", in: func(t *testing.T) []byte { return append([]byte(" "), fixture(t, "emit_room.p4.pickle")...) },
			wantErr: ErrMalformed, errText: "unrecognised format: starts with byte 0x80"},
		{name: "pickle of a list", in: func(t *testing.T) []byte { return proto4(opEmptyList) },
			wantErr: ErrMalformed, errText: "pickle holds a list, want dict"},
		{name: "protocol 0 pickle of a list", in: func(t *testing.T) []byte { return []byte("(l.") },
			wantErr: ErrMalformed, errText: "pickle holds a list, want dict"},
		{name: "truncated pickle", in: func(t *testing.T) []byte { b := fixture(t, "emit_room.p2.pickle"); return b[:len(b)-1] },
			wantErr: ErrMalformed, errText: "no STOP"},
		{name: "truncated framed pickle", in: func(t *testing.T) []byte { b := fixture(t, "emit_room.p4.pickle"); return b[:len(b)-1] },
			wantErr: ErrMalformed, errText: "FRAME of 196 bytes exceeds the input"},
		{name: "unsafe pickle", in: func(t *testing.T) []byte { return fixture(t, "hostile_os_system.p4.pickle") },
			wantErr: ErrUnsafePickle, errText: "opcode STACK_GLOBAL"},
		{name: "truncated json", in: func(t *testing.T) []byte { return []byte(`{"method":"emit"`) }, wantErr: ErrMalformed, errText: "json: "},
		{name: "json trailing data", in: func(t *testing.T) []byte { return append(emitJSON(t, nil), " {}"...) },
			wantErr: ErrMalformed, errText: "data after the top-level object"},
		{name: "json NaN", in: func(t *testing.T) []byte { return []byte(`{"method":"emit","event":"e","data":[NaN]}`) }, wantErr: ErrMalformed},
		{name: "json too deep", in: func(t *testing.T) []byte {
			return []byte(`{"method":"emit","event":"e","data":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`)
		}, wantErr: ErrLimit, errText: "nesting deeper than 100"},
		{name: "json huge int", in: func(t *testing.T) []byte {
			return []byte(`{"method":"emit","event":"e","data":` + strings.Repeat("9", 5000) + `}`)
		}, wantErr: ErrLimit, errText: "more than 4300 digits"},

		// Validation.
		{name: "method missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"method": deleteKey}) },
			wantErr: ErrMalformed, errText: `message: "method" is missing`},
		{name: "method not str", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"method": 1}) },
			wantErr: ErrMalformed, errText: `"method" is int, want str`},
		{name: "method unknown", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"method": "eval"}) },
			wantErr: ErrUnsupportedMethod, errText: `flaskqueue: unsupported method: "eval"`},
		{name: "event missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"event": deleteKey}) },
			wantErr: ErrMalformed, errText: `emit: "event" is missing`},
		{name: "event empty", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"event": ""}) },
			wantErr: ErrMalformed, errText: `emit: "event" is empty`},
		{name: "event not str", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"event": []any{"x"}}) },
			wantErr: ErrMalformed, errText: `"event" is list, want str`},
		{name: "data missing", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"data": deleteKey}) },
			wantErr: ErrMalformed, errText: `emit: "data" is missing`},
		{name: "namespace not str", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"namespace": 3}) },
			wantErr: ErrMalformed, errText: `"namespace" is int, want str`},
		{name: "host_id not str", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"host_id": true}) },
			wantErr: ErrMalformed, errText: `"host_id" is bool, want str`},
		{name: "room int", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"room": 42}) },
			wantErr: ErrMalformed, errText: `"room" is int, want str, list or None`},
		{name: "room list with int", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"room": []any{"a", 1}}) },
			wantErr: ErrMalformed, errText: `"room" item 1 is int, want str`},
		{name: "room empty list", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"room": []any{}}) },
			wantErr: ErrMalformed, errText: `"room" is an empty list`},
		{name: "skip_sid dict", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"skip_sid": map[string]any{}}) },
			wantErr: ErrMalformed, errText: `"skip_sid" is dict`},
		{name: "callback wrong types", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"callback": []any{"s", "/", "7"}}) },
			wantErr: ErrMalformed, errText: `"callback" is (str, str, str)`},
		{name: "callback not list", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"callback": "abc"}) },
			wantErr: ErrMalformed, errText: `"callback" is str, want list or None`},
		{name: "binary not bool", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"binary": "yes"}) },
			wantErr: ErrMalformed, errText: `"binary" is str, want bool`},
		{name: "binary data not list", in: func(t *testing.T) []byte { return emitJSON(t, map[string]any{"binary": true, "data": "x"}) },
			wantErr: ErrMalformed, errText: "want a non-empty list when binary is true"},
		{name: "binary bad base64", in: func(t *testing.T) []byte {
			return emitJSON(t, map[string]any{"binary": true, "data": []any{[]any{}, "!!"}})
		}, wantErr: ErrMalformed, errText: "attachment 0 is not base64"},
		{name: "binary attachment not str", in: func(t *testing.T) []byte {
			return emitJSON(t, map[string]any{"binary": true, "data": []any{[]any{}, 5}})
		}, wantErr: ErrMalformed, errText: "attachment 0 is int, want base64 str"},
		{name: "binary placeholder out of range", in: func(t *testing.T) []byte {
			return emitJSON(t, map[string]any{"binary": true, "data": []any{[]any{map[string]any{"_placeholder": true, "num": 1}}, "AAE="}})
		}, wantErr: ErrMalformed, errText: "placeholder num 1 for 1 attachments"},
		{name: "disconnect without sid", in: func(t *testing.T) []byte { return []byte(`{"method":"disconnect","namespace":"/"}`) },
			wantErr: ErrMalformed, errText: `disconnect: "sid" is missing`},
		{name: "enter_room room list", in: func(t *testing.T) []byte { return []byte(`{"method":"enter_room","sid":"s","room":["a"]}`) },
			wantErr: ErrMalformed, errText: `enter_room: "room" is list, want str`},
		{name: "leave_room without room", in: func(t *testing.T) []byte { return []byte(`{"method":"leave_room","sid":"s"}`) },
			wantErr: ErrMalformed, errText: `leave_room: "room" is missing`},
		{name: "close_room room None", in: func(t *testing.T) []byte { return []byte(`{"method":"close_room","room":null}`) },
			wantErr: ErrMalformed, errText: `close_room: "room" is missing`},
		{name: "callback without id", in: func(t *testing.T) []byte { return []byte(`{"method":"callback","sid":"s","args":[]}`) },
			wantErr: ErrMalformed, errText: `callback: "id" is missing`},
		{name: "callback id float", in: func(t *testing.T) []byte { return []byte(`{"method":"callback","sid":"s","id":1.5,"args":[]}`) },
			wantErr: ErrMalformed, errText: `callback: "id" is float, want int64`},
		{name: "callback args not list", in: func(t *testing.T) []byte { return []byte(`{"method":"callback","sid":"s","id":1,"args":"x"}`) },
			wantErr: ErrMalformed, errText: `callback: "args" is str, want list or tuple`},
		{name: "callback without args", in: func(t *testing.T) []byte { return []byte(`{"method":"callback","sid":"s","id":1}`) },
			wantErr: ErrMalformed, errText: `callback: "args" is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in(t))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Decode = %+v, %v; want error %v", got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.errText) {
					t.Errorf("error %q does not contain %q", err, tt.errText)
				}
				if !reflect.DeepEqual(got, Message{}) {
					t.Errorf("Decode returned %+v with its error, want zero Message", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decode =\n %#v\nwant\n %#v", got, tt.want)
			}
		})
	}
}

// TestDecodePickleMessages covers what only a pickle can say: tuples
// versus lists for "data", and tuple rooms and callbacks.
func TestDecodePickleMessages(t *testing.T) {
	// emitPickle is a protocol 4 pickle of an emit dict whose "data"
	// value is given as opcodes.
	emitPickle := func(data ...any) []byte {
		body := []any{opEmptyDict, opMark,
			su("method"), su("emit"), su("event"), su("ev"), su("room"), opNone, su("data")}
		body = append(body, data...)
		body = append(body, opSetItems)
		return proto4(body...)
	}
	tests := []struct {
		name string
		in   []byte
		want []any
	}{
		{"tuple is the argument list", emitPickle(su("a"), opBinInt1, 2, opTuple2), []any{"a", int64(2)}},
		{"empty tuple is no argument", emitPickle(opEmptyTuple), []any{}},
		{"list is one argument", emitPickle(opEmptyList, opMark, su("a"), opBinInt1, 2, opAppends), []any{[]any{"a", int64(2)}}},
		{"None is no argument", emitPickle(opNone), []any{}},
		{"tuple holding None", emitPickle(opNone, opTuple1), []any{nil}},
		{"dict is one argument", emitPickle(opEmptyDict), []any{map[string]any{}}},
		{"set is one argument", emitPickle(opEmptySet), []any{[]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Data, tt.want) {
				t.Errorf("Data = %#v, want %#v", m.Data, tt.want)
			}
			if !m.AllRooms || m.Format != FormatPickle {
				t.Errorf("AllRooms = %v, Format = %v", m.AllRooms, m.Format)
			}
		})
	}
}

func TestPayloadJSON(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name    string
		data    []any
		want    []string
		wantErr string
	}{
		{"none", nil, []string{}, ""},
		{"scalars", []any{nil, true, int64(-3), 2.5, "s"}, []string{"null", "true", "-3", "2.5", `"s"`}, ""},
		{"no html escaping", []any{"<a href='x'>&</a>"}, []string{`"<a href='x'>&</a>"`}, ""},
		{"big int", []any{new(big.Int).Lsh(big.NewInt(1), 70)}, []string{"1180591620717411303424"}, ""},
		{"sorted keys", []any{map[string]any{"b": 1, "a": []any{}}}, []string{`{"a":[],"b":1}`}, ""},
		{"bytes", []any{"ok", map[string]any{"b": []byte("x")}}, nil, "argument 1: bytes value"},
		{"NaN", []any{math.NaN()}, nil, "argument 0: float NaN"},
		{"Inf", []any{[]any{math.Inf(-1)}}, nil, "argument 0: float -Inf"},
		{"cyclic hand-built value", []any{cyclic}, nil, "nested deeper than 10000"},
		{"unsupported type", []any{make(chan int)}, nil, "argument 0: json: unsupported type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Message{Data: tt.data}.PayloadJSON()
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNotJSON) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("PayloadJSON = %q, %v; want ErrNotJSON containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || len(got) != len(tt.want) {
				t.Fatalf("PayloadJSON = %q, want %q", got, tt.want)
			}
			for i := range got {
				if string(got[i]) != tt.want[i] {
					t.Errorf("argument %d = %s, want %s", i, got[i], tt.want[i])
				}
				if i > 0 && cap(got[i-1]) != len(got[i-1]) {
					t.Errorf("argument %d has spare capacity into the next one", i-1)
				}
			}
		})
	}
}

func TestHasBinary(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	for name, tc := range map[string]struct {
		data []any
		want bool
	}{
		"none":       {nil, false},
		"plain":      {[]any{"x", map[string]any{"k": []any{1}}}, false},
		"top bytes":  {[]any{[]byte{}}, true},
		"deep bytes": {[]any{map[string]any{"k": []any{[]byte("x")}}}, true},
		"cyclic":     {[]any{cyclic}, false},
	} {
		t.Run(name, func(t *testing.T) {
			if got := (Message{Data: tc.data}).HasBinary(); got != tc.want {
				t.Errorf("HasBinary = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestFormatString(t *testing.T) {
	for f, want := range map[Format]string{FormatJSON: "json", FormatPickle: "pickle", 0: "Format(0)", 9: "Format(9)"} {
		if got := f.String(); got != want {
			t.Errorf("Format(%d).String() = %q, want %q", uint8(f), got, want)
		}
	}
}

func TestLimitsDecode(t *testing.T) {
	in := []byte(`{"method":"emit","event":"e","data":[[[1]]]}`)
	if _, err := (Limits{MaxDepth: 4}).Decode(in); err != nil {
		t.Fatalf("MaxDepth 4: %v", err)
	}
	if _, err := (Limits{MaxDepth: 3}).Decode(in); !errors.Is(err, ErrLimit) {
		t.Fatalf("MaxDepth 3: err = %v, want ErrLimit", err)
	}
	if _, err := (Limits{MaxElements: 6}).Decode(in); err != nil { // 3 keys + 3 lists
		t.Fatalf("MaxElements 6: %v", err)
	}
	if _, err := (Limits{MaxElements: 5}).Decode(in); !errors.Is(err, ErrLimit) {
		t.Fatalf("MaxElements 5: err = %v, want ErrLimit", err)
	}
	if _, err := (Limits{MaxBytes: 20}).Decode(in); err != nil { // keys and strings: 20 bytes
		t.Fatalf("MaxBytes 20: %v", err)
	}
	if _, err := (Limits{MaxBytes: 19}).Decode(in); !errors.Is(err, ErrLimit) {
		t.Fatalf("MaxBytes 19: err = %v, want ErrLimit", err)
	}
	placeholders := []byte(`{"method":"emit","event":"e","binary":true,"data":[[` +
		`{"_placeholder":true,"num":0},{"_placeholder":true,"num":0},{"_placeholder":true,"num":0}],"AAECAwQ="]}`)
	// 79 bytes of text, then 3 references to a 5-byte attachment.
	if _, err := (Limits{MaxBytes: 94}).Decode(placeholders); err != nil {
		t.Fatalf("placeholders within MaxBytes: %v", err)
	}
	if _, err := (Limits{MaxBytes: 93}).Decode(placeholders); !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "binary attachments") {
		t.Fatalf("MaxBytes 93: err = %v, want ErrLimit for the attachments", err)
	}
	if _, err := (Limits{MaxMemo: 5}).Decode(fixture(t, "emit_room.p4.pickle")); !errors.Is(err, ErrLimit) {
		t.Fatalf("MaxMemo 5: err = %v, want ErrLimit", err)
	}
}
