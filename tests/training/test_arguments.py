from __future__ import annotations

import dataclasses

import pytest

import cove
from cove.errors import TrainingError


def test_defaults_follow_transformers():
    import transformers

    ours = cove.TrainingArguments("out")
    theirs = transformers.TrainingArguments("out")
    for field in dataclasses.fields(ours):
        if field.name in ("output_dir", "report_to", "logging_dir", "eval_steps", "hub_token"):
            continue
        if not hasattr(theirs, field.name):
            continue
        mine, ref = getattr(ours, field.name), getattr(theirs, field.name)
        ref = getattr(ref, "value", ref)  # transformers' enums
        assert mine == ref, field.name


def test_unknown_argument_is_named_with_a_suggestion():
    with pytest.raises(TrainingError, match=r"'learning_rat'.*learning_rate"):
        cove.TrainingArguments("out", learning_rat=1e-3)
    with pytest.raises(ValueError):  # TrainingError is also a ValueError
        cove.TrainingArguments("out", not_a_field=1)


def test_old_evaluation_strategy_name_and_validation():
    args = cove.TrainingArguments("out", evaluation_strategy="epoch")
    assert args.eval_strategy == "epoch"
    with pytest.raises(TrainingError, match="eval_strategy"):
        cove.TrainingArguments("out", eval_strategy="sometimes")
    with pytest.raises(TrainingError, match="fp16"):
        cove.TrainingArguments("out", fp16=True)
    with pytest.raises(TrainingError, match="load_best_model_at_end"):
        cove.TrainingArguments("out", load_best_model_at_end=True)
    best = cove.TrainingArguments(
        "out", load_best_model_at_end=True, eval_strategy="epoch", save_strategy="epoch"
    )
    assert best.metric_for_best_model == "loss" and best.greater_is_better is False
    acc = cove.TrainingArguments("out", metric_for_best_model="accuracy")
    assert acc.greater_is_better is True
    assert cove.TrainingArguments("out", eval_strategy="steps", logging_steps=7).eval_steps == 7


def test_warmup_steps_from_ratio():
    assert cove.TrainingArguments("o", warmup_ratio=0.1).get_warmup_steps(95) == 10
    assert cove.TrainingArguments("o", warmup_steps=4, warmup_ratio=0.5).get_warmup_steps(95) == 4
    assert "hub_token" not in cove.TrainingArguments("o", hub_token="secret").to_dict()


@pytest.mark.parametrize(("cpu", "expected"), [("amx", True), ("avx512_bf16", True), ("avx2", False)])
def test_bf16_auto_follows_the_hardware(fake_cpu, cpu, expected):
    fake_cpu(cpu)
    args = cove.TrainingArguments("out", bf16="auto")
    assert args.bf16 is expected
    assert args.to_dict()["bf16"] is expected  # training_args.json records what ran, as transformers' bool


def test_bf16_auto_needs_native_and_faster(fake_cpu):
    fake_cpu("avx512_bf16", ratio=0.8)
    assert cove.TrainingArguments("out", bf16="auto").bf16 is False


def test_bf16_true_on_an_emulating_cpu_trains_bf16_and_warns_once(fake_cpu, caplog):
    import logging

    fake_cpu("avx2")
    with caplog.at_level(logging.WARNING, logger="cove.hardware"):
        assert cove.TrainingArguments("out", bf16=True).bf16 is True
        assert cove.TrainingArguments("out", bf16=True).bf16 is True
    messages = [r.getMessage() for r in caplog.records if r.name == "cove.hardware"]
    assert messages == [
        "TrainingArguments(bf16=True): bf16 matmuls run 12x slower than fp32 on this CPU (AMD EPYC 7B12, AVX2, "
        "no AVX512-BF16/AMX); float32 (or 'auto') is faster here."
    ]


def test_bf16_false_decides_nothing(fake_cpu):
    fake_cpu("amx")
    assert cove.TrainingArguments("out").bf16 is False
    assert cove.TrainingArguments("out", bf16=False).bf16 is False
    assert fake_cpu.measured == []


@pytest.mark.parametrize("value", ["yes", "true", 2, None])
def test_bf16_takes_a_bool_or_auto(value):
    with pytest.raises(TrainingError, match=rf"bf16 must be True, False or 'auto', got {value!r}"):
        cove.TrainingArguments("out", bf16=value)
