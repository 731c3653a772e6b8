"""`cove launch`: the command it builds, and a real run of a script (exit code and environment passed on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cove.cli.launch import launch_command
from cove.cli.main import build_parser
from cove.errors import TrainingError

ROOT = Path(__file__).resolve().parents[2]


def _command(*argv: str) -> list[str]:
    return launch_command(build_parser().parse_args(["launch", *argv]))


def test_one_process_runs_the_script_directly(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    assert _command(str(script), "--lr", "3") == [sys.executable, str(script), "--lr", "3"]
    assert _command("-m", "pkg.train", "x") == [sys.executable, "-m", "pkg.train", "x"]


def test_several_processes_go_through_torchrun(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    # the script's own flags stay the script's, even when they look like launcher flags
    assert _command("--num_processes", "2", str(script), "--nproc_per_node", "9") == [
        *torchrun, "--standalone", str(script), "--nproc_per_node", "9"
    ]  # fmt: skip
    assert _command("--nproc_per_node", "2", "--master_port", "1234", "-m", "pkg.train") == [
        *torchrun, "--master_addr", "127.0.0.1", "--master_port", "1234", "--module", "pkg.train"
    ]  # fmt: skip
    two_nodes = _command("--nproc_per_node", "2", "--nnodes", "2", "--node_rank", "1", "--master_addr", "10.0.0.1",
                         str(script))  # fmt: skip
    assert two_nodes[5:13] == [
        "--nnodes",
        "2",
        "--node_rank",
        "1",
        "--master_addr",
        "10.0.0.1",
        "--master_port",
        "29500",
    ]


def test_bad_launches_are_refused(tmp_path):
    with pytest.raises(TrainingError, match="is not a file"):
        _command(str(tmp_path / "missing.py"))
    script = tmp_path / "train.py"
    script.write_text("")
    with pytest.raises(TrainingError, match="at least 1"):
        _command("--nproc_per_node", "0", str(script))
    with pytest.raises(TrainingError, match="--master_addr"):
        _command("--nproc_per_node", "2", "--nnodes", "2", str(script))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["launch", "--mixed_precision", "fp8", str(script)])


def test_launch_runs_the_script_with_its_arguments(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import os, sys\nprint(os.environ.get('COVE_MIXED_PRECISION'), sys.argv[1:])\nsys.exit(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("COVE_MIXED_PRECISION", None)
    proc = subprocess.run(
        [sys.executable, "-m", "cove.cli.main", "launch", "--mixed_precision", "bf16", str(script), "a", "--b"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.strip() == "bf16 ['a', '--b']"
