package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/meshgen/gateway/retry"
)

func init() {
	register(attack{"cross_project", "GATEWAY_AUTH=jwt: an anonymous client, and a token for project 42, subscribe to project 77 and wait for its job_completed", crossProject})
	register(attack{"replay", "a signed /api/events request sent 3 times (body-only and Standard Webhooks), then GATEWAY_REQUIRE_TIMESTAMP=true: a replayed and a stale Standard webhook", replayAttack})
	register(attack{"shared_secret", "one secret for the three routes: a /api/jobs body replayed to the webhook (and with one secret per route)", sharedSecret})
	register(attack{"dns_rebinding_origin", "a handshake with Origin: http://evil.test and Host: evil.test (CORS_ORIGINS=https://app.example.com)", dnsRebinding})
}

// watcher is a WebSocket client in some rooms recording every event.
type watcher struct {
	c       *sioConn
	mu      sync.Mutex
	events  []string // name + " " + payload
	replies map[string]string
}

// newWatcher connects with auth (nil: none); refused is the
// CONNECT_ERROR message when the server refuses.
func newWatcher(ctx context.Context, g *gwProc, auth any) (w *watcher, refused string, err error) {
	c, _, err := dialWS(ctx, g, nil, "")
	if err != nil {
		return nil, "", err
	}
	if refused, err = c.connect(auth); err != nil || refused != "" {
		c.close()
		return nil, refused, err
	}
	w = &watcher{c: c, replies: map[string]string{}}
	c.onEvent = func(name string, data json.RawMessage) {
		w.mu.Lock()
		w.events = append(w.events, name+" "+string(data))
		w.mu.Unlock()
	}
	c.start()
	retry.Sleep(ctx, 100*time.Millisecond)
	return w, "", nil
}

// subscribe emits subscribe_project and returns the reply (the next
// subscribed_project or error, within 2 s).
func (w *watcher) subscribe(ctx context.Context, project string) string {
	w.mu.Lock()
	from := len(w.events)
	w.mu.Unlock()
	_ = w.c.emit("subscribe_project", map[string]any{"project_id": project})
	for range 40 {
		w.mu.Lock()
		for _, ev := range w.events[from:] {
			if strings.HasPrefix(ev, "subscribed_project ") || strings.HasPrefix(ev, "error ") {
				w.mu.Unlock()
				return ev
			}
		}
		w.mu.Unlock()
		retry.Sleep(ctx, 50*time.Millisecond)
	}
	return "no reply"
}

// count is the number of events named name whose payload holds sub.
func (w *watcher) count(name, sub string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ev := range w.events {
		if strings.HasPrefix(ev, name+" ") && strings.Contains(ev, sub) {
			n++
		}
	}
	return n
}

func (w *watcher) first(name, sub string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range w.events {
		if strings.HasPrefix(ev, name+" ") && strings.Contains(ev, sub) {
			return ev
		}
	}
	return ""
}

func crossProject(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{env: map[string]string{"GATEWAY_AUTH": "jwt", "GATEWAY_JWT_SECRETS": jwtSecret}})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	e.rec.begin(g)
	out := map[string]any{"auth": "jwt (HS256)"}
	secret77 := `{"job_id":"job-77","status":"completed","project_id":"77","result":{"success":true,"s3_output_path":"s3://tenant-77/private/mesh.msh"}}`
	ok42 := `{"job_id":"job-42","status":"completed","project_id":"42","result":{"success":true}}`

	anon, a, err := connectAndSubscribe(ctx, g, nil, "77")
	if err != nil {
		return nil, err
	}
	tok, t, err := connectAndSubscribe(ctx, g, map[string]any{"token": jwtToken("user-42", []string{"42"}, 10*time.Minute)}, "77", "42")
	if err != nil {
		return nil, err
	}
	for _, w := range []*watcher{anon, tok} {
		if w != nil {
			defer w.c.close()
		}
	}
	p := newProducer(g)
	st77, _, _ := p.webhook([]byte(secret77))
	st42, _, _ := p.webhook([]byte(ok42))
	retry.Sleep(ctx, 2*time.Second)
	if anon != nil {
		a["received_job_completed_of_77"] = anon.count("job_completed", `"77"`)
		a["received"] = anon.first("job_completed", `"77"`)
	}
	if tok != nil {
		t["received_job_completed_of_77"] = tok.count("job_completed", `"77"`)
		t["received_job_completed_of_42"] = tok.count("job_completed", `"42"`)
	}
	out["anonymous"] = a
	out["token_for_42"] = t
	out["webhook_statuses"] = map[string]int{"77": st77, "42": st42}
	e.rec.end(g, time.Second)
	return out, nil
}

// connectAndSubscribe connects a watcher with auth and subscribes it to
// each project; the figures say how the server answered each step. The
// watcher is nil when the server refused the connect.
func connectAndSubscribe(ctx context.Context, g *gwProc, auth any, projects ...string) (*watcher, map[string]any, error) {
	w, refused, err := newWatcher(ctx, g, auth)
	if err != nil {
		return nil, nil, err
	}
	figures := map[string]any{}
	if w == nil {
		figures["connect"] = "refused: " + refused
		return nil, figures, nil
	}
	figures["connect"] = "accepted"
	for _, p := range projects {
		figures["subscribe_"+p] = w.subscribe(ctx, p)
	}
	return w, figures, nil
}

// eventsBody is one job_completed for project 42 through the publish API.
func eventsBody(job string) []byte {
	return fmt.Appendf(nil, `{"event":"job_completed","project_id":"42","data":{"project_id":"42","job_id":"%s","status":"completed","result":{"success":true}}}`, job)
}

func replayAttack(ctx context.Context, e *env) (map[string]any, error) {
	out := map[string]any{}
	for _, strict := range []bool{false, true} {
		env := map[string]string{}
		if strict {
			env["GATEWAY_REQUIRE_TIMESTAMP"] = "true"
		}
		g, err := startGateway(ctx, e, gwOpts{env: env, noDebug: true})
		if err != nil {
			return nil, err
		}
		w, refused, err := newWatcher(ctx, g, nil)
		if err != nil || w == nil {
			g.stop()
			return nil, fmt.Errorf("watcher: %v %s", err, refused)
		}
		w.subscribe(ctx, "42")
		p := newProducer(g)
		r := map[string]any{}
		send := func(key, path, job string, body []byte, h http.Header, times int) {
			var statuses []string
			for range times {
				st, b, err := p.post(path, body, h)
				s := fmt.Sprint(st)
				if err != nil {
					s = "error"
				} else if st != 200 || strings.Contains(string(b), "replayed") {
					s += " " + trunc(b, 90)
				}
				statuses = append(statuses, s)
			}
			retry.Sleep(ctx, 500*time.Millisecond)
			r[key] = map[string]any{"sent": times, "statuses": statuses, "deliveries": w.count("job_completed", `"`+job+`"`)}
		}
		now := time.Now()
		evBody, evStd := eventsBody("ev-body"), eventsBody("ev-std")
		send("events_body_signature_x3", "/api/events", "ev-body", evBody, http.Header{"X-Gateway-Signature": {bodySignature(eventsSecret, evBody)}}, 3)
		send("events_standard_x3", "/api/events", "ev-std", evStd, standardHeaders(eventsSecret, "msg-ev-1", now, evStd), 3)
		wh := []byte(`{"job_id":"wh-std","status":"completed","project_id":"42","result":{"success":true}}`)
		send("webhook_standard_x2", "/api/webhooks/modal", "wh-std", wh, standardHeaders(webhookSecret, "msg-wh-1", now, wh), 2)
		stale := []byte(`{"job_id":"wh-stale","status":"completed","project_id":"42","result":{"success":true}}`)
		send("webhook_standard_stale_10min", "/api/webhooks/modal", "wh-stale", stale, standardHeaders(webhookSecret, "msg-wh-2", now.Add(-10*time.Minute), stale), 1)
		whb := []byte(`{"job_id":"wh-body","status":"completed","project_id":"42","result":{"success":true}}`)
		send("webhook_body_signature_x2", "/api/webhooks/modal", "wh-body", whb, http.Header{"X-Modal-Signature": {bodySignature(webhookSecret, whb)}}, 2)
		w.c.close()
		g.stop()
		if strict {
			out["GATEWAY_REQUIRE_TIMESTAMP_true"] = r
		} else {
			out["default"] = r
		}
	}
	return out, nil
}

func sharedSecret(ctx context.Context, e *env) (map[string]any, error) {
	out := map[string]any{}
	const shared = "attack-one-secret-for-all-routes-0123456789"
	for _, one := range []bool{true, false} {
		env := map[string]string{}
		key := "one_secret_per_route"
		if one {
			env = map[string]string{"MODAL_WEBHOOK_SECRET": shared, "GATEWAY_JOBS_SECRET": shared, "GATEWAY_EVENTS_SECRET": shared}
			key = "one_secret_for_all_routes"
		}
		jobsKey := jobsSecret
		if one {
			jobsKey = shared
		}
		g, err := startGateway(ctx, e, gwOpts{env: env, noDebug: true})
		if err != nil {
			msg := err.Error()
			if i := strings.Index(msg, "same secret"); i >= 0 {
				msg = msg[max(0, i-120):min(len(msg), i+160)]
			}
			out[key] = map[string]any{"started": false, "error": trunc([]byte(msg), 300)}
			continue
		}
		w, refused, err := newWatcher(ctx, g, nil)
		if err != nil || w == nil {
			g.stop()
			return nil, fmt.Errorf("watcher: %v %s", err, refused)
		}
		w.subscribe(ctx, "42")
		p := newProducer(g)
		body := []byte(`{"job_id":"fc-1","project_id":"42"}`)
		sig := bodySignature(jobsKey, body)
		stJobs, _, _ := p.post("/api/jobs", body, http.Header{"X-Gateway-Signature": {sig}})
		stHook, b, _ := p.post("/api/webhooks/modal", body, http.Header{"X-Modal-Signature": {sig}})
		retry.Sleep(ctx, time.Second)
		out[key] = map[string]any{
			"started": true, "jobs_status": stJobs, "replayed_to_webhook_status": stHook, "webhook_answer": trunc(b, 120),
			"clients_received_job_failed": w.count("job_failed", `"fc-1"`), "event": w.first("job_failed", `"fc-1"`),
		}
		w.c.close()
		g.stop()
	}
	return out, nil
}

func dnsRebinding(ctx context.Context, e *env) (map[string]any, error) {
	g, err := startGateway(ctx, e, gwOpts{env: map[string]string{"CORS_ORIGINS": "https://app.example.com"}, noDebug: true})
	if err != nil {
		return nil, err
	}
	defer g.stop()
	out := map[string]any{"cors_origins": "https://app.example.com"}
	cases := []struct{ name, host, origin string }{
		{"rebinding_origin_equals_host", "evil.test", "http://evil.test"},
		{"foreign_origin", g.addr, "http://evil.test"},
		{"allowed_origin", g.addr, "https://app.example.com"},
		{"no_origin", g.addr, ""},
	}
	for _, c := range cases {
		hdr := "Host: " + c.host + "\r\n"
		if c.origin != "" {
			hdr += "Origin: " + c.origin + "\r\n"
		}
		poll := "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n" + hdr + "Connection: close\r\n\r\n"
		ws := "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" + hdr + "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
		stPoll, _, err1 := rawExchange(g.addr, []byte(poll), 3*time.Second)
		stWS, _, err2 := rawExchange(g.addr, []byte(ws), 2*time.Second)
		r := map[string]any{"polling_handshake": stPoll, "websocket_handshake": stWS}
		if err1 != nil {
			r["polling_error"] = err1.Error()
		}
		if err2 != nil && stWS == 0 {
			r["websocket_error"] = err2.Error()
		}
		out[c.name] = r
	}
	return out, nil
}
