#!/usr/bin/env bash
# npm test: set everything up, then run the whole ava suite (extra arguments go to ava).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
npx eslint . --max-warnings 0
npx ava "$@"
