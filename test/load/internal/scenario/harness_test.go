package scenario

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeServer is a tiny Engine.IO v4 / Socket.IO v5 websocket server with
// the webhook, which can drop or duplicate deliveries on purpose.
type fakeServer struct {
	secret    string
	dropEvery int64 // drop every n-th delivery (0: never)
	dupEvery  int64 // send every n-th delivery twice (0: never)
	n         atomic.Int64

	mu    sync.Mutex
	rooms map[string][]*fakeConn
	posts []int // events per /_bench/emit request
}

type fakeConn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func (c *fakeConn) send(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.WriteMessage(websocket.TextMessage, []byte(s))
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/api/webhooks/modal":
		f.webhook(w, r)
	case r.URL.Path == "/_bench/emit":
		f.emit(w, r)
	case r.URL.Path == "/_bench/emits":
		f.mu.Lock()
		n, evs := len(f.posts), 0
		for _, p := range f.posts {
			evs += p
		}
		f.mu.Unlock()
		_, _ = io.WriteString(w, `{"posts":`+strconv.Itoa(n)+`,"events":`+strconv.Itoa(evs)+`}`)
	case strings.HasPrefix(r.URL.Path, "/socket.io/"):
		f.socket(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeServer) socket(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &fakeConn{ws: ws}
	c.send(`0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return
		}
		m := string(msg)
		switch {
		case m == "40":
			c.send(`40{"sid":"x1"}`)
		case strings.HasPrefix(m, `42["subscribe_project"`):
			var ev []json.RawMessage
			_ = json.Unmarshal([]byte(m[2:]), &ev)
			var p struct {
				ProjectID string `json:"project_id"`
			}
			_ = json.Unmarshal(ev[1], &p)
			f.mu.Lock()
			f.rooms["project_"+p.ProjectID] = append(f.rooms["project_"+p.ProjectID], c)
			f.mu.Unlock()
			c.send(`42["subscribed_project",{"project_id":"` + p.ProjectID + `"}]`)
		case strings.HasPrefix(m, `42["join_batch"`):
			c.send(`42["joined_batch",{"batch_id":"b"}]`)
		}
	}
}

func (f *fakeServer) webhook(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	m := hmac.New(sha256.New, []byte(f.secret))
	m.Write(raw)
	if r.Header.Get("X-Modal-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
		http.Error(w, `{"error":"Invalid signature"}`, http.StatusUnauthorized)
		return
	}
	var body struct {
		JobID     string          `json:"job_id"`
		ProjectID string          `json:"project_id"`
		Status    string          `json:"status"`
		Result    json.RawMessage `json:"result"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		http.Error(w, `{"error":"Invalid JSON"}`, http.StatusBadRequest)
		return
	}
	var pkt string
	if body.Status == "completed" {
		pkt = `42["job_completed",{"project_id":"` + body.ProjectID + `","job_id":"` + body.JobID + `","status":"completed","result":` + string(body.Result) + `}]`
	} else {
		e, _ := json.Marshal(body.Error)
		pkt = `42["job_failed",{"project_id":"` + body.ProjectID + `","job_id":"` + body.JobID + `","error":` + string(e) + `}]`
	}
	f.deliver("project_"+body.ProjectID, pkt)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok","job_id":"`+body.JobID+`"}`)
}

// emit is the peers' bench-only batch endpoint: every event of the body
// to its room; it counts the requests and their events.
func (f *fakeServer) emit(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Events []struct {
			Event string          `json:"event"`
			Room  string          `json:"room"`
			Data  json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, `{"error":"Invalid JSON"}`, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.posts = append(f.posts, len(body.Events))
	f.mu.Unlock()
	for _, e := range body.Events {
		f.deliver(e.Room, `42["`+e.Event+`",`+string(e.Data)+`]`)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"status":"ok"}`)
}

func (f *fakeServer) deliver(room, pkt string) {
	f.mu.Lock()
	members := append([]*fakeConn(nil), f.rooms[room]...)
	f.mu.Unlock()
	for _, c := range members {
		k := f.n.Add(1)
		if f.dropEvery > 0 && k%f.dropEvery == 0 {
			continue
		}
		c.send(pkt)
		if f.dupEvery > 0 && k%f.dupEvery == 0 {
			c.send(pkt)
		}
	}
}

func runFake(t *testing.T, f *fakeServer, choose Chooser, rooms int) Totals {
	t.Helper()
	f.secret = "s"
	f.rooms = map[string][]*fakeConn{}
	srv := httptest.NewServer(f)
	defer srv.Close()
	h, err := New(Config{Label: "fake", URLs: []string{srv.URL}, PIDs: []int{os.Getpid()}, Source: "webhook",
		Secret: "s", Clients: 20, Rooms: rooms, JoinBatch: true, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cr := h.Connect(ctx, 20); cr.Connected != 20 {
		t.Fatalf("connected %d/20: %+v", cr.Connected, h.errSamples)
	}
	r := h.RunStep(ctx, "test", StepSpec{Index: 0, Rate: 200, Duration: 250 * time.Millisecond, Drain: 3 * time.Second}, choose)
	if r.Events != 50 || r.Accepted != 50 {
		t.Errorf("events %d accepted %d, want 50", r.Events, r.Accepted)
	}
	if r.Latency.Count == 0 || r.Server.Seconds <= 0 {
		t.Errorf("no latency or CPU window: %+v", r)
	}
	return h.Finish("test")
}

func TestHarnessCountsEveryDelivery(t *testing.T) {
	tot := runFake(t, &fakeServer{}, MixedChooser(4), 4)
	if !tot.OK || tot.Lost != 0 || tot.Duplicates != 0 || tot.Delivered != tot.Expected || tot.Expected == 0 {
		t.Errorf("clean run not clean: %+v", tot)
	}
}

func TestHarnessDetectsLoss(t *testing.T) {
	tot := runFake(t, &fakeServer{dropEvery: 7}, FanoutChooser(), 1)
	if tot.OK || tot.Lost == 0 {
		t.Errorf("loss not detected: %+v", tot)
	}
	if want := tot.Expected - tot.Delivered; tot.Lost != want {
		t.Errorf("lost %d, want expected-delivered %d", tot.Lost, want)
	}
}

func TestHarnessDetectsDuplicates(t *testing.T) {
	tot := runFake(t, &fakeServer{dupEvery: 5}, UniformChooser(2), 2)
	if tot.OK || tot.Duplicates == 0 || tot.Lost != 0 {
		t.Errorf("duplicates not detected: %+v", tot)
	}
}
