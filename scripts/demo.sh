#!/usr/bin/env bash
# npm run demo: set everything up, then run the demo (scripts/demo.ts).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
node dist/scripts/demo.js
