#!/usr/bin/env bash
# Quick start, no internet: publish the embedded tiny BERT model into a mirror cache, serve it
# with `hubcache serve`, download it into a fresh cache as any client would, then load it
# again with the network switched off.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== building hubcache (release)…"
cargo build --release --quiet -p hubcache-cli
HC=target/release/hubcache
DEMO="$PWD/target/quickstart"
rm -rf "$DEMO" && mkdir -p "$DEMO"

echo "== 1. publish examples/tiny-model into a mirror cache as demo/tiny-bert"
"$HC" cache add-folder examples/tiny-model --repo demo/tiny-bert --cache-dir "$DEMO/mirror-cache" >/dev/null

echo "== 2. hubcache serve over that cache (loopback)"
"$HC" serve --cache-dir "$DEMO/mirror-cache" --addr 127.0.0.1:0 --log-requests 2>"$DEMO/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^listening on ' "$DEMO/serve.log" && break; sleep 0.1; done
URL=$(sed -n 's/^listening on //p' "$DEMO/serve.log")
echo "   mirror at $URL"

export HF_HUB_CACHE="$DEMO/cache"
echo "== 3. HF_ENDPOINT=$URL hubcache download demo/tiny-bert   (fresh cache, every hash verified)"
SNAP=$(HF_ENDPOINT="$URL" "$HC" download demo/tiny-bert)
(cd "$SNAP" && find . \( -type l -o -type f \) | sort | while read -r f; do
  printf '   %-36s -> %s\n' "${f#./}" "$(readlink "$f")"
done)
BEFORE=$(grep -c ' 200 ' "$DEMO/serve.log" || true)

echo "== 4. offline: HF_HUB_OFFLINE=1 hubcache download demo/tiny-bert tokenizer.json"
HF_HUB_OFFLINE=1 "$HC" download demo/tiny-bert tokenizer.json
HF_HUB_OFFLINE=1 "$HC" download demo/tiny-bert >/dev/null
echo "== 5. offline: HF_HUB_OFFLINE=1 hubcache model demo/tiny-bert   (what from_pretrained would load)"
HF_HUB_OFFLINE=1 "$HC" model demo/tiny-bert | grep -E '^(commit|config|tokenizer |weights|summary)' | sed 's/^/   /'
AFTER=$(grep -c ' 200 ' "$DEMO/serve.log" || true)
echo "   requests the mirror answered during the offline loads: $((AFTER - BEFORE))"

cat <<TXT
== done
   mirror cache : $DEMO/mirror-cache   (serve it to a cluster: hubcache serve --addr 0.0.0.0:8090)
   client cache : $HF_HUB_CACHE   (huggingface_hub and transformers load it with HF_HUB_OFFLINE=1)
   snapshot     : $SNAP
   against the real Hub (needs internet):
     hubcache download sentence-transformers/all-MiniLM-L6-v2
     hubcache serve --upstream https://huggingface.co      # pull-through mirror for HF_ENDPOINT
TXT
