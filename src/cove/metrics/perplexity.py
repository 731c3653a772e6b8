"""Perplexity of texts under a causal language model, with evaluate's formula.

Per text: exp(mean negative log-likelihood of each token given the ones before it), the first token
conditioned on the BOS token when ``add_start_token``; plus their mean. The model and tokenizer are duck
typed (metrics/ never imports models/): a model called as ``model(input_ids=..., attention_mask=...)``
returning ``.logits`` (batch, seq, vocab), and a tokenizer called as ``tokenizer(texts,
add_special_tokens=False)`` returning ``{"input_ids": [[...], ...]}`` with a ``bos_token_id``. A model
*name* (``model_id="gpt2"``, evaluate's way) is loaded through Cove's public API, ``cove.AutoModelForCausalLM``
and ``cove.AutoTokenizer``, reached at call time through ``cove``'s lazy re-exports: the one place metrics/
touches a model class, and tests/test_layers.py allows exactly it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cove.errors import MetricError

from .text import check_strings


def _load_by_name(name: str) -> tuple[Any, Any]:
    import cove  # the public API, at call time: metrics/ sits below models/

    return cove.AutoModelForCausalLM.from_pretrained(name), cove.AutoTokenizer.from_pretrained(name)


def _token_ids(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    encoded = tokenizer(texts, add_special_tokens=False)
    try:
        ids = encoded["input_ids"]
    except (KeyError, TypeError, IndexError) as exc:
        raise MetricError("perplexity: the tokenizer must return a mapping with 'input_ids'.") from exc
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    ids = [list(map(int, row)) for row in ids]
    if len(ids) != len(texts):
        raise MetricError(f"perplexity: the tokenizer returned {len(ids)} sequences for {len(texts)} texts.")
    return ids


def _logits(output: Any) -> Any:
    if hasattr(output, "logits"):
        return output.logits
    if isinstance(output, Mapping) and "logits" in output:
        return output["logits"]
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def perplexity(
    predictions: Any,
    model_id: Any = None,
    model: Any = None,
    tokenizer: Any = None,
    batch_size: int = 16,
    add_start_token: bool = True,
    device: str | None = None,
    max_length: int | None = None,
) -> dict[str, Any]:
    """{'perplexities': [per text], 'mean_perplexity': mean}. ``predictions`` are the texts."""
    import torch

    texts = check_strings(predictions, "predictions (the texts)", "perplexity")
    if isinstance(model_id, str):
        if model is not None:
            raise MetricError("perplexity: pass model_id= (a name) or model= (an object), not both.")
        model, loaded_tokenizer = _load_by_name(model_id)
        tokenizer = tokenizer or loaded_tokenizer
    elif model_id is not None:
        model = model_id
    if model is None or tokenizer is None:
        raise MetricError("perplexity: needs model_id= (a causal LM name), or model= and tokenizer= objects.")
    if batch_size < 1:
        raise MetricError(f"perplexity: batch_size must be >= 1, got {batch_size}.")

    bos: Any = getattr(tokenizer, "bos_token_id", None)
    if add_start_token and bos is None:
        raise MetricError(
            "perplexity: add_start_token=True needs a tokenizer with a bos_token_id; pass add_start_token=False."
        )
    limit = None if not max_length else (max_length - 1 if add_start_token else max_length)
    sequences = []
    for text, ids in zip(texts, _token_ids(tokenizer, texts)):
        ids = ids[:limit] if limit else ids
        ids = [int(bos), *ids] if add_start_token else ids
        if len(ids) < 2:
            need = "one token" if add_start_token else "two tokens (add_start_token=False)"
            raise MetricError(f"perplexity: each text must be at least {need} long; {text!r:.60} is not.")
        sequences.append(ids)

    if device is None:
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        device = str(first.device) if first is not None else "cpu"
    was_training = bool(getattr(model, "training", False))
    if was_training:
        model.eval()  # dropout would make the score random
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    loss_fn = torch.nn.CrossEntropyLoss(reduction="none")
    perplexities: list[float] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(sequences), batch_size):
                batch = sequences[start : start + batch_size]
                width = max(len(s) for s in batch)
                input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, ids in enumerate(batch):  # right padding: real tokens never attend to pads
                    input_ids[row, : len(ids)] = torch.tensor(ids)
                    mask[row, : len(ids)] = 1
                input_ids, mask = input_ids.to(device), mask.to(device)
                logits = _logits(model(input_ids=input_ids, attention_mask=mask))  # (batch, seq, vocab)
                shift_logits = logits[:, :-1, :].float()
                shift_labels = input_ids[:, 1:]
                shift_mask = mask[:, 1:].float()
                nll = loss_fn(shift_logits.transpose(1, 2), shift_labels)  # (batch, seq - 1)
                per_text = torch.exp((nll * shift_mask).sum(1) / shift_mask.sum(1))
                perplexities.extend(per_text.tolist())
    finally:
        if was_training:
            model.train()
    return {"perplexities": perplexities, "mean_perplexity": sum(perplexities) / len(perplexities)}
