// Package scenario runs the load scenarios against one server (or the
// nodes of a cluster): it connects the clients, drives an event source and
// accounts every delivery per client (latency, loss, duplicates).
package scenario

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgen/gateway/test/load/internal/eio"
	"github.com/meshgen/gateway/test/load/internal/memprobe"
	"github.com/meshgen/gateway/test/load/internal/procstat"
	"github.com/meshgen/gateway/test/load/internal/source"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

// Config is what every scenario shares.
type Config struct {
	Label string   // server name in the records (gateway, node, flask)
	URLs  []string // server base URLs; clients are spread round-robin, events go to URLs[0]
	PIDs  []int    // server processes, for CPU and RSS
	// MemURLs are where the servers' live heap and goroutines are read
	// (internal/memprobe); empty: not measured.
	MemURLs []string

	Source string // webhook, publish, emitter
	Secret string // webhook HMAC key (or publish token)

	Clients      int     // clients to connect
	PollingShare float64 // share of clients on HTTP long-polling (0..1)
	Rooms        int     // project rooms; client i subscribes to p<i % Rooms>
	JoinBatch    bool    // each client also joins batch b<room>

	ConnectConcurrency int // handshakes in flight
	SourceIPs          int // spread websocket clients over 127.0.0.2..(1+SourceIPs); 0: no binding
	Workers            int // concurrent event posts
	// QuietThreshold is the other processes' CPU (percent of one core)
	// under which the machine counts as quiet (default 50).
	QuietThreshold float64

	// Emit receives every record (JSON-encodable).
	Emit func(rec any)
	// Logf prints progress.
	Logf func(format string, args ...any)
}

const maxSteps = 64

type stepCounters struct {
	events    atomic.Int64
	accepted  atomic.Int64
	httpErr   atomic.Int64
	expected  atomic.Int64
	delivered atomic.Int64
	lastRecv  atomic.Int64
	firstSend atomic.Int64
	posts     atomic.Int64    // requests posted (each carries one batch)
	postedEvs atomic.Int64    // events in those requests
	hist      stats.Histogram // every client
	histPoll  stats.Histogram // polling clients only
}

type clientState struct {
	c       *eio.Client
	room    int32
	polling bool
	tag     []byte // "lg-p<room>-": only this room's events may arrive
	seen    stats.Bitset
	dup     int
	foreign int
}

// Harness is one scenario run.
type Harness struct {
	cfg   Config
	group procstat.Group
	src   source.Source
	http  *http.Client

	dialers []*websocket.Dialer
	pollCli *http.Client

	mu      sync.Mutex
	clients []*clientState
	subs    []int64 // subscribed clients per room

	roomMu   []sync.Mutex
	roomAcc  []stats.Bitset
	roomSeq  []atomic.Int64
	steps    [maxSteps]stepCounters
	unparsed atomic.Int64
	dups     atomic.Int64

	connectErrors  atomic.Int64
	disconnects    atomic.Int64
	protocolErrors atomic.Int64
	errMu          sync.Mutex
	errSamples     []string

	jobs   chan job
	jobsWG sync.WaitGroup
	start  procstat.Sample
	genAt0 procstat.Sample
}

type job struct {
	evs []source.Event
	wg  *sync.WaitGroup
}

// New prepares a harness; nothing is connected yet.
func New(cfg Config) (*Harness, error) {
	if cfg.Rooms <= 0 {
		cfg.Rooms = 1
	}
	if cfg.ConnectConcurrency <= 0 {
		cfg.ConnectConcurrency = 200
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.QuietThreshold <= 0 {
		cfg.QuietThreshold = 50
	}
	if cfg.Emit == nil {
		cfg.Emit = func(any) {}
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	h := &Harness{
		cfg:     cfg,
		group:   procstat.Group(cfg.PIDs),
		http:    source.NewHTTPClient(cfg.Workers),
		subs:    make([]int64, cfg.Rooms),
		roomMu:  make([]sync.Mutex, cfg.Rooms),
		roomAcc: make([]stats.Bitset, cfg.Rooms),
		roomSeq: make([]atomic.Int64, cfg.Rooms),
	}
	src, err := source.New(cfg.Source, cfg.URLs[0], cfg.Secret, h.http)
	if err != nil {
		return nil, err
	}
	h.src = src
	if cfg.SourceIPs <= 0 {
		h.dialers = []*websocket.Dialer{eio.NewDialer("")}
	} else {
		for i := 0; i < cfg.SourceIPs; i++ {
			h.dialers = append(h.dialers, eio.NewDialer("127.0.0."+strconv.Itoa(2+i)))
		}
	}
	h.pollCli = eio.NewHTTPClient(4*int(float64(cfg.Clients)*cfg.PollingShare) + 16)
	h.start, _ = h.group.Read()
	h.genAt0, _ = procstat.Read(0)
	return h, nil
}

func (h *Harness) noteError(kind string, err error) {
	h.errMu.Lock()
	defer h.errMu.Unlock()
	if len(h.errSamples) < 10 {
		h.errSamples = append(h.errSamples, kind+": "+err.Error())
	}
}

// MemSample reads the servers' live heap and goroutines, summed
// (internal/memprobe). ok is false when they are not measured or a read
// failed (noted as an error sample).
func (h *Harness) MemSample(ctx context.Context) (memprobe.Sample, bool) {
	if len(h.cfg.MemURLs) == 0 {
		return memprobe.Sample{}, false
	}
	var sum memprobe.Sample
	for _, u := range h.cfg.MemURLs {
		s, err := memprobe.Read(ctx, u)
		if err != nil {
			h.noteError("memprobe", err)
			return memprobe.Sample{}, false
		}
		sum.HeapBytes += s.HeapBytes
		if s.Goroutines < 0 {
			sum.Goroutines = -1
		} else if sum.Goroutines >= 0 {
			sum.Goroutines += s.Goroutines
		}
	}
	return sum, true
}

// ServerSample reads the server processes.
func (h *Harness) ServerSample() procstat.Sample {
	s, err := h.group.Read()
	if err != nil {
		h.noteError("procstat", err)
	}
	return s
}

// ConnectResult is the outcome of one connect wave.
type ConnectResult struct {
	Requested  int             `json:"requested"`
	Connected  int             `json:"connected"`
	Errors     int             `json:"errors"`
	Seconds    float64         `json:"seconds"`
	PerSecond  float64         `json:"connects_per_sec"`
	Latency    stats.Latency   `json:"handshake_latency"`
	Server     procstat.Window `json:"server_cpu"`
	CPUPerConn float64         `json:"server_cpu_us_per_connect"`
	Gen        procstat.Window `json:"generator_cpu"`
}

// Connect adds n clients (indices continue after those already
// connected); each subscribes right on connect and is counted once its
// replies arrived.
func (h *Harness) Connect(ctx context.Context, n int) ConnectResult {
	h.mu.Lock()
	first := len(h.clients)
	h.mu.Unlock()
	var hist stats.Histogram
	var ok, failed atomic.Int64
	sem := make(chan struct{}, h.cfg.ConnectConcurrency)
	var wg sync.WaitGroup
	s0, g0 := h.ServerSample(), h.genSample()
	pollEvery := 0
	if h.cfg.PollingShare > 0 {
		pollEvery = int(1/h.cfg.PollingShare + 0.5)
	}
	for i := first; i < first+n; i++ {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			polling := pollEvery > 0 && i%pollEvery == pollEvery-1
			room := i % h.cfg.Rooms
			cs := &clientState{room: int32(room), polling: polling, tag: []byte("lg-" + source.ProjectID(room) + "-")}
			opts := eio.Options{
				URL:     h.cfg.URLs[i%len(h.cfg.URLs)],
				Polling: polling,
				OnConnect: []eio.Emit{{
					Name:  "subscribe_project",
					Arg:   []byte(`{"project_id":"` + source.ProjectID(room) + `"}`),
					Reply: "subscribed_project",
				}},
				OnEvent: func(name, arg []byte, recv int64) { h.onEvent(cs, name, arg, recv) },
				OnClose: func(err error) { h.onClose(err) },
				Dialer:  h.dialers[i%len(h.dialers)],
				HTTP:    h.pollCli,
			}
			if h.cfg.JoinBatch {
				opts.OnConnect = append(opts.OnConnect, eio.Emit{
					Name:  "join_batch",
					Arg:   []byte(`{"batch_id":"b` + strconv.Itoa(room) + `"}`),
					Reply: "joined_batch",
				})
			}
			cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			t := time.Now()
			c, err := eio.Dial(cctx, opts)
			if err != nil {
				failed.Add(1)
				h.connectErrors.Add(1)
				h.noteError("connect", err)
				return
			}
			hist.Record(int64(time.Since(t)))
			cs.c = c
			ok.Add(1)
			h.mu.Lock()
			h.clients = append(h.clients, cs)
			h.subs[room]++
			h.mu.Unlock()
		}(i)
	}
	wg.Wait()
	s1, g1 := h.ServerSample(), h.genSample()
	r := ConnectResult{
		Requested: n, Connected: int(ok.Load()), Errors: int(failed.Load()),
		Seconds: s1.At.Sub(s0.At).Seconds(), Latency: hist.Summary(),
		Server: procstat.Between(s0, s1), Gen: procstat.Between(g0, g1),
	}
	if r.Seconds > 0 {
		r.PerSecond = float64(r.Connected) / r.Seconds
	}
	if r.Connected > 0 {
		r.CPUPerConn = 1e6 * r.Server.CPUSeconds / float64(r.Connected)
	}
	return r
}

func (h *Harness) genSample() procstat.Sample {
	s, _ := procstat.Read(0)
	return s
}

// Connected is the number of connected clients.
func (h *Harness) Connected() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

var (
	keySeq  = []byte(`"seq":`)
	keyTS   = []byte(`"ts":`)
	keySt   = []byte(`"st":`)
	keySeq2 = []byte(`seq=`)
	keyTS2  = []byte(`ts=`)
	keySt2  = []byte(`st=`)
)

func (h *Harness) onEvent(cs *clientState, name, arg []byte, recv int64) {
	seq, ok := eio.FindInt(arg, keySeq)
	ts, _ := eio.FindInt(arg, keyTS)
	st, _ := eio.FindInt(arg, keySt)
	if !ok {
		seq, ok = eio.FindInt(arg, keySeq2)
		ts, _ = eio.FindInt(arg, keyTS2)
		st, _ = eio.FindInt(arg, keySt2)
	}
	if !ok || st < 0 || st >= maxSteps || seq < 0 {
		h.unparsed.Add(1)
		h.noteError("event", fmt.Errorf("unparsed %s %.120s", name, arg))
		return
	}
	if !bytes.Contains(arg, cs.tag) {
		cs.foreign++
		h.unparsed.Add(1)
		h.noteError("event", fmt.Errorf("event of another room reached room p%d: %.120s", cs.room, arg))
		return
	}
	if cs.seen.Set(seq) {
		cs.dup++
		h.dups.Add(1)
		return
	}
	sc := &h.steps[st]
	sc.delivered.Add(1)
	sc.hist.Record(recv - ts)
	if cs.polling {
		sc.histPoll.Record(recv - ts)
	}
	for {
		m := sc.lastRecv.Load()
		if recv <= m || sc.lastRecv.CompareAndSwap(m, recv) {
			break
		}
	}
}

func (h *Harness) onClose(err error) {
	h.disconnects.Add(1)
	if err != nil && bytesContains(err.Error(), "protocol") {
		h.protocolErrors.Add(1)
	}
	h.noteError("disconnect", err)
}

func bytesContains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

// ---- sending ----

func (h *Harness) startWorkers() {
	if h.jobs != nil {
		return
	}
	h.jobs = make(chan job, 1<<16)
	for w := 0; w < h.cfg.Workers; w++ {
		h.jobsWG.Add(1)
		go func() {
			defer h.jobsWG.Done()
			for j := range h.jobs {
				h.send(j.evs)
				j.wg.Done()
			}
		}()
	}
}

func (h *Harness) stopWorkers() {
	if h.jobs != nil {
		close(h.jobs)
		h.jobsWG.Wait()
		h.jobs = nil
	}
}

func (h *Harness) send(evs []source.Event) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc := &h.steps[evs[0].Step]
	now := time.Now().UnixNano()
	if sc.firstSend.Load() == 0 {
		sc.firstSend.CompareAndSwap(0, now)
	}
	sc.posts.Add(1)
	sc.postedEvs.Add(int64(len(evs)))
	if err := h.src.Send(ctx, evs); err != nil {
		sc.httpErr.Add(int64(len(evs)))
		h.noteError("send", err)
		return
	}
	for _, e := range evs {
		room, _ := strconv.Atoi(e.Project[1:])
		h.roomMu[room].Lock()
		h.roomAcc[room].Set(e.Seq)
		h.roomMu[room].Unlock()
		sc.accepted.Add(1)
		sc.expected.Add(h.subs[room])
	}
}

// Chooser picks the room (and kind) of event i.
type Chooser func(i int64, rng *rand.Rand) (room int, big, failed bool)

// StepSpec is one traffic step.
type StepSpec struct {
	Index    int
	Rate     float64       // events per second (paced, open loop)
	Duration time.Duration // sending time
	Burst    int           // >0: send this many events as fast as the workers can, ignoring Rate
	// Batch is the events per request. >0: every request carries exactly
	// Batch events (the last of a step may carry fewer); a paced step then
	// posts one batch every Batch/Rate seconds (fixedBatches). 0: a paced
	// step posts whatever is due at each tick (up to DefaultBatch events,
	// so at low rates mostly one), a burst posts batches of DefaultBatch.
	// At most the source's MaxBatch.
	Batch int
	Drain time.Duration // max wait for late deliveries after sending (default 10s)
}

// DefaultBatch is the most events one request carries when StepSpec.Batch
// is 0 (and the source takes batches).
const DefaultBatch = 100

// MaxBatch is the most events one request of the harness's source may
// carry (1 for webhooks).
func (h *Harness) MaxBatch() int { return h.src.MaxBatch() }

// batchSlot is one request of a paced step in fixed batches: the step's
// events [First, End), due Due after the step's start.
type batchSlot struct {
	First, End int64
	Due        time.Duration
}

// fixedBatches is the schedule of a paced step of n events at rate
// events/s, posted in batches of size: batch k carries events
// [k*size, min((k+1)*size, n)) and is due when its window of the rate
// closes, End/rate after the start. So the rate holds (n events over
// n/rate seconds, one batch every size/rate seconds), no batch is due
// after the step's end, and there are ceil(n/size) slots. Nil when n,
// rate or size is not positive.
func fixedBatches(n int64, rate float64, size int) []batchSlot {
	if n <= 0 || rate <= 0 || size <= 0 {
		return nil
	}
	interval := float64(time.Second) / rate
	out := make([]batchSlot, 0, (n+int64(size)-1)/int64(size))
	for first := int64(0); first < n; first += int64(size) {
		end := min(first+int64(size), n)
		out = append(out, batchSlot{First: first, End: end, Due: time.Duration(float64(end) * interval)})
	}
	return out
}

// StepResult is the record of one step.
type StepResult struct {
	Type                string          `json:"type"`
	Label               string          `json:"server"`
	Scenario            string          `json:"scenario"`
	Step                int             `json:"step"`
	Clients             int             `json:"clients"`
	Rooms               int             `json:"rooms"`
	Source              string          `json:"source"`
	TargetEventsPerSec  float64         `json:"target_events_per_sec,omitempty"`
	TargetDeliveriesSec float64         `json:"target_deliveries_per_sec,omitempty"`
	Burst               int             `json:"burst_events,omitempty"`
	Batch               int             `json:"batch_size,omitempty"` // StepSpec.Batch: fixed batches
	Events              int64           `json:"events"`
	Posts               int64           `json:"posts"`                              // requests posted
	MeanBatch           float64         `json:"mean_batch_events"`                  // events per request posted
	ServerPosts         int64           `json:"server_posts,omitempty"`             // requests as the server counted them (source.ReadPostCounts; 0: not counted)
	ServerMeanBatch     float64         `json:"server_mean_batch_events,omitempty"` // events per request as the server counted them
	Accepted            int64           `json:"accepted"`
	HTTPErrors          int64           `json:"http_errors"`
	EventsPerSec        float64         `json:"events_per_sec"`
	Expected            int64           `json:"expected_deliveries"`
	Delivered           int64           `json:"delivered"`
	Pending             int64           `json:"pending_after_drain"`
	Seconds             float64         `json:"seconds"`
	DeliveriesPerSec    float64         `json:"deliveries_per_sec"`
	Server              procstat.Window `json:"server_cpu"`
	ServerRSS           int64           `json:"server_rss_bytes"`     // at the end of the step
	ServerRSSMax        int64           `json:"server_rss_max_bytes"` // highest sample during the step (every 250 ms) and at its end
	PerCPUSecond        float64         `json:"deliveries_per_cpu_sec"`
	CPUMicrosPerDeliv   float64         `json:"server_cpu_us_per_delivery"`
	Gen                 procstat.Window `json:"generator_cpu"`
	OtherCPUPercent     float64         `json:"other_processes_cpu_percent"`
	LoadAvg             float64         `json:"loadavg_1m"`
	Latency             stats.Latency   `json:"latency"`
	PollingLatency      *stats.Latency  `json:"polling_latency,omitempty"`
}

// RunStep sends one step of events and waits for their deliveries.
func (h *Harness) RunStep(ctx context.Context, scenario string, spec StepSpec, choose Chooser) StepResult {
	h.startWorkers()
	if spec.Drain <= 0 {
		spec.Drain = 10 * time.Second
	}
	sc := &h.steps[spec.Index]
	rng := rand.New(rand.NewPCG(uint64(spec.Index)+1, 42))
	var wg sync.WaitGroup
	maxBatch := min(DefaultBatch, h.src.MaxBatch())
	if spec.Batch > 0 {
		maxBatch = min(spec.Batch, h.src.MaxBatch())
	}
	// The server's own count of the requests and events (outside the CPU
	// window): the check of the generator's batch sizes.
	pc0, pcErr := h.postCounts(ctx)
	s0, g0 := h.ServerSample(), h.genSample()
	sys0, _ := procstat.System()
	start := time.Now()
	stopRSS, rssPeak := h.sampleRSS(250 * time.Millisecond)

	enqueue := func(evs []source.Event) {
		wg.Add(1)
		sc.events.Add(int64(len(evs)))
		select {
		case h.jobs <- job{evs: evs, wg: &wg}:
		case <-ctx.Done():
			wg.Done()
		}
	}
	mk := func(i int64, ts int64) source.Event {
		room, big, failed := choose(i, rng)
		if h.cfg.Source != "webhook" {
			failed = false
		}
		return source.Event{
			Project: source.ProjectID(room),
			Seq:     h.roomSeq[room].Add(1) - 1,
			Step:    spec.Index, TS: ts, Big: big, Failed: failed,
		}
	}
	if spec.Burst > 0 {
		batch := make([]source.Event, 0, maxBatch)
		for i := 0; i < spec.Burst && ctx.Err() == nil; i++ {
			batch = append(batch, mk(int64(i), 0)) // stamped at send time
			if len(batch) == maxBatch {
				enqueue(batch)
				batch = make([]source.Event, 0, maxBatch)
			}
		}
		if len(batch) > 0 {
			enqueue(batch)
		}
	} else if spec.Batch > 0 {
		// Fixed batches: every event of a batch carries the batch's due
		// time (open loop), so the latency is the fan-out's from the
		// scheduled post, not the wait for the batch to fill.
		base := start.UnixNano()
		for _, b := range fixedBatches(int64(spec.Rate*spec.Duration.Seconds()), spec.Rate, maxBatch) {
			if ctx.Err() != nil {
				break
			}
			due := base + int64(b.Due)
			if d := time.Until(time.Unix(0, due)); d > 0 {
				time.Sleep(d)
			}
			batch := make([]source.Event, 0, b.End-b.First)
			for i := b.First; i < b.End; i++ {
				batch = append(batch, mk(i, due))
			}
			enqueue(batch)
		}
	} else {
		n := int64(spec.Rate * spec.Duration.Seconds())
		interval := float64(time.Second) / spec.Rate
		base := start.UnixNano()
		var i int64
		for i < n && ctx.Err() == nil {
			due := base + int64(float64(i)*interval)
			if d := time.Until(time.Unix(0, due)); d > 0 {
				time.Sleep(d)
			}
			now := time.Now().UnixNano()
			batch := make([]source.Event, 0, maxBatch)
			for i < n {
				due = base + int64(float64(i)*interval)
				if due > now {
					break
				}
				// Open loop: the timestamp is the scheduled time, so a
				// generator or server backlog shows up as latency.
				batch = append(batch, mk(i, due))
				i++
				if len(batch) == maxBatch {
					enqueue(batch)
					batch = make([]source.Event, 0, maxBatch)
				}
			}
			if len(batch) > 0 {
				enqueue(batch)
			}
		}
	}
	sendEnd := time.Now()
	wg.Wait()

	// Drain: wait until every expected delivery arrived, or no progress
	// for 2 s, or spec.Drain.
	deadline := time.Now().Add(spec.Drain)
	last, lastChange := sc.delivered.Load(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		d := sc.delivered.Load()
		if d >= sc.expected.Load() {
			break
		}
		if d != last {
			last, lastChange = d, time.Now()
		} else if time.Since(lastChange) > 2*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s1, g1 := h.ServerSample(), h.genSample()
	sys1, _ := procstat.System()
	close(stopRSS)

	r := StepResult{
		Type: "step", Label: h.cfg.Label, Scenario: scenario, Step: spec.Index,
		Clients: h.Connected(), Rooms: h.cfg.Rooms, Source: h.cfg.Source,
		Burst: spec.Burst, Batch: spec.Batch,
		Events: sc.events.Load(), Accepted: sc.accepted.Load(), HTTPErrors: sc.httpErr.Load(),
		Posts:    sc.posts.Load(),
		Expected: sc.expected.Load(), Delivered: sc.delivered.Load(),
		Server: procstat.Between(s0, s1), ServerRSS: s1.RSS, ServerRSSMax: max(<-rssPeak, s1.RSS),
		Gen:     procstat.Between(g0, g1),
		Latency: sc.hist.Summary(),
	}
	if r.Posts > 0 {
		r.MeanBatch = float64(sc.postedEvs.Load()) / float64(r.Posts)
	}
	if pcErr == nil {
		if pc1, err := h.postCounts(ctx); err == nil && pc1.Posts > pc0.Posts {
			r.ServerPosts = int64(pc1.Posts - pc0.Posts)
			r.ServerMeanBatch = (pc1.Events - pc0.Events) / (pc1.Posts - pc0.Posts)
		}
	}
	r.LoadAvg = procstat.LoadAvg()
	if r.Server.Seconds > 0 {
		other := (sys1 - sys0).Seconds() - r.Server.CPUSeconds - r.Gen.CPUSeconds
		r.OtherCPUPercent = max(0, 100*other/r.Server.Seconds)
	}
	if sc.histPoll.Count() > 0 {
		pl := sc.histPoll.Summary()
		r.PollingLatency = &pl
	}
	if spec.Burst == 0 {
		r.TargetEventsPerSec = spec.Rate
		r.EventsPerSec = float64(r.Events) / sendEnd.Sub(start).Seconds()
	} else {
		r.EventsPerSec = float64(r.Events) / sendEnd.Sub(start).Seconds()
	}
	r.Pending = r.Expected - r.Delivered
	// The step's time: from its first send to its last delivery.
	from := start.UnixNano()
	if fs := sc.firstSend.Load(); fs > 0 && spec.Burst > 0 {
		from = fs
	}
	if lr := sc.lastRecv.Load(); lr > from {
		r.Seconds = float64(lr-from) / 1e9
	}
	if spec.Burst == 0 && r.Seconds < spec.Duration.Seconds() {
		r.Seconds = spec.Duration.Seconds()
	}
	if r.Seconds > 0 {
		r.DeliveriesPerSec = float64(r.Delivered) / r.Seconds
	}
	if r.Server.CPUSeconds > 0 {
		r.PerCPUSecond = float64(r.Delivered) / r.Server.CPUSeconds
	}
	if r.Delivered > 0 {
		r.CPUMicrosPerDeliv = 1e6 * r.Server.CPUSeconds / float64(r.Delivered)
	}
	return r
}

// postCounts reads the server's count of event requests (bounded by 2 s);
// the error says it does not count them or could not be read.
func (h *Harness) postCounts(ctx context.Context) (source.PostCounts, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return source.ReadPostCounts(ctx, h.http, h.cfg.URLs[0], h.src.Name())
}

// BaselineRSS is the servers' RSS (VmRSS, summed) read when the harness
// was made, before any client connected.
func (h *Harness) BaselineRSS() int64 { return h.start.RSS }

// sampleRSS reads the servers' RSS every period until stop is closed, then
// sends the highest reading on peak. It lives as long as the caller's
// step (bounded by the step's sending time and drain).
func (h *Harness) sampleRSS(period time.Duration) (stop chan struct{}, peak chan int64) {
	stop, peak = make(chan struct{}), make(chan int64, 1)
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		var top int64
		for {
			select {
			case <-stop:
				peak <- top
				return
			case <-t.C:
				if s, err := h.group.Read(); err == nil && s.RSS > top {
					top = s.RSS
				}
			}
		}
	}()
	return stop, peak
}

// Totals is the final accounting of a run.
type Totals struct {
	Type           string          `json:"type"`
	Label          string          `json:"server"`
	Scenario       string          `json:"scenario"`
	Clients        int             `json:"clients"`
	PollingClients int             `json:"polling_clients"`
	Accepted       int64           `json:"accepted_events"`
	Expected       int64           `json:"expected_deliveries"`
	Delivered      int64           `json:"delivered"`
	Lost           int64           `json:"lost"`
	Duplicates     int64           `json:"duplicates"`
	Unconfirmed    int64           `json:"unconfirmed"`
	Unparsed       int64           `json:"unparsed_or_foreign"`
	HTTPErrors     int64           `json:"http_errors"`
	ConnectErrors  int64           `json:"connect_errors"`
	Disconnects    int64           `json:"disconnects"`
	ProtocolErrors int64           `json:"protocol_errors"`
	PingsAnswered  int64           `json:"pings_answered"`
	ErrorSamples   []string        `json:"error_samples,omitempty"`
	Server         procstat.Window `json:"server_cpu"`
	ServerPeakRSS  int64           `json:"server_peak_rss_bytes"`
	Gen            procstat.Window `json:"generator_cpu"`
	GenPeakRSS     int64           `json:"generator_peak_rss_bytes"`
	OK             bool            `json:"ok"`
}

// Finish closes every client and accounts loss and duplicates.
func (h *Harness) Finish(scenario string) Totals {
	h.stopWorkers()
	s1, g1 := h.ServerSample(), h.genSample()
	h.mu.Lock()
	clients := h.clients
	h.mu.Unlock()
	for _, cs := range clients {
		cs.c.Close()
	}
	for _, cs := range clients {
		select {
		case <-cs.c.Done():
		case <-time.After(5 * time.Second):
		}
	}
	t := Totals{
		Type: "totals", Label: h.cfg.Label, Scenario: scenario, Clients: len(clients),
		Unparsed: h.unparsed.Load(), ConnectErrors: h.connectErrors.Load(),
		Disconnects: h.disconnects.Load(), ProtocolErrors: h.protocolErrors.Load(),
		PingsAnswered: eio.PingsAnswered.Load(),
		Server:        procstat.Between(h.start, s1), ServerPeakRSS: s1.HWM,
		Gen: procstat.Between(h.genAt0, g1), GenPeakRSS: g1.HWM,
	}
	for i := range h.steps {
		t.Accepted += h.steps[i].accepted.Load()
		t.Expected += h.steps[i].expected.Load()
		t.Delivered += h.steps[i].delivered.Load()
		t.HTTPErrors += h.steps[i].httpErr.Load()
	}
	for _, cs := range clients {
		if cs.polling {
			t.PollingClients++
		}
		acc := &h.roomAcc[cs.room]
		t.Lost += int64(cs.seen.Missing(acc))
		t.Unconfirmed += int64(cs.seen.Extra(acc))
		t.Duplicates += int64(cs.dup)
	}
	h.errMu.Lock()
	t.ErrorSamples = append([]string(nil), h.errSamples...)
	h.errMu.Unlock()
	t.OK = t.Lost == 0 && t.Duplicates == 0 && t.Unparsed == 0 && t.HTTPErrors == 0 &&
		t.ConnectErrors == 0 && t.Disconnects == 0 && t.ProtocolErrors == 0
	return t
}
