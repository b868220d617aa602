package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Redis is a real redis-server on a loopback port with AOF persistence,
// restartable on the same port and directory (so the stream survives).
type Redis struct {
	Bin  string
	Port int
	Dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

// StartRedis starts redis-server (bin) on port with its data in dir.
func StartRedis(ctx context.Context, bin string, port int, dir string) (*Redis, error) {
	r := &Redis{Bin: bin, Port: port, Dir: dir}
	if err := r.start(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// Addr is host:port.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is the REDIS_URL of the gateway.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// PID of the running server (0 when stopped).
func (r *Redis) PID() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

func (r *Redis) start(ctx context.Context) error {
	lf, err := os.OpenFile(filepath.Join(r.Dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("soak: redis log: %w", err)
	}
	// appendfsync everysec is Redis's default; a restart by SIGTERM
	// flushes the AOF before exiting, so nothing acknowledged is lost.
	cmd := exec.Command(r.Bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--dir", r.Dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
		"--protected-mode", "no", "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("soak: start redis-server: %w", err)
	}
	r.cmd, r.log, r.done = cmd, lf, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(r.done)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := r.Int(ctx, "DBSIZE"); err == nil {
			return nil
		}
		select {
		case <-r.done:
			return fmt.Errorf("soak: redis-server exited at start-up (see %s)", lf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("soak: redis-server not answering after 30 s (see %s)", lf.Name())
}

// Stop sends SIGTERM (Redis flushes the AOF and exits), SIGKILL after 10 s.
func (r *Redis) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.log.Close()
	r.cmd = nil
}

// Restart stops the server, waits down, and starts it again on the same
// port and directory; it returns when the server answers again.
func (r *Redis) Restart(ctx context.Context, down time.Duration) error {
	r.Stop()
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.start(ctx)
}

// Do sends one command (RESP) and returns the raw reply line or bulk.
func (r *Redis) Do(ctx context.Context, args ...string) (string, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	b.WriteString("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b.WriteString("$" + strconv.Itoa(len(a)) + "\r\n" + a + "\r\n")
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

// Census counts the keys by prefix (a key of more than three
// ':'-separated parts counts under its first three), scanning at most
// 1,000,000 keys.
func (r *Redis) Census(ctx context.Context) (map[string]int, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", r.Addr())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	out := map[string]int{}
	cursor, seen := "0", 0
	for i := 0; i < 100000; i++ {
		req := "*4\r\n$4\r\nSCAN\r\n$" + strconv.Itoa(len(cursor)) + "\r\n" + cursor + "\r\n$5\r\nCOUNT\r\n$4\r\n1000\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			return nil, err
		}
		v, err := readAny(br)
		if err != nil {
			return nil, err
		}
		arr, ok := v.([]any)
		if !ok || len(arr) != 2 {
			return nil, fmt.Errorf("soak: SCAN answered %v", v)
		}
		cursor, _ = arr[0].(string)
		keys, _ := arr[1].([]any)
		for _, k := range keys {
			ks, _ := k.(string)
			out[keyPrefix(ks)]++
			seen++
		}
		if cursor == "0" || seen > 1000000 {
			break
		}
	}
	return out, nil
}

func keyPrefix(k string) string {
	parts := strings.SplitN(k, ":", 4)
	if len(parts) == 4 {
		return strings.Join(parts[:3], ":") + ":*"
	}
	return k
}

func readAny(br *bufio.Reader) (any, error) {
	b, err := br.Peek(1)
	if err != nil {
		return nil, err
	}
	if b[0] != '*' {
		return readReply(br)
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimRight(line[1:], "\r\n"))
	if err != nil || n > 1<<20 {
		return nil, fmt.Errorf("soak: redis array length %q", line)
	}
	out := make([]any, 0, max(n, 0))
	for i := 0; i < n; i++ {
		v, err := readAny(br)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func readReply(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("soak: empty redis reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("soak: redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 || n > 1<<20 {
			return "", fmt.Errorf("soak: redis bulk length %q", line)
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(br, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("soak: unexpected redis reply %q", line)
}

func ioReadFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Int runs a command answering an integer.
func (r *Redis) Int(ctx context.Context, args ...string) (int64, error) {
	s, err := r.Do(ctx, args...)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// InfoField returns one field of INFO section (e.g. "memory", "used_memory").
func (r *Redis) InfoField(ctx context.Context, section, field string) (int64, error) {
	s, err := r.Do(ctx, "INFO", section)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == field {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("soak: INFO %s has no %s", section, field)
}
