#!/usr/bin/env bash
# Cove's main job, after setting up the environment. With no arguments: a feature-extraction and
# similarity demo on the bundled all-MiniLM-L6-v2, then the hub server. With arguments: `cove ARGS...`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${COVE_VENV:-.venv}"
if [ "$#" -gt 0 ]; then
    exec "$VENV/bin/cove" "$@"
fi
echo "== feature-extraction on the bundled all-MiniLM-L6-v2"
"$VENV/bin/cove" run feature-extraction "Cove runs models on your own machine." --summary
echo "== sentence similarity"
"$VENV/bin/cove" similarity "A man is playing a guitar." \
    "Someone plays an instrument." "The stock market fell today." "A person strums a guitar."
echo "== default task models (built once by their recipes; skipped when present)"
"$VENV/bin/cove" setup-models || echo "cove: default task models not built (see above)" >&2
echo "== hub server: http://127.0.0.1:${COVE_PORT:-8000} (Ctrl-C stops it)"
exec "$VENV/bin/cove" serve --host 127.0.0.1 --port "${COVE_PORT:-8000}"
