package sioclient

import (
	"encoding/json"
	"testing"
)

func TestEndpoint(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:5000":   "ws://127.0.0.1:5000/socket.io/?EIO=4&transport=websocket",
		"https://gw.example.com/": "wss://gw.example.com/socket.io/?EIO=4&transport=websocket",
		"ws://h:1/prefix":         "ws://h:1/prefix/socket.io/?EIO=4&transport=websocket",
	} {
		if got, err := Endpoint(in); err != nil || got != want {
			t.Errorf("Endpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://h", "http://", "://"} {
		if _, err := Endpoint(bad); err == nil {
			t.Errorf("Endpoint(%q) accepted", bad)
		}
	}
}

func TestParseEventKeepsThePayloadAsSent(t *testing.T) {
	name, data, err := ParseEvent(`["job_completed",{"project_id":"42","job_id":"j1","status":"completed","result":{"b":1,"a":2}}]`)
	if err != nil || name != "job_completed" || string(data) != `{"project_id":"42","job_id":"j1","status":"completed","result":{"b":1,"a":2}}` {
		t.Fatalf("%q %s %v", name, data, err)
	}
	if name, data, err := ParseEvent(`["ping"]`); err != nil || name != "ping" || string(data) != "null" {
		t.Fatalf("no argument: %q %s %v", name, data, err)
	}
	for _, bad := range []string{``, `[]`, `[1,2]`, `{"a":1}`, `["x"`} {
		if _, _, err := ParseEvent(bad); err == nil {
			t.Errorf("ParseEvent(%q) accepted", bad)
		}
	}
}

// FuzzParseEvent: whatever a server sends, ParseEvent does not panic, and
// what it accepts is a name and one JSON value.
func FuzzParseEvent(f *testing.F) {
	for _, seed := range []string{`["a",{"b":1}]`, `["a"]`, `[]`, `["a",1,2]`, `[null]`, `"x"`, `["\u0000",[]]`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, data, err := ParseEvent(s)
		if err == nil && !json.Valid(data) {
			t.Fatalf("ParseEvent(%q) returned invalid JSON %q", s, data)
		}
	})
}
