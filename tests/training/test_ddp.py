"""Two CPU processes (torchrun, gloo) with half the batch each train exactly like one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, out_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    _run([sys.executable, "-m", "tests.training.ddp_worker", str(single), "8"], single)
    _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(_free_port()),
            "-m",
            "tests.training.ddp_worker",
            str(ddp),
            "4",
        ],
        ddp,
    )
    one = json.loads((single / "result_0.json").read_text())
    ranks = [json.loads((ddp / f"result_{r}.json").read_text()) for r in (0, 1)]
    assert one["world_size"] == 1 and ranks[0]["world_size"] == 2
    assert one["steps"] == ranks[0]["steps"] == 18  # ceil(70 / 8) = ceil(35 / 4) = 9 per epoch
    assert ranks[0]["losses"] == pytest.approx(one["losses"], abs=1e-5)
    assert ranks[0]["training_loss"] == pytest.approx(one["training_loss"], abs=1e-6)
    for name, values in one["weights"].items():
        assert ranks[0]["weights"][name] == pytest.approx(values, abs=1e-5), name
        assert ranks[1]["weights"][name] == ranks[0]["weights"][name], name  # replicas stay identical
