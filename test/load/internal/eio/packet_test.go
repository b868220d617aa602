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
