package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is what the report says of one parsed Dockerfile, for the tests' assertions.
type Dockerfile struct {
	File        string   `json:"file"`
	Stages      []Stage  `json:"stages"`
	User        string   `json:"user"`        // the final stage's last USER
	Healthcheck []string `json:"healthcheck"` // the final stage's HEALTHCHECK test
	Entrypoint  []string `json:"entrypoint"`
}

type Stage struct {
	Name string   `json:"name"`
	Base string   `json:"base"`
	Runs []string `json:"runs"`
	Envs []string `json:"envs"` // names only
	Args []string `json:"args"` // names only
}

// checkDockerfile parses with BuildKit's parser and instruction decoder; its linter's
// warnings (secrets in ARG/ENV, casing, JSON arguments, ...) count as errors.
func checkDockerfile(path string) (Dockerfile, []string) {
	d := Dockerfile{File: path, Stages: []Stage{}}
	var errs []string
	f, err := os.Open(path)
	if err != nil {
		return d, []string{err.Error()}
	}
	defer f.Close()
	ast, err := parser.Parse(f)
	if err != nil {
		return d, []string{fmt.Sprintf("%s: %v", path, err)}
	}
	for _, w := range ast.Warnings {
		errs = append(errs, fmt.Sprintf("%s:%d: %s", path, w.Location.Start.Line, w.Short))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, description, url, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		errs = append(errs, fmt.Sprintf("%s:%d: %s: %s", path, line, rule, msg))
	}})
	stages, _, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		return d, append(errs, fmt.Sprintf("%s: %v", path, err))
	}
	for _, s := range stages {
		d.User, d.Healthcheck, d.Entrypoint = "", nil, nil // the final stage's are the image's
		st := Stage{Name: s.Name, Base: s.BaseName, Runs: []string{}, Envs: []string{}, Args: []string{}}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.RunCommand:
				st.Runs = append(st.Runs, strings.Join(c.CmdLine, " "))
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					st.Envs = append(st.Envs, kv.Key)
				}
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					st.Args = append(st.Args, kv.Key)
				}
			case *instructions.UserCommand:
				d.User = c.User
			case *instructions.HealthCheckCommand:
				d.Healthcheck = c.Health.Test
			case *instructions.EntrypointCommand:
				d.Entrypoint = c.CmdLine
			}
		}
		d.Stages = append(d.Stages, st)
	}
	return d, errs
}
