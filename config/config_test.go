package config

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	return Load(NewFlagSet("gateway", io.Discard), args)
}

func TestLoadDefaultsDevelopment(t *testing.T) {
	t.Setenv("GATEWAY_ENV", "development")
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 5000 || c.WebhookMaxBodyBytes != 1<<20 || c.PingInterval != 25*time.Second || c.ShutdownTimeout != 30*time.Second || c.DrainWindow != 20*time.Second || c.Role != RoleAll || !c.FlaskQueue {
		t.Fatalf("defaults wrong: %+v", c)
	}
	if c.VerifyWebhooks() {
		t.Fatal("no secret set, yet verification on")
	}
	if !slices.Equal(c.AllowedOrigins(), DevOrigins) {
		t.Fatalf("dev origins = %v", c.AllowedOrigins())
	}
}

func TestLoadLegacyEnv(t *testing.T) {
	t.Setenv("PORT", "7000")
	t.Setenv("GATEWAY_AUTH", "none")
	t.Setenv("MODAL_WEBHOOK_SECRET", " new-secret-of-at-least-32-bytes-long , old-secret-of-at-least-32-bytes-long ,")
	t.Setenv("CORS_ORIGINS", "https://a.example.com, https://b.example.com")
	t.Setenv("REDIS_URL", "redis://localhost:6379/0")
	c, err := load(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Env != EnvProduction || c.Port != 7000 || c.RedisURL != "redis://localhost:6379/0" {
		t.Fatalf("got %+v", c)
	}
	if !slices.Equal(c.ModalWebhookSecrets, []string{"new-secret-of-at-least-32-bytes-long", "old-secret-of-at-least-32-bytes-long"}) {
		t.Fatalf("secrets = %v", c.ModalWebhookSecrets)
	}
	if !slices.Equal(c.AllowedOrigins(), []string{"https://a.example.com", "https://b.example.com"}) {
		t.Fatalf("origins = %v", c.AllowedOrigins())
	}
}

func TestLoadPrecedence(t *testing.T) {
	t.Setenv("GATEWAY_ENV", "development")
	t.Setenv("PORT", "7000")
	t.Setenv("GATEWAY_LOG_LEVEL", "warn")
	c, err := load(t, "--config", "testdata/gateway.yaml", "--port", "7100")
	if err != nil {
		t.Fatal(err)
	}
	if c.Port != 7100 {
		t.Errorf("flag should win: port = %d", c.Port)
	}
	if c.LogLevel != "warn" {
		t.Errorf("env should beat file: log-level = %q", c.LogLevel)
	}
	if c.PingInterval != 5*time.Second || c.WebhookMaxBodyBytes != 2048 {
		t.Errorf("file values not read: %+v", c)
	}
	if !slices.Equal(c.CORSOrigins, []string{"https://app.example.com", "http://localhost:5173"}) {
		t.Errorf("file list = %v", c.CORSOrigins)
	}
	// Kubernetes service links set GATEWAY_PORT for a Service named gateway.
	t.Setenv("GATEWAY_PORT", "tcp://10.0.0.1:80")
	if c, err = load(t, "--config", "testdata/gateway.yaml"); err != nil || c.Port != 7000 {
		t.Errorf("GATEWAY_PORT must be ignored: port = %d, err = %v", c.Port, err)
	}
}

// long is a secret long enough for production.
const long = "a-secret-of-more-than-32-bytes-for-production"

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"production without secret", map[string]string{"GATEWAY_AUTH": "none"}, nil, "modal-webhook-secret (MODAL_WEBHOOK_SECRET) is required in production"},
		{"production without auth", map[string]string{"MODAL_WEBHOOK_SECRET": long}, nil, "auth (GATEWAY_AUTH) must be set in production"},
		{"production with a short secret", map[string]string{"GATEWAY_AUTH": "none", "MODAL_WEBHOOK_SECRET": long + ",short"}, nil, "modal-webhook-secret (MODAL_WEBHOOK_SECRET): secret #2 is 5 bytes; production needs at least 32"},
		{"one secret for two routes", map[string]string{"GATEWAY_ENV": "development", "MODAL_WEBHOOK_SECRET": "shared", "GATEWAY_EVENTS_SECRET": "other,shared"}, nil,
			"modal-webhook-secret (MODAL_WEBHOOK_SECRET) and events-secret (GATEWAY_EVENTS_SECRET) share a secret"},
		{"jwt secret equal to a webhook secret", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "jwt", "MODAL_WEBHOOK_SECRET": "shared", "GATEWAY_JWT_SECRETS": "shared"}, nil, "share a secret"},
		{"bad auth mode", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "ldap"}, nil, `auth (GATEWAY_AUTH) = "ldap": must be none, jwt or backend`},
		{"jwt without keys", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "jwt"}, nil, "jwt needs jwt-secrets"},
		{"jwt with a missing key file", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "jwt", "GATEWAY_JWT_PUBLIC_KEYS": "testdata/nope.pem"}, nil, `jwt-public-keys (GATEWAY_JWT_PUBLIC_KEYS) = "testdata/nope.pem": cannot be read`},
		{"jwks not http", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "jwt", "GATEWAY_JWKS_URL": "file:///etc/passwd"}, nil, "jwks-url (GATEWAY_JWKS_URL)"},
		{"backend without url", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "backend", "GATEWAY_AUTH_SECRET": "s"}, nil, "auth-url (GATEWAY_AUTH_URL)"},
		{"backend without secret", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_AUTH": "backend", "GATEWAY_AUTH_URL": "http://backend/auth"}, nil, "auth-secret (GATEWAY_AUTH_SECRET) is required"},
		{"bad env", map[string]string{"GATEWAY_ENV": "staging"}, nil, `env (GATEWAY_ENV) = "staging"`},
		{"bad port", map[string]string{"GATEWAY_ENV": "development", "PORT": "70000"}, nil, `port (PORT) = "70000"`},
		{"port not a number", map[string]string{"GATEWAY_ENV": "development", "PORT": "abc"}, nil, `port (PORT) = "abc": must be an integer`},
		{"duration not a duration", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_PING_TIMEOUT": "abc"}, nil, `ping-timeout (GATEWAY_PING_TIMEOUT) = "abc": must be a duration`},
		{"duration without a unit", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_PING_TIMEOUT": "20"}, nil, `ping-timeout (GATEWAY_PING_TIMEOUT) = "20": must be a duration`},
		{"bool not a bool", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_FLASK_QUEUE": "maybe"}, nil, `flask-queue (GATEWAY_FLASK_QUEUE) = "maybe": must be true or false`},
		{"body limit not a number", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_EVENTS_MAX_BODY_BYTES": "1MB"}, nil, `events-max-body-bytes (GATEWAY_EVENTS_MAX_BODY_BYTES) = "1MB": must be an integer`},
		{"zero jobs body limit", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_JOBS_MAX_BODY_BYTES": "0"}, nil, "jobs-max-body-bytes"},
		{"bad origin", map[string]string{"GATEWAY_ENV": "development", "CORS_ORIGINS": "localhost:3000"}, nil, `cors-origins (CORS_ORIGINS) = "localhost:3000"`},
		{"origin with path", map[string]string{"GATEWAY_ENV": "development", "CORS_ORIGINS": "https://a.com/app"}, nil, "no path"},
		{"bad redis url hides password", map[string]string{"GATEWAY_ENV": "development", "REDIS_URL": "http://u:hunter2@x"}, nil, "redis-url (REDIS_URL)"},
		{"bad log level", map[string]string{"GATEWAY_ENV": "development"}, []string{"--log-level", "loud"}, `log-level (GATEWAY_LOG_LEVEL) = "loud"`},
		{"zero body limit", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_WEBHOOK_MAX_BODY_BYTES": "0"}, nil, "webhook-max-body-bytes"},
		{"negative duration", map[string]string{"GATEWAY_ENV": "development"}, []string{"--ping-timeout", "-1s"}, "ping-timeout"},
		{"bad duration in file", nil, []string{"--config", "testdata/bad-duration.yaml"}, "ping-interval"},
		{"missing file", map[string]string{"GATEWAY_ENV": "development"}, []string{"--config", "testdata/nope.yaml"}, "testdata/nope.yaml"},
		{"unknown flag", nil, []string{"--nope"}, "unknown flag"},
		{"bad role", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_ROLE": "both"}, nil, `role (GATEWAY_ROLE) = "both"`},
		{"socket role without redis", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_ROLE": "socket"}, nil, "needs redis-url (REDIS_URL)"},
		{"drain not shorter than shutdown", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_DRAIN_WINDOW": "30s"}, nil, "drain-window (GATEWAY_DRAIN_WINDOW)"},
		{"negative min replicas", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_REDIS_MIN_REPLICAS": "-1"}, nil, "redis-min-replicas (GATEWAY_REDIS_MIN_REPLICAS)"},
		{"replica timeout too long", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_REDIS_REPLICA_TIMEOUT": "1m"}, nil, "redis-replica-timeout (GATEWAY_REDIS_REPLICA_TIMEOUT)"},
		{"zero replica timeout", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_REDIS_REPLICA_TIMEOUT": "0s"}, nil, "redis-replica-timeout"},
		{"follow ttl too short", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_FOLLOW_TTL": "100ms"}, nil, `follow-ttl (GATEWAY_FOLLOW_TTL) = "100ms": must be between 1s and 1h`},
		{"canary timeout too short", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_CANARY_TIMEOUT": "1s"}, nil, "canary-timeout"},
		{"extra event reserved", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_EXTRA_EVENTS": "disconnect"}, nil, "reserved by Socket.IO"},
		{"extra event of the protocol", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_EXTRA_EVENTS": "log_line"}, nil, "already a protocol event"},
		{"debug addr without port", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_DEBUG_ADDR": "127.0.0.1"}, nil, `debug-addr (GATEWAY_DEBUG_ADDR) = "127.0.0.1"`},
		{"debug addr on the main port", map[string]string{"GATEWAY_ENV": "development"}, []string{"--debug-addr", ":5000"}, "must differ from the main listen address"},
		{"extra event with space", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_EXTRA_EVENTS": "ok,bad name"}, nil, `extra-events (GATEWAY_EXTRA_EVENTS) = "bad name"`},
		{"short status token", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_STATUS_TOKEN": "short"}, nil, "status-token (GATEWAY_STATUS_TOKEN) is shorter than 16"},
		{"status ring too large", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_STATUS_RECENT": "5000"}, nil, `status-recent (GATEWAY_STATUS_RECENT) = "5000": must be between 1 and 1000`},
		{"no status streams", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_STATUS_MAX_STREAMS": "0"}, nil, `status-max-streams (GATEWAY_STATUS_MAX_STREAMS) = "0"`},
		{"no login attempts", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_STATUS_LOGIN_ATTEMPTS": "0"}, nil, `status-login-attempts (GATEWAY_STATUS_LOGIN_ATTEMPTS) = "0"`},
		{"status interval too short", map[string]string{"GATEWAY_ENV": "development", "GATEWAY_STATUS_INTERVAL": "10ms"}, nil, `status-interval (GATEWAY_STATUS_INTERVAL) = "10ms"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := load(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("password leaked: %v", err)
			}
		})
	}
}

func TestHelpListsEveryKey(t *testing.T) {
	var out strings.Builder
	_, err := Load(NewFlagSet("gateway", &out), []string{"--help"})
	if !errors.Is(err, ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, key := range Keys() {
		if !strings.Contains(out.String(), "--"+key) || !strings.Contains(out.String(), "(env "+EnvName(key)+")") {
			t.Errorf("--help misses %s / %s", key, EnvName(key))
		}
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	c := Default()
	c.ModalWebhookSecrets = []string{"very-secret"}
	c.RedisURL = "redis://:pw@host"
	c.StatusToken = "status-token-secret"
	if s := c.LogValue().String(); strings.Contains(s, "very-secret") || strings.Contains(s, "pw@") || strings.Contains(s, "status-token-secret") {
		t.Fatalf("LogValue leaks: %s", s)
	}
}
