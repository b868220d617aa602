// Package app wires the gateway's parts into one process: the Echo HTTP
// server (API, probes and Socket.IO on one port), the bus, the Socket.IO
// server and the producers, according to the node's role. It owns start-up
// and the shutdown order:
//
//  1. readiness fails at once (the load balancer stops sending new
//     clients) and new Socket.IO handshakes are refused;
//  2. connected clients are closed at the transport level in jittered
//     batches across the drain window (they reconnect elsewhere by
//     themselves, a few at a time); webhooks keep being accepted meanwhile;
//  3. the HTTP server stops accepting and in-flight requests finish; any
//     client left is closed;
//  4. the bus consumer stops, then the bus closes;
//  5. everything is bounded by the shutdown timeout.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/redis/go-redis/v9"

	"github.com/meshgen/gateway/auth"
	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/clientaddr"
	"github.com/meshgen/gateway/config"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/flaskbridge"
	"github.com/meshgen/gateway/gateway"
	"github.com/meshgen/gateway/health"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/metrics"
	"github.com/meshgen/gateway/publish"
	"github.com/meshgen/gateway/recovery"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/replay"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
	"github.com/meshgen/gateway/status"
	"github.com/meshgen/gateway/webhook"
)

// reserveSessionFiles is what the automatic max-clients leaves of the
// open-file limit: the connections that are not sessions (producers,
// probes, Redis) and the process's own files.
const reserveSessionFiles = 256

// maxClients is the max-clients in effect: the configured one, or, for 0,
// the open-file limit minus reserveSessionFiles.
func maxClients(configured int) int {
	if configured > 0 {
		return configured
	}
	return max(1, openFileLimit()-reserveSessionFiles)
}

// recoveryOptions configures connection state recovery: sessions in Redis
// next to the stream (whose entries are the offsets) with the Redis bus,
// in memory with the in-process bus.
func recoveryOptions(cfg config.Config, rb *bus.Redis, m *metrics.Metrics) gateway.Recovery {
	window := cfg.RecoveryMaxDisconnection
	if window <= 0 {
		return gateway.Recovery{}
	}
	opts := gateway.Recovery{Window: window, MaxEvents: cfg.RecoveryMaxEvents}
	if rb == nil {
		store := recovery.NewMemoryStore(gateway.SessionTTL(window))
		m.Gauge("gateway_recovery_sessions", "Recovery sessions kept in this node's memory (in-process bus only; with Redis they are keys <stream>:session:<pid>).", func() float64 { return float64(store.Len()) })
		opts.Store = store
		return opts
	}
	opts.Store = recovery.NewRedisStore(rb.Client(), rb.Prefix(), gateway.SessionTTL(window))
	opts.History = rb
	return opts
}

// batchState is the registry's BatchStatus when state on join is on.
func batchState(cfg config.Config, store registry.Store) func(context.Context, string) (event.BatchCounts, string, bool, error) {
	if !cfg.StateOnJoin {
		return nil
	}
	return store.BatchStatus
}

// App is one gateway process.
type App struct {
	cfg     config.Config
	log     *slog.Logger
	echo    *echo.Echo
	bus     bus.Bus
	gw      *gateway.Server
	health  *health.Checker
	consume sync.WaitGroup
	clients *clientaddr.Resolver // who a request comes from, for the per-client bounds

	consumerErr chan error
	side        []*sideServer    // the profiler and /metrics, when on listeners of their own
	metrics     *metrics.Metrics // this process's collectors
	status      *status.Server   // nil when the status page is off
	// background tasks run from Serve until shutdown (after the consumer).
	background []func(context.Context)
}

// New builds the process from cfg; version names the build on the status
// page. Nothing listens until Run.
func New(cfg config.Config, log *slog.Logger, version string) (*App, error) {
	a := &App{cfg: cfg, log: log, health: &health.Checker{}, consumerErr: make(chan error, 1)}
	clients, err := clientaddr.NewResolver(cfg.TrustedProxies, cfg.ClientIPHeader)
	if err != nil {
		return nil, fmt.Errorf("trusted-proxies: %w", err)
	}
	a.clients = clients
	redis.SetLogger(redisLogger{log.With(slog.String("component", "redis"))})
	m := metrics.New()
	var (
		store   registry.Store
		follows rooms.Follows = rooms.NewMemoryFollows()
	)
	node := bus.NewNodeID()
	var rb *bus.Redis
	if cfg.RedisURL != "" {
		var err error
		rb, err = bus.NewRedis(bus.RedisOptions{
			NodeID:           node,
			URL:              cfg.RedisURL,
			Stream:           cfg.RedisStream,
			MaxLen:           cfg.RedisStreamMaxLen,
			MaxAge:           cfg.RedisStreamMaxAge,
			DedupeWindow:     cfg.DedupeWindow,
			CanaryInterval:   cfg.CanaryInterval,
			CanaryTimeout:    cfg.CanaryTimeout,
			MinReplicas:      cfg.RedisMinReplicas,
			ReplicaTimeout:   cfg.RedisReplicaTimeout,
			Consumer:         cfg.ServesSockets(),
			OnReconnect:      m.RedisReconnected,
			OnReplicaTimeout: m.ReplicaTimeout,
			Logger:           log,
		})
		if err != nil {
			return nil, fmt.Errorf("app: redis bus: %w", err)
		}
		a.bus = rb
		m.Gauge("gateway_bus_lag_seconds", "How far this node's bus consumer is behind the newest stream entry.", func() float64 { return rb.Lag().Seconds() })
		store = registry.NewRedis(rb, cfg.JobTTL)
		rf := rooms.NewRedisFollows(rb.Client(), cfg.RedisStream, cfg.LogsChannel, node, cfg.FollowTTL, log.With(slog.String("component", "follows")))
		follows = rf
		a.background = append(a.background, rf.Run)

	} else {
		mb := bus.NewMemory(bus.MemoryOptions{DedupeWindow: cfg.DedupeWindow})
		a.bus = mb
		store = registry.NewMemory(mb, cfg.JobTTL)
	}
	if hc, ok := a.bus.(bus.HealthChecker); ok {
		a.health.Add("bus", hc.Health)
	}

	if cfg.ServesSockets() {
		policy, err := newPolicy(cfg, store, m, log)
		if err != nil {
			return nil, err
		}
		protocol := rooms.NewProtocol(rooms.Options{
			Follows: follows, MaxIDLength: cfg.MaxIDLength,
			MaxRooms: cfg.ClientMaxRooms, MaxFollows: cfg.ClientMaxFollows, OnLimit: m.LimitHit,
		})
		a.gw = gateway.New(gateway.Options{
			Limits: gateway.Limits{
				MaxClients:             maxClients(cfg.MaxClients),
				MaxPollingSessions:     cfg.MaxPollingSessions,
				HandshakeRate:          cfg.HandshakeRate,
				HandshakeRatePerIP:     cfg.HandshakeRatePerIP,
				ClientIP:               clients.IP,
				ClientEventRate:        cfg.ClientEventRate,
				ClientEventAbuseWindow: cfg.ClientEventAbuseWindow,
				MaxPollingBuffer:       cfg.ClientMaxPollingBuffer,
			},
			Auth:            policy,
			AuthExtract:     auth.ExtractOptions{Cookie: cfg.AuthCookie, Query: cfg.AuthQueryToken},
			AllowedOrigins:  cfg.AllowedOrigins(),
			LogRate:         cfg.LogClientRate,
			LogBurst:        cfg.LogClientBurst,
			MaxMessageBytes: cfg.SocketMaxMessageBytes,
			PingInterval:    cfg.PingInterval,
			PingTimeout:     cfg.PingTimeout,
			ConnectTimeout:  cfg.ConnectTimeout,
			Protocol:        protocol,
			Logger:          log.With(slog.String("component", "gateway")),
			Metrics:         m,
			Recovery:        recoveryOptions(cfg, rb, m),
			BatchState:      batchState(cfg, store),
			Delivered:       a.bus.Delivered,
			BacklogBytes:    cfg.RecoveryBacklogBytes,
		})
	}
	if rb != nil && cfg.FlaskQueue && a.gw != nil {
		bridge, err := flaskbridge.New(flaskbridge.Options{
			Client:  rb.Client(),
			Channel: cfg.FlaskChannel,
			Emitter: a.gw,
			Logger:  log.With(slog.String("component", "flaskbridge")),
		})
		if err != nil {
			return nil, fmt.Errorf("app: flask bridge: %w", err)
		}
		a.health.Add("flask_queue", bridge.Health)
		m.CounterVec("gateway_flask_queue_messages_total", "Flask-SocketIO queue messages read by this node, by outcome (emitted, applied, ignored, or the reason it was dropped: unsafe, malformed, unsupported, foreign_namespace, binary, not_json, too_large, failed).", "outcome", func() map[string]float64 {
			st := bridge.Stats()
			return map[string]float64{
				"emitted": float64(st.Emitted), "applied": float64(st.Applied), "ignored": float64(st.Ignored),
				"unsafe": float64(st.Dropped.Unsafe), "malformed": float64(st.Dropped.Malformed), "unsupported": float64(st.Dropped.Unsupported),
				"foreign_namespace": float64(st.Dropped.ForeignNamespace), "binary": float64(st.Dropped.Binary), "not_json": float64(st.Dropped.NotJSON),
				"too_large": float64(st.Dropped.TooLarge), "failed": float64(st.Dropped.Failed),
			}
		})
		a.background = append(a.background, func(ctx context.Context) {
			if err := bridge.Run(ctx); err != nil {
				log.Error("flask queue bridge stopped", slog.String("error", err.Error()))
			}
		})
	}

	a.status = a.newStatus(node, version, m, rb)
	m.Gauge("gateway_ready", "1 when this node is ready (GET /readyz answers 200), else 0.", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if len(a.health.Ready(ctx)) > 0 {
			return 0
		}
		return 1
	})

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = httpapi.ErrorHandler(log)
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.ReadTimeout = cfg.HTTPReadTimeout
	e.Server.IdleTimeout = cfg.HTTPIdleTimeout
	e.Server.MaxHeaderBytes = cfg.HTTPMaxHeaderBytes
	// Echo hands e.StdLogger to the server as its ErrorLog on Start: the
	// accept errors and TLS handshake failures go to the structured log.
	e.StdLogger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("handler panicked", slog.String("path", c.Path()), slog.String("error", err.Error()), slog.String("stack", string(stack)))
			return err
		},
	}))
	e.Use(dropForeignRequestID)
	e.Use(middleware.RequestID())
	e.Use(requestLogger(log))
	e.Use(m.HTTPMiddleware(webhook.Path, registry.Path, publish.Path))
	if origins := cfg.AllowedOrigins(); len(origins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			Skipper:          func(c echo.Context) bool { return strings.HasPrefix(c.Path(), gateway.Path) },
			AllowOrigins:     origins,
			AllowMethods:     []string{http.MethodGet, http.MethodPost, http.MethodOptions},
			AllowHeaders:     []string{echo.HeaderContentType, webhook.SignatureHeader, httpapi.SignatureHeader, echo.HeaderXRequestID},
			AllowCredentials: !slices.Contains(origins, "*"),
		}))
	}
	a.health.Register(e)
	if cfg.MetricsAddr == "" {
		m.Register(e)
	}
	a.metrics = m
	if a.status != nil {
		a.status.Register(e)
		a.background = append(a.background, a.status.Run)
	}
	publisher := m.Publisher(a.bus)
	if a.gw != nil {
		e.Any(gateway.Path+"*", echo.WrapHandler(a.gw.Handler()))
	}
	if cfg.ServesProducers() {
		var seen replay.Store = replay.NewMemory(2*cfg.SignatureTolerance, 0)
		if rb != nil {
			seen = replay.NewRedis(rb.Client(), rb.Prefix(), 2*cfg.SignatureTolerance)
		}
		a.producerRoutes(e, store, publisher, seen, m)
	}
	a.echo = e

	a.health.Add("bus_consumer", func(context.Context) error {
		select {
		case err := <-a.consumerErr:
			a.consumerErr <- err
			return fmt.Errorf("bus consumer stopped: %w", err)
		default:
			return nil
		}
	})
	return a, nil
}

// producerRoutes serves the producer endpoints, each behind the SignedBody
// middleware with its own secrets and body limit. Production serves
// /api/jobs and /api/events only with their secret set.
func (a *App) producerRoutes(e *echo.Echo, store registry.Store, publisher bus.Publisher, seen replay.Store, m *metrics.Metrics) {
	cfg, log := a.cfg, a.log
	// One bound for the three routes, before anything is read: a flood of
	// slow bodies holds at most this many handlers.
	inFlight := httpapi.LimitInFlight(httpapi.InFlightLimit{
		Max: cfg.MaxProducerRequests, PerClient: cfg.MaxProducerRequestsPerIP,
		ClientKey: a.clients.Key, OnRefuse: m.LimitHit,
	})
	signed := func(secrets []string, header string, limit int64, component string) echo.MiddlewareFunc {
		return httpapi.SignedBodyWithConfig(httpapi.SignedBodyConfig{
			Verifier: signature.NewVerifier(secrets), Header: header, Limit: limit,
			RequireTimestamp: cfg.RequireTimestamp, Tolerance: cfg.SignatureTolerance, Replay: seen,
			BodyTimeout: cfg.ProducerBodyTimeout,
			OnRefuse:    m.HTTPRefused,
			Logger:      log.With(slog.String("component", component)),
		})
	}
	wh := webhook.New(webhook.Config{
		MaxIDLength: cfg.MaxIDLength, Publisher: publisher, Resolver: store, Batches: store,
		Logger: log.With(slog.String("component", "webhook")),
	})
	post(e, webhook.Path, wh.Serve, inFlight, signed(cfg.ModalWebhookSecrets, webhook.SignatureHeader, cfg.WebhookMaxBodyBytes, "webhook"))

	if len(cfg.JobsSecrets) > 0 || cfg.Development() {
		jobs := registry.NewHandler(registry.HandlerConfig{
			MaxIDLength: cfg.MaxIDLength, Store: store, Logger: log.With(slog.String("component", "registry")),
		})
		post(e, registry.Path, jobs.Serve, inFlight, signed(cfg.JobsSecrets, httpapi.SignatureHeader, cfg.JobsMaxBodyBytes, "registry"))
	} else {
		log.Warn("GATEWAY_JOBS_SECRET is not set: POST /api/jobs is disabled (production)")
	}
	if len(cfg.EventsSecrets) > 0 || cfg.Development() {
		events := publish.New(publish.Config{
			MaxIDLength: cfg.MaxIDLength, ExtraEvents: cfg.ExtraEvents, Publisher: publisher,
			Logger: log.With(slog.String("component", "publish")),
		})
		post(e, publish.Path, events.Serve, inFlight, signed(cfg.EventsSecrets, httpapi.SignatureHeader, cfg.EventsMaxBodyBytes, "publish"))
	} else {
		log.Warn("GATEWAY_EVENTS_SECRET is not set: POST /api/events is disabled (production)")
	}
}

// post routes POST path to h behind mw (the first runs first), composed
// once here: Echo composes a route's own middleware again on every
// request, two closures and their allocations per request and
// middleware.
func post(e *echo.Echo, path string, h echo.HandlerFunc, mw ...echo.MiddlewareFunc) {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	e.POST(path, h)
}

// newPolicy builds the auth policy of cfg's mode; the registry ties
// batches and jobs to projects for the jwt mode.
func newPolicy(cfg config.Config, owners auth.Owners, m *metrics.Metrics, log *slog.Logger) (auth.Policy, error) {
	switch cfg.AuthMode() {
	case auth.ModeJWT:
		p, err := auth.NewJWT(context.Background(), auth.JWTConfig{
			Secrets: cfg.JWTSecrets, PublicKeys: cfg.JWTPublicKeys, JWKSURL: cfg.JWKSURL, JWKSRefresh: cfg.JWKSRefresh,
			Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, Leeway: cfg.JWTLeeway,
			ProjectsClaim: cfg.JWTProjectsClaim, BatchesClaim: cfg.JWTBatchesClaim,
			Owners: owners, MaxIDLength: cfg.MaxIDLength, Logger: log.With(slog.String("component", "auth")),
		})
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		return p, nil
	case auth.ModeBackend:
		p, err := auth.NewBackend(auth.BackendConfig{
			URL: cfg.AuthURL, Secret: cfg.AuthSecret, Timeout: cfg.AuthTimeout, CacheTTL: cfg.AuthCacheTTL,
			MaxIDLength: cfg.MaxIDLength, OnCall: m.AuthBackendCall,
		})
		if err != nil {
			return nil, fmt.Errorf("app: %w", err)
		}
		return p, nil
	}
	return auth.Open{}, nil
}

// Handler returns the process's HTTP handler (for in-process tests).
func (a *App) Handler() http.Handler { return a.echo }

// Run listens on the configured address and serves until ctx is done, then
// shuts down in order within the shutdown timeout.
func (a *App) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Addr())
	if err != nil {
		return fmt.Errorf("app: listen on %s: %w", a.cfg.Addr(), err)
	}
	return a.Serve(ctx, ln)
}

// sideMetrics is the handler of metrics-addr: /metrics and, again, the
// probes, which a flood of the public port (its connection slots taken)
// cannot starve there.
func (a *App) sideMetrics() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+metrics.Path, a.metrics.Handler())
	a.health.HandleProbes(mux)
	return mux
}

// Serve is Run on an existing listener.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	for _, side := range []struct {
		key, name, addr string
		h               http.Handler
	}{
		{"debug-addr", "profiler", a.cfg.DebugAddr, profiler()},
		{"metrics-addr", "metrics and probes", a.cfg.MetricsAddr, a.sideMetrics()},
	} {
		if side.addr == "" {
			continue
		}
		d, err := listenSide(side.key, side.name, side.addr, side.h)
		if err != nil {
			_ = ln.Close()
			a.closeSide(context.Background())
			return err
		}
		a.side = append(a.side, d)
		go d.serve(a.log)
	}
	limited := newConnLimiter(ln, a.cfg.MaxConnections, a.cfg.MaxConnectionsPerIP, a.clients.Trusted, a.metrics.LimitHit)
	a.echo.Server.ConnState = limited.connState
	ln = limited
	consumeCtx, stopConsumer := context.WithCancel(context.Background())
	defer stopConsumer()
	if a.gw != nil {
		a.consume.Go(func() {
			err := a.bus.Consume(consumeCtx, a.deliver)
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, bus.ErrClosed) {
				a.log.Error("bus consumer stopped; this node delivers nothing", slog.String("error", err.Error()))
				a.consumerErr <- err
			}
		})
	}

	for _, task := range a.background {
		a.consume.Go(func() { task(consumeCtx) })
	}

	serveErr := make(chan error, 1)
	a.echo.Listener = ln
	go func() { serveErr <- a.echo.Start("") }()
	a.log.Info("gateway listening", slog.String("addr", ln.Addr().String()), slog.Any("config", a.cfg))
	if a.cfg.AuthMode() == auth.ModeNone && !a.cfg.Development() && a.gw != nil {
		a.log.Warn("GATEWAY_AUTH is none: every client can read every project; set jwt or backend")
	}
	if !a.cfg.VerifyWebhooks() {
		a.log.Warn("MODAL_WEBHOOK_SECRET is not set: webhook signatures are NOT verified (development only)")
	}

	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			a.shutdown(stopConsumer)
			return fmt.Errorf("app: serve: %w", err)
		}
	case <-ctx.Done():
	}
	return a.shutdown(stopConsumer)
}

// deliver hands a batch of consumed events to the sockets, then to the
// status page's list of the latest events.
func (a *App) deliver(batch []event.Event) {
	a.gw.Deliver(batch...)
	if a.status != nil {
		for _, e := range batch {
			a.status.Observe(e)
		}
	}
}

// shutdown runs the shutdown order of the package doc.
func (a *App) shutdown(stopConsumer context.CancelFunc) error {
	a.log.Info("shutting down", slog.Duration("drain_window", a.cfg.DrainWindow), slog.Duration("timeout", a.cfg.ShutdownTimeout))
	a.health.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()

	if a.gw != nil {
		a.gw.Drain(ctx, a.cfg.DrainWindow)
	}
	if a.status != nil {
		a.status.Close() // ends the live streams, which the HTTP server would wait for
	}
	var wg sync.WaitGroup
	var gwErr error
	wg.Go(func() { a.stopHTTP(ctx) })
	if a.gw != nil {
		wg.Go(func() { gwErr = a.gw.Close(ctx) })
	}
	wg.Wait()
	a.closeSide(ctx)

	stopConsumer()
	a.consume.Wait()
	busErr := a.bus.Close()
	if err := errors.Join(gwErr, busErr); err != nil {
		return fmt.Errorf("app: shutdown: %w", err)
	}
	a.log.Info("shutdown complete")
	return nil
}

// redisLogger routes go-redis's own messages (reconnects, pool errors) to
// the structured log.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// stopHTTP lets in-flight requests finish until a little before ctx's
// deadline, then closes the connections still open (a request whose body
// trickles in must not turn a clean stop into a failed one: the exit stays
// 0 within shutdown-timeout).
func (a *App) stopHTTP(ctx context.Context) {
	grace := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		grace, cancel = context.WithDeadline(ctx, deadline.Add(-time.Second))
		defer cancel()
	}
	if err := a.echo.Shutdown(grace); err != nil {
		a.log.Warn("HTTP requests still running at the shutdown deadline: their connections are closed", slog.String("error", err.Error()))
		_ = a.echo.Close()
	}
}

// closeSide stops the profiler and metrics listeners.
func (a *App) closeSide(ctx context.Context) {
	for _, d := range a.side {
		d.close(ctx)
	}
}

// requestIDChars are the characters of a request id taken from a client.
const requestIDChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:"

// maxRequestIDBytes bounds a request id taken from a client.
const maxRequestIDBytes = 128

// dropForeignRequestID removes an incoming X-Request-Id that is long or
// holds anything but letters, digits and -_.: so that RequestID generates
// one: a client cannot put arbitrary text in every log line of its request.
func dropForeignRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header
		if id := h.Get(echo.HeaderXRequestID); id != "" && (len(id) > maxRequestIDBytes || strings.Trim(id, requestIDChars) != "") {
			h.Del(echo.HeaderXRequestID)
		}
		return next(c)
	}
}

// requestLogger logs one line per HTTP request (not per Socket.IO poll).
func requestLogger(log *slog.Logger) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return strings.HasPrefix(p, gateway.Path) || p == health.LivePath || p == health.ReadyPath || p == health.HealthzPath || p == metrics.Path || isStatusPath(p)
		},
		LogStatus:    true,
		LogURIPath:   true,
		LogMethod:    true,
		LogLatency:   true,
		LogRequestID: true,
		LogError:     true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Status >= 500 {
				level = slog.LevelError
			}
			ctx := c.Request().Context()
			if !log.Enabled(ctx, level) {
				return nil
			}
			log.LogAttrs(ctx, level, "http request",
				slog.String("request_id", v.RequestID),
				slog.String("method", v.Method),
				slog.String("path", v.URIPath),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
			)
			return nil
		},
	})
}
