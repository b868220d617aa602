// Package rolling is the load harness's rolling-restart scenario: a few
// nodes of one server (the gateway, or node socket.io with
// @socket.io/redis-streams-adapter) share one real redis-server; clients
// spread over them take part in Socket.IO connection state recovery as
// socket.io-client v4 does (eio.Session); a producer posts events at a
// fixed rate; each node in turn gets SIGTERM (its paced drain closes its
// clients, which reconnect to a live node) and is started again on its
// port. Every client counts the acknowledged events it never received,
// duplicates, events out of order, and its recovered and not recovered
// reconnects.
package rolling

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/meshgen/gateway/test/load/internal/eio"
	"github.com/meshgen/gateway/test/load/internal/peers"
	"github.com/meshgen/gateway/test/load/internal/procstat"
	"github.com/meshgen/gateway/test/load/internal/source"
	"github.com/meshgen/gateway/test/load/internal/stats"
)

// Config is one rolling-restart run against one server.
type Config struct {
	Server   string    // peers.Gateway or peers.Node
	Env      peers.Env // ModuleDir, GatewayBin, Secret, LogDir
	RedisBin string    // redis-server

	Nodes   int     // processes sharing the Redis
	Clients int     // clients, spread round-robin over the nodes
	Rooms   int     // project rooms; client i subscribes to p<i % Rooms>
	Rate    float64 // events per second, round-robin over the rooms
	Source  string  // webhook (every server) or publish (gateway)

	DrainWindow    time.Duration // the servers' paced drain on SIGTERM
	Settle         time.Duration // before the first drain, between two, after the last
	RecoveryWindow time.Duration // the servers' recovery window

	// ReconnectDelay and ReconnectDelayMax are socket.io-client's
	// reconnectionDelay and reconnectionDelayMax (randomization 0.5).
	ReconnectDelay    time.Duration
	ReconnectDelayMax time.Duration
	// MaxAttempts bounds the failed connects in a row of one client.
	MaxAttempts int

	SourceIPs          int // spread clients over 127.0.0.2..(1+SourceIPs)
	ConnectConcurrency int // initial handshakes in flight

	Logf func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.Nodes <= 0 {
		c.Nodes = 3
	}
	if c.Rooms <= 0 {
		c.Rooms = 1
	}
	if c.Source == "" {
		c.Source = "webhook"
	}
	if c.ReconnectDelay <= 0 {
		c.ReconnectDelay = time.Second
	}
	if c.ReconnectDelayMax <= 0 {
		c.ReconnectDelayMax = 5 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 30
	}
	if c.ConnectConcurrency <= 0 {
		c.ConnectConcurrency = 200
	}
	if c.RecoveryWindow <= 0 {
		c.RecoveryWindow = 2 * time.Minute
	}
	if c.RedisBin == "" {
		c.RedisBin = "redis-server"
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// Counts is a per-client figure over the clients.
type Counts struct {
	Total       int64   `json:"total"`
	ClientsWith int     `json:"clients_with"` // clients with at least one
	PerClient   float64 `json:"per_client"`   // mean over the clients
	Max         int64   `json:"max_per_client"`
}

func countsOf(vs []int64) Counts {
	var c Counts
	for _, v := range vs {
		c.Total += v
		if v > 0 {
			c.ClientsWith++
		}
		c.Max = max(c.Max, v)
	}
	if len(vs) > 0 {
		c.PerClient = float64(c.Total) / float64(len(vs))
	}
	return c
}

// Drain is one node's SIGTERM and restart.
type Drain struct {
	Node         int     `json:"node"`
	Clients      int     `json:"clients_on_node"` // connected to it at SIGTERM
	ExitSeconds  float64 `json:"exit_seconds"`    // SIGTERM to exit
	ExitError    string  `json:"exit_error,omitempty"`
	ReadySeconds float64 `json:"ready_seconds"` // restart to ready
}

// Result is one run's record.
type Result struct {
	Type           string  `json:"type"` // "rolling"
	Server         string  `json:"server"`
	Nodes          int     `json:"nodes"`
	Clients        int     `json:"clients"`
	Rooms          int     `json:"rooms"`
	Rate           float64 `json:"events_per_sec"`
	Source         string  `json:"source"`
	DrainWindow    string  `json:"drain_window"`
	RecoveryWindow string  `json:"recovery_window"`

	Connected     int     `json:"connected"` // clients connected before the producer started
	Seconds       float64 `json:"seconds"`   // producer start to stop
	Posted        int64   `json:"posted"`
	Acknowledged  int64   `json:"acknowledged"` // 2xx
	PostErrors    int64   `json:"post_errors"`
	Skipped       int64   `json:"skipped"` // not posted: the room's queue was full
	Expected      int64   `json:"expected_deliveries"`
	Delivered     int64   `json:"delivered"`      // distinct acknowledged events received
	UnackedSeen   int64   `json:"unacked_seen"`   // received, but its post failed
	ServerCPUSecs float64 `json:"server_cpu_sec"` // every node process, restarts included

	Lost         Counts `json:"lost"`
	Duplicates   Counts `json:"duplicates"`
	OutOfOrder   Counts `json:"out_of_order"`
	Foreign      Counts `json:"foreign"` // an event of another room
	Reconnects   Counts `json:"reconnects"`
	Recovered    Counts `json:"recovered"`
	NotRecovered Counts `json:"not_recovered"`
	FailedDials  Counts `json:"failed_connects"` // connect attempts that failed
	// ServerDisconnects are Socket.IO DISCONNECTs from the server
	// (socket.io-client does not reconnect after one; neither does this).
	ServerDisconnects int `json:"server_disconnects"`
	GaveUp            int `json:"gave_up"` // clients past MaxAttempts
	NotConnectedAtEnd int `json:"not_connected_at_end"`

	Drains []Drain `json:"drains"`
	// RedisCommands is the shared redis-server's INFO commandstats at the
	// end: per command, "calls=…,usec=…,…".
	RedisCommands map[string]string `json:"redis_commands,omitempty"`
	// ErrorSamples are the first distinct errors, with their counts.
	ErrorSamples []string `json:"error_samples,omitempty"`
	OK           bool     `json:"ok"` // every acknowledged event delivered once, in order
}

type node struct {
	idx  int
	port int
	url  string
	live atomic.Bool
	mu   sync.Mutex
	srv  *peers.Server
	cpu  float64 // CPU seconds of the processes that exited
}

type client struct {
	idx, room int
	tag       []byte
	dialer    *websocket.Dialer

	cur       atomic.Int32 // node index
	connected atomic.Bool

	mu         sync.Mutex // the event callbacks of a failed dial may overlap the next
	sess       eio.Session
	seen       stats.Bitset
	maxSeq     int64
	dup, ooo   int64
	foreign    int64
	lastErr    error
	reconnects int64
	recovered  int64
	notRecov   int64
	failed     int64
	serverDisc bool
	gaveUp     bool
}

type run struct {
	cfg   Config
	nodes []*node
	rr    atomic.Uint64

	ackMu []sync.Mutex
	acked []stats.Bitset
	nextQ []int64

	posted, ackN, postErr, skipped atomic.Int64
	received                       atomic.Int64

	errMu      sync.Mutex
	errSamples []string
	errCounts  map[string]int
}

var addrRE = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

func (r *run) noteError(kind string, err error) {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	// Addresses (source ports) would make every sample distinct.
	msg := kind + ": " + addrRE.ReplaceAllString(err.Error(), "<addr>")
	if r.errCounts == nil {
		r.errCounts = map[string]int{}
	}
	if _, ok := r.errCounts[msg]; !ok && len(r.errSamples) < 12 {
		r.errSamples = append(r.errSamples, msg)
	}
	if _, ok := r.errCounts[msg]; ok || len(r.errCounts) < 1000 {
		r.errCounts[msg]++
	}
}

// Run runs the scenario once and returns its record.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg.defaults()
	res := Result{
		Type: "rolling", Server: cfg.Server, Nodes: cfg.Nodes, Clients: cfg.Clients, Rooms: cfg.Rooms,
		Rate: cfg.Rate, Source: cfg.Source, DrainWindow: cfg.DrainWindow.String(), RecoveryWindow: cfg.RecoveryWindow.String(),
	}
	if cfg.Server != peers.Gateway && cfg.Server != peers.Node {
		return res, fmt.Errorf("rolling: server %q: gateway or node", cfg.Server)
	}
	if cfg.Server == peers.Node && cfg.Source != "webhook" {
		return res, fmt.Errorf("rolling: source %q: the node peer takes webhooks only", cfg.Source)
	}
	r := &run{cfg: cfg, ackMu: make([]sync.Mutex, cfg.Rooms), acked: make([]stats.Bitset, cfg.Rooms), nextQ: make([]int64, cfg.Rooms)}

	redis, err := startRedis(ctx, cfg.RedisBin, filepath.Join(cfg.Env.LogDir, "rolling-redis-"+cfg.Server+".log"))
	if err != nil {
		return res, err
	}
	defer redis.stop()
	env := r.serverEnv(redis.URL)

	for i := 0; i < cfg.Nodes; i++ {
		port, err := peers.FreePort()
		if err != nil {
			return res, err
		}
		n := &node{idx: i, port: port, url: "http://127.0.0.1:" + strconv.Itoa(port)}
		r.nodes = append(r.nodes, n)
	}
	defer func() {
		for _, n := range r.nodes {
			n.mu.Lock()
			if n.srv != nil {
				n.srv.Stop()
			}
			n.mu.Unlock()
		}
	}()
	for _, n := range r.nodes {
		if err := r.startNode(ctx, env, n, 0); err != nil {
			return res, err
		}
	}

	// Clients.
	var dialers []*websocket.Dialer
	if cfg.SourceIPs <= 0 {
		dialers = []*websocket.Dialer{eio.NewDialer("")}
	} else {
		for i := 0; i < cfg.SourceIPs; i++ {
			dialers = append(dialers, eio.NewDialer("127.0.0."+strconv.Itoa(2+i)))
		}
	}
	clients := make([]*client, cfg.Clients)
	stop := make(chan struct{})
	var loops sync.WaitGroup
	var initial sync.WaitGroup
	sem := make(chan struct{}, cfg.ConnectConcurrency)
	for i := range clients {
		c := &client{idx: i, room: i % cfg.Rooms, maxSeq: -1, dialer: dialers[i%len(dialers)]}
		c.tag = []byte("lg-" + source.ProjectID(c.room) + "-")
		c.cur.Store(int32(i % cfg.Nodes))
		clients[i] = c
		initial.Add(1)
		loops.Add(1)
		go func() {
			defer loops.Done()
			r.clientLoop(ctx, c, stop, sem, &initial)
		}()
	}
	waitGroupCtx(ctx, &initial)
	var connected []*client
	for _, c := range clients {
		if c.connected.Load() {
			connected = append(connected, c)
		}
	}
	res.Connected = len(connected)
	cfg.Logf("%s: %d/%d clients connected over %d nodes", cfg.Server, res.Connected, cfg.Clients, cfg.Nodes)
	if res.Connected == 0 {
		close(stop)
		loops.Wait()
		return res, errors.New("rolling: no client connected")
	}
	subs := make([]int64, cfg.Rooms)
	for _, c := range connected {
		subs[c.room]++
	}

	// Producer, then the drains.
	sources := make([]source.Source, len(r.nodes))
	httpc := source.NewHTTPClient(cfg.Rooms + 8)
	for i, n := range r.nodes {
		if sources[i], err = source.New(cfg.Source, n.url, cfg.Env.Secret, httpc); err != nil {
			close(stop)
			loops.Wait()
			return res, err
		}
	}
	pctx, stopProducer := context.WithCancel(ctx)
	t0 := time.Now()
	producerDone := r.produce(pctx, sources)

	sleepCtx(ctx, cfg.Settle)
	for _, n := range r.nodes {
		if ctx.Err() != nil {
			break
		}
		res.Drains = append(res.Drains, r.rollNode(ctx, env, n, clients))
		// Every client back before the next node goes (a rollout waits
		// for the new pod to be ready, not for the clients; waiting keeps
		// each drain's figures its own).
		sleepCtx(ctx, cfg.Settle)
		waitConnected(ctx, connected, 30*time.Second)
	}
	stopProducer()
	<-producerDone
	res.Seconds = time.Since(t0).Seconds()

	// Late deliveries: wait until every acknowledged event reached every
	// client, or nothing moved for 3 s (at most 20 s).
	var expected int64
	for room := range r.acked {
		r.ackMu[room].Lock()
		expected += int64(r.acked[room].Count()) * subs[room]
		r.ackMu[room].Unlock()
	}
	res.Expected = expected
	deadline := time.Now().Add(20 * time.Second)
	last, lastMove := r.received.Load(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		got := r.received.Load()
		if got >= expected {
			break
		}
		if got != last {
			last, lastMove = got, time.Now()
		} else if time.Since(lastMove) > 3*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	loops.Wait()

	// Accounting.
	var lost, dups, ooo, foreign, recon, recov, notRecov, failed []int64
	for _, c := range connected {
		c.mu.Lock()
		r.ackMu[c.room].Lock()
		missing := c.seen.Missing(&r.acked[c.room])
		extra := c.seen.Extra(&r.acked[c.room])
		r.ackMu[c.room].Unlock()
		res.Delivered += int64(c.seen.Count() - extra)
		res.UnackedSeen += int64(extra)
		lost = append(lost, int64(missing))
		dups = append(dups, c.dup)
		ooo = append(ooo, c.ooo)
		foreign = append(foreign, c.foreign)
		recon = append(recon, c.reconnects)
		recov = append(recov, c.recovered)
		notRecov = append(notRecov, c.notRecov)
		failed = append(failed, c.failed)
		if c.serverDisc {
			res.ServerDisconnects++
		}
		if c.gaveUp {
			res.GaveUp++
		}
		if !c.connected.Load() {
			res.NotConnectedAtEnd++
		}
		c.mu.Unlock()
	}
	res.Lost, res.Duplicates, res.OutOfOrder, res.Foreign = countsOf(lost), countsOf(dups), countsOf(ooo), countsOf(foreign)
	res.Reconnects, res.Recovered, res.NotRecovered, res.FailedDials = countsOf(recon), countsOf(recov), countsOf(notRecov), countsOf(failed)
	res.Posted, res.Acknowledged, res.PostErrors, res.Skipped = r.posted.Load(), r.ackN.Load(), r.postErr.Load(), r.skipped.Load()
	for _, n := range r.nodes {
		n.mu.Lock()
		res.ServerCPUSecs += n.cpu
		if n.srv != nil && n.srv.Alive() {
			if s, err := procstat.Read(n.srv.PID()); err == nil {
				res.ServerCPUSecs += s.CPU.Seconds()
			}
		}
		n.mu.Unlock()
	}
	r.errMu.Lock()
	for _, m := range r.errSamples {
		res.ErrorSamples = append(res.ErrorSamples, fmt.Sprintf("%s (x%d)", m, r.errCounts[m]))
	}
	r.errMu.Unlock()
	res.RedisCommands = redis.commandStats()
	res.OK = res.Lost.Total == 0 && res.Duplicates.Total == 0 && res.OutOfOrder.Total == 0 && res.Foreign.Total == 0 &&
		res.Acknowledged > 0 && res.GaveUp == 0 && res.ServerDisconnects == 0
	return res, ctx.Err()
}

// serverEnv is the environment of every node: the shared Redis, the
// recovery window, the drain window.
func (r *run) serverEnv(redisURL string) peers.Env {
	env := r.cfg.Env
	env.Extra = slices.Clone(env.Extra)
	switch r.cfg.Server {
	case peers.Gateway:
		env.RedisURL = redisURL
		env.Extra = append(env.Extra,
			"GATEWAY_DRAIN_WINDOW="+r.cfg.DrainWindow.String(),
			"GATEWAY_SHUTDOWN_TIMEOUT="+(r.cfg.DrainWindow+30*time.Second).String(),
			"GATEWAY_RECOVERY_MAX_DISCONNECTION="+r.cfg.RecoveryWindow.String())
	case peers.Node:
		env.Extra = append(env.Extra, "REDIS_URL="+redisURL,
			"RECOVERY_MAX_DISCONNECTION_MS="+strconv.FormatInt(r.cfg.RecoveryWindow.Milliseconds(), 10),
			"DRAIN_WINDOW_MS="+strconv.FormatInt(r.cfg.DrainWindow.Milliseconds(), 10))
	}
	return env
}

// startNode starts n (generation gen) on its port and waits until it is
// ready, then marks it live.
func (r *run) startNode(ctx context.Context, env peers.Env, n *node, gen int) error {
	srv, err := peers.StartOn(ctx, env, r.cfg.Server, "rolling-n"+strconv.Itoa(n.idx)+"-g"+strconv.Itoa(gen), n.port)
	if err != nil {
		return err
	}
	if r.cfg.Server == peers.Gateway {
		if err := waitOK(ctx, n.url+"/readyz", 30*time.Second); err != nil {
			srv.Stop()
			return fmt.Errorf("rolling: node %d: %w", n.idx, err)
		}
	}
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	n.live.Store(true)
	return nil
}

// rollNode takes n out of the live set (as a failing readiness check takes
// it out of a load balancer), sends it SIGTERM, waits for its exit, and
// starts it again on its port.
func (r *run) rollNode(ctx context.Context, env peers.Env, n *node, clients []*client) Drain {
	d := Drain{Node: n.idx}
	for _, c := range clients {
		if c.connected.Load() && int(c.cur.Load()) == n.idx {
			d.Clients++
		}
	}
	n.live.Store(false)
	n.mu.Lock()
	srv := n.srv
	n.mu.Unlock()
	r.cfg.Logf("%s: SIGTERM to node %d (%d clients)", r.cfg.Server, n.idx, d.Clients)
	took, err := srv.Terminate(r.cfg.DrainWindow + 40*time.Second)
	d.ExitSeconds = took.Seconds()
	n.cpu += srv.ExitCPU().Seconds()
	if err != nil {
		d.ExitError = err.Error()
		r.noteError("exit", fmt.Errorf("node %d: %w", n.idx, err))
	}
	t := time.Now()
	if err := r.startNode(ctx, env, n, 1); err != nil {
		d.ExitError += " restart: " + err.Error()
		r.noteError("restart", err)
		return d
	}
	d.ReadySeconds = time.Since(t).Seconds()
	r.cfg.Logf("%s: node %d exited after %.1fs (%v), ready again after %.1fs", r.cfg.Server, n.idx, d.ExitSeconds, err, d.ReadySeconds)
	return d
}

// pick returns a live node, round-robin (a load balancer's choice); the
// first node when none is live.
func (r *run) pick() *node {
	k := int(r.rr.Add(1))
	for i := range r.nodes {
		if n := r.nodes[(k+i)%len(r.nodes)]; n.live.Load() {
			return n
		}
	}
	return r.nodes[k%len(r.nodes)]
}

// clientLoop connects c and reconnects it after every close, as
// socket.io-client's Manager does, until stop.
func (r *run) clientLoop(ctx context.Context, c *client, stop <-chan struct{}, sem chan struct{}, initial *sync.WaitGroup) {
	first := true
	defer func() {
		if first {
			initial.Done()
		}
	}()
	attempts := 0
	for {
		var n *node
		if first && attempts == 0 {
			n = r.nodes[c.cur.Load()]
			sem <- struct{}{}
		} else {
			n = r.pick()
		}
		opts := eio.Options{
			URL: n.url,
			OnConnect: []eio.Emit{{
				Name:  "subscribe_project",
				Arg:   []byte(`{"project_id":"` + source.ProjectID(c.room) + `"}`),
				Reply: "subscribed_project",
			}},
			OnEvent: func(name, arg []byte, _ int64) { r.onEvent(c, name, arg) },
			OnClose: func(err error) {
				c.mu.Lock()
				c.lastErr = err
				c.mu.Unlock()
			},
			Dialer:  c.dialer,
			Session: &c.sess,
		}
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		cl, err := eio.Dial(dctx, opts)
		cancel()
		if first && attempts == 0 {
			<-sem
		}
		if err != nil {
			c.mu.Lock()
			c.failed++
			c.mu.Unlock()
			r.noteError("connect", fmt.Errorf("node %d: %w", n.idx, err))
			attempts++
			if attempts >= r.cfg.MaxAttempts || errors.Is(err, eio.ErrConnectError) {
				c.mu.Lock()
				c.gaveUp = true
				c.mu.Unlock()
				return
			}
			if !r.wait(ctx, stop, r.backoff(attempts-1)) {
				return
			}
			continue
		}
		c.cur.Store(int32(n.idx))
		c.mu.Lock()
		if !first {
			c.reconnects++
			if c.sess.Recovered {
				c.recovered++
			} else {
				c.notRecov++
			}
		}
		c.mu.Unlock()
		c.connected.Store(true)
		if first {
			first = false
			initial.Done()
		}
		attempts = 0
		select {
		case <-cl.Done():
		case <-stop:
			cl.Close()
			<-cl.Done()
			return
		case <-ctx.Done():
			cl.Close()
			<-cl.Done()
			return
		}
		c.connected.Store(false)
		c.mu.Lock()
		disc := errors.Is(c.lastErr, eio.ErrServerDisconn)
		if disc {
			c.serverDisc = true
		}
		c.mu.Unlock()
		if disc {
			return // "io server disconnect": socket.io-client does not reconnect
		}
		if !r.wait(ctx, stop, r.backoff(0)) {
			return
		}
	}
}

// backoff is socket.io-client's reconnection delay before attempt n (0:
// the first): reconnectionDelay x 2^n, randomized by ±50%, at most
// reconnectionDelayMax.
func (r *run) backoff(n int) time.Duration {
	d := float64(r.cfg.ReconnectDelay) * float64(uint64(1)<<min(n, 20))
	dev := rand.Float64() * 0.5 * d
	if rand.IntN(2) == 0 {
		d -= dev
	} else {
		d += dev
	}
	return min(time.Duration(d), r.cfg.ReconnectDelayMax)
}

func (r *run) wait(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		return false
	}
}

var (
	keySeq  = []byte(`"seq":`)
	keySeq2 = []byte(`seq=`)
)

func (r *run) onEvent(c *client, name, arg []byte) {
	seq, ok := eio.FindInt(arg, keySeq)
	if !ok {
		seq, ok = eio.FindInt(arg, keySeq2)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !ok || seq < 0 {
		c.foreign++
		r.noteError("event", fmt.Errorf("unparsed %s %.120s", name, arg))
		return
	}
	if !containsTag(arg, c.tag) {
		c.foreign++
		r.noteError("event", fmt.Errorf("event of another room reached room p%d: %.120s", c.room, arg))
		return
	}
	if c.seen.Set(seq) {
		c.dup++
		return
	}
	r.received.Add(1)
	if seq < c.maxSeq {
		c.ooo++
	}
	c.maxSeq = max(c.maxSeq, seq)
}

func containsTag(b, tag []byte) bool {
	for i := 0; i+len(tag) <= len(b); i++ {
		if b[i] == tag[0] && string(b[i:i+len(tag)]) == string(tag) {
			return true
		}
	}
	return false
}

// produce posts events at cfg.Rate, event k to room k % Rooms with the
// room's next sequence number, until ctx ends. The posts of one room are
// sequential (its next post starts after the previous answer), so a
// server's order of one room's acknowledged events is their sequence
// order; they go to a live node (the first one), as a producer behind a
// load balancer would. The returned channel closes once every post is
// answered.
func (r *run) produce(ctx context.Context, sources []source.Source) <-chan struct{} {
	queues := make([]chan int64, r.cfg.Rooms)
	var wg sync.WaitGroup
	for room := range queues {
		queues[room] = make(chan int64, 256)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range queues[room] {
				r.post(sources, room, seq)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer wg.Wait()
		defer func() {
			for _, q := range queues {
				close(q)
			}
		}()
		if r.cfg.Rate <= 0 {
			<-ctx.Done()
			return
		}
		interval := time.Duration(float64(time.Second) / r.cfg.Rate)
		start := time.Now()
		for k := int64(0); ; k++ {
			at := start.Add(time.Duration(k) * interval)
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			} else if ctx.Err() != nil {
				return
			}
			room := int(k % int64(r.cfg.Rooms))
			seq := r.nextQ[room]
			r.nextQ[room]++
			select {
			case queues[room] <- seq:
			default:
				r.skipped.Add(1)
			}
		}
	}()
	return done
}

func (r *run) post(sources []source.Source, room int, seq int64) {
	var n *node
	for _, cand := range r.nodes {
		if cand.live.Load() {
			n = cand
			break
		}
	}
	if n == nil {
		n = r.nodes[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r.posted.Add(1)
	err := sources[n.idx].Send(ctx, []source.Event{{Project: source.ProjectID(room), Seq: seq}})
	if err != nil {
		r.postErr.Add(1)
		r.noteError("post", fmt.Errorf("node %d: %w", n.idx, err))
		return
	}
	r.ackN.Add(1)
	r.ackMu[room].Lock()
	r.acked[room].Set(seq)
	r.ackMu[room].Unlock()
}

func waitOK(ctx context.Context, url string, limit time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("%s not 200 after %s", url, limit)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// waitConnected waits until every client of cs that has not given up is
// connected, at most limit.
func waitConnected(ctx context.Context, cs []*client, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		all := true
		for _, c := range cs {
			if !c.connected.Load() {
				c.mu.Lock()
				gone := c.gaveUp || c.serverDisc
				c.mu.Unlock()
				if !gone {
					all = false
					break
				}
			}
		}
		if all || !sleepCtx(ctx, 100*time.Millisecond) {
			return
		}
	}
}

func waitGroupCtx(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
