"""Pieces every decoder-only family shares: the causal mask over a KV cache, default positions, the loss,
the small-step thread switch and GenerationMixin."""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

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
    padding = attention_mask[:, None, None, :].to(torch.bool)  # (batch, 1, 1, total)
    if seq == 1:  # one new token sees every position up to itself: the padding is the whole mask
        return padding, False
    keep = torch.arange(total, device=device)[None, :] <= torch.arange(start, total, device=device)[:, None]
    return keep[None, None] & padding, False  # (batch, 1, seq, total)


_thread_switch = threading.Lock()
_one_thread_depth = 0
_saved_threads = 1


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block; the count the first (outermost, or first of several
    concurrent) block saw comes back when the last one ends, also after an error.

    torch's thread count is process-wide, so nested and concurrent blocks (other Python threads) share one
    switch, and while any block runs, other Python threads' torch ops also run on one thread (a throughput
    cost, never a different result). Only generation enters it (cove.generation.utils, around its small
    steps; see there for why), and only when its caller lets it.
    """
    global _one_thread_depth, _saved_threads
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


_ONE_THREAD_LAYERS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cove_one_thread_layers", default=False
)


@contextmanager
def one_thread_layers() -> Iterator[None]:
    """Decoder forwards called inside this block (in this thread or task) run their layers on one intra-op
    thread; the LM head, a vocabulary-sized product, keeps the caller's count. The generate loop enters it
    around each small step; a forward called anywhere else leaves torch's thread count alone."""
    token = _ONE_THREAD_LAYERS.set(True)
    try:
        yield
    finally:
        _ONE_THREAD_LAYERS.reset(token)


@contextmanager
def layer_threads() -> Iterator[None]:
    """What a decoder forward runs its layers in: ``one_thread()`` when its caller asked for it
    (``one_thread_layers``) and autograd is off (training keeps the caller's threads), else nothing."""
    if not _ONE_THREAD_LAYERS.get() or torch.is_grad_enabled():
        yield
        return
    with one_thread():
        yield


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Next-token cross-entropy: position i predicts labels[i + 1]; -100 is ignored (as transformers)."""
    shifted = F.pad(labels, (0, 1), value=-100)[..., 1:].to(logits.device)
    return F.cross_entropy(logits.float().reshape(-1, vocab_size), shifted.reshape(-1), ignore_index=-100)


class GenerationMixin:
    """``generate`` and ``generation_config`` for causal LMs.

    The generation code lives one layer up (cove.generation) and is imported when ``generate`` is called, as
    transformers' GenerationMixin does: the models stay usable without it, and generation builds on the
    models. Loading reads generation_config.json through cove.checkpoint, below the models.
    """

    generation_config: Any = None

    @classmethod
    def _load(cls, snapshot: Any, hub: Any, options: Any, overrides: dict[str, Any]) -> Any:
        """A GGUF file or an HF folder, plus the generation config of the same snapshot."""
        from cove.checkpoint.generation_config import GENERATION_CONFIG_NAME, GenerationConfig
        from cove.checkpoint.gguf import find_gguf

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
        # the one upward import of the models layer (tests/test_layers.py allows exactly this one)
        from cove.generation.utils import generate

        if self.generation_config is None:
            from cove.checkpoint.generation_config import GenerationConfig

            self.generation_config = GenerationConfig.from_model_config(self.config)  # type: ignore[attr-defined]
        return generate(self, *args, **kwargs)
