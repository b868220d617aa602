package eio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scripted is one websocket session of a scripted server: what it answers
// the client's CONNECT, and what it got.
type scripted struct {
	early   []string // EVENTs sent before the CONNECT reply
	reply   string   // the CONNECT reply
	after   []string // EVENTs sent after the client's subscribe (or at once)
	connect string   // the client's CONNECT, as received
	joined  bool     // the client emitted subscribe_project
}

// TestSessionRecovery checks the client against socket.io-client v4's
// connection state recovery: pid and offset kept, sent in the next
// CONNECT, events before the CONNECT reply handled after it, no rejoin
// when recovered, a rejoin (and the old offset kept) when not.
func TestSessionRecovery(t *testing.T) {
	sessions := []*scripted{
		{reply: `40{"sid":"a","pid":"P1"}`, after: []string{`42["ev",{"seq":1},"off-1"]`}},
		{early: []string{`42["ev",{"seq":2},"off-2"]`}, reply: `40{"sid":"b","pid":"P1"}`},
		{reply: `40{"sid":"c","pid":"P2"}`, after: []string{`42["direct",{"x":1}]`}},
	}
	var mu sync.Mutex
	next := 0
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		s := sessions[next]
		next++
		mu.Unlock()
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		send := func(m string) { _ = ws.WriteMessage(websocket.TextMessage, []byte(m)) }
		read := func() string {
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, b, err := ws.ReadMessage()
			if err != nil {
				return ""
			}
			return string(b)
		}
		send(`0{"sid":"e","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
		c := read()
		mu.Lock()
		s.connect = c
		mu.Unlock()
		for _, m := range s.early {
			send(m)
		}
		send(s.reply)
		for {
			m := read()
			if m == "" {
				return
			}
			if strings.HasPrefix(m, `42["subscribe_project"`) {
				mu.Lock()
				s.joined = true
				mu.Unlock()
				send(`42["subscribed_project",{"project_id":"p1"}]`)
				for _, a := range s.after {
					send(a)
				}
				send("1") // close: the client reconnects
				return
			}
		}
	}))
	defer srv.Close()

	var ss Session
	var got []string
	dial := func(rejoinExpected bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, Options{
			URL:       srv.URL,
			OnConnect: []Emit{{Name: "subscribe_project", Arg: []byte(`{"project_id":"p1"}`), Reply: "subscribed_project"}},
			OnEvent:   func(name, arg []byte, _ int64) { got = append(got, string(name)+" "+string(arg)) },
			Dialer:    NewDialer(""),
			Session:   &ss,
		})
		if err != nil {
			t.Fatal(err)
		}
		if rejoinExpected {
			<-c.Done()
		} else {
			time.Sleep(100 * time.Millisecond)
			c.Close()
			<-c.Done()
		}
	}

	dial(true)
	if ss.PID != "P1" || ss.Offset != "off-1" || !ss.HasOffset || ss.Recovered {
		t.Fatalf("after the first session: %+v", ss)
	}
	dial(false)
	if ss.PID != "P1" || ss.Offset != "off-2" || !ss.Recovered {
		t.Fatalf("after the recovered session: %+v", ss)
	}
	dial(true)
	if ss.PID != "P2" || ss.Offset != "off-2" || ss.Recovered {
		t.Fatalf("after the fresh session: %+v (a direct reply without a string argument keeps the offset)", ss)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, want := range []struct {
		connect string
		joined  bool
	}{
		{"40", true},
		{`40{"pid":"P1","offset":"off-1"}`, false},
		{`40{"pid":"P1","offset":"off-2"}`, true},
	} {
		if s := sessions[i]; s.connect != want.connect || s.joined != want.joined {
			t.Errorf("session %d: CONNECT %q joined %v; want %q, %v", i+1, s.connect, s.joined, want.connect, want.joined)
		}
	}
	wantEv := []string{`ev {"seq":1},"off-1"`, `ev {"seq":2},"off-2"`, `direct {"x":1}`}
	if strings.Join(got, "|") != strings.Join(wantEv, "|") {
		t.Errorf("events %q; want %q", got, wantEv)
	}
}
