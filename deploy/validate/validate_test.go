package validate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The checks run against the real binary: GATEWAY_BIN names a built one;
// otherwise the tests build ./cmd/gateway of this repository once, into
// buildDir, which TestMain removes at the end.
var (
	buildDir string
	gwOnce   sync.Once
	gwCached *Gateway
	gwErr    error
)

func TestMain(m *testing.M) {
	var err error
	buildDir, err = os.MkdirTemp("", "deploy-validate-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(buildDir)
	os.Exit(code)
}

func gateway(t *testing.T) *Gateway {
	t.Helper()
	gwOnce.Do(func() {
		root, err := RepoRoot(".")
		if err != nil && os.Getenv("GATEWAY_BIN") == "" {
			gwErr = err
			return
		}
		gwCached, gwErr = LoadGateway(context.Background(), os.Getenv("GATEWAY_BIN"), root, buildDir)
	})
	if gwErr != nil {
		t.Fatalf("loading the gateway binary: %v", gwErr)
	}
	return gwCached
}

// deployDir is deploy/, the parent of this module.
func deployDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func build(t *testing.T, dir string) []Object {
	t.Helper()
	objs, err := Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func find[T any](objs []Object, kind, name string) T {
	for _, o := range objs {
		if o.Kind == kind && o.Name == name {
			if t, ok := o.Typed.(T); ok {
				return t
			}
		}
	}
	var zero T
	return zero
}

func gatewayContainer(t *testing.T, objs []Object) corev1.Container {
	t.Helper()
	d := find[*appsv1.Deployment](objs, "Deployment", "gateway")
	if d == nil {
		t.Fatal("no Deployment/gateway")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "gateway" {
			return c
		}
	}
	t.Fatal("no container gateway")
	return corev1.Container{}
}

func envNamed(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func TestParseHelp(t *testing.T) {
	help := `      --config string                  optional config file (yaml, json or toml); flags and environment override it
      --env string                     development or production (env GATEWAY_ENV) (default "production")
      --port int                       port serving the HTTP API and Socket.IO (env PORT) (default 5000)
      --redis-url string               Redis URL; empty runs one node on the in-process bus (env REDIS_URL)
      --shutdown-timeout duration      hard deadline for a graceful stop (env GATEWAY_SHUTDOWN_TIMEOUT) (default 10s)
      --version[=true|false]           print the version and exit
  -h, --help[=true|false]              show this help
`
	s, err := ParseHelp(help)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Names(), []string{"GATEWAY_ENV", "GATEWAY_SHUTDOWN_TIMEOUT", "PORT", "REDIS_URL"}; !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	for env, want := range map[string]Setting{
		"GATEWAY_ENV":              {Flag: "env", Env: "GATEWAY_ENV", Default: "production", HasDefault: true},
		"PORT":                     {Flag: "port", Env: "PORT", Default: "5000", HasDefault: true},
		"REDIS_URL":                {Flag: "redis-url", Env: "REDIS_URL"},
		"GATEWAY_SHUTDOWN_TIMEOUT": {Flag: "shutdown-timeout", Env: "GATEWAY_SHUTDOWN_TIMEOUT", Default: "10s", HasDefault: true},
	} {
		if s[env] != want {
			t.Errorf("%s: %+v, want %+v", env, s[env], want)
		}
	}
	if _, err := ParseHelp("Usage: gateway [flags]\n  --port int  the port\n"); err == nil {
		t.Error("help without any (env NAME) parsed without error")
	}
}

// TestGatewayHelp checks the real binary's --help: the parser finds the
// settings the manifests rely on being printable at all.
func TestGatewayHelp(t *testing.T) {
	gw := gateway(t)
	s := gw.Settings
	t.Logf("settings from %s: %s", gw.Source, strings.Join(s.Names(), " "))
	for _, name := range []string{"PORT", "GATEWAY_ENV", "GATEWAY_ROLE", "REDIS_URL", "MODAL_WEBHOOK_SECRET", "GATEWAY_JOBS_SECRET", "GATEWAY_EVENTS_SECRET", "GATEWAY_DRAIN_WINDOW", "GATEWAY_SHUTDOWN_TIMEOUT"} {
		if _, ok := s[name]; !ok {
			t.Errorf("`gateway --help` does not print (env %s)", name)
		}
	}
	// The port is read from PORT only, because of Kubernetes service links.
	if _, ok := s["GATEWAY_PORT"]; ok {
		t.Error("`gateway --help` prints (env GATEWAY_PORT): service links would set it to tcp://...")
	}
	if p := s["PORT"]; p.Default != "5000" {
		t.Errorf("PORT default %q, want 5000 (the port of the Dockerfile, the Service and the NetworkPolicy)", p.Default)
	}
}

// TestVersionLdflags checks the build contract the Dockerfile relies on:
// -X main.version and -X main.commit show in `gateway --version`.
func TestVersionLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gateway")
	}
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "gateway")
	if err := BuildGateway(t.Context(), root, bin, "-X main.version=v9.8.7-test -X main.commit=c0ffee1"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	for _, want := range []string{"v9.8.7-test", "c0ffee1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("--version printed %q, want it to contain %q", out, want)
		}
	}
}

// TestOverlays: every overlay builds, decodes strictly and passes every
// check, plus what each overlay promises.
func TestOverlays(t *testing.T) {
	gw := gateway(t)
	for _, name := range []string{"dev", "prod"} {
		t.Run(name, func(t *testing.T) {
			objs := build(t, filepath.Join(deployDir(t), "overlays", name))
			if p := Check(objs, gw); len(p) > 0 {
				t.Errorf("overlays/%s: %v", name, p)
			}
			c := gatewayContainer(t, objs)
			if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
				t.Errorf("image %q: pin a tag", c.Image)
			}
			switch name {
			case "dev":
				checkDev(t, objs)
			case "prod":
				checkProd(t, objs, c)
			}
		})
	}
}

func checkDev(t *testing.T, objs []Object) {
	d := find[*appsv1.Deployment](objs, "Deployment", "gateway")
	if r := *d.Spec.Replicas; r < 1 || r > 3 {
		t.Errorf("dev replicas %d, want 1-3", r)
	}
	var cm *corev1.ConfigMap
	for _, o := range objs {
		if c, ok := o.Typed.(*corev1.ConfigMap); ok && strings.HasPrefix(o.Name, "gateway-config-") {
			cm = c
		}
	}
	if cm == nil {
		t.Fatal("no generated gateway-config ConfigMap")
	}
	if cm.Data["GATEWAY_ENV"] != "development" {
		t.Errorf("dev GATEWAY_ENV=%q", cm.Data["GATEWAY_ENV"])
	}
	if !strings.HasPrefix(cm.Data["REDIS_URL"], "redis://redis:") {
		t.Errorf("dev REDIS_URL=%q, want the in-cluster redis Service", cm.Data["REDIS_URL"])
	}
	r := find[*appsv1.StatefulSet](objs, "StatefulSet", "redis")
	if r == nil {
		t.Fatal("dev has no StatefulSet/redis")
	}
	args := strings.Join(r.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--appendonly yes") {
		t.Errorf("redis args %q: want AOF persistence (--appendonly yes)", args)
	}
	if len(r.Spec.VolumeClaimTemplates) == 0 {
		t.Error("redis has no volumeClaimTemplate for its AOF file")
	}
}

func checkProd(t *testing.T, objs []Object, c corev1.Container) {
	for _, o := range objs {
		if o.Kind == "Secret" {
			t.Errorf("prod contains %s: production secrets are created outside the repository", o.ID())
		}
	}
	e := envNamed(c, "REDIS_URL")
	if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != "gateway-redis" {
		t.Errorf("prod REDIS_URL %+v, want a secretKeyRef to the external Secret gateway-redis", e)
	}
	var env string
	for _, o := range objs {
		if cm, ok := o.Typed.(*corev1.ConfigMap); ok && strings.HasPrefix(o.Name, "gateway-config-") {
			env = cm.Data["GATEWAY_ENV"]
		}
	}
	if env != "production" {
		t.Errorf("prod GATEWAY_ENV=%q", env)
	}
	if find[*ServiceMonitor](objs, "ServiceMonitor", "gateway") == nil {
		t.Error("prod does not include the ServiceMonitor component")
	}
}

// TestBase: the base builds and decodes on its own, and the one thing it
// lacks to be deployed with several replicas is the Redis URL.
func TestBase(t *testing.T) {
	gw := gateway(t)
	objs := build(t, filepath.Join(deployDir(t), "base"))
	p := Check(objs, gw)
	if len(p) != 1 || !strings.Contains(p[0], "REDIS_URL is not set") {
		t.Errorf("base: want exactly the missing REDIS_URL, got %v", p)
	}
	if err := SecretExample(filepath.Join(deployDir(t), "base", "secret.example.yaml"), objs, gw.Settings); err != nil {
		t.Error(err)
	}
}

var hashSuffix = regexp.MustCompile(`\b(gateway-(?:config|secrets))-[a-z0-9]{10}\b`)

// normalize drops the content hashes of generated names, which change with
// any edit of the generator.
func normalize(p Problems) []string {
	out := make([]string, len(p))
	for i, s := range p {
		out[i] = hashSuffix.ReplaceAllString(s, "$1-HASH")
	}
	return out
}

// TestBroken feeds manifests with one deliberate defect each (testdata/
// broken/*, each an overlay plus one change) and requires the validator
// to reject each for that defect. A case is judged against the problems of
// its unchanged overlay, so it passes only if the defect adds exactly the
// expected problems: the check in question works and nothing else fired.
func TestBroken(t *testing.T) {
	gw := gateway(t)
	baseline := map[string][]string{}
	for _, ov := range []string{"dev", "prod"} {
		baseline[ov] = normalize(Check(build(t, filepath.Join(deployDir(t), "overlays", ov)), gw))
	}
	type brokenCase struct {
		dir     string // under testdata/broken
		overlay string // the overlay it changes: its problems are the baseline
		// buildErr: the defect must stop Build (kustomize or strict decode).
		buildErr string
		// want: one substring per expected new problem.
		want []string
	}
	cases := []brokenCase{
		{dir: "unknown-field", overlay: "dev", buildErr: `unknown field "spec.template.spec.containers[0].readinessProbe.initialDelaySecond"`},
		{dir: "wrong-case-field", overlay: "dev", buildErr: `unknown field "spec.template.spec.TerminationGracePeriodSeconds"`},
		{dir: "mistyped-field", overlay: "dev", buildErr: `Deployment/gateway: strict decoding error: json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`},
		{dir: "unknown-kind", overlay: "dev", buildErr: `apiVersion "policy/v1beta1" kind "PodDisruptionBudget" is not a kind the deploy manifests may use`},
		{dir: "servicemonitor-field", overlay: "prod", buildErr: `unknown field "spec.endpoints[0].scrapeInterval"`},

		{dir: "service-selector", overlay: "dev", want: []string{
			"Service/gateway: selector map[app.kubernetes.io/instance:gateway app.kubernetes.io/name:gatewy] matches no workload",
			"build: no Service selects/targets Deployment/gateway"}},
		{dir: "pdb-selector", overlay: "dev", want: []string{
			"PodDisruptionBudget/gateway: selector matches no workload",
			"build: no PodDisruptionBudget selects/targets Deployment/gateway"}},
		{dir: "networkpolicy-selector", overlay: "dev", want: []string{
			"NetworkPolicy/gateway: podSelector matches no workload",
			"build: no NetworkPolicy selects/targets Deployment/gateway"}},
		{dir: "topology-selector", overlay: "dev", want: []string{
			"topologySpreadConstraint on kubernetes.io/hostname: labelSelector does not match"}},
		{dir: "hpa-target", overlay: "dev", want: []string{
			"HorizontalPodAutoscaler/gateway: scaleTargetRef apps/v1 Deployment/gateway-v2 names no workload",
			"build: no HorizontalPodAutoscaler selects/targets Deployment/gateway"}},
		{dir: "hpa-scale-down", overlay: "dev", want: []string{"stabilizationWindowSeconds 0; want at least 300"}},
		{dir: "ingress-backend-port", overlay: "dev", want: []string{"Ingress/gateway: backend port web/0 is not a port of Service gateway"}},
		{dir: "ingress-backend-service", overlay: "dev", want: []string{`Ingress/gateway: backend Service "gateway-api" is not in the build`}},
		{dir: "ingress-timeout", overlay: "dev", want: []string{`proxy-read-timeout="60"; want at least 3600`}},
		{dir: "no-affinity", overlay: "dev", want: []string{`nginx.ingress.kubernetes.io/affinity=""; want "cookie"`}},
		{dir: "servicemonitor-port", overlay: "prod", want: []string{`ServiceMonitor/gateway: endpoint port "prometheus" is not a port name of Service gateway`}},
		{dir: "servicemonitor-metrics-port", overlay: "prod", want: []string{`ServiceMonitor/gateway: endpoint port "http" reaches container port http, but the gateway serves /metrics on 9090 (GATEWAY_METRICS_ADDR=:9090)`}},
		{dir: "networkpolicy-metrics", overlay: "prod", want: []string{"NetworkPolicy/gateway: no ingress rule admits the metrics port 9090 (GATEWAY_METRICS_ADDR=:9090)"}},
		{dir: "networkpolicy-auth-egress", overlay: "prod", want: []string{"NetworkPolicy/gateway: egress does not allow the auth backend (TCP 5000 of http://backend:5000/api/realtime/authorize)"}},

		{dir: "unknown-env", overlay: "dev", want: []string{"env REDIS_ADDR (from env) is not a setting of the binary"}},
		{dir: "unknown-env-configmap", overlay: "dev", want: []string{"env GATEWAY_LOG_LVL (from ConfigMap gateway-config-HASH) is not a setting of the binary"}},
		{dir: "plain-secret", overlay: "dev", want: []string{"MODAL_WEBHOOK_SECRET comes from env: secrets must come from a Secret"}},
		{dir: "missing-secret-key", overlay: "dev", want: []string{`env GATEWAY_JOBS_SECRET: Secret gateway-secrets-HASH has no key "GATEWAY_JOBS_SECRET"`}},
		{dir: "optional-webhook-secret", overlay: "prod", want: []string{"GATEWAY_ENV=production needs MODAL_WEBHOOK_SECRET from a required (non-optional) Secret reference"}},
		{dir: "port-mismatch", overlay: "dev", want: []string{`want a port named "http" with containerPort 8080`}},
		{dir: "redis-host", overlay: "dev", want: []string{`REDIS_URL host "redis-master" is not a Service of this build`}},

		{dir: "service-links", overlay: "dev", want: []string{"enableServiceLinks is not false: Kubernetes would inject GATEWAY_PORT=tcp://..."}},
		// The binary's own validation, with the container's environment.
		{dir: "config-rejected", overlay: "dev", want: []string{
			"container gateway: `gateway --check-config` rejects the container's environment (exit status 2): " +
				`gateway: config: invalid: role (GATEWAY_ROLE) = "both": must be all, webhook or socket`}},

		{dir: "grace-too-short", overlay: "dev", want: []string{"terminationGracePeriodSeconds 30s must exceed preStop 5s + GATEWAY_SHUTDOWN_TIMEOUT 35s = 40s (the binary's whole stop sequence, drain included)"}},
		// Found twice: by the check of the manifests and by the binary.
		{dir: "drain-not-under-shutdown", overlay: "dev", want: []string{
			"GATEWAY_DRAIN_WINDOW 35s (ConfigMap gateway-config-HASH) must be shorter than GATEWAY_SHUTDOWN_TIMEOUT 35s (ConfigMap gateway-config-HASH)",
			`rejects the container's environment (exit status 2): gateway: config: invalid: drain-window (GATEWAY_DRAIN_WINDOW) = "35s": must be at least 0 and shorter than shutdown-timeout (35s)`}},
		{dir: "shell-prestop", overlay: "dev", want: []string{"preStop runs exec [sh -c sleep 5], but the runtime image has no shell"}},
		{dir: "liveness-path", overlay: "dev", want: []string{`liveness probe path "/health", want one of [/livez /healthz]`}},
		{dir: "readiness-on-livez", overlay: "dev", want: []string{`readiness probe path "/livez", want one of [/readyz]`}},
		{dir: "probe-port", overlay: "dev", want: []string{"readiness probe port 8080 is neither the container port http/5000 nor the metrics listener"}},
		{dir: "root-user", overlay: "dev", want: []string{"Deployment/gateway: container gateway: runAsUser is 0 (root)"}},
		{dir: "writable-root", overlay: "dev", want: []string{"Deployment/gateway: container gateway: readOnlyRootFilesystem is not true"}},
		{dir: "networkpolicy-port", overlay: "dev", want: []string{"NetworkPolicy/gateway: no ingress rule admits the gateway's container port 5000"}},
	}

	// Every folder under testdata/broken is a case, and every case a folder.
	entries, err := os.ReadDir(filepath.Join("testdata", "broken"))
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		dirs = append(dirs, e.Name())
	}
	for _, tc := range cases {
		if !slices.Contains(dirs, tc.dir) {
			t.Errorf("case %s has no folder testdata/broken/%s", tc.dir, tc.dir)
		}
	}
	for _, d := range dirs {
		if !slices.ContainsFunc(cases, func(tc brokenCase) bool { return tc.dir == d }) {
			t.Errorf("testdata/broken/%s is not listed in TestBroken", d)
		}
	}

	for _, tc := range cases {
		t.Run(tc.dir, func(t *testing.T) {
			objs, err := Build(filepath.Join("testdata", "broken", tc.dir))
			if tc.buildErr != "" {
				if err == nil {
					t.Fatalf("built and decoded without error; want %q", tc.buildErr)
				}
				if !strings.Contains(err.Error(), tc.buildErr) {
					t.Fatalf("error %v\nwant it to contain %q", err, tc.buildErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("the case must build (its defect is for Check to find): %v", err)
			}
			got := normalize(Check(objs, gw))
			var added []string
			for _, p := range got {
				if !slices.Contains(baseline[tc.overlay], p) {
					added = append(added, p)
				}
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(added, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("no problem contains %q", w)
				}
			}
			if len(added) != len(tc.want) {
				t.Errorf("the defect added %d problem(s), want %d:\n  %s", len(added), len(tc.want), strings.Join(added, "\n  "))
			}
		})
	}
}

// TestCheckConfig: the environment Check hands to `gateway --check-config`
// is the container's (Secrets as placeholders) and nothing of this
// process's, and the binary accepts it for every overlay.
func TestCheckConfig(t *testing.T) {
	gw := gateway(t)
	// Must not leak into the binary's environment.
	t.Setenv("GATEWAY_LOG_LEVEL", "loud")
	for _, tc := range []struct {
		overlay string
		want    []string
	}{
		{"dev", []string{"GATEWAY_ENV=development", "REDIS_URL=redis://redis:6379/0", "MODAL_WEBHOOK_SECRET=" + PlaceholderSecret + "MODAL_WEBHOOK_SECRET", "GATEWAY_DRAIN_WINDOW=20s", "GATEWAY_SHUTDOWN_TIMEOUT=35s"}},
		{"prod", []string{"GATEWAY_ENV=production", "REDIS_URL=" + PlaceholderRedisURL, "MODAL_WEBHOOK_SECRET=" + PlaceholderSecret + "MODAL_WEBHOOK_SECRET", "GATEWAY_JOBS_SECRET=" + PlaceholderSecret + "GATEWAY_JOBS_SECRET", "GATEWAY_EVENTS_SECRET=" + PlaceholderSecret + "GATEWAY_EVENTS_SECRET", "GATEWAY_AUTH_SECRET=" + PlaceholderSecret + "GATEWAY_AUTH_SECRET", "GATEWAY_AUTH=backend", "GATEWAY_REQUIRE_TIMESTAMP=true"}},
	} {
		t.Run(tc.overlay, func(t *testing.T) {
			env := GatewayEnv(build(t, filepath.Join(deployDir(t), "overlays", tc.overlay)), gw)
			for _, w := range tc.want {
				if !slices.Contains(env, w) {
					t.Errorf("environment lacks %s: %v", w, env)
				}
			}
			out, err := gw.CheckConfig(t.Context(), env)
			if err != nil || out != ConfigValidMessage {
				t.Errorf("--check-config: %v, %q; want %q", err, out, ConfigValidMessage)
			}
		})
	}
	// And the binary's rejection comes through: exit 2 and the bad key.
	out, err := gw.CheckConfig(t.Context(), []string{"GATEWAY_ENV=development", "GATEWAY_ROLE=both"})
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != 2 || !strings.Contains(out, "GATEWAY_ROLE") {
		t.Errorf("--check-config with GATEWAY_ROLE=both: %v, %q; want exit status 2 naming GATEWAY_ROLE", err, out)
	}
}

// TestServiceLinkVariables backs the comment on enableServiceLinks: the
// variables service links would inject for the Services of each overlay
// are not settings of the binary, and the binary accepts its configuration
// with them present. Turning links off is hygiene, not a start-up fix.
func TestServiceLinkVariables(t *testing.T) {
	gw := gateway(t)
	for _, overlay := range []string{"dev", "prod"} {
		objs := build(t, filepath.Join(deployDir(t), "overlays", overlay))
		links := serviceLinkEnv(objs)
		if !slices.Contains(links, "GATEWAY_PORT=tcp://10.96.0.10:80") {
			t.Fatalf("%s: service links %v lack GATEWAY_PORT", overlay, links)
		}
		for _, kv := range links {
			if name, _, _ := strings.Cut(kv, "="); gw.Settings[name] != (Setting{}) {
				t.Errorf("%s: service links would set %s, a setting of the binary", overlay, name)
			}
		}
		env := append(GatewayEnv(objs, gw), links...)
		if out, err := gw.CheckConfig(t.Context(), env); err != nil {
			t.Errorf("%s: --check-config with service-link variables: %v, %q", overlay, err, out)
		}
	}
}

// serviceLinkEnv lists the variables the kubelet injects for the Services
// of objs when enableServiceLinks is true (docker-links style), with a
// made-up cluster IP. Headless Services get none from the kubelet; they are
// included anyway, which only makes the test stricter.
func serviceLinkEnv(objs []Object) []string {
	const ip = "10.96.0.10"
	var env []string
	for _, o := range objs {
		svc, ok := o.Typed.(*corev1.Service)
		if !ok || len(svc.Spec.Ports) == 0 {
			continue
		}
		n := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
		first := svc.Spec.Ports[0]
		env = append(env,
			n+"_SERVICE_HOST="+ip,
			fmt.Sprintf("%s_SERVICE_PORT=%d", n, first.Port),
			fmt.Sprintf("%s_PORT=%s://%s:%d", n, strings.ToLower(string(first.Protocol)), ip, first.Port))
		for _, p := range svc.Spec.Ports {
			proto := string(p.Protocol)
			if proto == "" {
				proto = "TCP"
			}
			if p.Name != "" {
				env = append(env, fmt.Sprintf("%s_SERVICE_PORT_%s=%d", n, strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_")), p.Port))
			}
			pfx := fmt.Sprintf("%s_PORT_%d_%s", n, p.Port, proto)
			env = append(env,
				fmt.Sprintf("%s=%s://%s:%d", pfx, strings.ToLower(proto), ip, p.Port),
				pfx+"_PROTO="+strings.ToLower(proto),
				fmt.Sprintf("%s_PORT=%d", pfx, p.Port),
				pfx+"_ADDR="+ip)
		}
	}
	return env
}

func TestExpandEnv(t *testing.T) {
	vars := map[string]string{"HOST": "redis", "PORT": "6379"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"redis://$(HOST):$(PORT)/0": "redis://redis:6379/0",
		"$(MISSING)":                "$(MISSING)",
		"$$(HOST)":                  "$(HOST)",
		"a$b$":                      "a$b$",
		"$(HOST":                    "$(HOST",
		"":                          "",
	} {
		if got := expandEnv(in, lookup); got != want {
			t.Errorf("expandEnv(%q) = %q, want %q", in, got, want)
		}
	}
}
