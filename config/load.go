package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/cast"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// ErrHelp is returned by Load when --help was asked for; the usage has been
// written to the output given to NewFlagSet.
var ErrHelp = pflag.ErrHelp

// envPrefix prefixes every environment variable except the legacy names the
// existing Flask backend already uses (see legacyEnv).
const envPrefix = "GATEWAY"

// legacyEnv maps keys to environment names shared with the existing backend.
// The GATEWAY_-prefixed name, when set, wins over the legacy one, except for
// port: Kubernetes sets GATEWAY_PORT=tcp://... for a Service named "gateway"
// (service links), so port is read from PORT only.
var legacyEnv = map[string]string{
	"port":                 "PORT",
	"modal-webhook-secret": "MODAL_WEBHOOK_SECRET",
	"cors-origins":         "CORS_ORIGINS",
	"redis-url":            "REDIS_URL",
}

// EnvName returns the environment variable that sets key.
func EnvName(key string) string {
	if name, ok := legacyEnv[key]; ok {
		return name
	}
	return prefixedEnvName(key)
}

func prefixedEnvName(key string) string {
	return envPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(key))
}

// NewFlagSet returns the command-line flags of the gateway, one per config
// key, each with its default and environment variable in its usage line.
// Usage output goes to out.
func NewFlagSet(name string, out io.Writer) *pflag.FlagSet {
	d := Default()
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(out)
	fs.SortFlags = false
	usage := func(key, text string) string { return fmt.Sprintf("%s (env %s)", text, EnvName(key)) }

	fs.String("config", "", "optional config file (yaml, json or toml); flags and environment override it")
	fs.String("env", d.Env, usage("env", "development or production"))
	fs.String("host", d.Host, usage("host", "listen address; empty means all interfaces"))
	fs.Int("port", d.Port, usage("port", "port serving the HTTP API and Socket.IO"))
	fs.String("modal-webhook-secret", "", usage("modal-webhook-secret", "comma-separated HMAC secrets for Modal webhooks; required in production"))
	fs.String("cors-origins", "", usage("cors-origins", "comma-separated allowed origins, or *; development defaults to "+strings.Join(DevOrigins, ",")))
	fs.String("redis-url", d.RedisURL, usage("redis-url", "Redis URL; empty runs one node on the in-process bus"))
	fs.String("role", d.Role, usage("role", "all, webhook (receive and publish only) or socket (Socket.IO only); webhook and socket need redis-url"))
	fs.String("redis-stream", d.RedisStream, usage("redis-stream", "stream key of the Redis bus"))
	fs.Int64("redis-stream-max-len", d.RedisStreamMaxLen, usage("redis-stream-max-len", "the stream is trimmed to about this many entries"))
	fs.Duration("redis-stream-max-age", d.RedisStreamMaxAge, usage("redis-stream-max-age", "stream entries older than this are trimmed"))
	fs.Int("redis-min-replicas", d.RedisMinReplicas, usage("redis-min-replicas", "acknowledge a publish only once this many Redis replicas confirmed it (0: once the master has it)"))
	fs.Duration("redis-replica-timeout", d.RedisReplicaTimeout, usage("redis-replica-timeout", "how long a publish waits for redis-min-replicas replicas before answering 503"))
	fs.Duration("dedupe-window", d.DedupeWindow, usage("dedupe-window", "a webhook with the same job_id and status within this window reaches clients once"))
	fs.Duration("canary-interval", d.CanaryInterval, usage("canary-interval", "how often a node proves its Redis consumer end to end"))
	fs.Duration("canary-timeout", d.CanaryTimeout, usage("canary-timeout", "a canary not read back within this makes the node not ready"))
	fs.String("jobs-secret", "", usage("jobs-secret", "comma-separated HMAC secrets of POST /api/jobs"))
	fs.String("events-secret", "", usage("events-secret", "comma-separated HMAC secrets of POST /api/events"))
	fs.Duration("job-ttl", d.JobTTL, usage("job-ttl", "how long a registered job is remembered"))
	fs.String("extra-events", "", usage("extra-events", "comma-separated event names the publish API accepts besides the protocol's five"))
	fs.Bool("flask-queue", d.FlaskQueue, usage("flask-queue", "consume the Flask-SocketIO message queue when Redis is configured"))
	fs.String("flask-channel", d.FlaskChannel, usage("flask-channel", "Redis pub/sub channel of the Flask-SocketIO message queue"))
	fs.String("logs-channel", d.LogsChannel, usage("logs-channel", "Redis pub/sub channel announcing subscribe_logs / unsubscribe_logs"))
	fs.Duration("follow-ttl", d.FollowTTL, usage("follow-ttl", "how long a log follow outlives its node's last refresh (a killed node's follows expire after this)"))
	fs.Duration("drain-window", d.DrainWindow, usage("drain-window", "on SIGTERM, clients are closed in batches spread over this window"))
	fs.String("log-level", d.LogLevel, usage("log-level", "debug, info, warn or error"))
	fs.String("log-format", d.LogFormat, usage("log-format", "json, text or auto (json in production, text in development)"))
	fs.Int64("webhook-max-body-bytes", d.WebhookMaxBodyBytes, usage("webhook-max-body-bytes", "largest body of POST /api/webhooks/modal (413 above)"))
	fs.Int64("jobs-max-body-bytes", d.JobsMaxBodyBytes, usage("jobs-max-body-bytes", "largest body of POST /api/jobs (413 above)"))
	fs.Int64("events-max-body-bytes", d.EventsMaxBodyBytes, usage("events-max-body-bytes", "largest body of POST /api/events (413 above)"))
	fs.Int64("socket-max-message-bytes", d.SocketMaxMessageBytes, usage("socket-max-message-bytes", "largest client message; a client sending more is disconnected"))
	fs.Int("max-id-length", d.MaxIDLength, usage("max-id-length", "longest project, batch or job id accepted"))
	fs.Duration("ping-interval", d.PingInterval, usage("ping-interval", "Engine.IO heartbeat interval"))
	fs.Duration("ping-timeout", d.PingTimeout, usage("ping-timeout", "how long a client may take to answer a ping"))
	fs.Duration("connect-timeout", d.ConnectTimeout, usage("connect-timeout", "how long a transport may stay open without joining a namespace"))
	fs.String("auth", d.Auth, usage("auth", "none, jwt or backend: how Socket.IO clients are authenticated and their joins authorized; required in production"))
	fs.String("auth-cookie", d.AuthCookie, usage("auth-cookie", "name of a cookie holding the client's token"))
	fs.Bool("auth-query-token", d.AuthQueryToken, usage("auth-query-token", "accept a token in the handshake's ?token= query parameter"))
	fs.String("jwt-secrets", "", usage("jwt-secrets", "comma-separated HMAC secrets of HS256/384/512 tokens"))
	fs.String("jwt-public-keys", "", usage("jwt-public-keys", "comma-separated PEM public key files of RS/PS/ES/EdDSA tokens"))
	fs.String("jwks-url", d.JWKSURL, usage("jwks-url", "JSON Web Key Set URL"))
	fs.Duration("jwks-refresh", d.JWKSRefresh, usage("jwks-refresh", "how often the JWKS is fetched again (and at most once as often for an unknown key id)"))
	fs.String("jwt-issuer", d.JWTIssuer, usage("jwt-issuer", "required iss of tokens"))
	fs.String("jwt-audience", d.JWTAudience, usage("jwt-audience", "required aud of tokens"))
	fs.Duration("jwt-leeway", d.JWTLeeway, usage("jwt-leeway", "clock skew allowed on exp and nbf"))
	fs.String("jwt-projects-claim", d.JWTProjectsClaim, usage("jwt-projects-claim", "claim listing the projects a user may see (ids, or \"*\")"))
	fs.String("jwt-batches-claim", d.JWTBatchesClaim, usage("jwt-batches-claim", "claim listing the batches a user may see"))
	fs.String("auth-url", d.AuthURL, usage("auth-url", "backend asked on connect and on joins (auth backend)"))
	fs.String("auth-secret", "", usage("auth-secret", "secret signing the calls to the auth backend"))
	fs.Duration("auth-timeout", d.AuthTimeout, usage("auth-timeout", "bound of one auth backend call; a slower one refuses"))
	fs.Duration("auth-cache-ttl", d.AuthCacheTTL, usage("auth-cache-ttl", "how long a backend join decision is kept per user and room"))
	fs.Bool("require-timestamp", d.RequireTimestamp, usage("require-timestamp", "accept only Standard Webhooks signatures (webhook-id, webhook-timestamp, webhook-signature) on the producer routes"))
	fs.Duration("signature-tolerance", d.SignatureTolerance, usage("signature-tolerance", "how far a webhook-timestamp may be from now"))
	fs.Int64("memory-limit", d.MemoryLimit, usage("memory-limit", "the container's memory limit in bytes; the Go runtime's soft limit is set to 90% of it unless GOMEMLIMIT is set; 0: none"))
	fs.Int("gc-min-percent", d.GCMinPercent, usage("gc-min-percent", "lowest GC percentage of the collection policy while little allocates (GOGC follows the allocation rate up to 100 unless GOGC is set); 100: off"))
	fs.String("debug-addr", d.DebugAddr, usage("debug-addr", "host:port serving /debug/pprof/ on its own listener; empty serves none"))
	fs.Duration("http-read-timeout", d.HTTPReadTimeout, usage("http-read-timeout", "longest time to send a whole request"))
	fs.Duration("http-idle-timeout", d.HTTPIdleTimeout, usage("http-idle-timeout", "how long an idle keep-alive connection is kept"))
	fs.Int("http-max-header-bytes", d.HTTPMaxHeaderBytes, usage("http-max-header-bytes", "largest request header block (431 above)"))
	fs.Int("max-connections", d.MaxConnections, usage("max-connections", "most TCP connections on the main port; 0: the open-file limit minus 128"))
	fs.Int("max-connections-per-ip", d.MaxConnectionsPerIP, usage("max-connections-per-ip", "TCP connections of the main port from one client address (trusted-proxies not counted); 0: a quarter of max-connections, at most 1024"))
	fs.Duration("producer-body-timeout", d.ProducerBodyTimeout, usage("producer-body-timeout", "longest time a producer may take to send its body (408 after)"))
	fs.Int("max-producer-requests", d.MaxProducerRequests, usage("max-producer-requests", "producer requests handled at once (503 above)"))
	fs.Int("max-producer-requests-per-ip", d.MaxProducerRequestsPerIP, usage("max-producer-requests-per-ip", "producer requests handled at once from one client address; 0: a quarter of max-producer-requests"))
	fs.Int("max-clients", d.MaxClients, usage("max-clients", "most Socket.IO sessions on this node (503 above); 0: the open-file limit minus 256"))
	fs.Int("max-polling-sessions", d.MaxPollingSessions, usage("max-polling-sessions", "most sessions on long-polling (503 above)"))
	fs.Float64("handshake-rate", d.HandshakeRate, usage("handshake-rate", "handshakes per second on this node (503 above; 0 disables)"))
	fs.Float64("handshake-rate-per-ip", d.HandshakeRatePerIP, usage("handshake-rate-per-ip", "handshakes per second from one client address (503 above; 0 disables)"))
	fs.String("client-ip-header", d.ClientIPHeader, usage("client-ip-header", "header naming the client address (X-Forwarded-For, X-Real-IP), believed from trusted-proxies only"))
	fs.String("trusted-proxies", "", usage("trusted-proxies", "comma-separated CIDRs whose client-ip-header is believed"))
	fs.Int("client-max-rooms", d.ClientMaxRooms, usage("client-max-rooms", "project and batch rooms one client may be in"))
	fs.Int("client-max-follows", d.ClientMaxFollows, usage("client-max-follows", "jobs whose logs one client may follow"))
	fs.Float64("client-event-rate", d.ClientEventRate, usage("client-event-rate", "events per second one client may send"))
	fs.Duration("client-event-abuse-window", d.ClientEventAbuseWindow, usage("client-event-abuse-window", "a client refused for its event rate this long without a pause is disconnected"))
	fs.Float64("log-client-rate", d.LogClientRate, usage("log-client-rate", "log lines per second clients can cause (the rest left out and counted)"))
	fs.Int("log-client-burst", d.LogClientBurst, usage("log-client-burst", "burst of log-client-rate"))
	fs.Int64("client-max-polling-buffer", d.ClientMaxPollingBuffer, usage("client-max-polling-buffer", "bytes queued for one long-polling client between polls (disconnected above)"))
	fs.Duration("recovery-max-disconnection", d.RecoveryMaxDisconnection, usage("recovery-max-disconnection", "how long after a disconnect a client's session can be recovered with the events it missed (0 turns recovery off)"))
	fs.Int("recovery-max-events", d.RecoveryMaxEvents, usage("recovery-max-events", "most events one recovery replays (past it the client starts afresh)"))
	fs.Int64("recovery-backlog-bytes", d.RecoveryBacklogBytes, usage("recovery-backlog-bytes", "memory for the recent events a node keeps to replay"))
	fs.Bool("state-on-join", d.StateOnJoin, usage("state-on-join", "send a batch's current batch_status right after joined_batch"))
	fs.String("metrics-addr", d.MetricsAddr, usage("metrics-addr", "host:port serving /metrics on its own listener (then not on the main port)"))
	fs.Duration("shutdown-timeout", d.ShutdownTimeout, usage("shutdown-timeout", "hard deadline for a graceful stop"))
	fs.String("status-token", "", usage("status-token", "token of the status page /status (bearer or login form); empty turns it off in production"))
	fs.Int("status-max-streams", d.StatusMaxStreams, usage("status-max-streams", "live status streams one node serves at once (503 above)"))
	fs.Int("status-recent", d.StatusRecent, usage("status-recent", "latest events the status page lists"))
	fs.Int("status-login-attempts", d.StatusLoginAttempts, usage("status-login-attempts", "wrong status tokens accepted per minute before logins answer 429"))
	fs.Duration("status-interval", d.StatusInterval, usage("status-interval", "how often the status figures are sampled, pushed and announced"))
	fs.Bool("check-config", false, "load and validate the configuration, print the outcome and exit (0 when valid, 2 when not)")
	fs.Bool("version", false, "print the version and exit")
	fs.BoolP("help", "h", false, "show this help")
	return fs
}

// Load parses args with fs (from NewFlagSet), reads the optional config file,
// the environment and the flags (flags win, then environment, then file,
// then defaults) and validates the result.
func Load(fs *pflag.FlagSet, args []string) (Config, error) {
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if help, _ := fs.GetBool("help"); help {
		fs.PrintDefaults()
		return Config{}, ErrHelp
	}
	return LoadParsed(fs)
}

// LoadParsed is Load on a FlagSet that is already parsed (by a command
// line library that holds fs's flags).
func LoadParsed(fs *pflag.FlagSet) (Config, error) {
	c, err := Read(fs)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Read is LoadParsed without Validate: every value has the form its field
// needs, but the whole need not be a configuration a server could start
// with. The client commands (gateway webhook send, tail, ...) read the
// secrets and the port this way: they run where no server secret is
// required.
func Read(fs *pflag.FlagSet) (Config, error) {
	v := viper.New()
	d := Default()
	setDefaults(v, d)
	for _, key := range keys(d) {
		names := []string{key}
		if key != "port" {
			names = append(names, prefixedEnvName(key))
		}
		if legacy, ok := legacyEnv[key]; ok {
			names = append(names, legacy)
		}
		if err := v.BindEnv(names...); err != nil {
			return Config{}, fmt.Errorf("config: bind env for %s: %w", key, err)
		}
		if f := fs.Lookup(key); f != nil {
			if err := v.BindPFlag(key, f); err != nil {
				return Config{}, fmt.Errorf("config: bind flag %s: %w", key, err)
			}
		}
	}

	if path, _ := fs.GetString("config"); path != "" {
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: read %s: %w", path, err)
		}
	}

	if err := checkTypes(v, d); err != nil {
		return Config{}, err
	}
	var c Config
	err := v.Unmarshal(&c, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = false
		dc.WeaklyTypedInput = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return Config{}, fmt.Errorf("config: decode: %w", err)
	}
	c.ModalWebhookSecrets = cleanList(c.ModalWebhookSecrets)
	c.CORSOrigins = cleanList(c.CORSOrigins)
	c.JobsSecrets = cleanList(c.JobsSecrets)
	c.EventsSecrets = cleanList(c.EventsSecrets)
	c.ExtraEvents = cleanList(c.ExtraEvents)
	c.JWTSecrets = cleanList(c.JWTSecrets)
	c.JWTPublicKeys = cleanList(c.JWTPublicKeys)
	c.TrustedProxies = cleanList(c.TrustedProxies)
	c.Auth = strings.ToLower(strings.TrimSpace(c.Auth))
	c.Role = strings.ToLower(strings.TrimSpace(c.Role))
	c.Env = strings.ToLower(strings.TrimSpace(c.Env))
	c.StatusToken = strings.TrimSpace(c.StatusToken)
	return c, nil
}

// checkTypes checks that every key's value has the form its field needs,
// before decoding: a wrong one is an error naming the key, its environment
// variable and the value (the decoder's own message names neither).
func checkTypes(v *viper.Viper, d Config) error {
	rt := reflect.TypeOf(d)
	for i := range rt.NumField() {
		f := rt.Field(i)
		key := f.Tag.Get("mapstructure")
		raw := v.Get(key)
		var err error
		var want string
		switch {
		case f.Type == reflect.TypeFor[time.Duration]():
			want = "must be a duration such as 10s, 500ms or 2m"
			if s, ok := raw.(string); ok {
				_, err = time.ParseDuration(strings.TrimSpace(s))
			} else {
				_, err = cast.ToDurationE(raw)
			}
		case f.Type.Kind() == reflect.Int || f.Type.Kind() == reflect.Int64:
			want = "must be an integer"
			_, err = cast.ToInt64E(raw)
		case f.Type.Kind() == reflect.Float64:
			want = "must be a number"
			_, err = cast.ToFloat64E(raw)
		case f.Type.Kind() == reflect.Bool:
			want = "must be true or false"
			_, err = cast.ToBoolE(raw)
		default:
			continue
		}
		if err != nil {
			return invalid(key, raw, want)
		}
	}
	return nil
}

// setDefaults registers every key's default with v, so that environment
// variables and config files are consulted for all of them.
func setDefaults(v *viper.Viper, d Config) {
	rv := reflect.ValueOf(d)
	rt := rv.Type()
	for i := range rt.NumField() {
		key := rt.Field(i).Tag.Get("mapstructure")
		v.SetDefault(key, rv.Field(i).Interface())
	}
}

// keys lists the config keys in declaration order.
func keys(d Config) []string {
	rt := reflect.TypeOf(d)
	out := make([]string, 0, rt.NumField())
	for i := range rt.NumField() {
		out = append(out, rt.Field(i).Tag.Get("mapstructure"))
	}
	return out
}

// Keys lists every config key the gateway reads, in declaration order.
func Keys() []string { return keys(Config{}) }

// cleanList trims every element (also splitting any that still hold commas)
// and drops empty ones.
func cleanList(in []string) []string {
	var out []string
	for _, item := range in {
		for part := range strings.SplitSeq(item, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// IsHelp reports whether err asks for the usage to be shown.
func IsHelp(err error) bool { return errors.Is(err, ErrHelp) }
