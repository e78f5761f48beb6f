#!/usr/bin/env bash
# Sets up (packages, build) and runs the Primary Server in the foreground
# with its private Redis, data under ./var. Extra arguments go to
# primary-server (e.g. --vendor-key FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec build/bin/primary-server --data-dir ./var --insecure "$@"
