package main

import (
	"encoding/json"
	"testing"
	"time"
)

func TestLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1", "127.1.2.3", "::1"} {
		if err := loopbackOnly(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "localhost", "10.0.0.1", "192.168.1.1", "0.0.0.0", "8.8.8.8", "::", "example.com"} {
		if loopbackOnly(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLoopbackAddrs(t *testing.T) {
	addrs := loopbackAddrs(600)
	seen := map[string]bool{}
	for _, ip := range addrs {
		if !ip.IsLoopback() {
			t.Fatalf("%s is not loopback", ip)
		}
		if seen[ip.String()] {
			t.Fatalf("%s twice", ip)
		}
		seen[ip.String()] = true
	}
}

func TestParseGoroutines(t *testing.T) {
	if n := parseGoroutines([]byte("goroutine profile: total 40011\n1 @ 0x1\n")); n != 40011 {
		t.Fatalf("got %v", n)
	}
	if n := parseGoroutines([]byte("404 page not found")); n != -1 {
		t.Fatalf("got %v", n)
	}
}

func TestParseMemStat(t *testing.T) {
	b := []byte("heap profile: ...\n\n# runtime.MemStats\n# Alloc = 123\n# HeapAlloc = 230000000\n# HeapSys = 1\n")
	if v := parseMemStat(b, "HeapAlloc"); v != 230000000 {
		t.Fatalf("got %v", v)
	}
	if v := parseMemStat(b, "Missing"); v >= 0 {
		t.Fatalf("got %v", v)
	}
}

func TestStatusOf(t *testing.T) {
	cases := map[string]int{"HTTP/1.1 408 Request Timeout\r\n": 408, "HTTP/1.1 101 Switching": 101, "": 0, "garbage": 0, "HTTP/1.1 4": 0}
	for in, want := range cases {
		if got := statusOf([]byte(in)); got != want {
			t.Errorf("%q: %d, want %d", in, got, want)
		}
	}
}

func TestParseEvent(t *testing.T) {
	name, data, ok := parseEvent([]byte(`42["error",{"message":"Forbidden"}]`))
	if !ok || name != "error" || string(data) != `{"message":"Forbidden"}` {
		t.Fatalf("%v %q %s", ok, name, data)
	}
	name, data, ok = parseEvent([]byte(`4312[{"message":"x"}]`))
	if !ok || name != "ack" || string(data) != `{"message":"x"}` {
		t.Fatalf("%v %q %s", ok, name, data)
	}
	if _, _, ok := parseEvent([]byte(`42[`)); ok {
		t.Fatal("malformed accepted")
	}
	name, data, ok = parseEvent([]byte(`42["ping"]`))
	if !ok || name != "ping" || string(data) != "null" {
		t.Fatalf("%v %q %s", ok, name, data)
	}
}

func TestEventCounter(t *testing.T) {
	c := newEventCounter()
	c.add("error", json.RawMessage(`{"message":"Rate limit exceeded"}`))
	c.add("error", json.RawMessage(`{"message":"Rate limit exceeded"}`))
	c.add("subscribed_project", json.RawMessage(`{"project_id":"1"}`))
	if c.get("error: Rate limit exceeded") != 2 || c.get("subscribed_project") != 1 {
		t.Fatal(c.snapshot())
	}
}

func TestQuantile(t *testing.T) {
	var l latencies
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i)*time.Millisecond)
	}
	if q := l.quantile(0.99); q != 99*time.Millisecond {
		t.Fatalf("p99 %v", q)
	}
	if q := l.quantile(0.5); q != 50*time.Millisecond {
		t.Fatalf("p50 %v", q)
	}
	m := l.json(120)
	if m["sent"] != 120 || m["received"] != 100 || m["p99_ms"] != 99.0 {
		t.Fatal(m)
	}
}

func TestLogCounter(t *testing.T) {
	l := newLogCounter()
	l.watch("too many open files")
	_, _ = l.Write([]byte("{\"msg\":\"a\"}\n2026/01/01 http: Accept error: accept4: too many open files\n{\"msg\""))
	_, _ = l.Write([]byte(":\"b\"}\n"))
	lines, _ := l.snapshot()
	if lines != 3 || l.nonJSONLines() != 1 || l.count("too many open files") != 1 {
		t.Fatalf("lines %d, not JSON %d, grep %d", lines, l.nonJSONLines(), l.count("too many open files"))
	}
}

func TestBodySignature(t *testing.T) {
	// HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
	got := bodySignature("key", []byte("The quick brown fox jumps over the lazy dog"))
	if got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Fatal(got)
	}
}

// Every attack has its place in docs/security.md's order, and every name
// there is an attack.
func TestRunOrder(t *testing.T) {
	names := map[string]bool{}
	for _, a := range attacks {
		if position(a.name) == len(runOrder) {
			t.Errorf("%s is not in runOrder", a.name)
		}
		names[a.name] = true
	}
	for _, n := range runOrder {
		if !names[n] {
			t.Errorf("runOrder names %s, which is no attack", n)
		}
	}
}
