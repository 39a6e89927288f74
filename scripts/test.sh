#!/usr/bin/env bash
# The test command: sets up the Python peers, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-python.sh
export HUBCACHE_TEST_PYTHON="$PWD/${HUBCACHE_VENV:-.venv}/bin/python"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast "$@"
fi
