// Package validate checks the Kubernetes manifests under deploy/ without a
// cluster: it builds each kustomization with the kustomize Go API, decodes
// every object strictly into its k8s.io/api type, and cross-checks the
// objects against each other and against the gateway binary (the settings
// that `gateway --help` prints, its routes, its shutdown sequence, and its
// own validation: `gateway --check-config` run with the container's
// environment).
//
// Run it with `go test ./...` in this folder; see deploy/README.md.
package validate

import (
	"fmt"
	"os"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Dir builds the kustomization in dir and checks the result against the
// binary gw. The error is a Problems (one line per problem) or a
// build/decode error.
func Dir(dir string, gw *Gateway) error {
	objs, err := Build(dir)
	if err != nil {
		return err
	}
	return Check(objs, gw).Err()
}

// SecretExample checks an example Secret manifest that is not part of any
// build (base/secret.example.yaml): it decodes strictly as a Secret, every
// key is a setting of the binary, and it holds every key that the gateway
// Deployment of objs reads from a Secret of the same name.
func SecretExample(file string, objs []Object, settings Settings) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	o, err := Decode(b)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	s, ok := o.Typed.(*corev1.Secret)
	if !ok {
		return fmt.Errorf("%s: %s is not a Secret", file, o.ID())
	}
	var p Problems
	keys := secretKeys(s)
	for _, k := range keys {
		if _, ok := settings[k]; !ok {
			p = append(p, fmt.Sprintf("%s: key %s is not a setting of the binary", file, k))
		}
	}
	for _, obj := range objs {
		d, ok := obj.Typed.(*appsv1.Deployment)
		if !ok {
			continue
		}
		for _, ctr := range d.Spec.Template.Spec.Containers {
			for _, e := range ctr.Env {
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Name != s.Name {
					continue
				}
				if !slices.Contains(keys, e.ValueFrom.SecretKeyRef.Key) {
					p = append(p, fmt.Sprintf("%s: no key %s, which %s reads for %s", file, e.ValueFrom.SecretKeyRef.Key, obj.ID(), e.Name))
				}
			}
		}
	}
	return p.Err()
}
