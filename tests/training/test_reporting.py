"""report_to: TensorBoard event files with transformers' tags, holding the same numbers as the JSONL log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import cove
from cove.errors import MissingIntegrationError, TrainingError
from cove.training import callbacks
from cove.training.collators import DataCollatorWithPadding
from tests.training.helpers import ToyTokenizer, accuracy, tiny_config, toy_examples

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TRAIN = toy_examples(40, seed=0, with_text=False)
EVAL = toy_examples(12, seed=1, with_text=False)
ARGS = dict(
    max_steps=6,
    per_device_train_batch_size=8,
    per_device_eval_batch_size=6,
    learning_rate=2e-3,
    warmup_steps=2,
    logging_steps=1,
    eval_strategy="steps",
    eval_steps=3,
    save_strategy="no",
    disable_tqdm=True,
    report_to="tensorboard",
)


def read_events(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, str]]:
    """Every scalar (tag -> [(step, value)]) and text (tag -> text) in the event files under ``folder``."""
    scalars: dict[str, list[tuple[int, float]]] = {}
    texts: dict[str, str] = {}
    files = sorted(folder.rglob("events.out.tfevents.*"))
    assert files, f"no event files under {folder}"
    for path in files:
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()["tensors"]:  # add_text lands here as '<tag>/text_summary'
            event = acc.Tensors(tag)[-1]
            texts[tag.removesuffix("/text_summary")] = event.tensor_proto.string_val[0].decode()
    return scalars, texts


def cove_run(folder: Path, **overrides):
    torch.manual_seed(0)
    model = cove.AutoModelForSequenceClassification.from_config(tiny_config())
    args = cove.TrainingArguments(str(folder), **{**ARGS, **overrides})
    trainer = cove.Trainer(
        model,
        args,
        train_dataset=TRAIN,
        eval_dataset=EVAL,
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
        compute_metrics=accuracy,
    )
    trainer.train()
    return trainer


def test_tensorboard_scalars_equal_the_jsonl_log(tmp_path):
    trainer = cove_run(tmp_path / "out", logging_dir=str(tmp_path / "tb"))
    scalars, texts = read_events(tmp_path / "tb")
    records = [json.loads(line) for line in (tmp_path / "out" / "train_log.jsonl").read_text().splitlines()]
    for key, tag in [
        ("loss", "train/loss"),
        ("learning_rate", "train/learning_rate"),
        ("grad_norm", "train/grad_norm"),
        ("eval_loss", "eval/loss"),
        ("eval_accuracy", "eval/accuracy"),
        ("train_loss", "train/train_loss"),
    ]:
        expected = [(r["step"], r[key]) for r in records if key in r]
        assert expected, key
        got = scalars[tag]
        assert [s for s, _ in got] == [s for s, _ in expected], tag
        # event files store float32
        assert [v for _, v in got] == pytest.approx([v for _, v in expected], rel=1e-6, abs=1e-9), tag
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert [s for s, _ in scalars["eval/loss"]] == [3, 6]
    lrs = [v for _, v in scalars["train/learning_rate"]]
    assert lrs[:3] == pytest.approx([0.0, 1e-3, 2e-3])  # warmup: the logged values, not a constant
    args = json.loads(texts["args"])
    assert args["learning_rate"] == 2e-3 and args["max_steps"] == 6
    assert json.loads(texts["model_config"])["hidden_size"] == 32
    assert trainer.args.logging_dir == str(tmp_path / "tb")


def test_default_logging_dir_and_env_override(tmp_path, monkeypatch):
    args = cove.TrainingArguments(str(tmp_path / "out"))
    assert Path(args.logging_dir).parent == tmp_path / "out" / "runs"  # runs/<date>_<host>, as torch names it
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "env"))
    cove_run(tmp_path / "out2", max_steps=2, eval_strategy="no")
    scalars, _ = read_events(tmp_path / "env")
    assert [s for s, _ in scalars["train/loss"]] == [1, 2]
    assert not (tmp_path / "out2" / "runs").exists()


def test_all_reports_to_tensorboard_when_installed(tmp_path):
    cove_run(tmp_path / "out", report_to="all", max_steps=2, eval_strategy="no")
    scalars, _ = read_events(tmp_path / "out" / "runs")
    assert len(scalars["train/loss"]) == 2


def test_missing_tensorboard_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(callbacks, "tensorboard_available", lambda: False)
    with pytest.raises(MissingIntegrationError, match="pip install tensorboard") as info:
        cove_run(tmp_path / "a", max_steps=1)
    assert isinstance(info.value, RuntimeError)  # what transformers raises
    # "all" means "what is installed": the JSONL log only, no error
    cove_run(tmp_path / "b", report_to="all", max_steps=2, eval_strategy="no")
    assert not (tmp_path / "b" / "runs").exists()
    assert len((tmp_path / "b" / "train_log.jsonl").read_text().splitlines()) == 3  # 2 steps + summary
    with pytest.raises(TrainingError, match="wandb"):
        cove.TrainingArguments(str(tmp_path), report_to=["tensorboard", "wandb"])


@pytest.mark.parity
def test_same_tags_and_values_as_transformers_trainer(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    torch.manual_seed(0)
    reference = transformers.BertForSequenceClassification(transformers.BertConfig(**tiny_config().to_dict()))
    reference.save_pretrained(tmp_path / "init")
    theirs = transformers.Trainer(
        reference,
        transformers.TrainingArguments(str(tmp_path / "hf"), **ARGS),
        train_dataset=TRAIN,
        eval_dataset=EVAL,
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
        compute_metrics=accuracy,
    )
    theirs.train()
    ours = cove.AutoModelForSequenceClassification.from_pretrained(tmp_path / "init")
    mine = cove.Trainer(
        ours,
        cove.TrainingArguments(str(tmp_path / "cove"), **ARGS),
        train_dataset=TRAIN,
        eval_dataset=EVAL,
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
        compute_metrics=accuracy,
    )
    mine.train()
    ref_scalars, ref_texts = read_events(tmp_path / "hf" / "runs")
    scalars, texts = read_events(tmp_path / "cove" / "runs")
    assert sorted(scalars) == sorted(ref_scalars)
    assert sorted(texts) == sorted(ref_texts)
    tags = (
        "train/loss",
        "train/learning_rate",
        "train/grad_norm",
        "train/epoch",
        "train/total_flos",
        "eval/loss",
    )
    for tag in (*tags, "eval/accuracy", "train/train_loss"):
        assert [s for s, _ in scalars[tag]] == [s for s, _ in ref_scalars[tag]], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in ref_scalars[tag]], abs=1e-5), tag
