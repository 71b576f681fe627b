// validate-manifests checks the deployment files offline, with the real types and schemas:
//
//   - every object `helm template` rendered is decoded strictly into the Kubernetes API type
//     of its apiVersion and kind (k8s.io/api, pinned in go.mod): an unknown field, a wrong
//     type or a bad quantity fails;
//   - KEDA objects (ScaledObject, TriggerAuthentication) are checked against the
//     openAPIV3Schema of KEDA's own CRDs, and each `temporal` trigger's metadata against the
//     fields KEDA's temporal scaler reads (its `keda:"name=..."` struct tags), both read from
//     the pinned KEDA module (--keda DIR);
//   - Dockerfiles are parsed into stages and instructions by BuildKit's own parser, with its
//     linter's warnings as errors.
//
// Usage: validate-manifests --keda DIR [--dockerfile FILE]... [MANIFEST.yaml ...]
// (manifests from stdin without files). Prints a JSON report on stdout (what was checked,
// for the tests to assert on) and exits 1 listing every problem, each naming its object.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// Object is what the report says of one rendered object.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Name       string `json:"name"`
	CheckedBy  string `json:"checkedBy"`
	// The object itself as JSON, so a test can assert on what was rendered.
	Manifest json.RawMessage `json:"manifest"`
}

type Report struct {
	KubernetesAPI string       `json:"kubernetesApi"`
	KEDA          string       `json:"keda"`
	Objects       []Object     `json:"objects"`
	Dockerfiles   []Dockerfile `json:"dockerfiles"`
	Errors        []string     `json:"errors"`
}

func main() {
	var dockerfiles stringList
	kedaDir := flag.String("keda", "", "the pinned KEDA module's source folder (CRDs and the temporal scaler)")
	flag.Var(&dockerfiles, "dockerfile", "a Dockerfile to parse (repeatable)")
	flag.Parse()
	if *kedaDir == "" {
		fmt.Fprintln(os.Stderr, "validate-manifests: --keda DIR is required (infra/install-deploy-tools.sh puts it in .cache/keda)")
		os.Exit(2)
	}
	kedaName := *kedaDir
	if resolved, err := filepath.EvalSymlinks(*kedaDir); err == nil {
		kedaName = resolved // .cache/keda links to keda-<version>
	}
	report := Report{KubernetesAPI: kubeAPIVersion(), KEDA: filepath.Base(kedaName), Objects: []Object{}, Dockerfiles: []Dockerfile{}, Errors: []string{}}
	keda, err := loadKEDA(*kedaDir)
	if err != nil {
		fail(err)
	}
	var input []byte
	if flag.NArg() == 0 {
		if input, err = io.ReadAll(os.Stdin); err != nil {
			fail(err)
		}
	}
	for _, f := range flag.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		input = append(append(input, []byte("\n---\n")...), b...)
	}
	objects, errs := checkManifests(input, keda)
	report.Objects = append(report.Objects, objects...)
	report.Errors = append(report.Errors, errs...)
	for _, f := range dockerfiles {
		d, errs := checkDockerfile(f)
		report.Dockerfiles = append(report.Dockerfiles, d)
		report.Errors = append(report.Errors, errs...)
	}
	sort.Strings(report.Errors)
	out, _ := json.MarshalIndent(report, "", "  ")
	fmt.Println(string(out))
	if len(report.Errors) > 0 {
		fmt.Fprintf(os.Stderr, "validate-manifests: %d problem(s):\n  %s\n", len(report.Errors), strings.Join(report.Errors, "\n  "))
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "validate-manifests: %d objects valid against Kubernetes %s and %s; %d Dockerfile(s) parsed\n",
		len(report.Objects), report.KubernetesAPI, report.KEDA, len(report.Dockerfiles))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "validate-manifests: %v\n", err)
	os.Exit(2)
}

// splitDocuments cuts a multi-document YAML stream at its `---` lines; empty documents
// (only comments) are dropped.
func splitDocuments(input []byte) [][]byte {
	var docs [][]byte
	for _, part := range bytes.Split(append([]byte("\n"), input...), []byte("\n---")) {
		// The separator's line may carry a comment after it; drop the rest of that line.
		if i := bytes.IndexByte(part, '\n'); i >= 0 {
			part = part[i+1:]
		}
		meaningful := false
		for _, line := range strings.Split(string(part), "\n") {
			t := strings.TrimSpace(line)
			if t != "" && !strings.HasPrefix(t, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, part)
		}
	}
	return docs
}
