package validate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os/exec"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Facts about the gateway binary that --help does not print. They mirror
// the health package (health.LivePath, HealthzPath, ReadyPath) and the
// /metrics route; the container and its probes must use them.
var (
	// LivenessPaths may back liveness and startup probes: they depend on
	// nothing external.
	LivenessPaths = []string{"/livez", "/healthz"}
	// ReadinessPath backs the readiness probe: it fails while draining and
	// when the bus is down.
	ReadinessPath = "/readyz"
	// MetricsPath is the Prometheus endpoint.
	MetricsPath = "/metrics"
)

// Names of the gateway's workload and container, and its settings that the
// checks read.
const (
	GatewayName      = "gateway"
	NameLabel        = "app.kubernetes.io/name"
	PartOfLabel      = "app.kubernetes.io/part-of"
	PartOf           = "meshgen"
	envPort          = "PORT"
	envMetricsAddr   = "GATEWAY_METRICS_ADDR"
	envAuth          = "GATEWAY_AUTH"
	envAuthURL       = "GATEWAY_AUTH_URL"
	envEnvironment   = "GATEWAY_ENV"
	envDrain         = "GATEWAY_DRAIN_WINDOW"
	envShutdown      = "GATEWAY_SHUTDOWN_TIMEOUT"
	envRedisURL      = "REDIS_URL"
	envWebhookSecret = "MODAL_WEBHOOK_SECRET"
	defaultPort      = 5000
)

// Thresholds of the policy checks.
const (
	minWebSocketTimeout   = 3600 // seconds, ingress-nginx proxy timeouts
	minLivenessWindow     = 30 * time.Second
	maxReadinessWindow    = 10 * time.Second
	minScaleDownWindowSec = 300
)

// Problems is the list of what is wrong with one build.
type Problems []string

func (p Problems) Error() string {
	return fmt.Sprintf("%d problem(s):\n  - %s", len(p), strings.Join(p, "\n  - "))
}

// Err returns p as an error, or nil when there is nothing wrong.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return p
}

// workload is a Deployment or StatefulSet, reduced to what the checks need.
type workload struct {
	obj      Object
	replicas int32
	selector *metav1.LabelSelector
	pod      *corev1.PodTemplateSpec
}

type checker struct {
	gw       *Gateway
	settings Settings
	objs     []Object
	problems Problems

	workloads  []workload
	services   map[string]*corev1.Service
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
	gateway    *workload
	gwEnv      map[string]envVal
}

func (c *checker) addf(id, format string, args ...any) {
	c.problems = append(c.problems, id+": "+fmt.Sprintf(format, args...))
}

// Check runs every check on the objects of one build against the gateway
// binary gw: its settings (from --help) and its own validation of the
// configuration (--check-config, run with the container's environment).
func Check(objs []Object, gw *Gateway) Problems {
	c := newChecker(objs, gw)
	c.checkLabels()
	c.checkWorkloads()
	if c.findGateway() {
		c.checkGatewayEnv()
		c.checkGatewayPort()
		c.checkProbes()
		c.checkShutdown()
		c.checkRedis()
		c.checkConfigWithBinary()
	}
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *corev1.Service:
			c.checkService(o, t)
		case *policyv1.PodDisruptionBudget:
			c.checkPDB(o, t)
		case *autoscalingv2.HorizontalPodAutoscaler:
			c.checkHPA(o, t)
		case *networkingv1.Ingress:
			c.checkIngress(o, t)
		case *networkingv1.NetworkPolicy:
			c.checkNetworkPolicy(o, t)
		case *ServiceMonitor:
			c.checkServiceMonitor(o, t)
		}
	}
	c.checkGatewayCovered()
	sort.Strings(c.problems)
	return c.problems
}

func newChecker(objs []Object, gw *Gateway) *checker {
	if gw == nil {
		gw = &Gateway{} // every name unknown, and no binary to run
	}
	c := &checker{
		gw:         gw,
		settings:   gw.Settings,
		objs:       objs,
		services:   map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{},
		secrets:    map[string]*corev1.Secret{},
	}
	for _, o := range objs {
		switch t := o.Typed.(type) {
		case *appsv1.Deployment:
			c.workloads = append(c.workloads, workload{obj: o, replicas: deref(t.Spec.Replicas, 1), selector: t.Spec.Selector, pod: &t.Spec.Template})
		case *appsv1.StatefulSet:
			c.workloads = append(c.workloads, workload{obj: o, replicas: deref(t.Spec.Replicas, 1), selector: t.Spec.Selector, pod: &t.Spec.Template})
		case *corev1.Service:
			c.services[o.Name] = t
		case *corev1.ConfigMap:
			c.configMaps[o.Name] = t
		case *corev1.Secret:
			c.secrets[o.Name] = t
		}
	}
	return c
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// ---- labels and workloads ----

func (c *checker) checkLabels() {
	for _, o := range c.objs {
		l := o.Labels()
		if l[NameLabel] == "" {
			c.addf(o.ID(), "no %s label", NameLabel)
		}
		if l[PartOfLabel] != PartOf {
			c.addf(o.ID(), "label %s is %q, want %q", PartOfLabel, l[PartOfLabel], PartOf)
		}
	}
}

func (c *checker) checkWorkloads() {
	for _, w := range c.workloads {
		id := w.obj.ID()
		sel, err := metav1.LabelSelectorAsSelector(w.selector)
		switch {
		case w.selector == nil || err != nil || sel.Empty():
			c.addf(id, "missing or invalid selector (%v)", err)
		case !sel.Matches(labels.Set(w.pod.Labels)):
			c.addf(id, "selector %s does not match its own pod template labels %v", sel, w.pod.Labels)
		}
		for _, tsc := range w.pod.Spec.TopologySpreadConstraints {
			if !selectorMatches(tsc.LabelSelector, w.pod.Labels) {
				c.addf(id, "topologySpreadConstraint on %s: labelSelector does not match the pod labels %v", tsc.TopologyKey, w.pod.Labels)
			}
		}
		c.checkSecurity(w)
		for _, ctr := range w.pod.Spec.Containers {
			r := ctr.Resources
			for _, want := range []struct {
				list corev1.ResourceList
				name corev1.ResourceName
				what string
			}{{r.Requests, corev1.ResourceCPU, "requests.cpu"}, {r.Requests, corev1.ResourceMemory, "requests.memory"}, {r.Limits, corev1.ResourceMemory, "limits.memory"}} {
				if q, ok := want.list[want.name]; !ok || q.IsZero() {
					c.addf(id, "container %s: resources.%s is not set", ctr.Name, want.what)
				}
			}
			if ctr.Image == "" {
				c.addf(id, "container %s: no image", ctr.Name)
			}
		}
	}
}

// checkSecurity requires what the Pod Security "restricted" profile
// requires, plus a read-only root filesystem.
func (c *checker) checkSecurity(w workload) {
	id := w.obj.ID()
	psc := w.pod.Spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if w.pod.Spec.HostNetwork || w.pod.Spec.HostPID || w.pod.Spec.HostIPC {
		c.addf(id, "pod uses a host namespace")
	}
	all := append(slices.Clone(w.pod.Spec.InitContainers), w.pod.Spec.Containers...)
	for _, ctr := range all {
		sc := ctr.SecurityContext
		if sc == nil {
			sc = &corev1.SecurityContext{}
		}
		cid := fmt.Sprintf("%s: container %s", id, ctr.Name)
		if !firstSet(sc.RunAsNonRoot, psc.RunAsNonRoot) {
			c.addf(cid, "runAsNonRoot is not true (container or pod securityContext)")
		}
		if u := firstPtr(sc.RunAsUser, psc.RunAsUser); u != nil && *u == 0 {
			c.addf(cid, "runAsUser is 0 (root)")
		}
		if !deref(sc.ReadOnlyRootFilesystem, false) {
			c.addf(cid, "readOnlyRootFilesystem is not true")
		}
		if deref(sc.AllowPrivilegeEscalation, true) {
			c.addf(cid, "allowPrivilegeEscalation is not false")
		}
		if deref(sc.Privileged, false) {
			c.addf(cid, "privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			c.addf(cid, "capabilities.drop does not contain ALL")
		} else if len(sc.Capabilities.Add) > 0 {
			c.addf(cid, "capabilities.add %v", sc.Capabilities.Add)
		}
		sp := sc.SeccompProfile
		if sp == nil {
			sp = psc.SeccompProfile
		}
		if sp == nil || (sp.Type != corev1.SeccompProfileTypeRuntimeDefault && sp.Type != corev1.SeccompProfileTypeLocalhost) {
			c.addf(cid, "seccompProfile is not RuntimeDefault (container or pod securityContext)")
		}
	}
}

// firstSet is the effective value of a bool that a container setting
// overrides: the first non-nil pointer, false when both are nil.
func firstSet(ptrs ...*bool) bool {
	if p := firstPtr(ptrs...); p != nil {
		return *p
	}
	return false
}

func firstPtr[T any](ptrs ...*T) *T {
	for _, p := range ptrs {
		if p != nil {
			return p
		}
	}
	return nil
}

func selectorMatches(s *metav1.LabelSelector, l map[string]string) bool {
	if s == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil || sel.Empty() {
		return false
	}
	return sel.Matches(labels.Set(l))
}

// selected returns the workloads whose pods sel selects.
func (c *checker) selected(sel map[string]string) []workload {
	if len(sel) == 0 {
		return nil
	}
	s := labels.SelectorFromSet(sel)
	var out []workload
	for _, w := range c.workloads {
		if s.Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func (c *checker) selectedBy(s *metav1.LabelSelector) []workload {
	var out []workload
	for _, w := range c.workloads {
		if selectorMatches(s, w.pod.Labels) {
			out = append(out, w)
		}
	}
	return out
}

func (c *checker) selectsGateway(ws []workload) bool {
	return slices.ContainsFunc(ws, func(w workload) bool { return c.gateway != nil && w.obj == c.gateway.obj })
}

// ---- the gateway container ----

func (c *checker) findGateway() bool {
	var found []workload
	for _, w := range c.workloads {
		if w.obj.Kind == "Deployment" && w.pod.Labels[NameLabel] == GatewayName {
			found = append(found, w)
		}
	}
	if len(found) != 1 {
		c.problems = append(c.problems, fmt.Sprintf("build: want exactly one Deployment with pod label %s=%s, found %d", NameLabel, GatewayName, len(found)))
		return false
	}
	c.gateway = &found[0]
	if c.gatewayContainer() == nil {
		c.addf(c.gateway.obj.ID(), "no container named %q", GatewayName)
		return false
	}
	return true
}

func (c *checker) gatewayContainer() *corev1.Container {
	for i := range c.gateway.pod.Spec.Containers {
		if ctr := &c.gateway.pod.Spec.Containers[i]; ctr.Name == GatewayName {
			return ctr
		}
	}
	return nil
}

// envVal is the effective value of one environment variable.
type envVal struct {
	origin string // where it is set, for messages
	value  string // the literal value; "" when it comes from a Secret
	known  bool   // value is known (a literal or a ConfigMap value in the build)
	secret bool   // from a Secret
	// optional: a Secret or ConfigMap reference that may be missing.
	optional bool
}

// Placeholders stand in for Secret values when the binary checks the
// configuration (--check-config): the values are not in the build (prod)
// or not meant to be judged (dev), but the binary must see them set. Each
// variable gets its own secret of production's length (the binary refuses
// one secret for two purposes and secrets under 32 bytes).
const (
	PlaceholderSecret   = "placeholder-secret-of-production-length-for-"
	PlaceholderRedisURL = "redis://placeholder:6379/0"
)

// runtime is the value the binary would see, as far as the build tells:
// the literal or ConfigMap value, or a placeholder for a Secret. ok is false
// when the value is unknown (a fieldRef, a missing ConfigMap key): the
// variable is then left out of the --check-config run.
func (v envVal) runtime(name string) (value string, ok bool) {
	switch {
	case v.known:
		return v.value, true
	case v.secret && name == envRedisURL:
		return PlaceholderRedisURL, true
	case v.secret:
		return PlaceholderSecret + name, true
	}
	return "", false
}

// expandEnv expands $(NAME) references in a literal env value the way the
// kubelet does: NAME is looked up among the variables defined before it
// (envFrom, then earlier env entries); an unknown reference stays as
// written, and $$ is a literal $.
func expandEnv(in string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		if in[i] != '$' || i+1 == len(in) {
			b.WriteByte(in[i])
			continue
		}
		switch next := in[i+1]; next {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(in[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := in[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(next)
			i++
		}
	}
	return b.String()
}

// checkGatewayEnv resolves the gateway container's environment the way the
// kubelet does (envFrom in order, then env, later wins) and checks every
// name against the binary's settings.
func (c *checker) checkGatewayEnv() {
	id := c.gateway.obj.ID()
	ctr := c.gatewayContainer()
	// Service links put <SERVICE>_SERVICE_HOST, <SERVICE>_PORT=tcp://ip:port
	// and more into the environment for every Service of the namespace: for
	// the Service "gateway", GATEWAY_PORT, GATEWAY_SERVICE_HOST, ... The
	// binary reads none of them (it reads PORT, never GATEWAY_PORT), but
	// they are dozens of variables in the GATEWAY_ namespace of its settings
	// that change with every Service added: a hygiene rule of its own.
	if deref(c.gateway.pod.Spec.EnableServiceLinks, true) {
		c.addf(id, "enableServiceLinks is not false: Kubernetes would inject GATEWAY_PORT=tcp://..., GATEWAY_SERVICE_HOST, ... for the Service %q and <NAME>_* for every other Service of the namespace; the binary does not read them (it reads PORT, not GATEWAY_PORT), but they crowd the GATEWAY_* names of its settings", GatewayName)
	}
	env := map[string]envVal{}
	for _, ef := range ctr.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			name := ef.ConfigMapRef.Name
			cm, ok := c.configMaps[name]
			if !ok {
				c.addf(id, "envFrom configMapRef %q: no such ConfigMap in the build", name)
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = envVal{origin: "ConfigMap " + name, value: v, known: true, optional: deref(ef.ConfigMapRef.Optional, false)}
			}
			for k := range cm.BinaryData {
				c.addf(id, "ConfigMap %s: binaryData key %s cannot be an environment variable", name, k)
			}
		case ef.SecretRef != nil:
			name := ef.SecretRef.Name
			s, ok := c.secrets[name]
			if !ok {
				// The names would be unknown to these checks.
				c.addf(id, "envFrom secretRef %q: the Secret is not in the build, so its variable names cannot be checked; use env[].valueFrom.secretKeyRef", name)
				continue
			}
			for _, k := range secretKeys(s) {
				env[ef.Prefix+k] = envVal{origin: "Secret " + name, secret: true, optional: deref(ef.SecretRef.Optional, false)}
			}
		}
	}
	lookup := func(name string) (string, bool) {
		if v, ok := env[name]; ok {
			return v.runtime(name)
		}
		return "", false
	}
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = envVal{origin: "env", value: expandEnv(e.Value, lookup), known: true}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			opt := deref(ref.Optional, false)
			if s, ok := c.secrets[ref.Name]; ok && !slices.Contains(secretKeys(s), ref.Key) && !opt {
				c.addf(id, "env %s: Secret %s has no key %q", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = envVal{origin: "Secret " + ref.Name, secret: true, optional: opt}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := c.configMaps[ref.Name]
			v, has := "", false
			if ok {
				v, has = cm.Data[ref.Key]
			}
			if !has {
				c.addf(id, "env %s: no ConfigMap %s with key %q in the build", e.Name, ref.Name, ref.Key)
			}
			env[e.Name] = envVal{origin: "ConfigMap " + ref.Name, value: v, known: has}
		default:
			env[e.Name] = envVal{origin: "env (fieldRef/resourceFieldRef)"}
		}
	}

	var names []string
	for name := range env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := env[name]
		if _, ok := c.settings[name]; !ok && !goRuntimeEnv[name] {
			c.addf(id, "container %s: env %s (from %s) is not a setting of the binary: `gateway --help` prints no `(env %s)`, so the binary ignores it", ctr.Name, name, v.origin, name)
		}
		if strings.HasSuffix(name, "_SECRET") && !v.secret {
			c.addf(id, "container %s: %s comes from %s: secrets must come from a Secret", ctr.Name, name, v.origin)
		}
	}

	envName := "production"
	if v, ok := env[envEnvironment]; ok && v.known {
		envName = strings.ToLower(strings.TrimSpace(v.value))
	} else if s, ok := c.settings[envEnvironment]; ok && s.HasDefault {
		envName = s.Default
	}
	if envName == "production" {
		v, ok := env[envWebhookSecret]
		if !ok || !v.secret || v.optional {
			c.addf(id, "%s=production needs %s from a required (non-optional) Secret reference; the binary refuses to start without it", envEnvironment, envWebhookSecret)
		}
	}
	c.gwEnv = env
}

func secretKeys(s *corev1.Secret) []string {
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	for k := range s.StringData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return slices.Compact(keys)
}

// setting returns the effective literal value of an environment variable:
// from the manifests, else the binary's default. ok is false when neither
// is known.
func (c *checker) setting(name string) (value, origin string, ok bool) {
	if v, set := c.gwEnv[name]; set {
		if !v.known {
			return "", v.origin, false
		}
		return v.value, v.origin, true
	}
	if s, found := c.settings[name]; found && s.HasDefault {
		return s.Default, "the binary's default", true
	}
	return "", "", false
}

func (c *checker) checkGatewayPort() {
	id := c.gateway.obj.ID()
	ctr := c.gatewayContainer()
	want := defaultPort
	if v, origin, ok := c.setting(envPort); ok {
		p, err := strconv.Atoi(v)
		if err != nil {
			c.addf(id, "PORT %q (%s) is not a number", v, origin)
			return
		}
		want = p
	} else if origin != "" {
		c.addf(id, "PORT comes from %s: its value cannot be checked", origin)
		return
	}
	if cp := c.gatewayPort(); cp == nil || cp.ContainerPort != int32(want) {
		c.addf(id, "container %s: want a port named \"http\" with containerPort %d (the PORT the binary listens on), have %v", ctr.Name, want, ctr.Ports)
	}
}

// gatewayPort is the container port named http.
func (c *checker) gatewayPort() *corev1.ContainerPort {
	ctr := c.gatewayContainer()
	for i := range ctr.Ports {
		if ctr.Ports[i].Name == "http" {
			return &ctr.Ports[i]
		}
	}
	return nil
}

// portIs reports whether p (a name or a number) designates the container
// port cp.
func portIs(p intstr.IntOrString, cp *corev1.ContainerPort) bool {
	if cp == nil {
		return false
	}
	if p.Type == intstr.String {
		return p.StrVal == cp.Name
	}
	return p.IntVal == cp.ContainerPort
}

func (c *checker) checkProbes() {
	id := c.gateway.obj.ID()
	ctr := c.gatewayContainer()
	// The probes are served on the main port and, when GATEWAY_METRICS_ADDR
	// is set, on the metrics listener too, outside the main port's
	// connection bounds (where a flood of connections cannot fail them).
	ports := []*corev1.ContainerPort{c.gatewayPort()}
	if mp := c.metricsPort(); mp != nil && mp != ports[0] {
		ports = append(ports, mp)
	}
	check := func(kind string, p *corev1.Probe, paths []string, required bool) {
		if p == nil {
			if required {
				c.addf(id, "container %s: no %s probe", ctr.Name, kind)
			}
			return
		}
		if p.HTTPGet == nil {
			c.addf(id, "container %s: %s probe is not an httpGet (the image has no shell for exec probes)", ctr.Name, kind)
			return
		}
		if !slices.Contains(paths, p.HTTPGet.Path) {
			c.addf(id, "container %s: %s probe path %q, want one of %v", ctr.Name, kind, p.HTTPGet.Path, paths)
		}
		if !slices.ContainsFunc(ports, func(cp *corev1.ContainerPort) bool { return portIs(p.HTTPGet.Port, cp) }) {
			c.addf(id, "container %s: %s probe port %s is neither the container port http/%v nor the metrics listener's", ctr.Name, kind, p.HTTPGet.Port.String(), portNumber(ports[0]))
		}
	}
	check("liveness", ctr.LivenessProbe, LivenessPaths, true)
	check("readiness", ctr.ReadinessProbe, []string{ReadinessPath}, true)
	check("startup", ctr.StartupProbe, LivenessPaths, false)
	if p := ctr.LivenessProbe; p != nil {
		if w := probeWindow(p); w < minLivenessWindow {
			c.addf(id, "container %s: liveness fails after %s (periodSeconds x failureThreshold); want at least %s so a slow moment does not restart the pod and drop its clients", ctr.Name, w, minLivenessWindow)
		}
	}
	if p := ctr.ReadinessProbe; p != nil {
		if w := probeWindow(p); w > maxReadinessWindow {
			c.addf(id, "container %s: readiness takes %s to fail (periodSeconds x failureThreshold); want at most %s", ctr.Name, w, maxReadinessWindow)
		}
	}
}

func portNumber(cp *corev1.ContainerPort) any {
	if cp == nil {
		return "none"
	}
	return cp.ContainerPort
}

func probeWindow(p *corev1.Probe) time.Duration {
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if failures == 0 {
		failures = 3
	}
	return time.Duration(period*failures) * time.Second
}

// checkShutdown checks the stop sequence against the grace period. On
// SIGTERM the binary fails readiness, closes clients in batches over
// GATEWAY_DRAIN_WINDOW, then stops the HTTP server and the bus; the whole
// sequence, drain included, is bounded by GATEWAY_SHUTDOWN_TIMEOUT, and the
// binary refuses to start unless the drain window is shorter than it. The
// grace period runs from the start of preStop, so preStop + shutdown timeout
// must fit inside it.
func (c *checker) checkShutdown() {
	id := c.gateway.obj.ID()
	ctr := c.gatewayContainer()
	grace := time.Duration(deref(c.gateway.pod.Spec.TerminationGracePeriodSeconds, corev1.DefaultTerminationGracePeriodSeconds)) * time.Second

	var preStop time.Duration
	if lc := ctr.Lifecycle; lc != nil && lc.PreStop != nil {
		h := lc.PreStop
		switch {
		case h.Exec != nil:
			c.addf(id, "container %s: preStop runs exec %v, but the runtime image has no shell or sleep binary; use `preStop: sleep: seconds: N`", ctr.Name, h.Exec.Command)
		case h.Sleep != nil:
			preStop = time.Duration(h.Sleep.Seconds) * time.Second
		}
	}
	duration := func(name string) (time.Duration, string, bool) {
		v, origin, ok := c.setting(name)
		if !ok {
			c.addf(id, "%s is neither set in the manifests nor has a default printed by `gateway --help`: cannot size terminationGracePeriodSeconds", name)
			return 0, "", false
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			c.addf(id, "%s=%q (%s) is not a duration: %v", name, v, origin, err)
			return 0, "", false
		}
		return d, origin, true
	}
	drain, drainOrigin, drainOK := duration(envDrain)
	shutdown, shutdownOrigin, shutdownOK := duration(envShutdown)
	if shutdownOK && grace <= preStop+shutdown {
		c.addf(id, "terminationGracePeriodSeconds %s must exceed preStop %s + %s %s = %s (the binary's whole stop sequence, drain included), or the kubelet kills the pod mid-shutdown",
			grace, preStop, envShutdown, shutdown, preStop+shutdown)
	}
	if drainOK && shutdownOK && drain >= shutdown {
		c.addf(id, "%s %s (%s) must be shorter than %s %s (%s): the shutdown timeout bounds the whole stop sequence, drain included, and the binary refuses to start otherwise",
			envDrain, drain, drainOrigin, envShutdown, shutdown, shutdownOrigin)
	}
}

func (c *checker) checkRedis() {
	id := c.gateway.obj.ID()
	maxReplicas := c.gateway.replicas
	for _, o := range c.objs {
		if h, ok := o.Typed.(*autoscalingv2.HorizontalPodAutoscaler); ok && h.Spec.ScaleTargetRef.Name == c.gateway.obj.Name {
			maxReplicas = max(maxReplicas, h.Spec.MaxReplicas)
		}
	}
	v, set := c.gwEnv[envRedisURL]
	if !set || (v.known && v.value == "") {
		if maxReplicas > 1 {
			c.addf(id, "up to %d replicas but %s is not set: without Redis each pod is its own island and room events do not reach clients on other pods", maxReplicas, envRedisURL)
		}
		return
	}
	if !v.known {
		return // from a Secret: not visible here
	}
	u, err := url.Parse(v.value)
	if err != nil || u.Host == "" || !strings.HasPrefix(u.Scheme, "redis") {
		c.addf(id, "%s %q is not a redis:// or rediss:// URL", envRedisURL, v.value)
		return
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "6379"
	}
	if strings.Contains(host, ".") || host == "localhost" {
		return // outside the build, or a fully qualified name
	}
	svc, ok := c.services[host]
	if !ok {
		c.addf(id, "%s host %q is not a Service of this build", envRedisURL, host)
		return
	}
	if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return strconv.Itoa(int(p.Port)) == port }) {
		c.addf(id, "%s port %s is not a port of Service %s", envRedisURL, port, host)
	}
}

// ---- the other objects ----

func (c *checker) checkService(o Object, s *corev1.Service) {
	if s.Spec.Type == corev1.ServiceTypeExternalName {
		return
	}
	ws := c.selected(s.Spec.Selector)
	if len(ws) == 0 {
		c.addf(o.ID(), "selector %v matches no workload's pods in the build", s.Spec.Selector)
		return
	}
	for _, p := range s.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		for _, w := range ws {
			if !podHasPort(w.pod, target) {
				c.addf(o.ID(), "port %s: targetPort %s is not a container port of %s", p.Name, target.String(), w.obj.ID())
			}
		}
	}
}

func podHasPort(pod *corev1.PodTemplateSpec, p intstr.IntOrString) bool {
	for _, ctr := range pod.Spec.Containers {
		for i := range ctr.Ports {
			if portIs(p, &ctr.Ports[i]) {
				return true
			}
		}
	}
	return false
}

func (c *checker) checkPDB(o Object, p *policyv1.PodDisruptionBudget) {
	if len(c.selectedBy(p.Spec.Selector)) == 0 {
		c.addf(o.ID(), "selector matches no workload's pods in the build")
	}
	if p.Spec.MaxUnavailable == nil && p.Spec.MinAvailable == nil {
		c.addf(o.ID(), "neither maxUnavailable nor minAvailable is set")
	}
}

func (c *checker) checkHPA(o Object, h *autoscalingv2.HorizontalPodAutoscaler) {
	ref := h.Spec.ScaleTargetRef
	var target *workload
	for i, w := range c.workloads {
		if w.obj.Kind == ref.Kind && w.obj.Name == ref.Name && w.obj.APIVersion == ref.APIVersion {
			target = &c.workloads[i]
		}
	}
	if target == nil {
		c.addf(o.ID(), "scaleTargetRef %s %s/%s names no workload in the build", ref.APIVersion, ref.Kind, ref.Name)
		return
	}
	if minR := deref(h.Spec.MinReplicas, 1); minR < 1 || minR > h.Spec.MaxReplicas {
		c.addf(o.ID(), "minReplicas %d, maxReplicas %d", minR, h.Spec.MaxReplicas)
	}
	if len(h.Spec.Metrics) == 0 {
		c.addf(o.ID(), "no metrics")
	}
	if c.gateway != nil && target.obj == c.gateway.obj {
		var win int32
		if b := h.Spec.Behavior; b != nil && b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil {
			win = *b.ScaleDown.StabilizationWindowSeconds
		}
		if win < minScaleDownWindowSec {
			c.addf(o.ID(), "behavior.scaleDown.stabilizationWindowSeconds %d; want at least %d: each removed pod makes all its clients reconnect at once", win, minScaleDownWindowSec)
		}
	}
}

func (c *checker) checkIngress(o Object, ing *networkingv1.Ingress) {
	var backends []networkingv1.IngressBackend
	if ing.Spec.DefaultBackend != nil {
		backends = append(backends, *ing.Spec.DefaultBackend)
	}
	for _, r := range ing.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			backends = append(backends, p.Backend)
		}
	}
	if len(backends) == 0 {
		c.addf(o.ID(), "no backend")
	}
	toGateway := false
	for _, b := range backends {
		if b.Service == nil {
			c.addf(o.ID(), "backend is not a Service")
			continue
		}
		svc, ok := c.services[b.Service.Name]
		if !ok {
			c.addf(o.ID(), "backend Service %q is not in the build", b.Service.Name)
			continue
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
			if b.Service.Port.Name != "" {
				return p.Name == b.Service.Port.Name
			}
			return p.Port == b.Service.Port.Number
		}) {
			c.addf(o.ID(), "backend port %s/%d is not a port of Service %s", b.Service.Port.Name, b.Service.Port.Number, svc.Name)
		}
		if c.selectsGateway(c.selected(svc.Spec.Selector)) {
			toGateway = true
		}
	}
	if !toGateway {
		return
	}
	a := ing.Annotations
	for _, k := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		if n, err := strconv.Atoi(a[k]); err != nil || n < minWebSocketTimeout {
			c.addf(o.ID(), "annotation %s=%q; want at least %d (seconds) so idle WebSockets and long-polls are not cut", k, a[k], minWebSocketTimeout)
		}
	}
	if a["nginx.ingress.kubernetes.io/affinity"] != "cookie" {
		c.addf(o.ID(), "annotation nginx.ingress.kubernetes.io/affinity=%q; want \"cookie\": the requests of a long-polling session must reach the pod that holds it", a["nginx.ingress.kubernetes.io/affinity"])
	}
}

func (c *checker) checkNetworkPolicy(o Object, np *networkingv1.NetworkPolicy) {
	var ws []workload
	if len(np.Spec.PodSelector.MatchLabels) == 0 && len(np.Spec.PodSelector.MatchExpressions) == 0 {
		ws = c.workloads // empty selector: every pod of the namespace
	} else {
		ws = c.selectedBy(&np.Spec.PodSelector)
	}
	if len(ws) == 0 {
		c.addf(o.ID(), "podSelector matches no workload's pods in the build")
		return
	}
	// A peer podSelector without namespaceSelector means pods of this
	// namespace: they must exist in the build.
	for _, r := range np.Spec.Ingress {
		for _, peer := range r.From {
			if peer.PodSelector != nil && peer.NamespaceSelector == nil && len(c.selectedBy(peer.PodSelector)) == 0 {
				c.addf(o.ID(), "ingress from podSelector %v matches no workload's pods in the build", peer.PodSelector.MatchLabels)
			}
		}
	}
	if !c.selectsGateway(ws) {
		return
	}
	cp := c.gatewayPort()
	types := np.Spec.PolicyTypes
	if slices.Contains(types, networkingv1.PolicyTypeIngress) || len(types) == 0 {
		open := false
		for _, r := range np.Spec.Ingress {
			if len(r.Ports) == 0 {
				open = true
			}
			for _, p := range r.Ports {
				if p.Port != nil && portIs(*p.Port, cp) {
					open = true
				}
			}
		}
		if !open {
			c.addf(o.ID(), "no ingress rule admits the gateway's container port %v: the ingress controller could not reach it", portNumber(cp))
		}
		if mp := c.metricsPort(); mp != nil && mp != cp && !ingressAdmits(np, mp) {
			c.addf(o.ID(), "no ingress rule admits the metrics port %d (%s): Prometheus could not scrape it", mp.ContainerPort, c.metricsWhere())
		}
	}
	if slices.Contains(types, networkingv1.PolicyTypeEgress) {
		if !egressAllows(np, corev1.ProtocolUDP, 53) {
			c.addf(o.ID(), "egress does not allow DNS (UDP 53)")
		}
		if v, set := c.gwEnv[envRedisURL]; set && (!v.known || v.value != "") && !egressAllows(np, corev1.ProtocolTCP, 6379) {
			c.addf(o.ID(), "egress does not allow Redis (TCP 6379) though REDIS_URL is set")
		}
		if mode, _, _ := c.setting(envAuth); mode == "backend" {
			if raw, _, ok := c.setting(envAuthURL); ok {
				if port := urlPort(raw); port > 0 && !egressAllows(np, corev1.ProtocolTCP, port) {
					c.addf(o.ID(), "egress does not allow the auth backend (TCP %d of %s) though GATEWAY_AUTH is backend: every connect would be refused", port, raw)
				}
			}
		}
	}
}

// ingressAdmits reports whether an ingress rule admits container port cp.
func ingressAdmits(np *networkingv1.NetworkPolicy, cp *corev1.ContainerPort) bool {
	for _, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			return true
		}
		for _, p := range r.Ports {
			if p.Port != nil && portIs(*p.Port, cp) {
				return true
			}
		}
	}
	return false
}

// urlPort is the TCP port of an http(s) URL (0 when it does not parse).
func urlPort(raw string) int32 {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	if p := u.Port(); p != "" {
		n, _ := strconv.Atoi(p)
		return int32(n)
	}
	if u.Scheme == "https" {
		return 443
	}
	return 80
}

func egressAllows(np *networkingv1.NetworkPolicy, proto corev1.Protocol, port int32) bool {
	for _, r := range np.Spec.Egress {
		if len(r.Ports) == 0 {
			return true
		}
		for _, p := range r.Ports {
			pp := deref(p.Protocol, corev1.ProtocolTCP)
			if pp == proto && (p.Port == nil || (p.Port.Type == intstr.Int && p.Port.IntVal <= port && port <= deref(p.EndPort, p.Port.IntVal))) {
				return true
			}
		}
	}
	return false
}

func (c *checker) checkServiceMonitor(o Object, sm *ServiceMonitor) {
	if len(sm.Spec.Endpoints) == 0 {
		c.addf(o.ID(), "no endpoints")
	}
	var svcs []*corev1.Service
	for _, s := range c.services {
		if selectorMatches(&sm.Spec.Selector, s.Labels) {
			svcs = append(svcs, s)
		}
	}
	if len(svcs) == 0 {
		c.addf(o.ID(), "selector %v matches the labels of no Service in the build", sm.Spec.Selector.MatchLabels)
		return
	}
	for _, ep := range sm.Spec.Endpoints {
		p := ep.Path
		if p == "" {
			p = MetricsPath
		}
		if path.Clean(p) != MetricsPath {
			c.addf(o.ID(), "endpoint path %q; the gateway serves metrics on %s", ep.Path, MetricsPath)
		}
		if ep.Port == "" {
			c.addf(o.ID(), "endpoint without a port name")
			continue
		}
		for _, s := range svcs {
			i := slices.IndexFunc(s.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == ep.Port })
			if i < 0 {
				c.addf(o.ID(), "endpoint port %q is not a port name of Service %s", ep.Port, s.Name)
				continue
			}
			if c.gateway == nil {
				continue
			}
			target := s.Spec.Ports[i].TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(s.Spec.Ports[i].Port)
			}
			if want := c.metricsPort(); want != nil && !portIs(target, want) {
				c.addf(o.ID(), "endpoint port %q reaches container port %s, but the gateway serves /metrics on %d (%s)", ep.Port, target.String(), want.ContainerPort, c.metricsWhere())
			}
		}
	}
}

// metricsPort is the container port where the gateway serves /metrics:
// the port of GATEWAY_METRICS_ADDR when set, else the http port. Nil when
// no container port has that number.
func (c *checker) metricsPort() *corev1.ContainerPort {
	v, _, ok := c.setting(envMetricsAddr)
	if !ok || v == "" {
		return c.gatewayPort()
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return nil
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return nil
	}
	ctr := c.gatewayContainer()
	for i := range ctr.Ports {
		if ctr.Ports[i].ContainerPort == int32(n) {
			return &ctr.Ports[i]
		}
	}
	return &corev1.ContainerPort{Name: "(none)", ContainerPort: int32(n)}
}

// metricsWhere says where metricsPort comes from, for messages.
func (c *checker) metricsWhere() string {
	if v, _, ok := c.setting(envMetricsAddr); ok && v != "" {
		return envMetricsAddr + "=" + v
	}
	return "the main port"
}

// checkGatewayCovered requires the objects that make the gateway reachable
// and safe to disrupt.
func (c *checker) checkGatewayCovered() {
	if c.gateway == nil {
		return
	}
	var svc, pdb, hpa, np bool
	for _, o := range c.objs {
		switch t := o.Typed.(type) {
		case *corev1.Service:
			svc = svc || c.selectsGateway(c.selected(t.Spec.Selector))
		case *policyv1.PodDisruptionBudget:
			pdb = pdb || c.selectsGateway(c.selectedBy(t.Spec.Selector))
		case *autoscalingv2.HorizontalPodAutoscaler:
			hpa = hpa || (t.Spec.ScaleTargetRef.Kind == "Deployment" && t.Spec.ScaleTargetRef.Name == c.gateway.obj.Name)
		case *networkingv1.NetworkPolicy:
			np = np || c.selectsGateway(c.selectedBy(&t.Spec.PodSelector))
		}
	}
	for what, ok := range map[string]bool{"Service": svc, "PodDisruptionBudget": pdb, "HorizontalPodAutoscaler": hpa, "NetworkPolicy": np} {
		if !ok {
			c.problems = append(c.problems, fmt.Sprintf("build: no %s selects/targets %s", what, c.gateway.obj.ID()))
		}
	}
}

// ---- the binary's own validation ----

// configEnv is the gateway container's environment as the binary would see
// it, as far as the build tells (see envVal.runtime), sorted.
func (c *checker) configEnv() []string {
	var env []string
	for name, v := range c.gwEnv {
		if val, ok := v.runtime(name); ok {
			env = append(env, name+"="+val)
		}
	}
	sort.Strings(env)
	return env
}

// checkConfigWithBinary runs `gateway --check-config` with the container's
// environment (Secret values as placeholders) and a clean environment
// otherwise: the binary itself must accept the configuration, with every
// rule it has, including those these checks do not repeat.
func (c *checker) checkConfigWithBinary() {
	id := c.gateway.obj.ID()
	if c.gw.Bin == "" {
		c.addf(id, "no gateway binary to run --check-config with")
		return
	}
	out, err := c.gw.CheckConfig(context.Background(), c.configEnv())
	if err == nil {
		return
	}
	msg := strings.Join(strings.Fields(out), " ")
	if msg == "" {
		msg = "(no output)"
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		c.addf(id, "container %s: `gateway --check-config` rejects the container's environment (exit status %d): %s", GatewayName, ee.ExitCode(), msg)
		return
	}
	c.addf(id, "container %s: cannot run `%s --check-config`: %v %s", GatewayName, c.gw.Bin, err, msg)
}

// GatewayEnv returns the environment that Check passes to
// `gateway --check-config` for the gateway Deployment of objs ("NAME=value",
// sorted, Secret values as placeholders), or nil when objs hold no gateway
// Deployment.
func GatewayEnv(objs []Object, gw *Gateway) []string {
	c := newChecker(objs, gw)
	if !c.findGateway() {
		return nil
	}
	c.checkGatewayEnv()
	return c.configEnv()
}

// goRuntimeEnv are the Go runtime's own variables: settings of every Go
// binary, read before main (an overlay may set them; the base sets
// GATEWAY_MEMORY_LIMIT instead, which leaves the runtime 10% room).
var goRuntimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOGC": true, "GOMAXPROCS": true, "GODEBUG": true}
