#!/usr/bin/env bash
# Installs the local services that the pipeline and its tests run against: the Temporal
# CLI (its `server start-dev` is a whole Temporal server on SQLite) and the MinIO S3
# server. Both are built from pinned versions on the Go module proxy with `go install`
# (the only place this machine can fetch them from) into a machine-level cache that
# survives fresh clones, so only the first run on a machine pays the build (minutes);
# then symlinked into the repo's ignored .cache/bin/, where infra/services.ts finds them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Later temporal CLI tags carry a replace directive in go.mod, which `go install pkg@v`
# refuses, so v1.5.1 is the newest that installs this way.
TEMPORAL_VERSION=v1.5.1
# MinIO publishes RELEASE.* tags, which are not semver: the proxy only serves commits
# as pseudo-versions. This is the newest commit on the proxy (2026-02-12); it builds
# with go1.24+ and has no replace directive.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

cache="${ALEXNET_CACHE_DIR:-$HOME/.cache/alexnet}/bin"
links="$root/.cache/bin"
mkdir -p "$cache" "$links"

# One install at a time per machine: two clones setting up at once wait for each other
# instead of building the same binary twice.
exec 9>"$cache/.install.lock"
flock 9

# Go's module and build caches for these builds (about 5 GB) live here and go away at
# the end: the binaries are what is kept, and the project itself has no Go code.
gowork="$cache/.go-build"
cleanup() {
  [ -d "$gowork" ] || return 0
  GOMODCACHE="$gowork/mod" go clean -modcache 2>/dev/null || true  # module files are read-only
  rm -rf "$gowork"
}
trap cleanup EXIT

# install_one NAME VERSION GO_PACKAGE: builds $cache/NAME-VERSION unless it is there.
install_one() {
  local name=$1 version=$2 pkg=$3 target="$cache/$1-$2"
  if [ -x "$target" ]; then
    echo "install-services: $name $version (cached: $target)"
  elif command -v go >/dev/null 2>&1; then
    echo "install-services: building $name $version with 'go install $pkg@$version' (first time on this machine: a few minutes)"
    local tmp start=$SECONDS log="$gowork/$name.log"
    tmp="$(mktemp -d "$cache/.build-$name.XXXXXX")"
    mkdir -p "$gowork"
    # CGO off as in both projects' release builds: static binaries, no C toolchain needed.
    if ! CGO_ENABLED=0 GOBIN="$tmp" GOMODCACHE="$gowork/mod" GOCACHE="$gowork/cache" \
        go install -trimpath -ldflags='-s -w' "$pkg@$version" >"$log" 2>&1; then
      grep -v '^go: downloading' "$log" | tail -40 >&2
      rm -rf "$tmp"
      echo "install-services: building $name failed (output above)" >&2
      return 1
    fi
    mv "$tmp/$(basename "$pkg")" "$target"  # rename in one step: never a half-written binary
    rm -rf "$tmp"
    echo "install-services: built $name in $((SECONDS - start)) s: $target"
  elif command -v "$name" >/dev/null 2>&1; then
    target="$(command -v "$name")"
    echo "install-services: no Go toolchain; using the $name on PATH ($target), version not checked"
  elif [ "$name" = temporal ] && target="$(node "$root/infra/download-temporal.js" "$cache/sdk-download" | tail -1)" && [ -x "$target" ]; then
    echo "install-services: no Go toolchain and no temporal on PATH; using the Temporal SDK's download ($target)"
  else
    echo "install-services: cannot install $name: no 'go' (1.24 or newer) and no '$name' on PATH" >&2
    [ "$name" = temporal ] && echo "install-services: (the Temporal SDK's download from temporal.download failed too)" >&2
    return 1
  fi
  ln -sfn "$target" "$links/$name"
}

install_one temporal "$TEMPORAL_VERSION" github.com/temporalio/cli/cmd/temporal
install_one minio "$MINIO_VERSION" github.com/minio/minio
echo "install-services: ready in $links (temporal, minio)"
