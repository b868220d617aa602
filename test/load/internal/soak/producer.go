package soak

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Producer posts the soak's events: signed batches to POST /api/events
// (every event with an id, so retrying a batch is safe) and signed Modal
// webhooks, each of which is sent a second time to the other node (the
// gateway must deduplicate it). A request that fails (a network error, a
// 5xx such as the 503 while Redis restarts) is retried with backoff until
// it is acknowledged or GiveUp has passed since its first attempt.
type Producer struct {
	URLs          []string
	WebhookSecret []byte
	EventsSecret  []byte
	Rate          float64       // events per second
	Rooms         int           //
	WebhookShare  float64       // share of events sent as webhooks
	ResendWithin  time.Duration // the second copy of a webhook is sent at most this long after its ack (inside the dedupe window)
	GiveUp        time.Duration // a request not acknowledged by then is given up (its events stay unacknowledged)
	Ledger        *Ledger
	Client        *http.Client

	Requests     atomic.Int64
	Retries      atomic.Int64
	Rejected     atomic.Int64
	GivenUp      atomic.Int64
	Resent       atomic.Int64
	ResendFailed atomic.Int64
	Published    atomic.Int64
	Webhooks     atomic.Int64

	errMu      sync.Mutex
	ErrSamples []string
	wg         sync.WaitGroup
}

// NewProducerClient is a keep-alive pool for the producer.
func NewProducerClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 128,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 10 * time.Second,
	}
}

func (p *Producer) note(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if len(p.ErrSamples) < 20 {
		p.ErrSamples = append(p.ErrSamples, err.Error())
	}
}

type pending struct {
	room int
	seq  int64
	ts   int64
}

// Run paces events at Rate until ctx ends, then waits for the requests in
// flight (bounded by GiveUp).
func (p *Producer) Run(ctx context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x50a4))
	sem := make(chan struct{}, 512)
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var sent int64
	batchNo := 0
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		due := int64(time.Since(start).Seconds() * p.Rate)
		var batch []pending
		for ; sent < due; sent++ {
			ts := start.UnixNano() + int64(float64(sent)*1e9/p.Rate)
			room := rng.IntN(p.Rooms)
			seq := p.Ledger.Next(room, ts)
			ev := pending{room: room, seq: seq, ts: ts}
			if rng.Float64() < p.WebhookShare {
				node := int(seq) % len(p.URLs)
				sem <- struct{}{}
				p.wg.Add(1)
				go func() { defer p.wg.Done(); defer func() { <-sem }(); p.webhook(ev, node) }()
				continue
			}
			batch = append(batch, ev)
			if len(batch) == 100 {
				p.startBatch(batch, batchNo, sem)
				batchNo++
				batch = nil
			}
		}
		if len(batch) > 0 {
			p.startBatch(batch, batchNo, sem)
			batchNo++
		}
	}
	p.wg.Wait()
}

func (p *Producer) startBatch(b []pending, n int, sem chan struct{}) {
	sem <- struct{}{}
	p.wg.Add(1)
	go func() { defer p.wg.Done(); defer func() { <-sem }(); p.publish(b, n%len(p.URLs)) }()
}

// payload is the event's data: ts/seq/r are what clients account by.
func payload(b []byte, e pending) []byte {
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, e.ts, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, e.seq, 10)
	b = append(b, `,"r":`...)
	b = strconv.AppendInt(b, int64(e.room), 10)
	return append(b, `,"success":true,"metrics":{"total_time_seconds":45.2}}`...)
}

func jobID(e pending) string {
	return "sk-" + strconv.Itoa(e.room) + "-" + strconv.FormatInt(e.seq, 10)
}

func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (p *Producer) publish(evs []pending, node int) {
	b := make([]byte, 0, 320*len(evs))
	b = append(b, `{"events":[`...)
	for i, e := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		pid := ProjectID(e.room)
		b = append(b, `{"event":"job_completed","room":"project_`+pid+`","id":"`+jobID(e)+`","data":{"project_id":"`+pid+`","job_id":"`+jobID(e)+`","status":"completed","result":`...)
		b = payload(b, e)
		b = append(b, "}}"...)
	}
	b = append(b, "]}"...)
	hdr := map[string]string{"X-Gateway-Signature": sign(p.EventsSecret, b)}
	if t, ok := p.deliver(p.URLs[node]+"/api/events", b, hdr, evs[0].ts, time.Time{}); ok {
		for _, e := range evs {
			p.Ledger.Ack(e.room, e.seq, t)
		}
		p.Published.Add(int64(len(evs)))
	}
}

func (p *Producer) webhook(e pending, node int) {
	pid := ProjectID(e.room)
	b := []byte(`{"job_id":"` + jobID(e) + `","status":"completed","project_id":"` + pid + `","result":`)
	b = payload(b, e)
	b = append(b, '}')
	hdr := map[string]string{"X-Modal-Signature": sign(p.WebhookSecret, b)}
	t, ok := p.deliver(p.URLs[node]+"/api/webhooks/modal", b, hdr, e.ts, time.Time{})
	if !ok {
		return
	}
	p.Ledger.Ack(e.room, e.seq, t)
	p.Webhooks.Add(1)
	// The sender's retry: the same webhook again, to the other node, a
	// random 0.2-2 s later; it must answer 200 and reach nobody.
	time.Sleep(time.Duration(200+rand.IntN(1800)) * time.Millisecond)
	other := (node + 1) % len(p.URLs)
	if _, ok := p.deliver(p.URLs[other]+"/api/webhooks/modal", b, hdr, e.ts, time.Unix(0, t).Add(p.ResendWithin)); ok {
		p.Resent.Add(1)
	} else {
		p.ResendFailed.Add(1)
	}
}

// deliver posts body until a 2xx (returning its time), a 4xx other than
// 408/429 (a bug of the harness or the gateway: counted as rejected), or
// the deadline (GiveUp after first, or until when set).
func (p *Producer) deliver(url string, body []byte, hdr map[string]string, first int64, until time.Time) (int64, bool) {
	if until.IsZero() {
		until = time.Unix(0, first).Add(p.GiveUp)
	}
	backoff := 100 * time.Millisecond
	for attempt := 0; attempt < 1000; attempt++ {
		if attempt > 0 {
			p.Retries.Add(1)
		}
		p.Requests.Add(1)
		code, err := p.post(url, body, hdr)
		if err == nil && code/100 == 2 {
			return time.Now().UnixNano(), true
		}
		if err == nil && code/100 == 4 && code != 408 && code != 429 {
			p.Rejected.Add(1)
			p.note(fmt.Errorf("%s answered %d", url, code))
			return 0, false
		}
		if err == nil {
			err = fmt.Errorf("%s answered %d", url, code)
		}
		p.note(err)
		if time.Now().Add(backoff).After(until) {
			p.GivenUp.Add(1)
			return 0, false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
	p.GivenUp.Add(1)
	return 0, false
}

func (p *Producer) post(url string, body []byte, hdr map[string]string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}
