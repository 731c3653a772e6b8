"""Run code under the last transformers 4.x release (4.57.6), kept by scripts/setup.sh in a side folder of the
virtualenv, in a subprocess: the reference for pipelines that transformers 5 removed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REF = Path(sys.prefix) / "ref-transformers4"


def run_reference(script: str, payload: dict) -> object:
    """Run `script` (which reads the JSON payload from stdin and prints JSON) under transformers 4.57.6."""
    if not (REF / "transformers").is_dir():
        pytest.skip(f"transformers 4.57.6 reference folder missing ({REF}): run scripts/setup.sh")
    env = {**os.environ, "PYTHONPATH": str(REF), "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    if proc.returncode != 0:
        raise AssertionError(f"reference run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
