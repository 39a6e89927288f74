#!/usr/bin/env bash
# Figures for hostile servers: for each misbehaviour of the fake Hub, how long `hubcache download`
# takes to exit, its exit code, its peak RSS and how many requests it made.
#
#   ./scripts/hostile-bench.sh                       # the release binary of this checkout
#   HUBCACHE_BIN=/path/to/old/hubcache ./scripts/hostile-bench.sh   # another build, same server
#   CAP=60 ./scripts/hostile-bench.sh                # give up on a run after CAP seconds (default 200)
#
# Timeouts are 3 s (HF_HUB_ETAG_TIMEOUT, HF_HUB_DOWNLOAD_TIMEOUT), as a user would set them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p hubcache-cli -p hubcache-test-support
BIN="${HUBCACHE_BIN:-$PWD/target/release/hubcache}"
FAKE="$PWD/target/release/fake-hub"
CAP="${CAP:-200}"
work="$(mktemp -d)"
trap 'rm -rf "$work"; kill $(jobs -p) 2>/dev/null || true' EXIT
mkdir -p "$work/model"
printf '{"model_type": "bert"}' >"$work/model/config.json"
head -c 3000000 /dev/urandom >"$work/model/model.safetensors"

# name: fault, then what is downloaded (a file, or the whole snapshot for listing faults)
cases=(
  "redirect-loop model.safetensors"
  "redirect-chain model.safetensors"
  "redirect-file model.safetensors"
  "redirect-ftp model.safetensors"
  "redirect-metadata model.safetensors"
  "many-headers model.safetensors"
  "content-length model.safetensors"
  "petabyte-ignoring-range model.safetensors"
  "short-ignoring-range model.safetensors"
  "drip-transfer model.safetensors"
  "drip-listing -"
  "self-link -"
  "huge-listing -"
)
printf '%-26s %8s %5s %9s %9s\n' fault seconds exit rss_mib requests
for c in "${cases[@]}"; do
  read -r fault file <<<"$c"
  log="$work/$fault.log"
  "$FAKE" --log --fault "$fault" --repo org/model="$work/model" >"$work/$fault.out" 2>"$log" &
  hub=$!
  url=""
  for _ in $(seq 1 100); do
    url="$(sed -n 's/^listening on //p' "$work/$fault.out" 2>/dev/null | head -n1)"
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "fake-hub did not start for $fault" >&2; exit 1; }
  args=(download org/model)
  [ "$file" != "-" ] && args+=("$file")
  start=$(date +%s.%N)
  set +e
  env -i PATH="$PATH" HOME="$work/home-$fault" HF_ENDPOINT="$url" HF_HUB_CACHE="$work/cache-$fault" \
    HF_HUB_ETAG_TIMEOUT=3 HF_HUB_DOWNLOAD_TIMEOUT=3 \
    timeout "$CAP" /usr/bin/time -f '%M' -o "$work/$fault.rss" "$BIN" "${args[@]}" >/dev/null 2>"$work/$fault.err"
  code=$?
  set -e
  end=$(date +%s.%N)
  sleep 0.2
  rss=$(tail -n1 "$work/$fault.rss" 2>/dev/null || echo 0)
  [[ "$rss" =~ ^[0-9]+$ ]] || rss=0
  requests=$(grep -c '^fake-hub: #' "$log" || true)
  [ "$code" = 124 ] && code="cap"
  printf '%-26s %8.2f %5s %9.1f %9s\n' "$fault" "$(echo "$end - $start" | bc)" "$code" "$(echo "$rss / 1024" | bc -l)" "$requests"
  kill "$hub" 2>/dev/null || true
  wait "$hub" 2>/dev/null || true
done
