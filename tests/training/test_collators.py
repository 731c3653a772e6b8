"""Collators on hand-built batches: padding values, label padding, MLM masking rates, causal LM labels."""

from __future__ import annotations

import pytest
import torch

import cove
from cove.errors import TrainingError
from tests.training.helpers import ToyTokenizer

FEATURES = [
    {"input_ids": [1, 5, 6, 2], "token_type_ids": [0, 0, 0, 0], "label": 1},
    {"input_ids": [1, 9, 2], "token_type_ids": [0, 0, 0], "label": 0},
]


def test_padding_collator_pads_and_renames_labels():
    batch = cove.DataCollatorWithPadding(ToyTokenizer())(FEATURES)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2], [1, 9, 2, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0]]
    assert batch["labels"].tolist() == [1, 0] and batch["labels"].dtype == torch.long
    multiple = cove.DataCollatorWithPadding(ToyTokenizer(), pad_to_multiple_of=8)(FEATURES)
    assert multiple["input_ids"].shape == (2, 8)


def test_padding_left_and_max_length():
    tok = ToyTokenizer()
    tok.padding_side = "left"
    batch = cove.DataCollatorWithPadding(tok, padding="max_length", max_length=6)(FEATURES)
    assert batch["input_ids"].tolist() == [[0, 0, 1, 5, 6, 2], [0, 0, 0, 1, 9, 2]]
    assert batch["attention_mask"].tolist()[1] == [0, 0, 0, 1, 1, 1]


def test_token_classification_pads_labels_with_minus_100():
    feats = [
        {"input_ids": [1, 5, 6, 2], "labels": [-100, 3, 4, -100]},
        {"input_ids": [1, 9, 2], "labels": [-100, 1, -100]},
    ]
    batch = cove.DataCollatorForTokenClassification(ToyTokenizer())(feats)
    assert batch["labels"].tolist() == [[-100, 3, 4, -100], [-100, 1, -100, -100]]
    assert batch["input_ids"].tolist()[1] == [1, 9, 2, 0]


def test_default_collator_stacks_and_types_labels():
    batch = cove.default_data_collator([{"x": [1.0, 2.0], "label": 0.5}, {"x": [3.0, 4.0], "label": 1.5}])
    assert batch["labels"].dtype == torch.float and batch["x"].shape == (2, 2)
    with pytest.raises(TrainingError, match="DataCollatorWithPadding"):
        cove.default_data_collator(FEATURES)


def test_mlm_masking_rates_80_10_10():
    tok = ToyTokenizer()
    collator = cove.DataCollatorForLanguageModeling(tok, mlm_probability=0.15, seed=0)
    feats = [{"input_ids": [1, *range(10, 60), *range(10, 60), 2]} for _ in range(400)]
    original = torch.tensor([f["input_ids"] for f in feats])
    batch = collator(feats)
    labels, inputs = batch["labels"], batch["input_ids"]
    masked = labels != -100
    assert not masked[:, 0].any() and not masked[:, -1].any()  # special tokens are never chosen
    rate = masked.float().mean().item() * original.shape[1] / (original.shape[1] - 2)
    assert rate == pytest.approx(0.15, abs=0.01)
    assert torch.equal(labels[masked], original[masked])
    to_mask = (inputs[masked] == tok.mask_token_id).float().mean().item()
    unchanged = (inputs[masked] == original[masked]).float().mean().item()
    assert to_mask == pytest.approx(0.8, abs=0.02)
    assert unchanged == pytest.approx(0.1 + 0.1 / len(tok), abs=0.02)  # kept, or replaced by itself
    assert torch.equal(inputs[~masked], original[~masked])


def test_causal_lm_labels_ignore_padding():
    batch = cove.DataCollatorForLanguageModeling(ToyTokenizer(), mlm=False)(
        [{"input_ids": [1, 5, 6]}, {"input_ids": [1, 9]}]
    )
    assert batch["labels"].tolist() == [[1, 5, 6], [1, 9, -100]]
    assert batch["input_ids"].tolist() == [[1, 5, 6], [1, 9, 0]]


def test_mlm_needs_mask_token():
    class NoMask:
        pad_token_id = 0
        mask_token_id = None

    with pytest.raises(TrainingError, match="mask token"):
        cove.DataCollatorForLanguageModeling(NoMask())
