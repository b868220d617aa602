package rolling

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshgen/gateway/test/load/internal/peers"
)

// redisServer is a real redis-server on a free loopback port, in its own
// temporary directory, without persistence.
type redisServer struct {
	URL  string
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
}

// startRedis starts bin (redis-server) and waits until it answers PING.
func startRedis(ctx context.Context, bin, logPath string) (*redisServer, error) {
	port, err := peers.FreePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rolling-redis-")
	if err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("rolling: start %s: %w", bin, err)
	}
	r := &redisServer{URL: "redis://127.0.0.1:" + strconv.Itoa(port) + "/0", cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(r.done) }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for i := 0; i < 200; i++ {
		if ping(addr) == nil {
			return r, nil
		}
		select {
		case <-r.done:
			r.stop()
			return nil, fmt.Errorf("rolling: redis-server exited at start-up (see %s)", logPath)
		case <-ctx.Done():
			r.stop()
			return nil, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
	r.stop()
	return nil, fmt.Errorf("rolling: redis-server on %s did not answer PING", addr)
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// commandStats returns INFO commandstats: per command (lower case), its
// "calls=…,usec=…,…" line.
func (r *redisServer) commandStats() map[string]string {
	addr := strings.TrimSuffix(strings.TrimPrefix(r.URL, "redis://"), "/0")
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n")); err != nil {
		return nil
	}
	br := bufio.NewReader(c)
	head, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(head[1:]))
	if err != nil || n <= 0 {
		return nil
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(body), "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.HasPrefix(k, "cmdstat_") {
			out[strings.TrimPrefix(k, "cmdstat_")] = v
		}
	}
	return out
}

// stop sends SIGTERM (SIGKILL after 5 s) and removes the directory.
func (r *redisServer) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	os.RemoveAll(r.dir)
}
