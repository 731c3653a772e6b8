"""Data collators: a list of examples (dicts) -> a batch of tensors, as transformers' collators build them.

Padding needs only ``pad_token_id`` and ``padding_side`` from the tokenizer, so any tokenizer object works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cove.errors import TrainingError

# keys padded with the tokenizer's pad id; other sequence keys pad with 0
_PAD_WITH_PAD_ID = ("input_ids",)
_LABEL_KEYS = ("label", "label_ids", "labels")


def _as_dict(example: Any) -> dict[str, Any]:
    if isinstance(example, Mapping):
        return dict(example)
    if hasattr(example, "keys"):
        return {k: example[k] for k in example.keys()}  # noqa: SIM118 - BatchEncoding-like objects
    raise TrainingError(
        f"A collator needs examples that are dicts of features, got {type(example).__name__}: "
        "map your dataset to dicts such as {'input_ids': [...], 'labels': 0}."
    )


def _to_tensor(values: list[Any]) -> torch.Tensor:
    first = values[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(values)
    if isinstance(first, np.ndarray):
        return torch.from_numpy(np.stack(values))
    return torch.tensor(values)


def default_data_collator(features: list[Any]) -> dict[str, torch.Tensor]:
    """Stack already-padded features; ``label``/``label_ids`` become ``labels`` (long for ints, float otherwise)."""
    features = [_as_dict(f) for f in features]
    first = features[0]
    batch: dict[str, Any] = {}
    for key in ("label", "label_ids"):
        if key in first and first[key] is not None:
            value = first[key]
            if isinstance(value, torch.Tensor):
                value = value.item() if value.ndim == 0 else value[0].item()
            elif isinstance(value, (list, tuple, np.ndarray)) and len(value):
                value = value[0]
            dtype = torch.long if isinstance(value, (int, np.integer)) else torch.float
            labels = [f[key] for f in features]
            if isinstance(labels[0], torch.Tensor):
                batch["labels"] = torch.stack(labels).to(dtype)
            else:
                batch["labels"] = torch.tensor(np.asarray(labels), dtype=dtype)
            break
    for key, value in first.items():
        if key in ("label", "label_ids") or value is None or isinstance(value, str):
            continue
        try:
            batch[key] = _to_tensor([f[key] for f in features])
        except (ValueError, TypeError, RuntimeError) as exc:
            raise TrainingError(
                f"default_data_collator could not stack feature {key!r} ({exc}); sequences of different "
                "lengths need padding: use DataCollatorWithPadding(tokenizer)."
            ) from None
    return batch


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        raise TrainingError(
            f"{type(tokenizer).__name__} has no pad_token_id, so batches cannot be padded: set "
            "tokenizer.pad_token (for example to the eos token) first."
        )
    return int(pad)


def _target_length(lengths: list[int], max_length: int | None, padding: Any, multiple: int | None) -> int:
    if padding == "max_length":
        if max_length is None:
            raise TrainingError("padding='max_length' needs max_length.")
        target = max_length
    else:
        target = max(lengths)
    if multiple:
        target = -(-target // multiple) * multiple
    return target


def _pad_rows(rows: list[list[int]], target: int, value: int, side: str) -> list[list[int]]:
    out = []
    for row in rows:
        row = list(row.tolist() if hasattr(row, "tolist") else row)
        gap = target - len(row)
        if gap < 0:
            row = row[:target] if side == "right" else row[-target:]
            gap = 0
        out.append(row + [value] * gap if side == "right" else [value] * gap + row)
    return out


def pad_features(
    features: list[dict[str, Any]],
    tokenizer: Any,
    *,
    padding: Any = True,
    max_length: int | None = None,
    pad_to_multiple_of: int | None = None,
    skip: Sequence[str] = (),
) -> dict[str, Any]:
    """Pad every list-valued feature of ``features`` to one length; returns lists (tensors made by callers)."""
    side = getattr(tokenizer, "padding_side", "right")
    if side not in ("right", "left"):
        raise TrainingError(f"padding_side={side!r}; use 'right' or 'left'.")
    if "input_ids" not in features[0]:
        raise TrainingError(
            f"Padding needs an 'input_ids' feature; the examples have {sorted(features[0])}. Tokenize the "
            "dataset first (dataset.map(lambda ex: tokenizer(ex['text'], truncation=True)))."
        )
    lengths = [len(f["input_ids"]) for f in features]
    if padding in (False, "do_not_pad") and len(set(lengths)) > 1:
        raise TrainingError("padding=False but the examples have different lengths.")
    target = _target_length(lengths, max_length, padding, pad_to_multiple_of)
    batch: dict[str, Any] = {}
    first = features[0]
    for key in first:
        if key in skip:
            continue
        values = [f[key] for f in features]
        if isinstance(first[key], (list, tuple, np.ndarray, torch.Tensor)) and not isinstance(
            first[key], str
        ):
            if isinstance(first[key], torch.Tensor) and first[key].ndim == 0:
                batch[key] = values
                continue
            value = _pad_id(tokenizer) if key in _PAD_WITH_PAD_ID else 0
            batch[key] = _pad_rows(values, target, value, side)
        else:
            batch[key] = values
    if "attention_mask" not in first:
        ones = [[1] * n for n in lengths]
        batch["attention_mask"] = _pad_rows(ones, target, 0, side)
    return batch


def _tensorise(batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for key, values in batch.items():
        if values and isinstance(values[0], str):
            continue
        out[key] = values if isinstance(values, torch.Tensor) else _to_tensor(values)
    return out


@dataclass
class DataCollatorWithPadding:
    """Pad ``input_ids`` (pad id), ``attention_mask``/``token_type_ids`` (0) per batch; rename label -> labels."""

    tokenizer: Any
    padding: Any = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    return_tensors: str = "pt"

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        features = [_as_dict(f) for f in features]
        batch = pad_features(
            features,
            self.tokenizer,
            padding=self.padding,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
        )
        for old in ("label", "label_ids"):
            if old in batch:
                batch["labels"] = batch.pop(old)
        return _tensorise(batch)


@dataclass
class DataCollatorForTokenClassification:
    """Pad inputs like ``DataCollatorWithPadding`` and per-token ``labels`` with ``label_pad_token_id`` (-100)."""

    tokenizer: Any
    padding: Any = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    label_pad_token_id: int = -100
    return_tensors: str = "pt"

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        features = [_as_dict(f) for f in features]
        label_key = "label" if "label" in features[0] else "labels"
        labels = [f[label_key] for f in features] if label_key in features[0] else None
        batch = pad_features(
            features,
            self.tokenizer,
            padding=self.padding,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            skip=(label_key,),
        )
        if labels is not None:
            target = len(batch["input_ids"][0])
            side = getattr(self.tokenizer, "padding_side", "right")
            batch["labels"] = _pad_rows(labels, target, self.label_pad_token_id, side)
        return _tensorise(batch)


@dataclass
class DataCollatorForLanguageModeling:
    """Masked-LM batches (``mlm=True``: 80% [MASK], 10% random token, 10% unchanged) or causal-LM batches.

    For causal LM (``mlm=False``) labels are the input ids with padding set to -100; the model shifts them.
    """

    tokenizer: Any
    mlm: bool = True
    mlm_probability: float = 0.15
    mask_replace_prob: float = 0.8
    random_replace_prob: float = 0.1
    pad_to_multiple_of: int | None = None
    seed: int | None = None
    return_tensors: str = "pt"

    def __post_init__(self) -> None:
        if self.mlm and getattr(self.tokenizer, "mask_token_id", None) is None:
            raise TrainingError(
                "mlm=True needs a tokenizer with a mask token; use mlm=False for causal language modeling."
            )
        if not 0 <= self.mlm_probability <= 1:
            raise TrainingError(f"mlm_probability must be in [0, 1], got {self.mlm_probability}.")
        if self.mask_replace_prob + self.random_replace_prob > 1:
            raise TrainingError(
                f"mask_replace_prob + random_replace_prob must be <= 1, got "
                f"{self.mask_replace_prob} + {self.random_replace_prob}."
            )
        self.generator = torch.Generator().manual_seed(self.seed) if self.seed is not None else None

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        features = [_as_dict(f) for f in features]
        batch = _tensorise(
            pad_features(
                features, self.tokenizer, pad_to_multiple_of=self.pad_to_multiple_of, skip=("labels",)
            )
        )
        if self.mlm:
            special = batch.pop("special_tokens_mask", None)
            batch["input_ids"], batch["labels"] = self.mask_tokens(batch["input_ids"], special)
        else:
            labels = batch["input_ids"].clone()
            labels[batch["attention_mask"] == 0] = -100
            batch["labels"] = labels
        return batch

    def mask_tokens(
        self, inputs: torch.Tensor, special_tokens_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = inputs.clone()
        labels = inputs.clone()
        if special_tokens_mask is None:
            special_ids = set(getattr(self.tokenizer, "all_special_ids", None) or [])
            special_ids.add(_pad_id(self.tokenizer))
            special = torch.isin(inputs, torch.tensor(sorted(special_ids), dtype=inputs.dtype))
        else:
            special = special_tokens_mask.bool()
        prob = torch.full(labels.shape, self.mlm_probability)
        prob.masked_fill_(special, 0.0)
        masked = torch.bernoulli(prob, generator=self.generator).bool()
        labels[~masked] = -100
        replaced = torch.bernoulli(torch.full(labels.shape, self.mask_replace_prob), generator=self.generator)
        replaced = replaced.bool() & masked
        inputs[replaced] = int(self.tokenizer.mask_token_id)
        if self.mask_replace_prob == 1 or self.random_replace_prob == 0:
            return inputs, labels
        # of the masked tokens not replaced by [MASK], this share gets a random token; the rest stay
        share = self.random_replace_prob / (1 - self.mask_replace_prob)
        rand = torch.bernoulli(torch.full(labels.shape, share), generator=self.generator).bool()
        rand = rand & masked & ~replaced
        vocab = len(self.tokenizer) if hasattr(self.tokenizer, "__len__") else self.tokenizer.vocab_size
        words = torch.randint(vocab, labels.shape, dtype=torch.long, generator=self.generator)
        inputs[rand] = words[rand].to(inputs.dtype)
        return inputs, labels
