package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshgen/gateway/event"
)

// BenchmarkFanout measures one broadcast to a room of N real websocket
// clients over loopback: server-side encoding and writing plus the
// clients' reads, until every client has the event. "library" is the
// reference run with zishang520's own WebSocket transport and room
// adapter; "gateway" is the path of fanout.go and wstransport.go. Compare
// ns/op and allocs/op. "gateway-batch16" hands the server 16 events at
// once, as one bus read does when events come faster than they are
// delivered: each client gets the 16 frames in one write.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		for _, variant := range []struct {
			name    string
			library bool
			batch   int
		}{{"library", true, 1}, {"gateway", false, 1}, {"gateway-batch16", false, 16}} {
			b.Run(fmt.Sprintf("%dSubs/%s", n, variant.name), func(b *testing.B) {
				benchFanout(b, n, variant.library, variant.batch)
			})
		}
	}
}

func benchFanout(b *testing.B, n int, library bool, batch int) {
	s, url := newTestServer(b, Options{libraryWebSocket: library})
	var received atomic.Int64
	var wg sync.WaitGroup
	clients := make([]*rawClient, n)
	for i := range n {
		c := dial(b, url)
		c.send("40", `42["subscribe_project",{"project_id":"bench"}]`)
		if c.waitEvent("subscribed_project") == "" {
			b.Fatalf("client %d not subscribed", i)
		}
		clients[i] = c
	}
	for _, c := range clients {
		wg.Go(func() {
			for {
				_ = c.conn.SetReadDeadline(time.Now().Add(time.Minute))
				_, msg, err := c.conn.ReadMessage()
				if err != nil {
					return
				}
				if string(msg) == "2" {
					_ = c.conn.WriteMessage(1, []byte("3"))
					continue
				}
				if strings.HasPrefix(string(msg), `42["log_line"`) {
					received.Add(1)
				}
			}
		})
	}
	payload := json.RawMessage(`{"job_id":"job-7","message":"Meshing volume 3 of 7: 125032 tetrahedra, min SICN 0.41","timestamp":"2026-11-28T19:00:00.000Z"}`)
	events := make([]event.Event, batch)
	for i := range events {
		events[i] = event.Event{Name: "log_line", Rooms: []string{"project_bench"}, Payload: payload}
	}
	b.ReportAllocs()
	b.ResetTimer()
	want := int64(0)
	for b.Loop() {
		s.Deliver(events...)
		want += int64(n * batch)
		for received.Load() < want {
			time.Sleep(20 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(want), "ns/delivery")
	for _, c := range clients {
		_ = c.conn.Close()
	}
	wg.Wait()
}
