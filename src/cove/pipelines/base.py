"""What every pipeline shares: loading a model and tokenizer, and one batching loop.

The loop tokenizes without padding, sorts by length, pads each batch only to its own longest item, runs
the model under ``torch.inference_mode`` and returns results in input order. Inputs may be any iterable
(a generator too): they are consumed in windows, so memory stays bounded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cove.errors import PipelineError


@dataclass
class Loaded:
    model: Any
    tokenizer: Any


def load_model_and_tokenizer(
    auto_model: Any, model: Any, tokenizer: Any, *, dtype: Any = None, device: Any = None
) -> Loaded:
    from cove.tokenization.auto import AutoTokenizer

    if isinstance(model, str) or hasattr(model, "__fspath__"):
        name = model
        model = auto_model.from_pretrained(name, dtype=dtype)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(name)
    elif dtype is not None:
        from cove.models.modeling import resolve_dtype

        model = model.to(resolve_dtype(dtype, model.config))
    if isinstance(tokenizer, str) or hasattr(tokenizer, "__fspath__"):
        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    if tokenizer is None:
        raise PipelineError("A model object was given without a tokenizer: pass tokenizer= as well.")
    if device is not None:
        model = model.to(device)
    return Loaded(model.eval(), tokenizer)


def pad_batch(features: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, Any]:
    """Right-pad token lists to the batch's longest and stack them into tensors."""
    import torch

    longest = max(len(f["input_ids"]) for f in features)
    out: dict[str, Any] = {}
    for key in features[0]:
        fill = pad_token_id if key == "input_ids" else 0
        rows = [f[key] + [fill] * (longest - len(f[key])) for f in features]
        out[key] = torch.tensor(rows, dtype=torch.long)
    return out


def batched_forward(
    items: list[dict[str, list[int]]],
    forward: Callable[[dict[str, Any]], list[Any]],
    *,
    batch_size: int,
    pad_token_id: int,
) -> list[Any]:
    """Run ``forward`` over length-sorted, per-batch-padded batches; results come back in input order."""
    import torch

    order = sorted(range(len(items)), key=lambda i: len(items[i]["input_ids"]), reverse=True)
    results: list[Any] = [None] * len(items)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = pad_batch([items[i] for i in idx], pad_token_id)
            for i, result in zip(idx, forward(batch)):
                results[i] = result
    return results


def windows(inputs: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(inputs)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def check_texts(texts: list[Any], task: str) -> None:
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise PipelineError(
                f"{task} takes strings; input {i} is {type(text).__name__} ({text!r:.60}). Convert it to str first."
            )
