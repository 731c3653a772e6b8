"""cove.Accelerator against the accelerate package: the same loop (tests/training/accelerate_loop.py) gives
the same losses, learning rates, grad norms, gathered eval and final weights, in one process and in two
(torchrun, gloo); save_state/load_state resumes exactly; bad input fails clearly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

import cove
from cove.errors import TrainingError
from cove.training.accelerator import Accelerator, BatchSamplerShard
from tests.training import accelerate_loop

ROOT = Path(__file__).resolve().parents[2]
RECORD_KEYS = ("losses", "lrs", "grad_norms", "sync", "eval", "mean_loss", "num_processes")


def _result(folder: Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    return json.loads((folder / f"{name}.json").read_text()), load_file(str(folder / f"{name}.safetensors"))


def assert_same_run(folder: Path, a: str, b: str) -> None:
    record_a, weights_a = _result(folder, a)
    record_b, weights_b = _result(folder, b)
    for key in RECORD_KEYS:
        assert record_a[key] == record_b[key], key  # exact: the same ops in the same order
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one-process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        accelerate_loop.main("cove", str(out))
        accelerate_loop.main("accelerate", str(out))
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parity
def test_one_process_loop_matches_accelerate(one_process):
    assert_same_run(one_process, "cove_0", "accelerate_0")
    record, _ = _result(one_process, "cove_0")
    # 37 samples in batches of 4: 10 micro-batches per epoch, accumulation 2: steps after 2, 4, ..., 10
    assert record["sync"] == [False, True] * 5 * accelerate_loop.EPOCHS
    assert len(record["grad_norms"]) == 5 * accelerate_loop.EPOCHS
    assert record["losses"][0] != record["losses"][-1]  # it trained
    assert record["eval"][0]["ids"] == list(range(accelerate_loop.EVAL_SIZE))


def test_save_state_and_load_state_resume_exactly(one_process):
    assert_same_run(one_process, "cove_0", "cove_resumed_0")
    state = one_process / "state_cove"
    names = {p.name for p in state.iterdir()}
    assert names == {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"}
    for name in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
        torch.load(state / name, weights_only=True)  # no pickled objects


@pytest.mark.parity
def test_bf16_loop_matches_accelerate(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_BF16", "native")  # no slow-bf16 warning or measurement on any CPU
    accelerate_loop.main("cove", str(tmp_path), mixed_precision="bf16", resume=False)
    accelerate_loop.main("accelerate", str(tmp_path), mixed_precision="bf16", resume=False)
    assert_same_run(tmp_path, "cove_0", "accelerate_0")
    fp32 = tmp_path / "fp32"
    accelerate_loop.main("cove", str(fp32), resume=False)
    assert _result(fp32, "cove_0")[0]["losses"] != _result(tmp_path, "cove_0")[0]["losses"]  # autocast ran


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(command: list[str], **env: str) -> None:
    full_env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    proc = subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.parity
def test_two_processes_match_accelerate(tmp_path):
    # Cove's side through `cove launch`, accelerate's through torchrun (as `accelerate launch --cpu` runs it)
    _run(
        [sys.executable, "-m", "cove.cli.main", "launch", "--nproc_per_node", "2", "--master_port",
         str(_free_port()), "-m", "tests.training.accelerate_loop", "cove", str(tmp_path)]
    )  # fmt: skip
    _run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()), "-m", "tests.training.accelerate_loop", "accelerate", str(tmp_path)],
        ACCELERATE_USE_CPU="1",
    )  # fmt: skip
    for rank in (0, 1):
        assert_same_run(tmp_path, f"cove_{rank}", f"accelerate_{rank}")
        assert_same_run(
            tmp_path, f"cove_{rank}", f"cove_resumed_{rank}"
        )  # the shuffle generator is saved too
    ranks = [_result(tmp_path, f"cove_{rank}") for rank in (0, 1)]
    assert ranks[0][0]["num_processes"] == 2
    assert ranks[0][0]["losses"] != ranks[1][0]["losses"]  # each process trained on its own batches
    for name, tensor in ranks[0][1].items():
        assert torch.equal(tensor, ranks[1][1][name]), name  # DDP kept the replicas identical
    # 9 eval samples over 2 processes in batches of 2: the last round repeated 3, gather_for_metrics drops them
    for epoch in ranks[0][0]["eval"]:
        assert epoch["ids"] == list(range(accelerate_loop.EVAL_SIZE))
        assert len(epoch["predictions"]) == len(epoch["labels"]) == accelerate_loop.EVAL_SIZE


@pytest.mark.parametrize("num_processes", [2, 3])
@pytest.mark.parametrize("length", [1, 5, 16, 23])
@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sharding_matches_accelerate(num_processes, length, batch_size, drop_last):
    from accelerate.data_loader import BatchSamplerShard as Reference

    batches = torch.utils.data.BatchSampler(range(length), batch_size, drop_last)
    for split in (False, True):
        if split and batch_size % num_processes:
            continue
        for even in (True, False):
            for rank in range(num_processes):
                args = (batches, num_processes, rank, split, even)
                ours, theirs = BatchSamplerShard(*args), Reference(*args)
                assert list(ours) == list(theirs), (split, even, rank)
                assert len(ours) == len(theirs), (split, even, rank)


def test_split_between_processes_follows_accelerate():
    accelerator = Accelerator()
    with accelerator.split_between_processes(["A", "B", "C"]) as part:
        assert part == ["A", "B", "C"]  # one process: everything
    accelerator.num_processes = 2  # the arithmetic of process 1 of 2 (no collective is involved)
    accelerator.process_index = 1
    with accelerator.split_between_processes(["A", "B", "C"]) as part:
        assert part == ["C"]
    with accelerator.split_between_processes(["A", "B", "C"], apply_padding=True) as part:
        assert part == ["C", "C"]
    with accelerator.split_between_processes({"x": torch.arange(5), "y": [0, 1, 2, 3, 4]}) as part:
        assert part["x"].tolist() == [3, 4] and part["y"] == [3, 4]


def test_gather_for_metrics_in_one_process_keeps_everything():
    accelerator = Accelerator()
    loader = accelerator.prepare(DataLoader(list(range(9)), batch_size=4))
    seen = [accelerator.gather_for_metrics(batch).tolist() for batch in loader]
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    assert accelerator.gather_for_metrics(["a", "b"]) == ["a", "b"]


def test_prepare_returns_objects_in_order_and_reports_the_process():
    accelerator = cove.Accelerator()
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loader = DataLoader(list(range(4)), batch_size=2)
    prepared = accelerator.prepare(scheduler, loader, model, optimizer)
    assert [type(p).__name__ for p in prepared] == [
        "AcceleratedScheduler",
        "DataLoaderShard",
        "Linear",
        "AcceleratedOptimizer",
    ]
    assert prepared[0].optimizers == [prepared[3]]  # the scheduler follows its own optimizer
    assert accelerator.prepare(model) is model  # preparing twice changes nothing
    assert (accelerator.process_index, accelerator.num_processes) == (0, 1)
    assert accelerator.is_main_process and accelerator.is_local_main_process
    assert accelerator.device == torch.device("cpu")


def test_bf16_forward_autocasts_and_returns_fp32(monkeypatch):
    monkeypatch.setenv("COVE_BF16", "native")
    accelerator = Accelerator(mixed_precision="bf16")
    model = accelerator.prepare(nn.Linear(4, 3))
    out = model(torch.randn(2, 4))
    assert out.dtype == torch.float32  # converted back, as accelerate's ConvertOutputsToFp32 does
    with accelerator.autocast():
        assert nn.Linear(4, 3)(torch.randn(2, 4)).dtype == torch.bfloat16
    plain = accelerator.unwrap_model(model, keep_fp32_wrapper=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert plain(torch.randn(2, 4)).dtype == torch.float32
    assert "forward" not in plain.__dict__


def test_auto_precision_follows_the_hardware(fake_cpu):
    fake_cpu("avx2")
    assert Accelerator(mixed_precision="auto").mixed_precision == "no"
    fake_cpu("amx")
    assert Accelerator(mixed_precision="auto").mixed_precision == "bf16"


def test_env_sets_the_default_precision(monkeypatch):
    monkeypatch.setenv("COVE_MIXED_PRECISION", "no")
    assert Accelerator().mixed_precision == "no"
    monkeypatch.setenv("COVE_MIXED_PRECISION", "fp16")
    with pytest.raises(TrainingError, match=r"\$COVE_MIXED_PRECISION"):
        Accelerator()


class _Fused(nn.Module):
    """q/k as views of one tensor (Cove's FusedLinears) and a tied output weight (GPT-2's lm_head)."""

    def __init__(self) -> None:
        super().__init__()
        self.qk = nn.Parameter(torch.randn(8, 4))
        self.q = nn.Parameter(self.qk.data[:4])
        self.k = nn.Parameter(self.qk.data[4:])
        self.embed = nn.Embedding(5, 4)
        self.head = nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight


def test_save_state_handles_views_and_tied_weights(tmp_path):
    torch.manual_seed(0)
    accelerator = Accelerator()
    model = accelerator.prepare(_Fused())
    accelerator.save_state(tmp_path / "state")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    fresh = Accelerator()
    other = fresh.prepare(_Fused())
    fresh.load_state(tmp_path / "state")
    for name, tensor in other.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert other.head.weight.data_ptr() == other.embed.weight.data_ptr()  # still tied


def test_load_state_reads_weights_saved_from_a_ddp_wrapper(tmp_path):
    source = nn.Linear(3, 2)
    save_file({f"module.{k}": v for k, v in source.state_dict().items()}, str(tmp_path / "model.safetensors"))
    accelerator = Accelerator()
    model = accelerator.prepare(nn.Linear(3, 2))
    with pytest.warns(UserWarning, match="random states are not restored"):
        accelerator.load_state(tmp_path)  # no random_states_0.pkl: warns, loads the rest
    assert torch.equal(model.weight, source.weight)


def test_bad_input_is_refused_clearly(tmp_path):
    accelerator = Accelerator()
    with pytest.raises(TypeError, match=r"cannot prepare a builtins\.object.*torch\.nn\.Module"):
        accelerator.prepare(nn.Linear(2, 2), object())
    with pytest.raises(TrainingError, match=r"mixed_precision='fp8'.*'no', 'bf16', 'auto'"):
        Accelerator(mixed_precision="fp8")
    with pytest.raises(TrainingError, match="fp16"):
        Accelerator(mixed_precision="fp16")
    with pytest.raises(TrainingError, match="positive integer"):
        Accelerator(gradient_accumulation_steps=0)
    with pytest.raises(TrainingError, match="not a folder"):
        accelerator.load_state(tmp_path / "missing")
    accelerator.prepare(nn.Linear(2, 2))
    with pytest.raises(TrainingError, match=r"model\.safetensors is missing"):
        accelerator.load_state(tmp_path)
    with pytest.raises(TypeError, match="takes tensors"):
        accelerator.reduce({"a": "text"})
