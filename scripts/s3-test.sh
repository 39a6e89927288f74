#!/usr/bin/env bash
# The S3 store's tests: `hubcache serve --store s3://…` replicas over an in-process s3s-fs
# (SigV4 checked, 127.0.0.1 only), pull-through with leases, faults, bundle import, push, and
# Python huggingface_hub + transformers through two replicas. Same target dir as test.sh, so
# nothing already built is built again.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-python.sh
export HUBCACHE_TEST_PYTHON="$PWD/${HUBCACHE_VENV:-.venv}/bin/python"
# The tests run the real binary (SIGKILL of a replica, start-up refusals) from the target dir.
cargo build -p hubcache-cli
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run -p hubcache-s3-tests --no-fail-fast "$@"
else
  cargo test -p hubcache-s3-tests --no-fail-fast "$@"
fi
