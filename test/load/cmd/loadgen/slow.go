package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// slowClient is a WebSocket client that completes the Engine.IO /
// Socket.IO handshake, subscribes to a project room and then never reads
// again (-slow-clients): the server's queue for it grows with every event
// of the room until the server cuts it off, or the run ends.
type slowClient struct {
	conn *websocket.Conn
}

// slowRcvBuf is the slow client's socket receive buffer: small, so that
// what the server queues is what the server holds, not the kernel.
const slowRcvBuf = 4096

// openSlowClients opens n slow clients on baseURL, each subscribed to
// project_<project>; they stop reading once subscribed.
func openSlowClients(ctx context.Context, baseURL, project string, n int) ([]*slowClient, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, slowRcvBuf)
		})
		return errors.Join(err, serr)
	}}
	d := &websocket.Dialer{NetDialContext: nd.DialContext, HandshakeTimeout: 10 * time.Second}
	u := strings.Replace(baseURL, "http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
	var out []*slowClient
	for range n {
		conn, _, err := d.DialContext(ctx, u, nil)
		if err != nil {
			closeSlowClients(out)
			return nil, fmt.Errorf("slow client: dial: %w", err)
		}
		c := &slowClient{conn: conn}
		out = append(out, c)
		if err := c.subscribe(project); err != nil {
			closeSlowClients(out)
			return nil, err
		}
	}
	return out, nil
}

// subscribe completes the handshake and the room's subscription, answering
// pings meanwhile; afterwards nothing is read.
func (c *slowClient) subscribe(project string) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = c.conn.SetReadDeadline(time.Time{}) }()
	sent := false
	for {
		_, msg, err := c.conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("slow client: handshake: %w", err)
		}
		s := string(msg)
		switch {
		case s == "2":
			err = c.conn.WriteMessage(websocket.TextMessage, []byte("3"))
		case strings.HasPrefix(s, "0{") && !sent:
			err = c.conn.WriteMessage(websocket.TextMessage, []byte("40"))
		case strings.HasPrefix(s, "40"):
			sent = true
			err = c.conn.WriteMessage(websocket.TextMessage, []byte(`42["subscribe_project",{"project_id":"`+project+`"}]`))
		case strings.HasPrefix(s, `42["subscribed_project"`):
			return nil
		}
		if err != nil {
			return fmt.Errorf("slow client: handshake: %w", err)
		}
	}
}

// slowOutcome is what became of the slow clients: how many the server
// closed, and what they had received when the run ended.
type slowOutcome struct {
	Clients   int   `json:"clients"`
	Cut       int   `json:"cut_by_server"`
	ReadBytes int64 `json:"bytes_read_after_run"`
}

// finishSlowClients reads what each slow client was sent (up to wait) to
// learn whether the server closed it, then closes them.
func finishSlowClients(cs []*slowClient, wait time.Duration) slowOutcome {
	out := slowOutcome{Clients: len(cs)}
	deadline := time.Now().Add(wait)
	for _, c := range cs {
		nc := c.conn.NetConn()
		_ = nc.SetReadDeadline(deadline)
		n, err := io.Copy(io.Discard, nc)
		out.ReadBytes += n
		var ne net.Error
		if err == nil || !(errors.As(err, &ne) && ne.Timeout()) {
			out.Cut++ // EOF or a reset: the server closed it
		}
	}
	closeSlowClients(cs)
	return out
}

func closeSlowClients(cs []*slowClient) {
	for _, c := range cs {
		_ = c.conn.Close()
	}
}

// gatewayLimitHits reads gateway_limit_hits_total{limit=...} from the
// gateway's /metrics; -1 when it cannot (another server, or no metric).
func gatewayLimitHits(ctx context.Context, baseURL, limit string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/metrics", nil)
	if err != nil {
		return -1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return -1
	}
	prefix := `gateway_limit_hits_total{limit="` + limit + `"} `
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return 0
}
