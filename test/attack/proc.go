package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Secrets of the producer routes: one per route, each at least 32 bytes,
// as production requires.
const (
	webhookSecret = "attack-webhook-secret-0123456789abcdef"
	jobsSecret    = "attack-jobs-secret-0123456789abcdef0123"
	eventsSecret  = "attack-events-secret-0123456789abcdef01"
	jwtSecret     = "attack-jwt-secret-0123456789abcdef012345"
)

// gwOpts configures one gateway process.
type gwOpts struct {
	// env is added to (and overrides) the base environment: production,
	// auth none, one secret per route, JSON logs, the profiler on.
	env map[string]string
	// nofile, when positive, is the process's open-file limit (soft and
	// hard), set with prlimit for the gateway only.
	nofile int
	// noDebug leaves the profiler off.
	noDebug bool
}

// gwProc is a running gateway.
type gwProc struct {
	cmd   *exec.Cmd
	pid   int
	host  string
	port  int
	addr  string // host:port
	base  string // http://host:port
	debug string // host:port of the profiler, "" when off
	log   *logCounter

	done     chan struct{}
	exitCode int
	exitAt   time.Time
}

// startGateway starts the binary on a free port of host and waits until
// /livez answers (or the process exits: its log is in the error).
func startGateway(ctx context.Context, e *env, o gwOpts) (*gwProc, error) {
	port, err := freePort(e.host)
	if err != nil {
		return nil, err
	}
	g := &gwProc{host: e.host, port: port, addr: net.JoinHostPort(e.host, strconv.Itoa(port)), log: newLogCounter(), done: make(chan struct{})}
	g.base = "http://" + g.addr
	vars := map[string]string{
		"PATH":                  os.Getenv("PATH"),
		"HOME":                  os.TempDir(),
		"GATEWAY_ENV":           "production",
		"GATEWAY_HOST":          e.host,
		"PORT":                  strconv.Itoa(port),
		"GATEWAY_AUTH":          "none",
		"MODAL_WEBHOOK_SECRET":  webhookSecret,
		"GATEWAY_JOBS_SECRET":   jobsSecret,
		"GATEWAY_EVENTS_SECRET": eventsSecret,
		"GATEWAY_LOG_FORMAT":    "json",
	}
	if !o.noDebug {
		dport, err := freePort(e.host)
		if err != nil {
			return nil, err
		}
		g.debug = net.JoinHostPort(e.host, strconv.Itoa(dport))
		vars["GATEWAY_DEBUG_ADDR"] = g.debug
	}
	for k, v := range o.env {
		if v == "" {
			delete(vars, k)
			continue
		}
		vars[k] = v
	}
	name, args := e.gateway, []string(nil)
	if o.nofile > 0 {
		// prlimit sets the limit on itself and execs the gateway: the same
		// process, hard and soft limit both (Go raises the soft limit to
		// the hard one at start).
		name, args = "prlimit", []string{fmt.Sprintf("--nofile=%d:%d", o.nofile, o.nofile), "--", e.gateway}
	}
	g.cmd = exec.Command(name, args...)
	for k, v := range vars {
		g.cmd.Env = append(g.cmd.Env, k+"="+v)
	}
	g.cmd.Stdout = g.log
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start gateway: %w", err)
	}
	g.pid = g.cmd.Process.Pid
	go func() {
		_ = g.cmd.Wait()
		g.exitAt = time.Now()
		g.exitCode = g.cmd.ProcessState.ExitCode()
		close(g.done)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if status, _, err := httpGet(g.base+"/livez", time.Second); err == nil && status == 200 {
			break
		}
		select {
		case <-g.done:
			return nil, fmt.Errorf("gateway exited with %d before answering: %s", g.exitCode, g.log.tail(600))
		case <-ctx.Done():
			g.kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.kill()
			return nil, fmt.Errorf("gateway not answering /livez after 15 s: %s", g.log.tail(600))
		}
	}
	return g, nil
}

// stop sends SIGTERM and waits for the exit (SIGKILL after 45 s). It
// returns the exit code and how long the exit took.
func (g *gwProc) stop() (int, time.Duration) {
	if os.Getenv("ATTACK_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "--- gateway log (tail)\n%s\n---\n", g.log.tail(4000))
	}
	start := time.Now()
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(45 * time.Second):
		g.kill()
		<-g.done
	}
	return g.exitCode, g.exitAt.Sub(start)
}

func (g *gwProc) kill() {
	_ = g.cmd.Process.Kill()
}

// exited reports whether the process has exited.
func (g *gwProc) exited() bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// logCounter counts the lines and bytes the gateway writes and keeps the
// last 64 KiB.
type logCounter struct {
	mu    sync.Mutex
	lines int64
	bytes int64
	// nonJSON counts lines that do not start with '{': what bypasses the
	// structured log.
	nonJSON int64
	midLine bool
	ring    []byte
	// grep counts lines holding each of these strings.
	grep map[string]int64
}

func newLogCounter() *logCounter { return &logCounter{grep: map[string]int64{}} }

func (l *logCounter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bytes += int64(len(p))
	l.lines += int64(bytes.Count(p, []byte{'\n'}))
	for rest := p; len(rest) > 0; {
		if !l.midLine && rest[0] != '{' {
			l.nonJSON++
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			l.midLine = true
			break
		}
		l.midLine = false
		rest = rest[i+1:]
	}
	for s := range l.grep {
		l.grep[s] += int64(bytes.Count(p, []byte(s)))
	}
	l.ring = append(l.ring, p...)
	if over := len(l.ring) - 64<<10; over > 0 {
		l.ring = append(l.ring[:0], l.ring[over:]...)
	}
	return len(p), nil
}

// watch starts counting occurrences of s.
func (l *logCounter) watch(s ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range s {
		l.grep[x] = 0
	}
}

func (l *logCounter) count(s string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grep[s]
}

func (l *logCounter) snapshot() (lines, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines, l.bytes
}

func (l *logCounter) nonJSONLines() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nonJSON
}

func (l *logCounter) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ring
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freePort returns a port of host free now.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// httpGet is one GET on a new connection.
func httpGet(url string, timeout time.Duration) (int, []byte, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// redisProc is a redis-server of one attack: a free port, its own
// directory, no persistence.
type redisProc struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	url    string
	client *redis.Client
}

func startRedis(ctx context.Context, e *env) (*redisProc, error) {
	port, err := freePort(e.host)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "attack-redis-")
	if err != nil {
		return nil, err
	}
	r := &redisProc{dir: dir, addr: net.JoinHostPort(e.host, strconv.Itoa(port))}
	r.url = "redis://" + r.addr + "/0"
	r.cmd = exec.Command(e.redis, "--port", strconv.Itoa(port), "--bind", e.host, "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r.client = redis.NewClient(&redis.Options{Addr: r.addr})
	for i := 0; ; i++ {
		if err := r.client.Ping(ctx).Err(); err == nil {
			return r, nil
		}
		if i == 100 {
			r.stop()
			return nil, errors.New("redis-server not answering after 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *redisProc) stop() {
	if r.client != nil {
		_ = r.client.Close()
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(r.dir)
}

// scanCount counts the keys matching pattern.
func (r *redisProc) scanCount(ctx context.Context, pattern string) (int, error) {
	n := 0
	iter := r.client.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// hasString reports whether s holds any of subs.
func hasString(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
