package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshgen/gateway/app"
	"github.com/meshgen/gateway/config"
)

const (
	webhookSecret = "webhook-secret-for-tests"
	eventsSecret  = "events-secret-for-tests"
	jobsSecret    = "jobs-secret-for-tests"
)

// gateway is a real gateway (package app) serving on 127.0.0.1.
type gateway struct {
	url  string
	stop func()
}

// startGateway serves a production gateway with the three secrets on
// addr ("127.0.0.1:0" for any port) until the test ends or stop.
func startGateway(t *testing.T, addr string, tweak ...func(*config.Config)) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Host = "127.0.0.1"
	cfg.Port = ln.Addr().(*net.TCPAddr).Port
	cfg.ModalWebhookSecrets = []string{webhookSecret}
	cfg.EventsSecrets = []string{eventsSecret}
	cfg.JobsSecrets = []string{jobsSecret}
	cfg.DrainWindow = 0
	for _, f := range tweak {
		f(&cfg)
	}
	a, err := app.New(cfg, slog.New(slog.DiscardHandler), "test")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	g := &gateway{url: "http://" + ln.Addr().String(), stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("gateway stopped with %v", err)
			}
		})
	}}
	t.Cleanup(g.stop)
	return g
}

// secrets sets the environment the commands read their secrets from.
func secrets(t *testing.T) {
	t.Setenv("MODAL_WEBHOOK_SECRET", webhookSecret)
	t.Setenv("GATEWAY_EVENTS_SECRET", eventsSecret)
	t.Setenv("GATEWAY_JOBS_SECRET", jobsSecret)
}

// lockedBuffer is a bytes.Buffer safe for a command writing while the
// test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// execute runs the command line and returns its exit status and output.
func execute(ctx context.Context, args ...string) (int, string, string) {
	var stdout, stderr lockedBuffer
	code := Execute(ctx, args, testOptions(&stdout, &stderr))
	return code, stdout.String(), stderr.String()
}

func testOptions(stdout, stderr io.Writer) Options {
	return Options{Version: "test", Commit: "none", Stdout: stdout, Stderr: stderr,
		Serve: func(context.Context, config.Config) int { return ExitOK }}
}

func TestWebhookSend(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:0")
	t.Run("signed with the configured secret", func(t *testing.T) {
		secrets(t)
		code, out, errOut := execute(t.Context(), "webhook", "send", "--job-id", "j1", "--status", "completed", "--project", "42", "--url", gw.url)
		if code != ExitOK || !strings.Contains(out, `"status":"ok"`) || !strings.Contains(errOut, "200 OK") {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("a wrong secret is a 401 and exit 1", func(t *testing.T) {
		t.Setenv("MODAL_WEBHOOK_SECRET", "not-the-secret")
		code, out, _ := execute(t.Context(), "webhook", "send", "--job-id", "j1", "--status", "failed", "--error", "boom", "--project", "42", "--url", gw.url)
		if code != ExitFailure || !strings.Contains(out, "Invalid signature") {
			t.Fatalf("exit %d, stdout %q", code, out)
		}
	})
	t.Run("the URL comes from the configured port", func(t *testing.T) {
		secrets(t)
		t.Setenv("PORT", strings.TrimPrefix(gw.url, "http://127.0.0.1:"))
		if code, out, errOut := execute(t.Context(), "webhook", "send", "--job-id", "j2", "--status", "completed", "--project", "42"); code != ExitOK {
			t.Fatalf("exit %d, %q %q", code, out, errOut)
		}
	})
	t.Run("unreachable is exit 1", func(t *testing.T) {
		if code, _, errOut := execute(t.Context(), "webhook", "send", "--job-id", "j1", "--status", "completed", "--url", "http://127.0.0.1:1"); code != ExitFailure || !strings.Contains(errOut, "connection refused") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad status", []string{"webhook", "send", "--job-id", "j", "--status", "done"}, "must be completed or failed"},
		{"result not JSON", []string{"webhook", "send", "--job-id", "j", "--status", "completed", "--result", "{nope"}, "--result is not valid JSON"},
		{"result and error", []string{"webhook", "send", "--job-id", "j", "--status", "failed", "--result", "{}", "--error", "x"}, "none of the others can be"},
		{"no job id", []string{"webhook", "send", "--status", "completed"}, `required flag(s) "job-id" not set`},
		{"publish without event or file", []string{"publish"}, "at least one of the flags"},
		{"tail without a room", []string{"tail"}, "at least one of the flags"},
		{"two jobs without a batch", []string{"jobs", "register", "--project", "1", "--job-id", "a", "--job-id", "b"}, "exactly one --job-id"},
		{"unknown command", []string{"nope"}, `unknown command "nope"`},
		{"bad config value", []string{"status", "--port", "x"}, `invalid argument "x" for "--port"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := execute(t.Context(), tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("exit %d, stderr %q; want 2 and one line with %q", code, errOut, tc.want)
			}
		})
	}
}

// The bodies are Modal's and the APIs' own shapes, keys in their order.
func TestBodies(t *testing.T) {
	parse := func(args ...string) *commandFlags {
		cmd, rest, err := newRoot(testOptions(io.Discard, io.Discard)).Find(args)
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Fatal(err)
		}
		return &commandFlags{cmd.Flags()}
	}
	for _, tc := range []struct {
		args []string
		want string
		body func(*commandFlags) ([]byte, error)
	}{
		{[]string{"webhook", "send", "--job-id", "j1", "--status", "completed", "--project", "42"}, `{"job_id":"j1","status":"completed","result":{"success":true},"project_id":"42"}`, (*commandFlags).webhook},
		{[]string{"webhook", "send", "--job-id", "j1", "--status", "completed", "--result", `{"b":1,"a":2}`, "--batch", "7"}, `{"job_id":"j1","status":"completed","result":{"b":1,"a":2},"batch_id":"7"}`, (*commandFlags).webhook},
		{[]string{"webhook", "send", "--job-id", "j1", "--status", "failed", "--error", "boom", "--project", "42"}, `{"job_id":"j1","status":"failed","error":"boom","project_id":"42"}`, (*commandFlags).webhook},
		{[]string{"jobs", "register", "--job-id", "fc-1", "--project", "42"}, `{"job_id":"fc-1","project_id":"42"}`, (*commandFlags).jobs},
		{[]string{"jobs", "register", "--batch", "b7", "--project", "42", "--total", "3", "--job-id", "a", "--job-id", "b"}, `{"batch_id":"b7","project_id":"42","total_jobs":3,"jobs":[{"job_id":"a"},{"job_id":"b"}]}`, (*commandFlags).jobs},
	} {
		got, err := tc.body(parse(tc.args...))
		if err != nil || string(got) != tc.want {
			t.Errorf("%v:\n got %s (%v)\nwant %s", tc.args, got, err, tc.want)
		}
	}
}

func TestPublishAndJobsRegister(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:0")
	secrets(t)
	file := filepath.Join(t.TempDir(), "events.json")
	events := `{"events":[{"event":"log_line","project_id":"42","data":{"job_id":"j1","message":"a"}},{"event":"job_progress","batch_id":"7","data":{"job_id":"j1","progress":50,"status":"processing"}}]}`
	if err := os.WriteFile(file, []byte(events), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--file", file}, `"accepted":2`},
		{[]string{"publish", "--event", "log_line", "--project", "42", "--data", `{"job_id":"j1","message":"b"}`}, `"accepted":1`},
		{[]string{"jobs", "register", "--job-id", "fc-1", "--project", "42"}, `"registered":1`},
		{[]string{"jobs", "register", "--batch", "b7", "--project", "42", "--job-id", "fc-2", "--job-id", "fc-3"}, `"registered":2`},
	} {
		code, out, errOut := execute(t.Context(), append(tc.args, "--url", gw.url)...)
		if code != ExitOK || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %s", tc.args, code, out, errOut, tc.want)
		}
	}
	t.Setenv("GATEWAY_EVENTS_SECRET", "")
	if code, out, _ := execute(t.Context(), "publish", "--file", file, "--url", gw.url); code != ExitFailure || !strings.Contains(out, "Invalid signature") {
		t.Fatalf("unsigned publish to a production gateway: exit %d, %q", code, out)
	}
}

func TestStatusCommand(t *testing.T) {
	gw := startGateway(t, "127.0.0.1:0")
	code, out, _ := execute(t.Context(), "status", "--url", gw.url)
	if code != ExitOK || !strings.Contains(out, gw.url+"  ready  clients 0") {
		t.Fatalf("exit %d, %q", code, out)
	}
	code, out, _ = execute(t.Context(), "status", "--url", gw.url+",http://127.0.0.1:1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != ExitFailure || len(lines) != 2 || !strings.Contains(lines[1], "unreachable") {
		t.Fatalf("one node down: exit %d, %q", code, out)
	}
}

// A node with metrics-addr serves /metrics on that listener only: status
// reads it there with --metrics-port (or the configuration's
// metrics-addr), and says so when it is not told.
func TestStatusCommandMetricsPort(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := free.Addr().String()
	_ = free.Close()
	gw := startGateway(t, "127.0.0.1:0", func(c *config.Config) { c.MetricsAddr = metricsAddr })
	port := metricsAddr[strings.LastIndexByte(metricsAddr, ':')+1:]
	code, out, _ := execute(t.Context(), "status", "--url", gw.url, "--metrics-port", port)
	if code != ExitOK || !strings.Contains(out, gw.url+"  ready  clients 0") {
		t.Fatalf("--metrics-port: exit %d, %q", code, out)
	}
	t.Setenv("GATEWAY_METRICS_ADDR", metricsAddr)
	if code, out, _ = execute(t.Context(), "status", "--url", gw.url); code != ExitOK {
		t.Fatalf("metrics-addr from the environment: exit %d, %q", code, out)
	}
	os.Unsetenv("GATEWAY_METRICS_ADDR")
	code, out, _ = execute(t.Context(), "status", "--url", gw.url)
	if code != ExitFailure || !strings.Contains(out, "pass --metrics-port") {
		t.Fatalf("without the port: exit %d, %q", code, out)
	}
}

// waitFor polls the buffer until it holds want.
func waitFor(t *testing.T, b *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 10 s in:\n%s", want, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tail prints each event of its rooms as one JSON line, resubscribes after
// the gateway comes back (a new process on the same port), and ends with
// status 0 when its context ends.
func TestTailFollowsAndResubscribes(t *testing.T) {
	secrets(t)
	gw := startGateway(t, "127.0.0.1:0")
	addr := strings.TrimPrefix(gw.url, "http://")
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr lockedBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, []string{"tail", "--project", "42", "--batch", "7", "--url", gw.url}, testOptions(&stdout, &stderr))
	}()
	waitFor(t, &stdout, `"event":"joined_batch"`)
	if code, out, errOut := execute(t.Context(), "webhook", "send", "--job-id", "j1", "--status", "completed", "--project", "42", "--url", gw.url); code != ExitOK {
		t.Fatalf("send: %d %q %q", code, out, errOut)
	}
	waitFor(t, &stdout, `"event":"job_completed","data":{"project_id":"42","job_id":"j1","status":"completed","result":{"success":true}}}`)

	gw.stop()
	waitFor(t, &stderr, "reconnecting")
	gw2 := startGateway(t, addr)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(stdout.String(), `"event":"joined_batch"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not resubscribed:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _, _ := execute(t.Context(), "webhook", "send", "--job-id", "j2", "--status", "failed", "--error", "boom", "--project", "42", "--url", gw2.url); code != ExitOK {
		t.Fatal("send to the second gateway failed")
	}
	waitFor(t, &stdout, `"event":"job_failed","data":{"project_id":"42","job_id":"j2","error":"boom"}}`)
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if !strings.HasPrefix(l, `{"time":"`) || !strings.HasSuffix(l, "}") {
			t.Fatalf("not one JSON object per line: %q", l)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != ExitOK {
			t.Fatalf("tail ended with %d: %s", code, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tail did not end with its context")
	}
}
