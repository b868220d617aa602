// Package peers starts the servers under test (the gateway and its peers,
// node socket.io and Flask-SocketIO) on free loopback ports, installs the
// peers when missing, and stops them.
package peers

import (
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
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/source"
)

// Names of the servers.
const (
	Gateway = "gateway"
	Node    = "node"
	Flask   = "flask"
)

// Python is Debian's interpreter, the one with python3-flask-socketio.
const Python = "/usr/bin/python3"

// Env locates what the servers need.
type Env struct {
	ModuleDir  string   // test/load
	GatewayBin string   // the built gateway
	Secret     string   // MODAL_WEBHOOK_SECRET of every server
	RedisURL   string   // gateway only, for clusters (empty: single node)
	LogDir     string   // server stderr goes to LogDir/<name>-<tag>.log
	Extra      []string // more environment variables of every server
	GatewayEnv []string // extra KEY=VALUE settings of the gateway (bench -gateway-env)
}

// Server is one running server process.
type Server struct {
	Name string
	URL  string
	Port int
	// MemURL serves the live heap and goroutine count (internal/memprobe):
	// the gateway's profiler listener, the node peer itself; empty for flask.
	MemURL string
	cmd    *exec.Cmd
	log    *os.File
	done   chan struct{}
	err    error
}

// PID of the server process.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start launches server name on a free port and waits until it answers.
func Start(ctx context.Context, env Env, name, tag string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return StartOn(ctx, env, name, tag, port)
}

// StartOn launches server name on port (a restarted node keeps its port)
// and waits until it answers.
func StartOn(ctx context.Context, env Env, name, tag string, port int) (*Server, error) {
	var cmd *exec.Cmd
	memURL := ""
	common := []string{"PORT=" + strconv.Itoa(port), "MODAL_WEBHOOK_SECRET=" + env.Secret}
	switch name {
	case Gateway:
		cmd = exec.Command(env.GatewayBin)
		cmd.Env = append(os.Environ(), common...)
		// The harness measures capacity: the handshake rate bounds, which
		// would cap the connect rate, are off, and one loopback address may
		// hold every connection (the default share is at most 1,024 per
		// address; the generator spreads its clients over only 8).
		cmd.Env = append(cmd.Env, "GATEWAY_ENV=development", "GATEWAY_HOST=127.0.0.1", "GATEWAY_LOG_LEVEL=warn",
			"GATEWAY_EVENTS_SECRET="+env.Secret+source.EventsSecretSuffix,
			"GATEWAY_HANDSHAKE_RATE=0", "GATEWAY_HANDSHAKE_RATE_PER_IP=0",
			"GATEWAY_MAX_CONNECTIONS_PER_IP=1000000")
		if env.RedisURL != "" {
			cmd.Env = append(cmd.Env, "REDIS_URL="+env.RedisURL)
		}
		// The profiler on a port of its own: the idle scenario reads the
		// live heap (after a forced GC) and the goroutines there.
		dport, err := FreePort()
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, "GATEWAY_DEBUG_ADDR=127.0.0.1:"+strconv.Itoa(dport))
		cmd.Env = append(cmd.Env, env.GatewayEnv...)
		memURL = "http://127.0.0.1:" + strconv.Itoa(dport)
	case Node:
		cmd = exec.Command("node", "--expose-gc", filepath.Join(env.ModuleDir, "peers/node/server.js"))
		cmd.Env = append(os.Environ(), common...)
		cmd.Env = append(cmd.Env, "HOST=127.0.0.1", "BENCH_EMITTER=1", "NODE_ENV=production")
		memURL = "http://127.0.0.1:" + strconv.Itoa(port)
	case Flask:
		cmd = exec.Command(Python, filepath.Join(env.ModuleDir, "peers/flask/server.py"))
		cmd.Env = append(os.Environ(), common...)
		cmd.Env = append(cmd.Env, "HOST=127.0.0.1", "BENCH_EMITTER=1")
	default:
		return nil, fmt.Errorf("peers: unknown server %q", name)
	}
	cmd.Env = append(cmd.Env, env.Extra...)
	if err := os.MkdirAll(env.LogDir, 0o755); err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(env.LogDir, name+"-"+tag+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("peers: start %s: %w", name, err)
	}
	s := &Server{Name: name, Port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port), MemURL: memURL, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() { s.err = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, 30*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("peers: %s exited at start-up: %v (see %s)", s.Name, s.err, s.log.Name())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(s.URL + "/livez")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("peers: %s not ready after %s (see %s)", s.Name, limit, s.log.Name())
}

// Stop sends SIGTERM, then SIGKILL after 5 s; it waits for the exit.
func (s *Server) Stop() {
	defer s.log.Close()
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Terminate sends SIGTERM and waits up to limit for the exit (then
// SIGKILL); it returns the exit error (nil for exit 0) and how long the
// process took to exit.
func (s *Server) Terminate(limit time.Duration) (time.Duration, error) {
	defer s.log.Close()
	t0 := time.Now()
	select {
	case <-s.done:
		return 0, fmt.Errorf("peers: %s had already exited: %v", s.Name, s.err)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return time.Since(t0), s.err
	case <-time.After(limit):
		_ = s.cmd.Process.Kill()
		<-s.done
		return time.Since(t0), fmt.Errorf("peers: %s still running %s after SIGTERM: killed", s.Name, limit)
	}
}

// ExitCPU is the CPU time (user and system) of the process, once it has
// exited; zero before.
func (s *Server) ExitCPU() time.Duration {
	select {
	case <-s.done:
	default:
		return 0
	}
	if ps := s.cmd.ProcessState; ps != nil {
		return ps.UserTime() + ps.SystemTime()
	}
	return 0
}

// Alive reports whether the process still runs.
func (s *Server) Alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// EnsureNode runs `npm ci` in peers/node when node_modules is missing.
func EnsureNode(moduleDir string, logf func(string, ...any)) error {
	dir := filepath.Join(moduleDir, "peers/node")
	installed := true
	for _, pkg := range []string{"socket.io", "@socket.io/redis-streams-adapter", "redis"} {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			installed = false
		}
	}
	if installed {
		return nil
	}
	logf("installing the node peer (npm ci in %s)", dir)
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// EnsureFlask installs Debian's python3-flask-socketio and
// python3-eventlet (as root) when Debian's python cannot import them.
func EnsureFlask(logf func(string, ...any)) error {
	check := func() error {
		return exec.Command(Python, "-c", "import flask_socketio, eventlet").Run()
	}
	if check() == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("peers: Flask-SocketIO is missing and this is not root: apt-get install -y python3-flask-socketio python3-eventlet")
	}
	logf("installing the flask peer (apt-get install python3-flask-socketio python3-eventlet)")
	for _, args := range [][]string{
		{"apt-get", "update", "-qq"},
		{"apt-get", "install", "-y", "-qq", "python3-flask-socketio", "python3-eventlet"},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("peers: %v: %w", args, err)
		}
	}
	return check()
}
