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
