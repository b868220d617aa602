// Package redistest starts real redis-server processes for tests, each on a
// free loopback port in its own temporary directory.
//
// When redis-server is not installed the test is skipped, except under CI
// (CI set), where it fails: CI installs Debian's redis-server in .ci/run.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	Port int
	dir  string
	args []string
	cmd  *exec.Cmd
}

// Start runs redis-server with extra args (e.g. "--appendonly", "yes") and
// stops it when the test ends.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server not installed (.ci/run installs it)")
		}
		t.Skip("redis-server not installed; apt-get install redis-server")
	}
	s := &Server{t: t, Port: FreePort(t), dir: t.TempDir(), args: args}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// URL is redis://127.0.0.1:port/0.
func (s *Server) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.Port) }

// Addr is 127.0.0.1:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

func (s *Server) start() {
	s.t.Helper()
	args := append([]string{"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.dir, "--save", "", "--daemonize", "no", "--loglevel", "warning"}, s.args...)
	s.cmd = exec.Command("redis-server", args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	c := s.Client()
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := c.Ping(context.Background()).Err(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("redis-server on port %d not answering", s.Port)
}

// Stop ends the process (SIGTERM, so an AOF is flushed) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port and
// directory (an AOF, when enabled, is reloaded).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Pause stops the process (SIGSTOP) without closing its connections: a
// replica that no longer acknowledges, a server that no longer answers.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("SIGSTOP redis-server: %v", err)
	}
}

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		s.t.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// Client returns a new client of this server; the caller closes it.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: time.Second})
}

// KillNormalClients runs CLIENT KILL TYPE normal: every ordinary
// connection (not pub/sub, not this one's) is dropped.
func (s *Server) KillNormalClients() {
	s.t.Helper()
	c := s.Client()
	defer c.Close()
	if err := c.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		s.t.Fatalf("CLIENT KILL: %v", err)
	}
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartReplica starts a redis-server replicating master and waits (at most
// 10 s) until its link to the master is up.
func StartReplica(t testing.TB, master *Server, args ...string) *Server {
	t.Helper()
	replica := Start(t, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}, args...)...)
	rc := replica.Client()
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := rc.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return replica
		}
		if time.Now().After(deadline) {
			t.Fatal("redistest: replica not in sync within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
