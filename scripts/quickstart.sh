#!/usr/bin/env bash
# Quick start, no internet: serve the embedded tiny model from a local fake Hub, download it
# into a fresh cache with hubcache, then load it again with the network switched off.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p hubcache-cli -p hubcache-test-support
BIN=target/release
DEMO=target/quickstart
rm -rf "$DEMO" && mkdir -p "$DEMO"
"$BIN/fake-hub" --addr 127.0.0.1:0 --repo demo/tiny-model=examples/tiny-model >"$DEMO/hub.log" 2>&1 &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^listening on ' "$DEMO/hub.log" && break; sleep 0.1; done
export HF_ENDPOINT=$(sed -n 's/^listening on //p' "$DEMO/hub.log")
export HF_HUB_CACHE="$PWD/$DEMO/cache"
echo "== fake Hub at $HF_ENDPOINT, cache at $HF_HUB_CACHE"
echo "== hubcache download demo/tiny-model config.json"
"$BIN/hubcache" download demo/tiny-model config.json
echo "== hubcache download demo/tiny-model   (whole snapshot, hashes verified)"
SNAP=$("$BIN/hubcache" download demo/tiny-model)
echo "$SNAP"
(cd "$SNAP" && find . -type l -o -type f | sort | while read -r f; do printf '  %-28s -> %s\n' "$f" "$(readlink "$f")"; done)
kill $HUB_PID 2>/dev/null || true
echo "== the Hub is gone; HF_HUB_OFFLINE=1 hubcache download demo/tiny-model model.safetensors"
HF_HUB_OFFLINE=1 "$BIN/hubcache" download demo/tiny-model model.safetensors
echo "== done: the cache under $HF_HUB_CACHE is the layout huggingface_hub reads"
