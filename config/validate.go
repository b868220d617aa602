package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshgen/gateway/auth"
	"github.com/meshgen/gateway/event"
	"github.com/meshgen/gateway/rooms"
	"github.com/meshgen/gateway/status"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("config: invalid")

// invalid builds an error naming the key, its environment variable and the
// bad value. Secrets are never passed as value.
func invalid(key string, value any, why string) error {
	return fmt.Errorf("%w: %s (%s) = %q: %s", ErrInvalid, key, EnvName(key), fmt.Sprint(value), why)
}

// Validate checks every field and returns the first problem, naming the key
// and the bad value.
func (c Config) Validate() error {
	switch c.Env {
	case EnvDevelopment, EnvProduction:
	default:
		return invalid("env", c.Env, "must be development or production")
	}
	if c.Port < 1 || c.Port > 65535 {
		return invalid("port", c.Port, "must be between 1 and 65535")
	}
	for _, a := range []struct{ key, value string }{{"debug-addr", c.DebugAddr}, {"metrics-addr", c.MetricsAddr}} {
		if a.value == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a.value)
		if err != nil {
			return invalid(a.key, a.value, "must be host:port such as 127.0.0.1:6060")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return invalid(a.key, a.value, "port must be between 1 and 65535")
		}
		if host == c.Host && port == strconv.Itoa(c.Port) {
			return invalid(a.key, a.value, "must differ from the main listen address")
		}
	}
	if c.DebugAddr != "" && c.DebugAddr == c.MetricsAddr {
		return invalid("metrics-addr", c.MetricsAddr, "must differ from debug-addr")
	}
	if c.Env == EnvProduction && len(c.ModalWebhookSecrets) == 0 {
		return fmt.Errorf("%w: modal-webhook-secret (MODAL_WEBHOOK_SECRET) is required in production; set it, or set GATEWAY_ENV=development to skip webhook verification", ErrInvalid)
	}
	switch c.Role {
	case RoleAll:
	case RoleWebhook, RoleSocket:
		if c.RedisURL == "" {
			return invalid("role", c.Role, "a webhook-only or socket-only node needs redis-url (REDIS_URL) to reach the other nodes")
		}
	default:
		return invalid("role", c.Role, "must be all, webhook or socket")
	}
	for _, origin := range c.CORSOrigins {
		if err := checkOrigin(origin); err != nil {
			return invalid("cors-origins", origin, err.Error())
		}
	}
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return invalid("redis-url", redact(c.RedisURL), "must be a redis://, rediss:// or unix:// URL")
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return invalid("log-level", c.LogLevel, "must be debug, info, warn or error")
	}
	switch c.LogFormat {
	case "auto", "json", "text":
	default:
		return invalid("log-format", c.LogFormat, "must be auto, json or text")
	}
	for _, b := range []struct {
		key   string
		value int64
	}{
		{"webhook-max-body-bytes", c.WebhookMaxBodyBytes},
		{"jobs-max-body-bytes", c.JobsMaxBodyBytes},
		{"events-max-body-bytes", c.EventsMaxBodyBytes},
	} {
		if b.value < 1 {
			return invalid(b.key, b.value, "must be positive")
		}
	}
	if c.SocketMaxMessageBytes < 1 {
		return invalid("socket-max-message-bytes", c.SocketMaxMessageBytes, "must be positive")
	}
	if c.MaxIDLength < 1 || c.MaxIDLength > rooms.MaxIDLengthLimit {
		return invalid("max-id-length", c.MaxIDLength, fmt.Sprintf("must be between 1 and %d", rooms.MaxIDLengthLimit))
	}
	for _, d := range []struct {
		key   string
		value time.Duration
	}{
		{"ping-interval", c.PingInterval},
		{"ping-timeout", c.PingTimeout},
		{"connect-timeout", c.ConnectTimeout},
		{"shutdown-timeout", c.ShutdownTimeout},
		{"redis-stream-max-age", c.RedisStreamMaxAge},
		{"dedupe-window", c.DedupeWindow},
		{"redis-replica-timeout", c.RedisReplicaTimeout},
		{"canary-interval", c.CanaryInterval},
		{"canary-timeout", c.CanaryTimeout},
		{"job-ttl", c.JobTTL},
		{"jwks-refresh", c.JWKSRefresh},
		{"jwt-leeway", c.JWTLeeway},
		{"auth-timeout", c.AuthTimeout},
		{"auth-cache-ttl", c.AuthCacheTTL},
		{"signature-tolerance", c.SignatureTolerance},
		{"http-read-timeout", c.HTTPReadTimeout},
		{"http-idle-timeout", c.HTTPIdleTimeout},
		{"producer-body-timeout", c.ProducerBodyTimeout},
		{"client-event-abuse-window", c.ClientEventAbuseWindow},
	} {
		if d.value <= 0 {
			return invalid(d.key, d.value, "must be a positive duration such as 10s")
		}
	}
	if c.RecoveryMaxDisconnection < 0 || c.RecoveryMaxDisconnection > 24*time.Hour {
		return invalid("recovery-max-disconnection", c.RecoveryMaxDisconnection, "must be between 0 (off) and 24h")
	}
	if c.RedisURL != "" && c.RedisStreamMaxAge > 0 && c.RecoveryMaxDisconnection > c.RedisStreamMaxAge {
		return invalid("recovery-max-disconnection", c.RecoveryMaxDisconnection, "must not exceed redis-stream-max-age ("+c.RedisStreamMaxAge.String()+"): the events of a longer disconnection are trimmed")
	}
	if c.DrainWindow < 0 || c.DrainWindow >= c.ShutdownTimeout {
		return invalid("drain-window", c.DrainWindow, "must be at least 0 and shorter than shutdown-timeout ("+c.ShutdownTimeout.String()+")")
	}
	if c.CanaryTimeout <= c.CanaryInterval {
		return invalid("canary-timeout", c.CanaryTimeout, "must be longer than canary-interval ("+c.CanaryInterval.String()+")")
	}
	if c.RedisMinReplicas < 0 || c.RedisMinReplicas > maxMinReplicas {
		return invalid("redis-min-replicas", c.RedisMinReplicas, fmt.Sprintf("must be between 0 (off) and %d", maxMinReplicas))
	}
	if c.RedisReplicaTimeout > maxReplicaTimeout {
		return invalid("redis-replica-timeout", c.RedisReplicaTimeout, "must be at most "+maxReplicaTimeout.String()+": a publish holds its request that long")
	}
	if c.RedisStreamMaxLen < 1000 {
		return invalid("redis-stream-max-len", c.RedisStreamMaxLen, "must be at least 1000")
	}
	if c.FollowTTL < time.Second || c.FollowTTL > time.Hour {
		return invalid("follow-ttl", c.FollowTTL, "must be between 1s and 1h")
	}
	if c.RedisStream == "" || c.FlaskChannel == "" || c.LogsChannel == "" {
		return fmt.Errorf("%w: redis-stream, flask-channel and logs-channel must not be empty", ErrInvalid)
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if err := c.validateSecrets(); err != nil {
		return err
	}
	if err := c.validateStatus(); err != nil {
		return err
	}
	for _, name := range c.ExtraEvents {
		if err := event.CheckExtra(name); err != nil {
			return invalid("extra-events", name, err.Error())
		}
	}
	return nil
}

// validateLimits checks the bounds of the limits issue's keys.
func (c Config) validateLimits() error {
	for _, n := range []struct {
		key      string
		value    int64
		min, max int64
		why      string
	}{
		{"http-max-header-bytes", int64(c.HTTPMaxHeaderBytes), 4 << 10, 1 << 20, "must be between 4096 and 1048576"},
		{"max-connections", int64(c.MaxConnections), 0, 10_000_000, "must be 0 (from the open-file limit) or positive"},
		{"memory-limit", c.MemoryLimit, 0, 1 << 50, "must be 0 (none) or the container's memory limit in bytes"},
		{"gc-min-percent", int64(c.GCMinPercent), 1, 100, "must be between 1 and 100 (100: the policy is off)"},
		{"max-connections-per-ip", int64(c.MaxConnectionsPerIP), 0, 10_000_000, "must be 0 (a quarter of max-connections) or positive"},
		{"max-producer-requests", int64(c.MaxProducerRequests), 1, 1_000_000, "must be positive"},
		{"log-client-burst", int64(c.LogClientBurst), 1, 1_000_000, "must be positive"},
		{"max-producer-requests-per-ip", int64(c.MaxProducerRequestsPerIP), 0, 1_000_000, "must be 0 (a quarter of max-producer-requests) or positive"},
		{"max-clients", int64(c.MaxClients), 0, 10_000_000, "must be 0 (from the open-file limit) or positive"},
		{"max-polling-sessions", int64(c.MaxPollingSessions), 0, 10_000_000, "must be 0 (no long-polling session) or positive"},
		{"client-max-rooms", int64(c.ClientMaxRooms), 1, 100_000, "must be between 1 and 100000"},
		{"client-max-follows", int64(c.ClientMaxFollows), 1, 10_000, "must be between 1 and 10000"},
		{"client-max-polling-buffer", c.ClientMaxPollingBuffer, 64 << 10, 1 << 30, "must be between 65536 and 1073741824"},
		{"recovery-max-events", int64(c.RecoveryMaxEvents), 1, 1_000_000, "must be between 1 and 1000000"},
		{"recovery-backlog-bytes", c.RecoveryBacklogBytes, 1 << 20, 1 << 40, "must be at least 1048576"},
	} {
		if n.value < n.min || n.value > n.max {
			return invalid(n.key, n.value, n.why)
		}
	}
	for _, r := range []struct {
		key   string
		value float64
	}{{"handshake-rate", c.HandshakeRate}, {"handshake-rate-per-ip", c.HandshakeRatePerIP}, {"client-event-rate", c.ClientEventRate}, {"log-client-rate", c.LogClientRate}} {
		if r.value < 0 || r.value > 1e6 {
			return invalid(r.key, r.value, "must be between 0 and 1000000")
		}
	}
	if c.ClientEventRate == 0 {
		return invalid("client-event-rate", c.ClientEventRate, "must be positive")
	}
	for _, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return invalid("trusted-proxies", cidr, "must be a CIDR such as 10.0.0.0/8")
		}
	}
	if c.ClientIPHeader != "" && len(c.TrustedProxies) == 0 {
		return invalid("client-ip-header", c.ClientIPHeader, "needs trusted-proxies (GATEWAY_TRUSTED_PROXIES): a header from anyone else is not believed")
	}
	return nil
}

// minSecretBytes is the shortest secret production accepts: 32 bytes, the
// size of the HMAC-SHA256 digest.
const minSecretBytes = 32

// Bounds of redis-min-replicas and redis-replica-timeout.
const (
	maxMinReplicas    = 16
	maxReplicaTimeout = 10 * time.Second
)

// validateAuth checks the auth mode and what it needs.
func (c Config) validateAuth() error {
	switch c.Auth {
	case "":
		if c.Env == EnvProduction {
			return fmt.Errorf("%w: auth (GATEWAY_AUTH) must be set in production: jwt, backend, or none (every client can then read every project)", ErrInvalid)
		}
	case auth.ModeNone:
	case auth.ModeJWT:
		if len(c.JWTSecrets) == 0 && len(c.JWTPublicKeys) == 0 && c.JWKSURL == "" {
			return invalid("auth", c.Auth, "jwt needs jwt-secrets (GATEWAY_JWT_SECRETS), jwt-public-keys (GATEWAY_JWT_PUBLIC_KEYS) or jwks-url (GATEWAY_JWKS_URL)")
		}
		for _, path := range c.JWTPublicKeys {
			if _, err := os.Stat(path); err != nil {
				return invalid("jwt-public-keys", path, "cannot be read: "+err.Error())
			}
		}
		if c.JWKSURL != "" {
			if err := checkHTTPURL(c.JWKSURL); err != nil {
				return invalid("jwks-url", redact(c.JWKSURL), err.Error())
			}
		}
	case auth.ModeBackend:
		if err := checkHTTPURL(c.AuthURL); err != nil {
			return invalid("auth-url", redact(c.AuthURL), "backend needs an http(s) URL: "+err.Error())
		}
		if c.AuthSecret == "" {
			return fmt.Errorf("%w: auth-secret (GATEWAY_AUTH_SECRET) is required with auth backend: it signs the calls to the backend", ErrInvalid)
		}
	default:
		return invalid("auth", c.Auth, "must be none, jwt or backend")
	}
	return nil
}

// validateSecrets refuses one secret configured for two purposes (a
// signature made for one route would be accepted by the other), and, in
// production, secrets shorter than minSecretBytes. Secrets are never
// quoted.
func (c Config) validateSecrets() error {
	owner := map[string]string{}
	for _, set := range []struct {
		key     string
		secrets []string
	}{
		{"modal-webhook-secret", c.ModalWebhookSecrets},
		{"jobs-secret", c.JobsSecrets},
		{"events-secret", c.EventsSecrets},
		{"jwt-secrets", c.JWTSecrets},
		{"auth-secret", nonEmpty(c.AuthSecret)},
	} {
		for i, secret := range set.secrets {
			if other, dup := owner[secret]; dup && other != set.key {
				return fmt.Errorf("%w: %s (%s) and %s (%s) share a secret: give each its own", ErrInvalid, other, EnvName(other), set.key, EnvName(set.key))
			}
			owner[secret] = set.key
			if c.Env == EnvProduction && len(secret) < minSecretBytes {
				return fmt.Errorf("%w: %s (%s): secret #%d is %d bytes; production needs at least %d (openssl rand -hex 32)", ErrInvalid, set.key, EnvName(set.key), i+1, len(secret), minSecretBytes)
			}
		}
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// checkHTTPURL accepts an absolute http or https URL.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	return nil
}

// checkOrigin accepts "*" or scheme://host[:port] with no path.
func checkOrigin(origin string) error {
	if origin == "*" {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an origin such as https://app.example.com")
	}
	if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("an origin has no path, query or fragment")
	}
	return nil
}

// redact hides a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}

// validateStatus checks the status page's bounds.
func (c Config) validateStatus() error {
	if c.StatusToken != "" && len(c.StatusToken) < status.MinTokenLength {
		return fmt.Errorf("%w: status-token (GATEWAY_STATUS_TOKEN) is shorter than %d characters; use a long random value", ErrInvalid, status.MinTokenLength)
	}
	for _, b := range []struct {
		key        string
		value, max int
	}{
		{"status-max-streams", c.StatusMaxStreams, 10_000},
		{"status-recent", c.StatusRecent, status.MaxRecent},
		{"status-login-attempts", c.StatusLoginAttempts, 10_000},
	} {
		if b.value < 1 || b.value > b.max {
			return invalid(b.key, b.value, fmt.Sprintf("must be between 1 and %d", b.max))
		}
	}
	if c.StatusInterval < 100*time.Millisecond || c.StatusInterval > time.Minute {
		return invalid("status-interval", c.StatusInterval, "must be between 100ms and 1m")
	}
	return nil
}
