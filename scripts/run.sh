#!/usr/bin/env bash
# Cove's main job, after setting up the environment. With no arguments: a feature-extraction and
# similarity demo on the bundled all-MiniLM-L6-v2. With arguments: they go to the `cove` command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${COVE_VENV:-.venv}"
if [ "$#" -eq 0 ]; then
    "$VENV/bin/cove" run feature-extraction "Cove runs models on your own machine." --summary
    exec "$VENV/bin/cove" similarity "A man is playing a guitar." \
        "Someone plays an instrument." "The stock market fell today." "A person strums a guitar."
fi
exec "$VENV/bin/cove" "$@"
