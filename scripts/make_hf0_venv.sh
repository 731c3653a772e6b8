#!/usr/bin/env bash
# A second venv with the last huggingface_hub 0.x release, for tests/server/test_hf_hub_0x.py:
#   bash scripts/make_hf0_venv.sh && COVE_HF0_PYTHON=.venv-hf0/bin/python bash scripts/test.sh tests/server
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${COVE_HF0_VENV:-.venv-hf0}"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/python" -m pip --disable-pip-version-check -q install "huggingface_hub>=0.36,<1"
"$VENV/bin/python" -c "import huggingface_hub; print('huggingface_hub', huggingface_hub.__version__)"
