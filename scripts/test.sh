#!/usr/bin/env bash
# The whole test suite, after setting up the environment. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${COVE_VENV:-.venv}"
"$VENV/bin/ruff" check src tests benchmarks examples
"$VENV/bin/ruff" format --check src tests benchmarks examples
"$VENV/bin/mypy" src
exec "$VENV/bin/python" -m pytest "$@"
