#!/usr/bin/env bash
# Installs what checks the deployment files offline (test/deploy.test.ts): Helm, the
# pinned KEDA sources the validator reads (its CRDs and its temporal scaler), and
# infra/validate-manifests (strict Kubernetes API types, KEDA's schemas, BuildKit's
# Dockerfile parser). All from the Go module proxy at pinned versions, built once per
# machine into the cache install-services.sh uses, and linked into .cache/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Helm 4 installs with `go install` (no replace directive in its go.mod); it needs go1.26.
HELM_VERSION=v4.3.2
# KEDA's ScaledObject schema and temporal scaler metadata (workerDeploymentName/BuildId,
# includeRunningWorkflowCount). Only read, never built.
KEDA_VERSION=v2.21.0

cache="${ALEXNET_CACHE_DIR:-$HOME/.cache/alexnet}/bin"
links="$root/.cache/bin"
mkdir -p "$cache" "$links"

exec 9>"$cache/.install.lock"  # the lock install-services.sh takes: one Go build at a time
flock 9

gowork="$cache/.go-build-deploy"
cleanup() {
  [ -d "$gowork" ] || return 0
  GOMODCACHE="$gowork/mod" go clean -modcache 2>/dev/null || true  # module files are read-only
  rm -rf "$gowork"
}
trap cleanup EXIT
export GOMODCACHE="$gowork/mod" GOCACHE="$gowork/cache" GOFLAGS=-modcacherw CGO_ENABLED=0

need_go() {
  command -v go >/dev/null 2>&1 && return 0
  echo "install-deploy-tools: cannot build $1: no 'go' (1.25 or newer; it fetches the toolchain it needs from the module proxy)" >&2
  exit 1
}

# run_logged WHAT CMD...: runs a build quietly, showing its output only when it fails.
run_logged() {
  local what=$1 log
  shift
  mkdir -p "$gowork"
  log="$gowork/$what.log"
  if ! "$@" >"$log" 2>&1; then
    grep -v '^go: downloading' "$log" | tail -40 >&2
    echo "install-deploy-tools: $what failed (output above)" >&2
    exit 1
  fi
}

# Helm
helm="$cache/helm-$HELM_VERSION"
if [ -x "$helm" ]; then
  echo "install-deploy-tools: helm $HELM_VERSION (cached: $helm)"
elif [ -z "$(command -v go)" ] && command -v helm >/dev/null 2>&1; then
  helm="$(command -v helm)"
  echo "install-deploy-tools: no Go toolchain; using the helm on PATH ($helm), version not checked"
else
  need_go helm
  echo "install-deploy-tools: building helm $HELM_VERSION with 'go install' (first time on this machine: a few minutes)"
  start=$SECONDS
  tmp="$(mktemp -d "$cache/.build-helm.XXXXXX")"
  run_logged helm env GOBIN="$tmp" go install -trimpath -ldflags='-s -w' "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$tmp/helm" "$helm"  # one rename: never a half-written binary
  rm -rf "$tmp"
  echo "install-deploy-tools: built helm in $((SECONDS - start)) s: $helm"
fi
ln -sfn "$helm" "$links/helm"

# KEDA's sources: the two CRDs and the temporal scaler, kept under their module paths.
keda="$cache/keda-$KEDA_VERSION"
if [ -f "$keda/pkg/scalers/temporal_scaler.go" ]; then
  echo "install-deploy-tools: KEDA $KEDA_VERSION sources (cached: $keda)"
else
  need_go "KEDA's sources"
  run_logged keda go mod download "github.com/kedacore/keda/v2@$KEDA_VERSION"
  src="$GOMODCACHE/github.com/kedacore/keda/v2@$KEDA_VERSION"
  tmp="$(mktemp -d "$cache/.keda.XXXXXX")"
  mkdir -p "$tmp/config/crd/bases" "$tmp/pkg/scalers"
  cp "$src/config/crd/bases/keda.sh_scaledobjects.yaml" "$src/config/crd/bases/keda.sh_triggerauthentications.yaml" "$tmp/config/crd/bases/"
  cp "$src/pkg/scalers/temporal_scaler.go" "$tmp/pkg/scalers/"
  chmod -R u+w "$tmp"
  mv "$tmp" "$keda"
  echo "install-deploy-tools: KEDA $KEDA_VERSION sources: $keda"
fi
ln -sfn "$keda" "$root/.cache/keda"

# The validator, rebuilt when its sources or pins change (a hash of them names the binary).
src="$root/infra/validate-manifests"
sum="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-12)"
validator="$cache/validate-manifests-$sum"
if [ -x "$validator" ]; then
  echo "install-deploy-tools: validate-manifests (cached: $validator)"
else
  need_go validate-manifests
  echo "install-deploy-tools: building validate-manifests (k8s.io/api, BuildKit's parser: about a minute the first time)"
  start=$SECONDS
  run_logged validate-manifests bash -c "cd '$src' && go build -mod=readonly -trimpath -ldflags='-s -w' -o '$validator.tmp' ."
  mv "$validator.tmp" "$validator"
  find "$cache" -maxdepth 1 -name 'validate-manifests-*' ! -name "$(basename "$validator")" -delete  # older builds
  echo "install-deploy-tools: built validate-manifests in $((SECONDS - start)) s: $validator"
fi
ln -sfn "$validator" "$links/validate-manifests"
echo "install-deploy-tools: ready in $links (helm, validate-manifests) and $root/.cache/keda"
