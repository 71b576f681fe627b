package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The Kubernetes kinds a chart of ours may render, each with its Go API type. A kind not
// listed fails: adding one to the chart means adding it here, checked.
var kubeTypes = map[string]func() any{
	"v1/ServiceAccount":                      func() any { return &corev1.ServiceAccount{} },
	"v1/Service":                             func() any { return &corev1.Service{} },
	"v1/ConfigMap":                           func() any { return &corev1.ConfigMap{} },
	"apps/v1/Deployment":                     func() any { return &appsv1.Deployment{} },
	"batch/v1/Job":                           func() any { return &batchv1.Job{} },
	"policy/v1/PodDisruptionBudget":          func() any { return &policyv1.PodDisruptionBudget{} },
	"autoscaling/v2/HorizontalPodAutoscaler": func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
}

// kubeAPIVersion is the k8s.io/api module version this binary was built with.
func kubeAPIVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "k8s.io/api" {
				return m.Version
			}
		}
	}
	return "unknown"
}

// strictJSON turns one YAML document into JSON, refusing duplicate keys.
func strictJSON(doc []byte) ([]byte, error) {
	return yaml.YAMLToJSONStrict(doc)
}

// decodeStrict decodes JSON into v, refusing fields v's type does not have.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

func checkManifests(input []byte, keda *KEDA) ([]Object, []string) {
	var objects []Object
	var errs []string
	triggerAuths := map[string]map[string]any{}
	var scaledObjects []map[string]any
	for i, doc := range splitDocuments(input) {
		data, err := strictJSON(doc)
		if err != nil {
			errs = append(errs, fmt.Sprintf("document %d: not YAML: %v", i+1, err))
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(data, &head); err != nil || head.APIVersion == "" || head.Kind == "" {
			errs = append(errs, fmt.Sprintf("document %d: no apiVersion and kind", i+1))
			continue
		}
		where := fmt.Sprintf("%s %s (%s)", head.Kind, head.Metadata.Name, head.APIVersion)
		obj := Object{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, Manifest: data}
		if head.Metadata.Name == "" {
			errs = append(errs, fmt.Sprintf("%s: no metadata.name", where))
		}
		if head.Kind == "Secret" {
			errs = append(errs, fmt.Sprintf("%s: the chart renders no Secrets: a secret's value would be in the manifest's plain text; reference an existing Secret instead", where))
			continue
		}
		if newObj, ok := kubeTypes[head.APIVersion+"/"+head.Kind]; ok {
			obj.CheckedBy = "k8s.io/api " + kubeAPIVersion()
			if err := decodeStrict(data, newObj()); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", where, err))
			}
		} else if crd, ok := keda.CRDs[head.APIVersion+"/"+head.Kind]; ok {
			obj.CheckedBy = crd.Source
			var generic map[string]any
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			if err := dec.Decode(&generic); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", where, err))
				continue
			}
			errs = append(errs, checkCustomResource(where, data, generic, crd)...)
			switch head.Kind {
			case "ScaledObject":
				scaledObjects = append(scaledObjects, generic)
			case "TriggerAuthentication":
				triggerAuths[head.Metadata.Name] = generic
			}
		} else {
			errs = append(errs, fmt.Sprintf("%s: a kind this validator does not know (add its API type to kubeTypes)", where))
		}
		objects = append(objects, obj)
	}
	for _, so := range scaledObjects {
		errs = append(errs, keda.checkTemporalTriggers(so, triggerAuths)...)
	}
	return objects, errs
}

// checkCustomResource checks metadata as the Kubernetes ObjectMeta type and the rest
// against the CRD's schema.
func checkCustomResource(where string, data []byte, generic map[string]any, crd *CRD) []string {
	var errs []string
	var parts struct {
		Metadata json.RawMessage `json:"metadata"`
	}
	_ = json.Unmarshal(data, &parts)
	if err := decodeStrict(parts.Metadata, &metav1.ObjectMeta{}); err != nil {
		errs = append(errs, fmt.Sprintf("%s: metadata: %v", where, err))
	}
	body := map[string]any{}
	for k, v := range generic {
		if k != "metadata" {
			body[k] = v
		}
	}
	for _, e := range crd.Schema.validate("", body, true) {
		errs = append(errs, fmt.Sprintf("%s: %s", where, strings.TrimPrefix(e, ".")))
	}
	return errs
}
