#!/usr/bin/env bash
# The whole test suite, with the coverage gate. Installs what it needs on first run.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not local_model" -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -x scripts/install-system-deps.sh ]; then
  bash scripts/install-system-deps.sh || echo "warning: system packages could not be installed; tests that need them are skipped" >&2
fi
source scripts/bootstrap.sh "local,wasm,dev"
coditect model fetch >/dev/null || echo "warning: the embedded model could not be prepared; local-model tests will fail" >&2
# One process per core, at most 4, each taking whole test files (their module fixtures stay
# shared); "-n 0" among the arguments runs everything in this process.
exec python -m pytest -n auto --maxprocesses 4 --dist loadfile --durations=15 \
  --cov=coditect --cov-report=term --cov-fail-under=85 "$@"
