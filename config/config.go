package config

import (
	"log/slog"
	"time"

	"github.com/meshgen/gateway/auth"
	"github.com/meshgen/gateway/bus"
	"github.com/meshgen/gateway/flaskbridge"
	"github.com/meshgen/gateway/gateway"
	"github.com/meshgen/gateway/gctune"
	"github.com/meshgen/gateway/httpapi"
	"github.com/meshgen/gateway/ratelog"
	"github.com/meshgen/gateway/recovery"
	"github.com/meshgen/gateway/registry"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/signature"
	"github.com/meshgen/gateway/status"
)

// Roles accepted by Config.Role.
const (
	RoleAll     = "all"
	RoleWebhook = "webhook"
	RoleSocket  = "socket"
)

// Environment names accepted by Config.Env.
const (
	EnvDevelopment = "development"
	EnvProduction  = "production"
)

// DevOrigins are the front-end origins allowed by default in development
// (Vite and Create React App dev servers).
var DevOrigins = []string{"http://localhost:5173", "http://localhost:3000"}

// Config is the gateway's whole configuration. It is loaded once by Load in
// cmd/gateway and passed down; no other package reads the environment.
//
// Each field's doc comment names its key (file key and flag), its
// environment variable and its default.
type Config struct {
	// Env is `env` / GATEWAY_ENV: "development" or "production".
	// Zero value means "production". In development an unset webhook secret
	// skips signature verification with a warning, the dev front ends are
	// allowed by CORS, and logs are text.
	Env string `mapstructure:"env"`

	// Host is `host` / GATEWAY_HOST, the address to listen on.
	// Zero value means all interfaces.
	Host string `mapstructure:"host"`

	// Port is `port` / PORT: the one port that serves the HTTP API and
	// Socket.IO. Default 5000, as Flask did. GATEWAY_PORT is deliberately not
	// read: Kubernetes service links set it to "tcp://...".
	Port int `mapstructure:"port"`

	// ModalWebhookSecrets is `modal-webhook-secret` / MODAL_WEBHOOK_SECRET,
	// comma-separated: every listed secret is accepted, so a secret can be
	// rotated without downtime. Empty is allowed only in development.
	ModalWebhookSecrets []string `mapstructure:"modal-webhook-secret"`

	// CORSOrigins is `cors-origins` / CORS_ORIGINS, comma-separated origins
	// allowed for the HTTP API and the Socket.IO handshake. "*" allows any.
	// Default: none in production, DevOrigins in development.
	CORSOrigins []string `mapstructure:"cors-origins"`

	// RedisURL is `redis-url` / REDIS_URL. Empty (the default) runs a single
	// node on the in-process bus.
	RedisURL string `mapstructure:"redis-url"`

	// Role is `role` / GATEWAY_ROLE: "all" (default) serves webhooks, the
	// producer APIs and Socket.IO; "webhook" only receives and publishes (no
	// /socket.io/); "socket" only serves Socket.IO (no webhook or producer
	// routes). Roles other than all need redis-url.
	Role string `mapstructure:"role"`

	// RedisStream is `redis-stream` / GATEWAY_REDIS_STREAM, the stream key
	// of the Redis bus. Default "gateway:events".
	RedisStream string `mapstructure:"redis-stream"`

	// RedisStreamMaxLen is `redis-stream-max-len` /
	// GATEWAY_REDIS_STREAM_MAX_LEN: the stream is trimmed to about this many
	// entries. Default 100000.
	RedisStreamMaxLen int64 `mapstructure:"redis-stream-max-len"`

	// RedisStreamMaxAge is `redis-stream-max-age` /
	// GATEWAY_REDIS_STREAM_MAX_AGE: entries older than this are trimmed.
	// Default 24h. A node away longer than the retention misses events.
	RedisStreamMaxAge time.Duration `mapstructure:"redis-stream-max-age"`

	// RedisMinReplicas is `redis-min-replicas` / GATEWAY_REDIS_MIN_REPLICAS:
	// a publish is acknowledged only once this many Redis replicas confirmed
	// it (WAIT after the XADD), so that an acknowledged event survives a
	// failover. Default 0: acknowledged once the master has it. Ignored
	// without redis-url.
	RedisMinReplicas int `mapstructure:"redis-min-replicas"`

	// RedisReplicaTimeout is `redis-replica-timeout` /
	// GATEWAY_REDIS_REPLICA_TIMEOUT: how long a publish waits for the
	// replicas of redis-min-replicas before it answers 503. Default 500ms.
	RedisReplicaTimeout time.Duration `mapstructure:"redis-replica-timeout"`

	// DedupeWindow is `dedupe-window` / GATEWAY_DEDUPE_WINDOW: a webhook
	// with the same (job_id, status) within this window reaches clients once.
	// Default 24h. Shared through Redis when configured.
	DedupeWindow time.Duration `mapstructure:"dedupe-window"`

	// CanaryInterval is `canary-interval` / GATEWAY_CANARY_INTERVAL: how
	// often a node proves its Redis consumer end to end. Default 2s.
	CanaryInterval time.Duration `mapstructure:"canary-interval"`

	// CanaryTimeout is `canary-timeout` / GATEWAY_CANARY_TIMEOUT: a canary
	// not read back within this makes the node not ready. Default 10s.
	CanaryTimeout time.Duration `mapstructure:"canary-timeout"`

	// JobsSecrets is `jobs-secret` / GATEWAY_JOBS_SECRET, comma-separated
	// HMAC secrets of POST /api/jobs (the job registry). Empty disables the
	// route in production; development accepts unsigned requests.
	JobsSecrets []string `mapstructure:"jobs-secret"`

	// EventsSecrets is `events-secret` / GATEWAY_EVENTS_SECRET,
	// comma-separated HMAC secrets of POST /api/events (the publish API).
	// Empty disables the route in production; development accepts unsigned
	// requests.
	EventsSecrets []string `mapstructure:"events-secret"`

	// JobTTL is `job-ttl` / GATEWAY_JOB_TTL, how long a registered job is
	// remembered. Default 168h (7 days).
	JobTTL time.Duration `mapstructure:"job-ttl"`

	// ExtraEvents is `extra-events` / GATEWAY_EXTRA_EVENTS, comma-separated
	// event names the publish API accepts besides the five of the protocol.
	ExtraEvents []string `mapstructure:"extra-events"`

	// FlaskQueue is `flask-queue` / GATEWAY_FLASK_QUEUE: consume the
	// Flask-SocketIO message queue when Redis is configured. Default true.
	FlaskQueue bool `mapstructure:"flask-queue"`

	// FlaskChannel is `flask-channel` / GATEWAY_FLASK_CHANNEL, the Redis
	// pub/sub channel of the Flask-SocketIO message queue. Default
	// "flask-socketio" (Flask-SocketIO's default).
	FlaskChannel string `mapstructure:"flask-channel"`

	// LogsChannel is `logs-channel` / GATEWAY_LOGS_CHANNEL, the Redis pub/sub
	// channel on which subscribe_logs / unsubscribe_logs are announced to
	// the log tailer. Default "gateway:logs-control".
	LogsChannel string `mapstructure:"logs-channel"`

	// FollowTTL is `follow-ttl` / GATEWAY_FOLLOW_TTL, how long a log
	// follow outlives the last refresh of its node (each node refreshes
	// its own every third of it): a node killed without draining releases
	// its followers after this. Default 60s.
	FollowTTL time.Duration `mapstructure:"follow-ttl"`

	// DrainWindow is `drain-window` / GATEWAY_DRAIN_WINDOW: on SIGTERM,
	// clients are closed in jittered batches spread over this window so they
	// do not all reconnect at once. Default 20s; must be shorter than
	// shutdown-timeout.
	DrainWindow time.Duration `mapstructure:"drain-window"`

	// LogLevel is `log-level` / GATEWAY_LOG_LEVEL: debug, info, warn, error.
	// Default info.
	LogLevel string `mapstructure:"log-level"`

	// LogFormat is `log-format` / GATEWAY_LOG_FORMAT: "json", "text" or
	// "auto". Default auto: JSON in production, text in development.
	LogFormat string `mapstructure:"log-format"`

	// WebhookMaxBodyBytes is `webhook-max-body-bytes` /
	// GATEWAY_WEBHOOK_MAX_BODY_BYTES, the largest body of POST
	// /api/webhooks/modal; larger ones answer 413. Default 1 MiB.
	WebhookMaxBodyBytes int64 `mapstructure:"webhook-max-body-bytes"`

	// JobsMaxBodyBytes is `jobs-max-body-bytes` /
	// GATEWAY_JOBS_MAX_BODY_BYTES, the largest body of POST /api/jobs;
	// larger ones answer 413. Default 1 MiB.
	JobsMaxBodyBytes int64 `mapstructure:"jobs-max-body-bytes"`

	// EventsMaxBodyBytes is `events-max-body-bytes` /
	// GATEWAY_EVENTS_MAX_BODY_BYTES, the largest body of POST /api/events;
	// larger ones answer 413. Default 1 MiB.
	EventsMaxBodyBytes int64 `mapstructure:"events-max-body-bytes"`

	// SocketMaxMessageBytes is `socket-max-message-bytes` /
	// GATEWAY_SOCKET_MAX_MESSAGE_BYTES, the largest message a client may
	// send (a websocket frame or a polling request body). A client that sends
	// more is disconnected; no other client is affected. Default 1,000,000
	// (Socket.IO's own default).
	SocketMaxMessageBytes int64 `mapstructure:"socket-max-message-bytes"`

	// MaxIDLength is `max-id-length` / GATEWAY_MAX_ID_LENGTH, the longest
	// project, batch or job id accepted from a client or producer.
	// Default 128.
	MaxIDLength int `mapstructure:"max-id-length"`

	// PingInterval is `ping-interval` / GATEWAY_PING_INTERVAL, the
	// Engine.IO heartbeat interval. Default 25s.
	PingInterval time.Duration `mapstructure:"ping-interval"`

	// PingTimeout is `ping-timeout` / GATEWAY_PING_TIMEOUT, how long a client
	// may take to answer a ping. Default 20s.
	PingTimeout time.Duration `mapstructure:"ping-timeout"`

	// ConnectTimeout is `connect-timeout` / GATEWAY_CONNECT_TIMEOUT, how long
	// a transport may stay open without joining a namespace. Default 45s.
	ConnectTimeout time.Duration `mapstructure:"connect-timeout"`

	// Auth is `auth` / GATEWAY_AUTH, how Socket.IO clients are
	// authenticated and their joins authorized: "none" (every client may
	// read every project), "jwt" or "backend". Development defaults to
	// none; production refuses to start unless it is set, and logs a
	// warning at start-up when it is none.
	Auth string `mapstructure:"auth"`

	// AuthCookie is `auth-cookie` / GATEWAY_AUTH_COOKIE, the name of a
	// cookie holding the client's token (jwt) or forwarded to the backend.
	// Empty (the default) reads no cookie for a token.
	AuthCookie string `mapstructure:"auth-cookie"`

	// AuthQueryToken is `auth-query-token` / GATEWAY_AUTH_QUERY_TOKEN:
	// accept a token in the handshake's ?token= query parameter. Default
	// false (query strings end up in access logs).
	AuthQueryToken bool `mapstructure:"auth-query-token"`

	// JWTSecrets is `jwt-secrets` / GATEWAY_JWT_SECRETS, comma-separated
	// HMAC secrets verifying HS256/384/512 tokens (several for rotation).
	JWTSecrets []string `mapstructure:"jwt-secrets"`

	// JWTPublicKeys is `jwt-public-keys` / GATEWAY_JWT_PUBLIC_KEYS,
	// comma-separated paths of PEM public keys (or certificates) verifying
	// RS/PS/ES/EdDSA tokens.
	JWTPublicKeys []string `mapstructure:"jwt-public-keys"`

	// JWKSURL is `jwks-url` / GATEWAY_JWKS_URL, a JSON Web Key Set (cached,
	// refreshed every jwks-refresh and on an unknown key id).
	JWKSURL string `mapstructure:"jwks-url"`

	// JWKSRefresh is `jwks-refresh` / GATEWAY_JWKS_REFRESH: how often the
	// JWKS is fetched again, and the least time between two fetches for an
	// unknown key id. Default 5m.
	JWKSRefresh time.Duration `mapstructure:"jwks-refresh"`

	// JWTIssuer and JWTAudience are `jwt-issuer` / GATEWAY_JWT_ISSUER and
	// `jwt-audience` / GATEWAY_JWT_AUDIENCE: when set, iss and aud must
	// match.
	JWTIssuer   string `mapstructure:"jwt-issuer"`
	JWTAudience string `mapstructure:"jwt-audience"`

	// JWTLeeway is `jwt-leeway` / GATEWAY_JWT_LEEWAY, the clock skew
	// allowed on exp and nbf. Default 30s.
	JWTLeeway time.Duration `mapstructure:"jwt-leeway"`

	// JWTProjectsClaim is `jwt-projects-claim` /
	// GATEWAY_JWT_PROJECTS_CLAIM, the claim listing the projects a user may
	// see (ids, or "*"). Default "projects".
	JWTProjectsClaim string `mapstructure:"jwt-projects-claim"`

	// JWTBatchesClaim is `jwt-batches-claim` / GATEWAY_JWT_BATCHES_CLAIM,
	// an optional claim listing batches. Default "batches".
	JWTBatchesClaim string `mapstructure:"jwt-batches-claim"`

	// AuthURL is `auth-url` / GATEWAY_AUTH_URL, the backend asked on
	// connect and on joins in the backend mode.
	AuthURL string `mapstructure:"auth-url"`

	// AuthSecret is `auth-secret` / GATEWAY_AUTH_SECRET, signing the calls
	// to the backend (Standard Webhooks headers).
	AuthSecret string `mapstructure:"auth-secret"`

	// AuthTimeout is `auth-timeout` / GATEWAY_AUTH_TIMEOUT, bounding one
	// backend call; a slower one refuses. Default 2s.
	AuthTimeout time.Duration `mapstructure:"auth-timeout"`

	// AuthCacheTTL is `auth-cache-ttl` / GATEWAY_AUTH_CACHE_TTL, how long a
	// backend's join decision is kept per (user, room). Default 30s.
	AuthCacheTTL time.Duration `mapstructure:"auth-cache-ttl"`

	// RequireTimestamp is `require-timestamp` / GATEWAY_REQUIRE_TIMESTAMP:
	// the producer routes accept only Standard Webhooks signatures
	// (webhook-id, webhook-timestamp, webhook-signature), which cannot be
	// replayed, and refuse the body-only X-Modal-Signature and
	// X-Gateway-Signature. Default false; the prod overlay sets it.
	RequireTimestamp bool `mapstructure:"require-timestamp"`

	// SignatureTolerance is `signature-tolerance` /
	// GATEWAY_SIGNATURE_TOLERANCE, how far a webhook-timestamp may be from
	// the gateway's clock either way; webhook-ids are remembered twice as
	// long. Default 5m.
	SignatureTolerance time.Duration `mapstructure:"signature-tolerance"`

	// DebugAddr is `debug-addr` / GATEWAY_DEBUG_ADDR, host:port of a
	// separate listener serving Go's profiler (/debug/pprof/). Empty (the
	// default) serves none. Keep it on loopback or a port no Service exposes:
	// profiles reveal the process's internals.
	DebugAddr string `mapstructure:"debug-addr"`

	// HTTPReadTimeout is `http-read-timeout` / GATEWAY_HTTP_READ_TIMEOUT,
	// the longest a client may take to send a whole request (headers and
	// body; a WebSocket is past it once upgraded). Default 30s.
	HTTPReadTimeout time.Duration `mapstructure:"http-read-timeout"`

	// HTTPIdleTimeout is `http-idle-timeout` / GATEWAY_HTTP_IDLE_TIMEOUT,
	// how long an idle keep-alive connection is kept. Default 60s.
	HTTPIdleTimeout time.Duration `mapstructure:"http-idle-timeout"`

	// HTTPMaxHeaderBytes is `http-max-header-bytes` /
	// GATEWAY_HTTP_MAX_HEADER_BYTES, the largest request header block;
	// larger ones answer 431. Default 64 KiB.
	HTTPMaxHeaderBytes int `mapstructure:"http-max-header-bytes"`

	// MaxConnections is `max-connections` / GATEWAY_MAX_CONNECTIONS, the
	// most TCP connections the main port holds (WebSockets included):
	// above 90% of it idle keep-alive connections are closed, at it new
	// connections are closed at once. Zero (the default) means the
	// process's open-file limit minus 128.
	MaxConnections int `mapstructure:"max-connections"`

	// MaxConnectionsPerIP is `max-connections-per-ip` /
	// GATEWAY_MAX_CONNECTIONS_PER_IP, the TCP connections of the main port
	// one client address may hold; trusted-proxies are not counted (they
	// carry many clients). Zero (the default) means a quarter of
	// max-connections, at most 1024.
	MaxConnectionsPerIP int `mapstructure:"max-connections-per-ip"`

	// ProducerBodyTimeout is `producer-body-timeout` /
	// GATEWAY_PRODUCER_BODY_TIMEOUT, the longest a producer (webhook,
	// publish API, job registry) may take to send its body; slower ones
	// answer 408. Default 10s.
	ProducerBodyTimeout time.Duration `mapstructure:"producer-body-timeout"`

	// MaxProducerRequests is `max-producer-requests` /
	// GATEWAY_MAX_PRODUCER_REQUESTS, the producer requests handled at once;
	// more answer 503 with Retry-After. Default 256.
	MaxProducerRequests int `mapstructure:"max-producer-requests"`

	// MaxProducerRequestsPerIP is `max-producer-requests-per-ip` /
	// GATEWAY_MAX_PRODUCER_REQUESTS_PER_IP, the share of
	// max-producer-requests one client address (an IPv6 /64; behind a
	// trusted proxy, the address of client-ip-header) may hold, so that one
	// sender of slow bodies cannot make every other producer's requests
	// answer 503. Zero (the default) means a quarter of
	// max-producer-requests.
	MaxProducerRequestsPerIP int `mapstructure:"max-producer-requests-per-ip"`

	// MaxClients is `max-clients` / GATEWAY_MAX_CLIENTS, the most
	// Socket.IO sessions a node holds; handshakes above it answer 503.
	// Zero (the default) means the process's open-file limit minus 256.
	MaxClients int `mapstructure:"max-clients"`

	// MaxPollingSessions is `max-polling-sessions` /
	// GATEWAY_MAX_POLLING_SESSIONS, the most sessions on long-polling (not
	// upgraded) a node holds; polling handshakes above it answer 503.
	// Default 10000.
	MaxPollingSessions int `mapstructure:"max-polling-sessions"`

	// HandshakeRate is `handshake-rate` / GATEWAY_HANDSHAKE_RATE, the
	// Engine.IO handshakes a node accepts per second (bursts of twice as
	// many); above it handshakes answer 503. Zero disables. Default 2000.
	HandshakeRate float64 `mapstructure:"handshake-rate"`

	// HandshakeRatePerIP is `handshake-rate-per-ip` /
	// GATEWAY_HANDSHAKE_RATE_PER_IP, the handshakes per second one client
	// address may make (bursts of twice as many); above it they answer
	// 503. Zero disables. Default 50. Behind a proxy set client-ip-header,
	// or every client shares the proxy's address.
	HandshakeRatePerIP float64 `mapstructure:"handshake-rate-per-ip"`

	// ClientIPHeader is `client-ip-header` / GATEWAY_CLIENT_IP_HEADER, a
	// header naming the client's address (X-Forwarded-For: its last
	// entry; X-Real-IP), believed only from trusted-proxies. Empty (the
	// default) uses the connection's address.
	ClientIPHeader string `mapstructure:"client-ip-header"`

	// TrustedProxies is `trusted-proxies` / GATEWAY_TRUSTED_PROXIES,
	// comma-separated CIDRs whose client-ip-header is believed. Default
	// none.
	TrustedProxies []string `mapstructure:"trusted-proxies"`

	// ClientMaxRooms is `client-max-rooms` / GATEWAY_CLIENT_MAX_ROOMS, the
	// project and batch rooms one client may be in. Default 100.
	ClientMaxRooms int `mapstructure:"client-max-rooms"`

	// ClientMaxFollows is `client-max-follows` /
	// GATEWAY_CLIENT_MAX_FOLLOWS, the jobs whose logs one client may
	// follow. Default 20.
	ClientMaxFollows int `mapstructure:"client-max-follows"`

	// ClientEventRate is `client-event-rate` / GATEWAY_CLIENT_EVENT_RATE,
	// the events per second one client may send (bursts of twice as many);
	// above it an event answers error "Rate limit exceeded", and a client
	// that goes on for client-event-abuse-window is disconnected. Default
	// 20.
	ClientEventRate float64 `mapstructure:"client-event-rate"`

	// ClientEventAbuseWindow is `client-event-abuse-window` /
	// GATEWAY_CLIENT_EVENT_ABUSE_WINDOW, how long a client may go on being
	// refused for its event rate (without a second's pause) before it is
	// disconnected. Default 10s.
	ClientEventAbuseWindow time.Duration `mapstructure:"client-event-abuse-window"`

	// LogClientRate and LogClientBurst are `log-client-rate` /
	// GATEWAY_LOG_CLIENT_RATE and `log-client-burst` /
	// GATEWAY_LOG_CLIENT_BURST: the log lines per second (and their burst)
	// that clients can cause (refused handshakes, joins, connects, events);
	// past them lines are left out and counted, the next line saying how
	// many. Defaults 10 and 50.
	LogClientRate  float64 `mapstructure:"log-client-rate"`
	LogClientBurst int     `mapstructure:"log-client-burst"`

	// ClientMaxPollingBuffer is `client-max-polling-buffer` /
	// GATEWAY_CLIENT_MAX_POLLING_BUFFER, the bytes queued for one
	// long-polling client between its polls; past it the client is
	// disconnected (its room keeps flowing), as a WebSocket client with
	// 8 MiB unread is. Default 8 MiB.
	ClientMaxPollingBuffer int64 `mapstructure:"client-max-polling-buffer"`

	// RecoveryMaxDisconnection is `recovery-max-disconnection` /
	// GATEWAY_RECOVERY_MAX_DISCONNECTION, how long after a disconnect a
	// client's session (its rooms, its log follows) can be recovered with
	// every event it missed, on any node. Zero turns connection state
	// recovery off. Default 2m.
	RecoveryMaxDisconnection time.Duration `mapstructure:"recovery-max-disconnection"`

	// RecoveryMaxEvents is `recovery-max-events` /
	// GATEWAY_RECOVERY_MAX_EVENTS, the most events one recovery replays;
	// a client that missed more is not recovered (it rejoins as a new
	// one). Default 1000.
	RecoveryMaxEvents int `mapstructure:"recovery-max-events"`

	// RecoveryBacklogBytes is `recovery-backlog-bytes` /
	// GATEWAY_RECOVERY_BACKLOG_BYTES, the memory a node gives the recent
	// events it keeps to replay without reading Redis (and, with the
	// in-process bus, the only place they are kept). Default 32 MiB.
	RecoveryBacklogBytes int64 `mapstructure:"recovery-backlog-bytes"`

	// StateOnJoin is `state-on-join` / GATEWAY_STATE_ON_JOIN: a client
	// that joins a batch's room gets the batch's current batch_status
	// right after joined_batch: the last one the node delivered, else the
	// registry's counts when it knows the batch. Default true.
	StateOnJoin bool `mapstructure:"state-on-join"`

	// MemoryLimit is `memory-limit` / GATEWAY_MEMORY_LIMIT, the container's
	// memory limit in bytes (the manifests set it from the downward API).
	// The Go runtime's soft memory limit is set to 90% of it, leaving room
	// for what the runtime does not count (the binary's pages, the kernel's
	// socket buffers are the kernel's), unless GOMEMLIMIT is set. 0 (the
	// default): no soft limit beyond GOMEMLIMIT.
	MemoryLimit int64 `mapstructure:"memory-limit"`

	// GCMinPercent is `gc-min-percent` / GATEWAY_GC_MIN_PERCENT, the lowest
	// GC percentage of the gateway's collection policy (package gctune):
	// when GOGC is not set, the percentage follows the allocation rate,
	// from 100 (Go's default) under load down to this one while little
	// allocates (a gateway holding idle sessions), so the resident memory
	// follows the live heap. 100 turns the policy off. Default 25.
	GCMinPercent int `mapstructure:"gc-min-percent"`

	// MetricsAddr is `metrics-addr` / GATEWAY_METRICS_ADDR, host:port of a
	// separate listener serving /metrics; when set, the main port does not
	// serve it. Empty (the default) serves it on the main port.
	MetricsAddr string `mapstructure:"metrics-addr"`

	// ShutdownTimeout is `shutdown-timeout` / GATEWAY_SHUTDOWN_TIMEOUT, the
	// hard deadline for a graceful stop after SIGTERM, drain included.
	// Default 30s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`

	// StatusToken is `status-token` / GATEWAY_STATUS_TOKEN, the token of the
	// status page (/status), given as "Authorization: Bearer <token>" or
	// through its login form. Empty (the default) turns the page off in
	// production; development then serves it without a token.
	StatusToken string `mapstructure:"status-token"`

	// StatusMaxStreams is `status-max-streams` / GATEWAY_STATUS_MAX_STREAMS,
	// how many live status streams (Server-Sent Events) one node serves at
	// once; more answer 503. Default 16.
	StatusMaxStreams int `mapstructure:"status-max-streams"`

	// StatusRecent is `status-recent` / GATEWAY_STATUS_RECENT, how many of
	// the latest events the status page lists. Default 50, at most 1000.
	StatusRecent int `mapstructure:"status-recent"`

	// StatusLoginAttempts is `status-login-attempts` /
	// GATEWAY_STATUS_LOGIN_ATTEMPTS, how many wrong status tokens one node
	// accepts per minute; once spent, every login answers 429 until the
	// minute refills (sessions already logged in keep working). Default 10.
	StatusLoginAttempts int `mapstructure:"status-login-attempts"`

	// StatusInterval is `status-interval` / GATEWAY_STATUS_INTERVAL, how
	// often the status page's figures are sampled, pushed to open pages and
	// announced to the other nodes (through Redis, with an expiry of three
	// intervals). Default 2s.
	StatusInterval time.Duration `mapstructure:"status-interval"`
}

// Default returns the configuration used when nothing is set. Where a
// package has a default of its own, this is it: one source for each.
func Default() Config {
	return Config{
		Env:                      EnvProduction,
		Host:                     "",
		Port:                     5000,
		Role:                     RoleAll,
		RedisStream:              bus.DefaultStream,
		RedisStreamMaxLen:        bus.DefaultStreamMaxLen,
		RedisStreamMaxAge:        bus.DefaultStreamMaxAge,
		RedisReplicaTimeout:      bus.DefaultReplicaTimeout,
		DedupeWindow:             bus.DefaultDedupeWindow,
		CanaryInterval:           bus.DefaultCanaryInterval,
		CanaryTimeout:            bus.DefaultCanaryTimeout,
		JobTTL:                   registry.DefaultJobTTL,
		FlaskQueue:               true,
		FlaskChannel:             flaskbridge.DefaultChannel,
		LogsChannel:              rooms.DefaultLogsChannel,
		FollowTTL:                rooms.DefaultFollowTTL,
		DrainWindow:              20 * time.Second,
		LogLevel:                 "info",
		LogFormat:                "auto",
		WebhookMaxBodyBytes:      httpapi.DefaultBodyLimit,
		JobsMaxBodyBytes:         httpapi.DefaultBodyLimit,
		EventsMaxBodyBytes:       httpapi.DefaultBodyLimit,
		SocketMaxMessageBytes:    gateway.DefaultMaxMessageBytes,
		MaxIDLength:              rooms.DefaultMaxIDLength,
		JWKSRefresh:              auth.DefaultJWKSRefresh,
		JWTLeeway:                auth.DefaultLeeway,
		JWTProjectsClaim:         auth.DefaultProjectsClaim,
		JWTBatchesClaim:          auth.DefaultBatchesClaim,
		AuthTimeout:              auth.DefaultBackendTimeout,
		AuthCacheTTL:             auth.DefaultCacheTTL,
		SignatureTolerance:       signature.DefaultTolerance,
		PingInterval:             gateway.DefaultPingInterval,
		PingTimeout:              gateway.DefaultPingTimeout,
		ConnectTimeout:           gateway.DefaultConnectTimeout,
		HTTPReadTimeout:          30 * time.Second,
		HTTPIdleTimeout:          60 * time.Second,
		HTTPMaxHeaderBytes:       64 << 10,
		ProducerBodyTimeout:      httpapi.DefaultBodyTimeout,
		MaxProducerRequests:      256,
		MaxPollingSessions:       10_000,
		HandshakeRate:            2000,
		HandshakeRatePerIP:       50,
		ClientMaxRooms:           rooms.DefaultMaxRooms,
		ClientMaxFollows:         rooms.DefaultMaxFollows,
		ClientEventRate:          gateway.DefaultClientEventRate,
		ClientEventAbuseWindow:   gateway.DefaultClientEventAbuseWindow,
		LogClientRate:            ratelog.DefaultPerSecond,
		LogClientBurst:           ratelog.DefaultBurst,
		ClientMaxPollingBuffer:   gateway.DefaultMaxPollingBuffer,
		RecoveryMaxDisconnection: 2 * time.Minute,
		RecoveryMaxEvents:        recovery.DefaultMaxEvents,
		RecoveryBacklogBytes:     recovery.DefaultBacklogBytes,
		StateOnJoin:              true,
		GCMinPercent:             gctune.DefaultFloor,
		ShutdownTimeout:          30 * time.Second,
		StatusMaxStreams:         status.DefaultMaxStreams,
		StatusRecent:             status.DefaultRecent,
		StatusLoginAttempts:      status.DefaultLoginAttempts,
		StatusInterval:           status.DefaultInterval,
	}
}

// AuthMode is the auth mode in effect: the configured one, or none when it
// is not set (which only development allows).
func (c Config) AuthMode() string {
	if c.Auth == "" {
		return auth.ModeNone
	}
	return c.Auth
}

// Development reports whether the gateway runs in development mode.
func (c Config) Development() bool { return c.Env == EnvDevelopment }

// VerifyWebhooks reports whether Modal webhook signatures are checked.
// Only development without a secret skips the check.
func (c Config) VerifyWebhooks() bool { return len(c.ModalWebhookSecrets) > 0 }

// ServesSockets reports whether this node serves Socket.IO (and so
// consumes the bus).
func (c Config) ServesSockets() bool { return c.Role != RoleWebhook }

// ServesProducers reports whether this node serves the webhook and the
// producer APIs.
func (c Config) ServesProducers() bool { return c.Role != RoleSocket }

// ServesStatus reports whether this node serves the status page: with a
// token, or in development.
func (c Config) ServesStatus() bool { return c.StatusToken != "" || c.Development() }

// AllowedOrigins returns the CORS origins in effect: the configured ones, or
// DevOrigins in development when none are configured.
func (c Config) AllowedOrigins() []string {
	if len(c.CORSOrigins) > 0 {
		return c.CORSOrigins
	}
	if c.Development() {
		return DevOrigins
	}
	return nil
}

// Addr is the listen address, host:port.
func (c Config) Addr() string {
	return joinHostPort(c.Host, c.Port)
}

// LogValue keeps secrets out of logs: it reports how many secrets are set,
// never their values.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("env", c.Env),
		slog.String("addr", c.Addr()),
		slog.Int("webhook_secrets", len(c.ModalWebhookSecrets)),
		slog.Any("cors_origins", c.AllowedOrigins()),
		slog.String("role", c.Role),
		slog.Bool("redis", c.RedisURL != ""),
		slog.Int("jobs_secrets", len(c.JobsSecrets)),
		slog.Int("events_secrets", len(c.EventsSecrets)),
		slog.String("auth", c.AuthMode()),
		slog.Bool("require_timestamp", c.RequireTimestamp),
		slog.Duration("drain_window", c.DrainWindow),
		slog.String("log_level", c.LogLevel),
		slog.Int64("webhook_max_body_bytes", c.WebhookMaxBodyBytes),
		slog.Int64("jobs_max_body_bytes", c.JobsMaxBodyBytes),
		slog.Int64("events_max_body_bytes", c.EventsMaxBodyBytes),
		slog.Int64("socket_max_message_bytes", c.SocketMaxMessageBytes),
		slog.Duration("ping_interval", c.PingInterval),
		slog.Duration("ping_timeout", c.PingTimeout),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.String("debug_addr", c.DebugAddr),
		slog.Int64("memory_limit", c.MemoryLimit),
		slog.Int("gc_min_percent", c.GCMinPercent),
		slog.Bool("status_token", c.StatusToken != ""),
		slog.Int("status_max_streams", c.StatusMaxStreams),
	)
}
