// Package source is the pluggable event source of the load generator: how
// an event gets into the server under test. Every event carries its
// source timestamp ("ts", unix nanos), its per-room sequence number
// ("seq") and its step ("st") inside the payload clients receive, so
// receipt latency, loss and duplicates are measured per client.
package source

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Event is one event to one project room.
type Event struct {
	Project string // project id; the room is "project_<Project>"
	Seq     int64
	Step    int
	TS      int64 // unix nanos; 0 means "stamp at send time"
	Big     bool  // a ~2 KB result instead of ~300 B
	Failed  bool  // job_failed instead of job_completed (webhook only)
}

// Source posts events to a server.
type Source interface {
	// Name is the flag value selecting the source.
	Name() string
	// MaxBatch is how many events one Send may carry.
	MaxBatch() int
	// Send posts evs; an error means none of them was accepted.
	Send(ctx context.Context, evs []Event) error
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %.120s", e.Code, e.Body) }

// NewHTTPClient returns a keep-alive client pool of up to conns connections.
func NewHTTPClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			// Below node's 5 s keepAliveTimeout: a connection the server
			// is closing must not be reused (a POST is not retried).
			IdleConnTimeout:    3 * time.Second,
			DisableCompression: true,
		},
		Timeout: 30 * time.Second,
	}
}

// EventsSecretSuffix makes the publish API's secret from the webhook's: the
// gateway refuses one secret for two routes.
const EventsSecretSuffix = "-events"

// New returns the source called name for a server at baseURL; the webhook
// is signed with secret, the publish API with secret+EventsSecretSuffix.
func New(name, baseURL, secret string, client *http.Client) (Source, error) {
	switch name {
	case "webhook":
		return &Webhook{URL: baseURL + "/api/webhooks/modal", Secret: []byte(secret), Client: client}, nil
	case "publish":
		return &Publish{URL: baseURL + "/api/events", Secret: []byte(secret + EventsSecretSuffix), Client: client}, nil
	case "emitter":
		return &Emitter{URL: baseURL + "/_bench/emit", Client: client}, nil
	}
	return nil, fmt.Errorf("source: unknown source %q (webhook, publish, emitter)", name)
}

// appendResult appends the job result object carrying ts/seq/st.
func appendResult(b []byte, e Event, ts int64) []byte {
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"st":`...)
	b = strconv.AppendInt(b, int64(e.Step), 10)
	b = append(b, `,"success":true,"s3_output_path":"s3://bench/`...)
	b = append(b, e.Project...)
	b = append(b, '/')
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `.msh","strategy":"Tetrahedral (Delaunay)","quality_metrics":{"sicn_avg":0.85,"total_elements":125032},"metrics":{"total_time_seconds":45.2}`...)
	if e.Big {
		b = append(b, `,"log_tail":"`...)
		b = append(b, bytes.Repeat([]byte("meshing... "), 160)...)
		b = append(b, '"')
	}
	return append(b, '}')
}

func jobID(b []byte, e Event) []byte {
	b = append(b, "lg-"...)
	b = append(b, e.Project...)
	b = append(b, '-')
	return strconv.AppendInt(b, e.Seq, 10)
}

func stamp(e Event) int64 {
	if e.TS != 0 {
		return e.TS
	}
	return time.Now().UnixNano()
}

func post(ctx context.Context, c *http.Client, url string, body []byte, hdr map[string]string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return &StatusError{Code: resp.StatusCode, Body: string(rb)}
	}
	return nil
}

// Webhook posts one signed Modal webhook per event: POST
// /api/webhooks/modal, X-Modal-Signature: sha256=<hmac of the raw body>;
// the server emits job_completed (or job_failed) to project_<id>.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client
}

func (w *Webhook) Name() string  { return "webhook" }
func (w *Webhook) MaxBatch() int { return 1 }

// Body returns the webhook body of e and its signature header value.
func (w *Webhook) Body(e Event, ts int64) (body []byte, sig string) {
	b := make([]byte, 0, 512)
	b = append(b, `{"job_id":"`...)
	b = jobID(b, e)
	if e.Failed {
		b = append(b, `","status":"failed","project_id":"`...)
		b = append(b, e.Project...)
		// job_failed carries only {project_id, job_id, error}: the error
		// string carries the counters.
		b = append(b, `","error":"ts=`...)
		b = strconv.AppendInt(b, ts, 10)
		b = append(b, ` seq=`...)
		b = strconv.AppendInt(b, e.Seq, 10)
		b = append(b, ` st=`...)
		b = strconv.AppendInt(b, int64(e.Step), 10)
		b = append(b, `"}`...)
	} else {
		b = append(b, `","status":"completed","project_id":"`...)
		b = append(b, e.Project...)
		b = append(b, `","result":`...)
		b = appendResult(b, e, ts)
		b = append(b, '}')
	}
	if len(w.Secret) > 0 {
		m := hmac.New(sha256.New, w.Secret)
		m.Write(b)
		sig = "sha256=" + hex.EncodeToString(m.Sum(nil))
	}
	return b, sig
}

func (w *Webhook) Send(ctx context.Context, evs []Event) error {
	if len(evs) != 1 {
		return errors.New("source: webhook sends one event per request")
	}
	body, sig := w.Body(evs[0], stamp(evs[0]))
	var hdr map[string]string
	if sig != "" {
		hdr = map[string]string{"X-Modal-Signature": sig}
	}
	return post(ctx, w.Client, w.URL, body, hdr)
}

// Publish posts batches (up to MaxBatchEvents) to the gateway's publish
// API: POST /api/events, body {"events":[{"event":..., "room":
// "project_<id>", "data":{...}}]},
// header X-Gateway-Signature: sha256=<hex HMAC-SHA256 of the raw body> keyed
// with GATEWAY_EVENTS_SECRET (the harness gives every secret the same value).
type Publish struct {
	URL    string
	Secret []byte
	Client *http.Client
	Event  string // default "job_completed"
}

// MaxBatchEvents is the most events one publish or emitter request
// carries: the gateway's publish API takes up to 1000 per request (and
// bodies up to 1 MiB, as the node peer: ~450 KB for 1000 events here).
const MaxBatchEvents = 1000

func (p *Publish) Name() string  { return "publish" }
func (p *Publish) MaxBatch() int { return MaxBatchEvents }

func (p *Publish) Send(ctx context.Context, evs []Event) error {
	name := p.Event
	if name == "" {
		name = "job_completed"
	}
	b := make([]byte, 0, 512*len(evs))
	b = append(b, `{"events":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEmit(b, name, e, stamp(e))
	}
	b = append(b, "]}"...)
	var hdr map[string]string
	if len(p.Secret) > 0 {
		m := hmac.New(sha256.New, p.Secret)
		m.Write(b)
		hdr = map[string]string{"X-Gateway-Signature": "sha256=" + hex.EncodeToString(m.Sum(nil))}
	}
	return post(ctx, p.Client, p.URL, b, hdr)
}

func appendEmit(b []byte, name string, e Event, ts int64) []byte {
	b = append(b, `{"event":`...)
	b = strconv.AppendQuote(b, name)
	b = append(b, `,"room":"project_`...)
	b = append(b, e.Project...)
	b = append(b, `","data":{"project_id":"`...)
	b = append(b, e.Project...)
	b = append(b, `","job_id":"`...)
	b = jobID(b, e)
	b = append(b, `","status":"completed","result":`...)
	b = appendResult(b, e, ts)
	return append(b, "}}"...)
}

// Emitter asks a peer's bench-only endpoint (POST /_bench/emit, node and
// flask peers only) to emit a batch of events straight from the server
// process: no webhook parsing or HMAC, just the fan-out. Same body form as
// Publish.
type Emitter struct {
	URL    string
	Client *http.Client
}

func (m *Emitter) Name() string  { return "emitter" }
func (m *Emitter) MaxBatch() int { return MaxBatchEvents }

func (m *Emitter) Send(ctx context.Context, evs []Event) error {
	b := make([]byte, 0, 512*len(evs))
	b = append(b, `{"events":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendEmit(b, "job_completed", e, stamp(e))
	}
	b = append(b, "]}"...)
	return post(ctx, m.Client, m.URL, b, nil)
}

// ProjectID returns the id of project room i ("p<i>").
func ProjectID(i int) string { return "p" + strconv.Itoa(i) }

// IsHTTPStatus reports whether err is a non-2xx answer.
func IsHTTPStatus(err error) bool {
	var se *StatusError
	return errors.As(err, &se)
}
