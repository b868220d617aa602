package soak

import (
	"context"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/meshgen/gateway/test/load/internal/peers"
)

func TestOwedChurnWindow(t *testing.T) {
	const grace = int64(10 * time.Second)
	s := func(joined, left int64) *Session { return &Session{JoinedAt: joined, LeftAt: left} }
	sec := int64(time.Second)
	e := event{SentAt: 100 * sec, AckAt: 101 * sec}
	cases := []struct {
		name string
		s    *Session
		e    event
		want bool
	}{
		{"in the room throughout, still open", s(50*sec, 0), e, true},
		{"left long after the ack", s(50*sec, 200*sec), e, true},
		{"left inside the churn window", s(50*sec, 105*sec), e, false},
		{"left exactly at ack+grace", s(50*sec, 111*sec), e, false},
		{"joined after the send began", s(100*sec, 0), e, false},
		{"joined during the first attempt", s(100*sec+1, 0), e, false},
		{"never acknowledged", s(50*sec, 0), event{SentAt: 100 * sec}, false},
		{"never joined", s(0, 0), e, false},
	}
	for _, c := range cases {
		if got := Owed(c.s, c.e, grace); got != c.want {
			t.Errorf("%s: Owed = %v, want %v", c.name, got, c.want)
		}
	}
}

// payloadOf is what a client receives for (room, seq).
func payloadOf(room int, seq, ts int64) []byte {
	return payload([]byte(`{"project_id":"p","result":`), pending{room: room, seq: seq, ts: ts})
}

func TestLedgerCountsLossDuplicatesAndForeign(t *testing.T) {
	l := NewLedger(2)
	sec := int64(time.Second)
	var seqs []int64
	for i := 0; i < 4; i++ {
		sq := l.Next(0, int64(100+i)*sec)
		l.Ack(0, sq, int64(100+i)*sec+sec/10)
		seqs = append(seqs, sq)
	}
	unacked := l.Next(0, 104*sec) // never acknowledged: owed to nobody
	open := &Session{Room: 0, JoinedAt: 50 * sec}
	// Left 108 s: every ack (100.1 s to 103.1 s) is within 10 s of it, so
	// nothing is owed to it (its churn window).
	churned := &Session{Room: 0, JoinedAt: 50 * sec, LeftAt: 108 * sec}
	late := &Session{Room: 0, JoinedAt: 101*sec + 1} // owed the events sent at 102 s and 103 s
	for _, s := range []*Session{open, churned, late} {
		l.AddSession(s)
	}
	for _, sq := range seqs[:3] { // open misses seq 3
		l.OnEvent(open, payloadOf(0, sq, 100*sec), 101*sec)
	}
	l.OnEvent(open, payloadOf(0, seqs[0], 100*sec), 101*sec) // a duplicate
	l.OnEvent(open, payloadOf(1, 0, 100*sec), 101*sec)       // another room's event
	l.OnEvent(open, payloadOf(0, unacked, 104*sec), 105*sec) // received, not owed: fine
	l.OnEvent(late, payloadOf(0, seqs[2], 102*sec), 103*sec)
	l.OnEvent(late, payloadOf(0, seqs[3], 103*sec), 104*sec)
	v := l.Verdict(10 * sec)
	if v.Owed != 6 || v.Lost != 1 || v.DeliveredOwed != 5 {
		t.Errorf("owed %d lost %d delivered %d, want 6, 1, 5 (%v)", v.Owed, v.Lost, v.DeliveredOwed, v.LostSamples)
	}
	if v.Duplicates != 1 || v.Foreign != 1 || v.Unacknowledged != 1 || v.Acknowledged != 4 {
		t.Errorf("duplicates %d foreign %d unacknowledged %d acknowledged %d, want 1 1 1 4", v.Duplicates, v.Foreign, v.Unacknowledged, v.Acknowledged)
	}
	if len(v.LostSamples) != 1 || !strings.Contains(v.LostSamples[0], "seq 3") {
		t.Errorf("lost samples %v", v.LostSamples)
	}
}

func TestCheckFlatAndLeaking(t *testing.T) {
	var ts, flat, leak []float64
	for i := 0; i < 360; i++ {
		t := float64(10 * i)
		ts = append(ts, t)
		noise := 3 * math.Sin(float64(i)*1.7) // +-3% around 100
		flat = append(flat, 100+noise)
		leak = append(leak, 100+noise+t/3600*20) // +20 per hour: +10 over the half
	}
	b := Bound{Rel: 0.05}
	if f := Check("flat", ts, flat, 1800, 3590, b); !f.Pass || f.N != 180 {
		t.Errorf("flat series failed: %+v", f)
	}
	f := Check("leak", ts, leak, 1800, 3590, b)
	if f.Pass {
		t.Errorf("a leak of 20/h passed: %+v", f)
	}
	if math.Abs(f.SlopePerHour-20) > 1 {
		t.Errorf("slope %.2f/h, want 20", f.SlopePerHour)
	}
	if g := Check("short", ts[:2], flat[:2], 0, 10, b); g.Pass || g.N != 2 {
		t.Errorf("two points passed: %+v", g)
	}
	nan := append([]float64(nil), flat...)
	nan[200] = math.NaN() // Redis down during one sample
	if g := Check("nan", ts, nan, 1800, 3590, b); !g.Pass || g.N != 179 {
		t.Errorf("a missing sample broke the fit: %+v", g)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Reliability\n\n<!-- failover:begin -->\nF\n<!-- failover:end -->\n"
	out, err := ReplaceSection(doc, "first")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "<!-- failover:begin -->\nF\n<!-- failover:end -->") || !strings.HasSuffix(out, BeginMarker+"\nfirst\n"+EndMarker+"\n") {
		t.Fatalf("append: %q", out)
	}
	out2, err := ReplaceSection(out+"tail\n", "second")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out2, "first") || !strings.Contains(out2, BeginMarker+"\nsecond\n"+EndMarker+"\ntail\n") || !strings.HasPrefix(out2, doc) {
		t.Fatalf("replace: %q", out2)
	}
	if _, err := ReplaceSection(EndMarker+"\n"+BeginMarker, "x"); err == nil {
		t.Fatal("markers out of order accepted")
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 5036
gateway_socket_clients{transport="polling"} 250
gateway_socket_clients{transport="websocket"} 2250
gateway_socket_clients_other 7
process_open_fds 2.543e+03
gateway_bus_publish_duration_seconds_count{outcome="duplicate"} 12
gateway_bus_publish_duration_seconds_count{outcome="ok"} 900
`
	m, err := parseMetrics(strings.NewReader(text), "go_goroutines", "gateway_socket_clients", "process_open_fds", busDup)
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 5036 || m["gateway_socket_clients"] != 2500 || m["process_open_fds"] != 2543 || m[busDup] != 12 {
		t.Fatalf("parsed %v", m)
	}
}

// A real redis-server: restarted with AOF, its keys survive; the census
// and INFO readers work against it.
func TestRedisRestartKeepsKeys(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	port, err := peers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := StartRedis(ctx, bin, port, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for _, k := range []string{"gateway:events:dedupe:a:completed", "gateway:events:dedupe:b", "gateway:events"} {
		if _, err := r.Do(ctx, "SET", k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Restart(ctx, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	n, err := r.Int(ctx, "DBSIZE")
	if err != nil || n != 3 {
		t.Fatalf("DBSIZE after restart = %d, %v; want 3", n, err)
	}
	c, err := r.Census(ctx)
	if err != nil || c["gateway:events:dedupe:*"] != 2 || c["gateway:events"] != 1 {
		t.Fatalf("census %v, %v", c, err)
	}
	if m, err := r.InfoField(ctx, "memory", "used_memory"); err != nil || m <= 0 {
		t.Fatalf("used_memory %d, %v", m, err)
	}
}

func TestAutoTiming(t *testing.T) {
	iv, at := AutoTiming(time.Hour, 0, 0)
	if iv != 10*time.Second || at != 0.4 {
		t.Errorf("1h: %s %.2f", iv, at)
	}
	iv, at = AutoTiming(time.Minute, 0, 0)
	if iv != 2*time.Second || math.Abs(at-0.25) > 1e-9 {
		t.Errorf("60s: %s %.2f", iv, at)
	}
	if iv, at = AutoTiming(time.Minute, 5*time.Second, 0.5); iv != 5*time.Second || at != 0.5 {
		t.Errorf("explicit values changed: %s %.2f", iv, at)
	}
}
