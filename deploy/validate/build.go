package validate

import (
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest.
type Object struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	// Typed is a pointer to the k8s.io/api type of the object (for example
	// *appsv1.Deployment), or *ServiceMonitor.
	Typed any
}

// ID names the object in messages: Kind/name.
func (o Object) ID() string { return o.Kind + "/" + o.Name }

// Labels returns the object's metadata labels.
func (o Object) Labels() map[string]string {
	if m, ok := o.Typed.(metav1.Object); ok {
		return m.GetLabels()
	}
	return nil
}

// decoders lists every apiVersion/kind the deploy manifests may use, each
// with its Go type. Anything else (a new kind, or a typo in apiVersion) is
// rejected: add the kind here together with its checks.
var decoders = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Namespace":                            func() any { return new(corev1.Namespace) },
	"v1/PersistentVolumeClaim":                func() any { return new(corev1.PersistentVolumeClaim) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"apps/v1/StatefulSet":                     func() any { return new(appsv1.StatefulSet) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/Ingress":            func() any { return new(networkingv1.Ingress) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(ServiceMonitor) },
}

// Build runs kustomize (the Go API, as `kustomize build` does, with the
// default load restrictions and no plugins) on the kustomization folder dir
// and decodes every resulting object strictly.
func Build(dir string) ([]Object, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var (
		objs []Object
		errs []error
	)
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", r.GetKind(), r.GetName(), err))
			continue
		}
		o, err := Decode(y)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, o)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return objs, nil
}

// Decode decodes one YAML document into the Go type of its apiVersion and
// kind, as strictly as the API server's strict field validation: an unknown
// field, a field whose case differs (`Replicas`), a duplicate field or a
// value of the wrong type (`replicas: "3"`) is an error. encoding/json alone
// would accept the wrong case; sigs.k8s.io/json does not.
func Decode(doc []byte) (Object, error) {
	var tm metav1.TypeMeta
	var meta struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return Object{}, fmt.Errorf("yaml: %w", err)
	}
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return Object{}, fmt.Errorf("apiVersion/kind: %w", err)
	}
	if err := k8sjson.UnmarshalCaseSensitivePreserveInts(js, &meta); err != nil {
		return Object{}, fmt.Errorf("%s: metadata: %w", tm.Kind, err)
	}
	id := tm.Kind + "/" + meta.Metadata.Name
	newObj, ok := decoders[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return Object{}, fmt.Errorf("%s: apiVersion %q kind %q is not a kind the deploy manifests may use", id, tm.APIVersion, tm.Kind)
	}
	typed := newObj()
	strictErrs, err := k8sjson.UnmarshalStrict(js, typed, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return Object{}, fmt.Errorf("%s: strict decoding error: %w", id, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return Object{}, fmt.Errorf("%s: strict decoding error: %s", id, strings.Join(msgs, "; "))
	}
	return Object{APIVersion: tm.APIVersion, Kind: tm.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, Typed: typed}, nil
}

// ServiceMonitor is the part of the Prometheus Operator's ServiceMonitor
// (monitoring.coreos.com/v1) that these manifests use. There is no
// k8s.io/api type for it and the operator's module is not worth the
// dependency: this light model is decoded strictly like the others, so a
// field it does not list is reported; add the field here when a manifest
// needs it.
type ServiceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              ServiceMonitorSpec `json:"spec"`
}

// ServiceMonitorSpec is the modelled part of ServiceMonitor.spec.
type ServiceMonitorSpec struct {
	JobLabel          string                   `json:"jobLabel,omitempty"`
	TargetLabels      []string                 `json:"targetLabels,omitempty"`
	PodTargetLabels   []string                 `json:"podTargetLabels,omitempty"`
	Endpoints         []ServiceMonitorEndpoint `json:"endpoints"`
	Selector          metav1.LabelSelector     `json:"selector"`
	NamespaceSelector *struct {
		Any        bool     `json:"any,omitempty"`
		MatchNames []string `json:"matchNames,omitempty"`
	} `json:"namespaceSelector,omitempty"`
}

// ServiceMonitorEndpoint is one scrape endpoint.
type ServiceMonitorEndpoint struct {
	Port          string `json:"port,omitempty"`
	Path          string `json:"path,omitempty"`
	Scheme        string `json:"scheme,omitempty"`
	Interval      string `json:"interval,omitempty"`
	ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
	HonorLabels   bool   `json:"honorLabels,omitempty"`
}
