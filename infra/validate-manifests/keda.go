package main

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// KEDA: its CRDs' schemas and the metadata its temporal scaler reads, from the pinned
// module's source (config/crd/bases, pkg/scalers/temporal_scaler.go).
type KEDA struct {
	CRDs     map[string]*CRD // "keda.sh/v1alpha1/ScaledObject"
	Temporal map[string]scalerField
}

type CRD struct {
	Source string
	Schema *Schema
}

// Schema is the part of OpenAPI v3 (structural schemas, as CRDs use it) that KEDA's CRDs use.
type Schema struct {
	Type                 string             `json:"type"`
	Properties           map[string]*Schema `json:"properties"`
	Items                *Schema            `json:"items"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Required             []string           `json:"required"`
	Enum                 []any              `json:"enum"`
	Format               string             `json:"format"`
	Pattern              string             `json:"pattern"`
	Minimum              *float64           `json:"minimum"`
	Maximum              *float64           `json:"maximum"`
	AnyOf                []*Schema          `json:"anyOf"`
	IntOrString          bool               `json:"x-kubernetes-int-or-string"`
	PreserveUnknown      bool               `json:"x-kubernetes-preserve-unknown-fields"`
}

func loadKEDA(dir string) (*KEDA, error) {
	k := &KEDA{CRDs: map[string]*CRD{}}
	if resolved, err := filepath.EvalSymlinks(dir); err == nil {
		dir = resolved
	}
	for _, f := range []string{"keda.sh_scaledobjects.yaml", "keda.sh_triggerauthentications.yaml"} {
		path := filepath.Join(dir, "config", "crd", "bases", f)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("KEDA's CRD: %w", err)
		}
		var crd struct {
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Schema struct {
						OpenAPIV3Schema *Schema `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema.OpenAPIV3Schema == nil {
				return nil, fmt.Errorf("%s: version %s has no openAPIV3Schema", path, v.Name)
			}
			k.CRDs[crd.Spec.Group+"/"+v.Name+"/"+crd.Spec.Names.Kind] = &CRD{Source: filepath.Base(dir) + " " + f, Schema: v.Schema.OpenAPIV3Schema}
		}
	}
	fields, err := temporalScalerFields(filepath.Join(dir, "pkg", "scalers", "temporal_scaler.go"))
	if err != nil {
		return nil, err
	}
	k.Temporal = fields
	return k, nil
}

// validate returns one message per problem, each with the path to the value.
func (s *Schema) validate(path string, v any, root bool) []string {
	if s == nil {
		return nil
	}
	if s.IntOrString {
		switch v.(type) {
		case string, json.Number:
			return nil
		}
		return []string{fmt.Sprintf("%s: expected an integer or a string, got %s", path, describe(v))}
	}
	if len(s.AnyOf) > 0 && s.Type == "" {
		for _, alt := range s.AnyOf {
			if len(alt.validate(path, v, false)) == 0 {
				return nil
			}
		}
		return []string{fmt.Sprintf("%s: matches none of the allowed forms (%s)", path, describe(v))}
	}
	var errs []string
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: expected an object, got %s", path, describe(v))}
		}
		extra := s.additional()
		keys := make([]string, 0, len(m))
		for key := range m {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			if root && (key == "apiVersion" || key == "kind") {
				continue
			}
			if p, ok := s.Properties[key]; ok {
				errs = append(errs, p.validate(path+"."+key, m[key], false)...)
			} else if extra != nil {
				errs = append(errs, extra.validate(path+"."+key, m[key], false)...)
			} else if !s.PreserveUnknown && !(len(s.Properties) == 0 && len(s.AdditionalProperties) == 0) {
				errs = append(errs, fmt.Sprintf("%s: unknown field %q", path, key))
			}
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				errs = append(errs, fmt.Sprintf("%s: missing required field %q", path, r))
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: expected a list, got %s", path, describe(v))}
		}
		for i, item := range a {
			errs = append(errs, s.Items.validate(fmt.Sprintf("%s[%d]", path, i), item, false)...)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			return []string{fmt.Sprintf("%s: expected a string, got %s", path, describe(v))}
		}
		if s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(str) {
			errs = append(errs, fmt.Sprintf("%s: %q does not match %s", path, str, s.Pattern))
		}
	case "integer", "number":
		n, ok := v.(json.Number)
		if !ok {
			return []string{fmt.Sprintf("%s: expected a %s, got %s", path, s.Type, describe(v))}
		}
		f, err := n.Float64()
		if err != nil || (s.Type == "integer" && f != math.Trunc(f)) {
			return []string{fmt.Sprintf("%s: expected a %s, got %s", path, s.Type, n)}
		}
		if s.Format == "int32" && (f < math.MinInt32 || f > math.MaxInt32) {
			errs = append(errs, fmt.Sprintf("%s: %s is out of int32's range", path, n))
		}
		if s.Minimum != nil && f < *s.Minimum {
			errs = append(errs, fmt.Sprintf("%s: %s is below the minimum %v", path, n, *s.Minimum))
		}
		if s.Maximum != nil && f > *s.Maximum {
			errs = append(errs, fmt.Sprintf("%s: %s is above the maximum %v", path, n, *s.Maximum))
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return []string{fmt.Sprintf("%s: expected true or false, got %s", path, describe(v))}
		}
	}
	if len(s.Enum) > 0 {
		found := false
		for _, e := range s.Enum {
			if fmt.Sprint(e) == fmt.Sprint(v) {
				found = true
			}
		}
		if !found {
			errs = append(errs, fmt.Sprintf("%s: %v is not one of %v", path, v, s.Enum))
		}
	}
	return errs
}

// additional is the schema of fields not in properties (additionalProperties as a schema).
func (s *Schema) additional() *Schema {
	if len(s.AdditionalProperties) == 0 || string(s.AdditionalProperties) == "false" {
		return nil
	}
	if string(s.AdditionalProperties) == "true" {
		return &Schema{PreserveUnknown: true}
	}
	var extra Schema
	if err := json.Unmarshal(s.AdditionalProperties, &extra); err != nil {
		return nil
	}
	return &extra
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case json.Number:
		return "the number " + x.String()
	case string:
		return fmt.Sprintf("the string %q", x)
	}
	return reflect.TypeOf(v).String()
}

// scalerField is one `keda:"..."` tag of the temporal scaler's metadata struct.
type scalerField struct {
	Name       string
	GoType     string
	Metadata   bool // may be given in the trigger's metadata
	AuthParam  bool // may come from a TriggerAuthentication
	Required   bool // neither optional nor defaulted
	Deprecated string
}

// temporalScalerFields reads the temporalMetadata struct's tags from KEDA's source.
func temporalScalerFields(path string) (map[string]scalerField, error) {
	file, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("KEDA's temporal scaler: %w", err)
	}
	fields := map[string]scalerField{}
	ast.Inspect(file, func(n ast.Node) bool {
		spec, ok := n.(*ast.TypeSpec)
		if !ok || spec.Name.Name != "temporalMetadata" {
			return true
		}
		for _, f := range spec.Type.(*ast.StructType).Fields.List {
			if f.Tag == nil {
				continue
			}
			tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("keda")
			if tag == "" {
				continue
			}
			sf := scalerField{Required: true}
			switch t := f.Type.(type) {
			case *ast.Ident:
				sf.GoType = t.Name
			case *ast.ArrayType:
				sf.GoType = "[]"
			}
			for _, part := range splitTag(tag) {
				key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
				switch key {
				case "name":
					sf.Name = value
				case "order":
					sf.Metadata = strings.Contains(value, "triggerMetadata")
					sf.AuthParam = strings.Contains(value, "authParams")
				case "optional", "default":
					sf.Required = false
				case "deprecated":
					sf.Deprecated = value
				}
			}
			fields[sf.Name] = sf
		}
		return false
	})
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s: no temporalMetadata struct with keda tags (has KEDA's temporal scaler moved?)", path)
	}
	return fields, nil
}

// splitTag splits a keda tag at its commas, except inside a deprecated= message (the last item).
func splitTag(tag string) []string {
	if i := strings.Index(tag, "deprecated="); i >= 0 {
		return append(strings.Split(strings.TrimRight(tag[:i], ", "), ","), tag[i:])
	}
	return strings.Split(tag, ",")
}

// checkTemporalTriggers checks each temporal trigger's metadata keys and values as KEDA's
// temporal scaler parses them, and that its authenticationRef names a TriggerAuthentication
// of the same render whose parameters the scaler reads.
func (k *KEDA) checkTemporalTriggers(so map[string]any, auths map[string]map[string]any) []string {
	var errs []string
	name := fmt.Sprint(so["metadata"].(map[string]any)["name"])
	spec, _ := so["spec"].(map[string]any)
	triggers, _ := spec["triggers"].([]any)
	for i, t := range triggers {
		trigger, _ := t.(map[string]any)
		if trigger["type"] != "temporal" {
			continue
		}
		where := fmt.Sprintf("ScaledObject %s: triggers[%d] (temporal)", name, i)
		metadata, _ := trigger["metadata"].(map[string]any)
		for key, raw := range metadata {
			f, ok := k.Temporal[key]
			value := fmt.Sprint(raw)
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("%s: metadata %q is not a field of KEDA's temporal scaler", where, key))
			case !f.Metadata:
				errs = append(errs, fmt.Sprintf("%s: metadata %q is an auth parameter: give it through a TriggerAuthentication, not in plain text", where, key))
			case f.Deprecated != "":
				errs = append(errs, fmt.Sprintf("%s: metadata %q: %s", where, key, f.Deprecated))
			case f.GoType == "bool":
				if _, err := strconv.ParseBool(value); err != nil {
					errs = append(errs, fmt.Sprintf("%s: metadata %q must be true or false, got %q", where, key, value))
				}
			case strings.HasPrefix(f.GoType, "int"):
				if _, err := strconv.ParseInt(value, 10, 64); err != nil {
					errs = append(errs, fmt.Sprintf("%s: metadata %q must be an integer, got %q", where, key, value))
				}
			}
		}
		for _, f := range k.Temporal {
			if _, ok := metadata[f.Name]; f.Required && f.Metadata && !ok {
				errs = append(errs, fmt.Sprintf("%s: metadata %q is required by KEDA's temporal scaler", where, f.Name))
			}
		}
		if (metadata["workerDeploymentName"] == nil) != (metadata["workerDeploymentBuildId"] == nil) {
			errs = append(errs, fmt.Sprintf("%s: workerDeploymentName and workerDeploymentBuildId go together", where))
		}
		if metadata["workflowTaskQueueForCount"] != nil && fmt.Sprint(metadata["includeRunningWorkflowCount"]) != "true" {
			errs = append(errs, fmt.Sprintf("%s: workflowTaskQueueForCount has no effect without includeRunningWorkflowCount: \"true\"", where))
		}
		ref, _ := trigger["authenticationRef"].(map[string]any)
		if ref == nil {
			continue
		}
		auth, ok := auths[fmt.Sprint(ref["name"])]
		if !ok {
			errs = append(errs, fmt.Sprintf("%s: authenticationRef %v names no TriggerAuthentication of this release", where, ref["name"]))
			continue
		}
		authSpec, _ := auth["spec"].(map[string]any)
		refs, _ := authSpec["secretTargetRef"].([]any)
		for _, r := range refs {
			param := fmt.Sprint(r.(map[string]any)["parameter"])
			if f, ok := k.Temporal[param]; !ok || !f.AuthParam {
				errs = append(errs, fmt.Sprintf("TriggerAuthentication %v: parameter %q is not an auth parameter of KEDA's temporal scaler", ref["name"], param))
			}
		}
	}
	return errs
}
