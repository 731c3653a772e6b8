"""Cove's Trainer and collators against transformers' on the same model, data and arguments."""

from __future__ import annotations

import random

import pytest
import torch

import cove
from cove.hub.resolve import resolve_model_dir
from cove.training.collators import DataCollatorWithPadding
from tests.training.helpers import ToyTokenizer, accuracy, tiny_config

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

pytestmark = pytest.mark.parity


def _examples(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randint(5, 59) for _ in range(rng.randint(3, 12))]
        out.append({"input_ids": [1, *ids, 2], "label": int(7 in ids or 8 in ids)})
    return out


@pytest.mark.slow
def test_same_loss_curve_and_eval_as_transformers_trainer(tmp_path):
    config = transformers.BertConfig(
        vocab_size=60,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    reference = transformers.BertForSequenceClassification(config)
    reference.save_pretrained(tmp_path / "init")
    ours = cove.AutoModelForSequenceClassification.from_pretrained(tmp_path / "init")
    train, evaluation = _examples(70, 0), _examples(20, 1)
    collator = DataCollatorWithPadding(ToyTokenizer())
    kwargs = dict(
        num_train_epochs=3,
        per_device_train_batch_size=8,
        per_device_eval_batch_size=6,
        logging_steps=1,
        learning_rate=2e-3,
        weight_decay=0.01,
        warmup_steps=3,
        lr_scheduler_type="cosine",
        report_to="none",
        save_strategy="no",
        eval_strategy="epoch",
        disable_tqdm=True,
        seed=7,
    )
    theirs = transformers.Trainer(
        reference,
        transformers.TrainingArguments(str(tmp_path / "hf"), **kwargs),
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        compute_metrics=accuracy,
    )
    ref_out = theirs.train()
    mine = cove.Trainer(
        ours,
        cove.TrainingArguments(str(tmp_path / "cove"), **kwargs),
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collator,
        compute_metrics=accuracy,
    )
    out = mine.train()

    def curve(history, key):
        return [r[key] for r in history if "loss" in r and key in r]

    assert out.global_step == ref_out.global_step == 27
    for key in ("loss", "learning_rate", "grad_norm", "epoch"):
        assert curve(mine.state.log_history, key) == pytest.approx(
            curve(theirs.state.log_history, key), abs=1e-6
        ), key
    ref_evals = [r for r in theirs.state.log_history if "eval_loss" in r]
    evals = [r for r in mine.state.log_history if "eval_loss" in r]
    for a, b in zip(evals, ref_evals, strict=True):
        assert a["eval_loss"] == pytest.approx(b["eval_loss"], abs=1e-6)
        assert a["eval_accuracy"] == b["eval_accuracy"]
    assert out.training_loss == pytest.approx(ref_out.training_loss, abs=1e-6)


@pytest.mark.parametrize("task", ["sequence", "token"])
def test_same_loss_curve_with_dropout_padding_free(tmp_path, task):
    """With dropout on, Cove's padding-free steps (token-wise layers on the real tokens only) draw the masks
    transformers' padded steps draw: the same curve, so speed is not bought with different training."""
    config = transformers.BertConfig(**tiny_config(dropout=0.1, num_labels=3).to_dict())
    torch.manual_seed(0)
    if task == "sequence":
        transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "init")
        train = _examples(40, 0)
        collator = DataCollatorWithPadding(ToyTokenizer())
        auto = "AutoModelForSequenceClassification"
    else:
        transformers.BertForTokenClassification(config).save_pretrained(tmp_path / "init")
        train = [
            {"input_ids": e["input_ids"], "labels": [-100, *[i % 3 for i in e["input_ids"][1:-1]], -100]}
            for e in _examples(40, 0)
        ]
        collator = cove.DataCollatorForTokenClassification(ToyTokenizer())
        auto = "AutoModelForTokenClassification"
    kwargs = dict(
        num_train_epochs=2,
        per_device_train_batch_size=8,
        logging_steps=1,
        learning_rate=2e-3,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        seed=3,
    )
    curves = []
    for lib in (transformers, cove):
        model = getattr(lib, auto).from_pretrained(tmp_path / "init")
        args = lib.TrainingArguments(str(tmp_path / lib.__name__), **kwargs)
        trainer = lib.Trainer(model, args, train_dataset=train, data_collator=collator)
        trainer.train()
        curves.append([r["loss"] for r in trainer.state.log_history if "loss" in r])
    theirs, ours = curves
    assert len(ours) == len(theirs) == 10
    assert ours == pytest.approx(theirs, abs=1e-5)
    assert len(set(ours)) > 5  # the curve moves: dropout and training happened


@pytest.fixture(scope="module")
def hf_tokenizer():
    return transformers.AutoTokenizer.from_pretrained(
        str(resolve_model_dir("sentence-transformers/all-MiniLM-L6-v2"))
    )


TEXTS = ["A short one.", "A somewhat longer sentence, with punctuation!", "Ünïcode and emoji 🙂 too"]


def test_padding_collator_matches_transformers(hf_tokenizer):
    feats = [dict(hf_tokenizer(t), label=i % 2) for i, t in enumerate(TEXTS)]
    for kwargs in ({}, {"pad_to_multiple_of": 8}, {"padding": "max_length", "max_length": 24}):
        ours = cove.DataCollatorWithPadding(hf_tokenizer, **kwargs)([dict(f) for f in feats])
        ref = transformers.DataCollatorWithPadding(hf_tokenizer, **kwargs)([dict(f) for f in feats])
        assert set(ours) == set(ref)
        for key in ref:
            assert torch.equal(ours[key], ref[key]), (kwargs, key)


def test_token_classification_collator_matches_transformers(hf_tokenizer):
    feats = []
    for t in TEXTS:
        enc = dict(hf_tokenizer(t))
        enc["labels"] = [-100] + [i % 3 for i in range(len(enc["input_ids"]) - 2)] + [-100]
        feats.append(enc)
    ours = cove.DataCollatorForTokenClassification(hf_tokenizer)([dict(f) for f in feats])
    ref = transformers.DataCollatorForTokenClassification(hf_tokenizer)([dict(f) for f in feats])
    for key in ref:
        assert torch.equal(ours[key], ref[key].to(ours[key].dtype)), key


def test_mlm_collator_matches_transformers_with_a_seed(hf_tokenizer):
    feats = [dict(hf_tokenizer(t * 4)) for t in TEXTS]
    for probs in ((0.8, 0.1), (0.5, 0.3), (1.0, 0.0)):
        kwargs = dict(mlm_probability=0.3, mask_replace_prob=probs[0], random_replace_prob=probs[1], seed=11)
        ours = cove.DataCollatorForLanguageModeling(hf_tokenizer, **kwargs)([dict(f) for f in feats])
        ref = transformers.DataCollatorForLanguageModeling(hf_tokenizer, **kwargs)([dict(f) for f in feats])
        for key in ("input_ids", "labels", "attention_mask"):
            assert torch.equal(ours[key], ref[key]), (probs, key)
