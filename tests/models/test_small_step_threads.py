"""Inside generate, small steps (decoding at small batch) run in the thread arrangement measured fastest
(cove.hardware.StepThreads), or the one COVE_STEP_THREADS fixes: "layers" runs the decoder layers on one
intra-op thread and the LM head on the caller's setting, which is always restored; results do not depend on
it. Outside generate (a plain forward, training) torch's thread count is never touched; the caller can turn
the switch off per call (small_step_rows=0) or process-wide (COVE_SMALL_STEP_ROWS=0)."""

from __future__ import annotations

import pytest
import torch

import cove
from cove.errors import ConfigError, GenerationError
from cove.hardware import STEP_ARMS, StepThreads, step_threads
from cove.models.causal import one_thread, one_thread_layers


@pytest.fixture
def two_threads(monkeypatch):
    # the arrangement these tests check the mechanics of; test_measured_* below cover the choice
    monkeypatch.setenv("COVE_STEP_THREADS", "layers")
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def tiny(model_type: str):
    sizes = {
        "llama": dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            bos_token_id=1,
            eos_token_id=2,
        ),
        "gpt2": dict(
            vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=128, bos_token_id=1, eos_token_id=2
        ),
    }[model_type]
    torch.manual_seed(0)
    return cove.AutoModelForCausalLM.from_config(cove.AutoConfig.for_model(model_type, **sizes)).eval()


def record_threads(model, seen: list[int]):
    layers = model.model.layers if hasattr(model, "model") else model.transformer.h
    head = model.lm_head
    layers[0].register_forward_hook(lambda *_: seen.append(("layer", torch.get_num_threads())))
    head.register_forward_hook(lambda *_: seen.append(("head", torch.get_num_threads())))


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_decoding_steps_use_one_thread_for_the_layers_only(model_type, two_threads):
    model = tiny(model_type)
    seen: list[tuple[str, int]] = []
    record_threads(model, seen)
    ids = torch.randint(3, 64, (2, 5), generator=torch.Generator().manual_seed(0))
    model.generate(ids, max_new_tokens=4, min_new_tokens=4)
    assert torch.get_num_threads() == 2
    assert {t for kind, t in seen if kind == "layer"} == {1}  # prefill of 10 rows and every step
    assert {t for kind, t in seen if kind == "head"} == {2}
    seen.clear()
    big = torch.randint(3, 64, (4, 10), generator=torch.Generator().manual_seed(1))
    model.generate(big, max_new_tokens=2, min_new_tokens=2)  # a 40-row prefill keeps every thread
    assert [t for kind, t in seen if kind == "layer"] == [2, 1]  # prefill, then one 4-row step
    assert {t for kind, t in seen if kind == "head"} == {2}


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_a_forward_outside_generate_leaves_the_thread_count_alone(model_type, two_threads):
    model = tiny(model_type)
    seen: list[tuple[str, int]] = []
    record_threads(model, seen)
    for grad in (torch.no_grad, torch.inference_mode):
        with grad():
            model(torch.tensor([[5, 6, 7]]))  # 3 rows: small, but not generate's step
    assert {t for _, t in seen} == {2}
    seen.clear()
    with torch.no_grad(), one_thread_layers():  # what generate enters around its small steps
        model(torch.tensor([[5, 6, 7]]))
    assert seen == [("layer", 1), ("head", 2)]
    assert torch.get_num_threads() == 2


def test_off_switches_and_bad_settings(monkeypatch, two_threads):
    model = tiny("llama")
    seen: list[tuple[str, int]] = []
    record_threads(model, seen)
    ids = torch.tensor([[5, 6, 7]])
    options = dict(max_new_tokens=6, output_scores=True, return_dict_in_generate=True)
    monkeypatch.setenv("COVE_SMALL_STEP_ROWS", "0")
    off = model.generate(ids, **options)
    assert {t for _, t in seen} == {2}
    monkeypatch.setenv("COVE_SMALL_STEP_ROWS", "16")
    seen.clear()
    off_by_argument = model.generate(ids, small_step_rows=0, **options)  # the argument beats the variable
    assert {t for _, t in seen} == {2}
    seen.clear()
    on = model.generate(ids, **options)
    assert {t for kind, t in seen if kind == "layer"} == {1}
    assert on.sequences.tolist() == off.sequences.tolist() == off_by_argument.sequences.tolist()
    for a, b in zip(on.scores, off.scores):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    monkeypatch.setenv("COVE_SMALL_STEP_ROWS", "0")
    seen.clear()
    model.generate(ids, max_new_tokens=2, small_step_rows=4)  # and turns it on
    assert {t for kind, t in seen if kind == "layer"} == {1}
    monkeypatch.setenv("COVE_SMALL_STEP_ROWS", "few")
    with pytest.raises(GenerationError, match="few"):
        model.generate(ids, max_new_tokens=2)
    monkeypatch.delenv("COVE_SMALL_STEP_ROWS")
    for bad in (-1, "8", True):
        with pytest.raises(GenerationError, match="small_step_rows"):
            model.generate(ids, max_new_tokens=2, small_step_rows=bad)
    assert torch.get_num_threads() == 2


def test_threads_are_restored_after_an_error_and_untouched_with_autograd(two_threads):
    with pytest.raises(RuntimeError, match="boom"), one_thread():
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2
    model = tiny("llama")
    seen: list[tuple[str, int]] = []
    record_threads(model, seen)
    with torch.enable_grad(), one_thread_layers():  # training keeps the caller's threads
        model(torch.tensor([[5, 6, 7]]))
    assert {t for _, t in seen} == {2}


def test_concurrent_small_steps_restore_the_callers_threads(two_threads):
    import threading

    model = tiny("llama")
    ids = torch.tensor([[5, 6, 7, 8]])
    start = threading.Barrier(3)

    def work() -> None:
        start.wait()
        for _ in range(5):
            model.generate(ids, max_new_tokens=5)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.get_num_threads() == 2
    with one_thread(), one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_a_model_trains_after_generating(model_type, two_threads):
    # state cached during generation (RoPE sign, fused weights) must not be inference-mode tensors
    model = tiny(model_type)
    model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=3)
    model.train()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    loss = model(ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def run_policy(policy: StepThreads, cost: dict[str, float], passes: int) -> list[str]:
    runs = []
    for _ in range(passes):
        arm = policy.choose("kind")
        runs.append(arm)
        policy.record("kind", arm, cost[arm])
    return runs


def test_measured_arrangement_explores_interleaved_then_runs_the_fastest_and_reprobes_cheaply():
    policy = StepThreads()
    cost = {"layers": 1.5, "one": 1.0, "all": 7.0}  # a busy machine: two threads collapse
    runs = run_policy(policy, cost, 400)
    window = StepThreads.WINDOW
    # each once in order, then the contenders (within 2x) interleaved until they have WINDOW times each
    assert runs[:7] == ["layers", "one", "all", "layers", "one", "layers", "one"]
    assert runs[7:].count("one") > 0.9 * len(runs[7:])
    # the 7x slower one is re-timed every 140 passes (5% of the time spent), the 1.5x one every 30...
    assert runs.count("all") == 1 + (400 - 3) // 140
    assert 400 // 30 - window <= runs.count("layers") - window <= 400 // 16  # ...as the load may move
    best = 400 * cost["one"]
    assert sum(cost[arm] for arm in runs) - best <= 2 * StepThreads.PROBE_SHARE * best + 3 * sum(
        cost.values()
    )
    assert policy.summary()["kind"] == {"one": 1.0, "layers": 1.5, "all": 7.0}
    cost["all"] = 0.5  # the machine got idle: two threads win now
    run_policy(policy, cost, 1000)
    assert policy.summary()["kind"]["all"] == 0.5
    assert policy.choose("kind") == "all"
    assert policy.choose("other kind") == STEP_ARMS[0]  # kinds are measured apart


def test_measured_arrangement_can_be_fixed_and_rejects_bad_settings(monkeypatch):
    policy = StepThreads()
    monkeypatch.setenv("COVE_STEP_THREADS", "one")
    assert {policy.choose("kind") for _ in range(20)} == {"one"}
    monkeypatch.setenv("COVE_STEP_THREADS", "fast")
    with pytest.raises(ConfigError, match="fast"):
        policy.choose("kind")


@pytest.mark.parametrize("model_type", ["llama", "gpt2"])
def test_measured_steps_try_every_arrangement_and_give_the_same_tokens(model_type, monkeypatch):
    model = tiny(model_type)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[tuple[str, int]] = []
        record_threads(model, seen)
        ids = torch.randint(3, 64, (2, 5), generator=torch.Generator().manual_seed(0))
        options = dict(max_new_tokens=16, output_scores=True, return_dict_in_generate=True)
        monkeypatch.setenv("COVE_STEP_THREADS", "auto")
        step_threads.reset()
        measured = model.generate(ids, **options)
        layer_threads = [t for kind, t in seen if kind == "layer"][1:]  # the steps, after the prefill
        head_threads = [t for kind, t in seen if kind == "head"][1:]
        arms = {(layer, head) for layer, head in zip(layer_threads, head_threads)}
        assert arms == {(1, 2), (1, 1), (2, 2)}  # layers / one / all each ran
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("COVE_STEP_THREADS", "all")
        fixed = model.generate(ids, **options)
        assert measured.sequences.tolist() == fixed.sequences.tolist()
        for a, b in zip(measured.scores, fixed.scores):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    finally:
        torch.set_num_threads(saved)
        step_threads.reset()
