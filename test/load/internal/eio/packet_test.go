package eio

import "testing"

func TestSplitEvent(t *testing.T) {
	cases := []struct {
		in, name, arg string
		ok            bool
	}{
		{`["job_completed",{"a":1}]`, "job_completed", `{"a":1}`, true},
		{`12["subscribed_project",{"project_id":"p7"}]`, "subscribed_project", `{"project_id":"p7"}`, true},
		{`["ping"]`, "ping", ``, true},
		{`["x",{"a":[1,2]},"more"]`, "x", `{"a":[1,2]},"more"`, true},
		{`{"a":1}`, "", "", false},
		{`["unterminated`, "", "", false},
	}
	for _, c := range cases {
		name, arg, ok := SplitEvent([]byte(c.in))
		if ok != c.ok || string(name) != c.name || string(arg) != c.arg {
			t.Errorf("SplitEvent(%q) = %q, %q, %v; want %q, %q, %v", c.in, name, arg, ok, c.name, c.arg, c.ok)
		}
	}
}

func TestFindInt(t *testing.T) {
	b := []byte(`{"result": {"ts": 1700000000123456789, "seq": 42, "st": 3}, "neg":-5}`)
	for key, want := range map[string]int64{`"ts":`: 1700000000123456789, `"seq":`: 42, `"st":`: 3, `"neg":`: -5} {
		got, ok := FindInt(b, []byte(key))
		if !ok || got != want {
			t.Errorf("FindInt(%s) = %d, %v; want %d", key, got, ok, want)
		}
	}
	if _, ok := FindInt(b, []byte(`"missing":`)); ok {
		t.Error("FindInt found a missing key")
	}
	if v, ok := FindInt([]byte(`"error":"ts=12 seq=7 st=1"`), []byte("seq=")); !ok || v != 7 {
		t.Errorf("FindInt(seq=) = %d, %v", v, ok)
	}
}

func TestEncodeEvent(t *testing.T) {
	got := string(EncodeEvent("subscribe_project", []byte(`{"project_id":"p7"}`)))
	if want := `42["subscribe_project",{"project_id":"p7"}]`; got != want {
		t.Errorf("EncodeEvent = %s, want %s", got, want)
	}
}

func TestLastStringArg(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{`["job_completed",{"a":1},"1733000000000-0"]`, "1733000000000-0", true},
		{`["job_completed",{"a":"x"}]`, "", false},
		{`["log_line","just a string"]`, "just a string", true},
		{`["x",{"a":1}, "spaced"]`, "spaced", true},
		{`["x","esc \"q\" \\"]`, `esc "q" \`, true},
		{`["x",["a","b"]]`, "", false},
		{`["ping"]`, "", false},
		{`12["x",{"a":1},"off"]`, "", false}, // an ack id: the last argument is the ack function
		{`["x",{"k":"v"},"a\\"]`, `a\`, true},
		{`not json"]`, "", false},
	}
	for _, c := range cases {
		got, ok := LastStringArg([]byte(c.in))
		if ok != c.ok || got != c.want {
			t.Errorf("LastStringArg(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestConnectPacket(t *testing.T) {
	for _, c := range []struct {
		pid, offset string
		has         bool
		want        string
	}{
		{"", "", false, "40"},
		{"", "1-0", true, "40"},
		{"AbCdEfGhIjKlMnOpQrStUvWx", "", false, `40{"pid":"AbCdEfGhIjKlMnOpQrStUvWx"}`},
		{"AbCdEfGhIjKlMnOpQrStUvWx", "1733-0", true, `40{"pid":"AbCdEfGhIjKlMnOpQrStUvWx","offset":"1733-0"}`},
	} {
		if got := string(ConnectPacket(c.pid, c.offset, c.has)); got != c.want {
			t.Errorf("ConnectPacket(%q, %q, %v) = %s; want %s", c.pid, c.offset, c.has, got, c.want)
		}
	}
}
