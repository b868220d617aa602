package config

import (
	"log/slog"
	"time"
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

	// LogLevel is `log-level` / GATEWAY_LOG_LEVEL: debug, info, warn, error.
	// Default info.
	LogLevel string `mapstructure:"log-level"`

	// LogFormat is `log-format` / GATEWAY_LOG_FORMAT: "json", "text" or
	// "auto". Default auto: JSON in production, text in development.
	LogFormat string `mapstructure:"log-format"`

	// WebhookMaxBodyBytes is `webhook-max-body-bytes` /
	// GATEWAY_WEBHOOK_MAX_BODY_BYTES, the largest webhook body accepted;
	// larger ones answer 413. Default 1 MiB.
	WebhookMaxBodyBytes int64 `mapstructure:"webhook-max-body-bytes"`

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

	// ShutdownTimeout is `shutdown-timeout` / GATEWAY_SHUTDOWN_TIMEOUT, the
	// hard deadline for a graceful stop after SIGTERM. Default 10s.
	ShutdownTimeout time.Duration `mapstructure:"shutdown-timeout"`
}

// Default returns the configuration used when nothing is set.
func Default() Config {
	return Config{
		Env:                   EnvProduction,
		Host:                  "",
		Port:                  5000,
		LogLevel:              "info",
		LogFormat:             "auto",
		WebhookMaxBodyBytes:   1 << 20,
		SocketMaxMessageBytes: 1_000_000,
		MaxIDLength:           128,
		PingInterval:          25 * time.Second,
		PingTimeout:           20 * time.Second,
		ConnectTimeout:        45 * time.Second,
		ShutdownTimeout:       10 * time.Second,
	}
}

// Development reports whether the gateway runs in development mode.
func (c Config) Development() bool { return c.Env == EnvDevelopment }

// VerifyWebhooks reports whether Modal webhook signatures are checked.
// Only development without a secret skips the check.
func (c Config) VerifyWebhooks() bool { return len(c.ModalWebhookSecrets) > 0 }

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
		slog.Bool("redis", c.RedisURL != ""),
		slog.String("log_level", c.LogLevel),
		slog.Int64("webhook_max_body_bytes", c.WebhookMaxBodyBytes),
		slog.Int64("socket_max_message_bytes", c.SocketMaxMessageBytes),
		slog.Duration("ping_interval", c.PingInterval),
		slog.Duration("ping_timeout", c.PingTimeout),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
	)
}
