"""Pieces every decoder-only family shares: the causal mask over a KV cache, default positions, the loss."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cove.errors import ConfigError, GenerationError
from cove.models.kv_cache import KVCache


def start_cache(
    cache: KVCache | None, use_cache: bool, num_layers: int, new_tokens: int
) -> tuple[KVCache | None, int]:
    """The cache this forward pass writes to (a fresh one when asked for) and the position it starts at."""
    if cache is None and use_cache:
        cache = KVCache(num_layers)
    start = cache.begin(new_tokens) if cache is not None else 0
    return cache, start


def default_positions(start: int, seq: int, batch: int, device: torch.device) -> torch.Tensor:
    return torch.arange(start, start + seq, device=device).unsqueeze(0).expand(batch, -1)  # (batch, seq)


def causal_mask(
    attention_mask: torch.Tensor | None, start: int, seq: int, device: torch.device
) -> tuple[torch.Tensor | None, bool]:
    """(mask for SDPA or None, is_causal). ``attention_mask`` is (batch, past + seq) of 1/0.

    Without padding the mask is left to SDPA (``is_causal`` for a prompt, nothing for one new token); with
    padding a boolean (batch, 1, seq, past + seq) mask is built. Rows with nothing to attend to (the query
    is itself padding) come out of SDPA as zeros (torch >= 2.5), as in transformers.
    """
    total = start + seq
    if attention_mask is not None:
        if attention_mask.shape[-1] != total:
            raise GenerationError(
                f"attention_mask covers {attention_mask.shape[-1]} positions but the cache plus input hold "
                f"{total}: pass a mask for the past and the new tokens."
            )
        if bool(attention_mask.all()):
            attention_mask = None
    if attention_mask is None:
        if seq == 1:
            return None, False
        if start == 0:
            return None, True
        keep = (
            torch.arange(total, device=device)[None, :] <= torch.arange(start, total, device=device)[:, None]
        )
        return keep[None, None], False
    keep = torch.arange(total, device=device)[None, :] <= torch.arange(start, total, device=device)[:, None]
    return keep[None, None] & attention_mask[:, None, None, :].to(torch.bool), False  # (batch, 1, seq, total)


def small_step_rows() -> int:
    """Forward passes over at most this many token rows (batch x new tokens) run their layers on one
    intra-op thread: ``COVE_SMALL_STEP_ROWS`` (default 16; 0 turns it off)."""
    try:
        return int(os.environ.get("COVE_SMALL_STEP_ROWS", "16"))
    except ValueError:
        raise GenerationError(
            f"COVE_SMALL_STEP_ROWS={os.environ['COVE_SMALL_STEP_ROWS']!r} is not an integer."
        ) from None


_thread_switch = threading.Lock()
_one_thread_depth = 0
_saved_threads = 1


@contextmanager
def small_step_threads(rows: int) -> Iterator[None]:
    """One intra-op thread for the decoder layers of a small inference step (a decoding step at small batch).

    Each op of such a step is microseconds of work, too little to share: the matrix-vector products are
    bound by memory bandwidth, and attention and norms are tiny. Yet some ops (SDPA, batched matmuls) still
    open an OpenMP parallel region, whose barrier waits for every thread; on a machine with no idle core
    that wait is a scheduler time slice (measured 12-16 ms per region on 2 busy cores, against 10 us of
    work), thirty layers a token. The LM head (a vocabulary-sized product) stays outside and uses every
    thread. Matmuls and norms give the same bits on one thread or two; SDPA's single-query kernel can
    differ in the last bit (~1e-7, as transformers' own outputs do between thread counts), which left the
    greedy tokens of every parity test and benchmark run unchanged.

    The thread count is process-wide, so while any small step runs, other Python threads' torch ops also
    run on one thread (a throughput cost only, never a different result).
    """
    global _one_thread_depth, _saved_threads
    if rows > small_step_rows() or torch.is_grad_enabled():
        yield
        return
    # torch's thread count is process-wide: nested and concurrent (other Python threads) small steps share
    # one switch, and the count the first of them saw comes back when the last one ends
    with _thread_switch:
        if _one_thread_depth == 0:
            _saved_threads = torch.get_num_threads()
            if _saved_threads != 1:
                torch.set_num_threads(1)
        _one_thread_depth += 1
    try:
        yield
    finally:
        with _thread_switch:
            _one_thread_depth -= 1
            if _one_thread_depth == 0 and _saved_threads != 1:
                torch.set_num_threads(_saved_threads)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Next-token cross-entropy: position i predicts labels[i + 1]; -100 is ignored (as transformers)."""
    shifted = F.pad(labels, (0, 1), value=-100)[..., 1:].to(logits.device)
    return F.cross_entropy(logits.float().reshape(-1, vocab_size), shifted.reshape(-1), ignore_index=-100)


class GenerationMixin:
    """``generate`` and ``generation_config`` for causal LMs.

    The generation code lives one layer up (cove.generation) and is imported when called, as transformers'
    GenerationMixin is: the models stay usable without it, and generation builds on the models.
    """

    generation_config: Any = None

    @classmethod
    def _load(cls, snapshot: Any, hub: Any, options: Any, overrides: dict[str, Any]) -> Any:
        """A GGUF file or an HF folder, plus the generation config of the same snapshot."""
        from cove.checkpoint.gguf import find_gguf
        from cove.generation.config import GENERATION_CONFIG_NAME, GenerationConfig

        folder = snapshot.folder(hub.subfolder)
        gguf_path = find_gguf(snapshot.name, folder, options.gguf_file)
        generation_config = options.generation_config
        options = dataclasses.replace(options, gguf_file=None, generation_config=None)
        if gguf_path is not None:
            from cove.models.gguf import model_from_gguf

            model = model_from_gguf(cls, gguf_path, name=snapshot.name, options=options, overrides=overrides)
        else:
            model = super()._load(snapshot, hub, options, overrides)  # type: ignore[misc]
            if generation_config is None and (folder / GENERATION_CONFIG_NAME).is_file():
                generation_config = GenerationConfig.from_pretrained(folder)
        if generation_config is not None and not isinstance(generation_config, GenerationConfig):
            raise ConfigError(
                f"generation_config= takes a GenerationConfig, got a {type(generation_config).__name__}."
            )
        model.generation_config = generation_config or GenerationConfig.from_model_config(model.config)
        return model

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        from cove.generation.utils import generate

        if self.generation_config is None:
            from cove.generation.config import GenerationConfig

            self.generation_config = GenerationConfig.from_model_config(self.config)  # type: ignore[attr-defined]
        return generate(self, *args, **kwargs)


class FusedLinears:
    """Several nn.Linear layers that read the same input, evaluated with one matmul at inference.

    Their parameters' storage is re-pointed to views of one concatenated tensor (the Parameter objects stay
    the same, so an optimizer keeps updating what the model uses), so fusing costs no memory and the
    checkpoint layout (separate q/k/v, gate/up) is unchanged. Anything that replaces the parameters
    (``.to(dtype)``, loading) is noticed by pointer and fused again on the next call. Training, and any call
    with autograd on, uses the layers one by one.
    """

    def __init__(self, *linears: nn.Linear):
        self.linears = linears
        self.sizes = [lin.out_features for lin in linears]
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's output."""
        return list(self.joined(x).split(self.sizes, dim=-1))

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        """The layers' outputs side by side on the last dimension."""
        first = self.linears[0].weight
        if torch.is_grad_enabled() or first.is_meta:
            return torch.cat([lin(x) for lin in self.linears], dim=-1)
        if (
            self.weight is None
            or first.data_ptr() != self.weight.data_ptr()
            or first.dtype != self.weight.dtype
        ):
            self._fuse()
        assert self.weight is not None
        return F.linear(x, self.weight, self.bias)

    def _fuse(self) -> None:
        # normal tensors even under inference_mode: the parameters must stay usable for training later
        with torch.inference_mode(False), torch.no_grad():
            self._fuse_now()

    def _fuse_now(self) -> None:
        weight = torch.cat([lin.weight.detach() for lin in self.linears])
        biased = [lin.bias is not None for lin in self.linears]
        bias = None
        if any(biased):
            bias = torch.cat(
                [
                    lin.bias.detach() if lin.bias is not None else weight.new_zeros(lin.out_features)
                    for lin in self.linears
                ]
            )
        start = 0
        for lin, size in zip(self.linears, self.sizes):
            # swap the storage, keep the Parameter objects: an optimizer holding them keeps training the
            # weights the model uses (a new Parameter here would silently detach them after an evaluation)
            lin.weight.data = weight[start : start + size]
            if lin.bias is not None and bias is not None:
                lin.bias.data = bias[start : start + size]
            start += size
        self.weight, self.bias = weight, bias
