"""Pieces every encoder-decoder family shares: the decoder's two caches, masks, label shifting and the loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cove.errors import ConfigError, GenerationError
from cove.models.kv_cache import KVCache
from cove.models.outputs import BaseModelOutput, Seq2SeqModelOutput


class EncoderDecoderCache:
    """The decoder's caches: self-attention keys/values grow by one position a step (a ``KVCache``);
    cross-attention keys/values are projected from the encoder output once, on the first decoder pass,
    and reused by every later step."""

    def __init__(self, num_layers: int, *, capacity: int = 0, self_attention: KVCache | None = None):
        self.self_attention = self_attention or KVCache(num_layers, capacity=capacity)
        self.cross: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * num_layers

    def get_seq_length(self) -> int:
        return self.self_attention.length

    def cross_kv(
        self, layer: int, project: Any, encoder_hidden: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """This layer's cross-attention keys/values: ``project(encoder_hidden)`` the first time, then cached."""
        kv = self.cross[layer]
        if kv is None:
            kv = project(encoder_hidden)
            self.cross[layer] = kv
        return kv

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search picks which hypotheses continue). Cross-attention keys/values
        with one row per encoder input shared by a group of decoder rows (see ``cross_attention``) stay as they
        are: the rows ``index`` picks must then stay within their group, as beam search's do."""
        self.self_attention.reorder(index)
        self.cross = [
            None
            if kv is None
            else (kv[0].index_select(0, index), kv[1].index_select(0, index))
            if kv[0].shape[0] == index.shape[0]
            else kv
            for kv in self.cross
        ]

    def crop(self, length: int) -> None:
        self.self_attention.crop(length)


def start_decoder_cache(
    cache: EncoderDecoderCache | None, use_cache: bool, num_layers: int, new_tokens: int
) -> tuple[EncoderDecoderCache | None, int]:
    """The cache this decoder pass writes to (a fresh one when asked for) and the position it starts at."""
    if cache is not None and not isinstance(cache, EncoderDecoderCache):
        raise GenerationError(
            f"An encoder-decoder model needs an EncoderDecoderCache as past_key_values, got {type(cache).__name__}."
        )
    if cache is None and use_cache:
        cache = EncoderDecoderCache(num_layers)
    start = cache.self_attention.begin(new_tokens) if cache is not None else 0
    return cache, start


def run_decoder(
    decoder: Any,
    y: torch.Tensor,
    decoder_attention_mask: torch.Tensor | None,
    encoder_outputs: BaseModelOutput,
    attention_mask: torch.Tensor | None,
    *,
    past_key_values: EncoderDecoderCache | None,
    use_cache: bool,
    num_layers: int,
    want_hidden: bool,
) -> Seq2SeqModelOutput:
    """Every family's decoder pass over the encoder's output: y (batch, target, d_model) through the
    decoder, writing a cache when asked for one, into the base model's output."""
    cache, start = start_decoder_cache(past_key_values, use_cache, num_layers, y.shape[1])
    encoder_hidden = encoder_outputs.last_hidden_state
    if y.shape[0] != encoder_hidden.shape[0] and y.shape[0] % encoder_hidden.shape[0]:
        raise ValueError(
            f"The decoder batch ({y.shape[0]} rows) is not a multiple of the encoder batch "
            f"({encoder_hidden.shape[0]} rows): pass one encoder output row per decoder row (or per group of "
            "consecutive decoder rows)."
        )
    y, hidden = decoder(
        y,
        decoder_attention_mask,
        encoder_hidden=encoder_hidden,
        encoder_attention_mask=attention_mask,
        cache=cache,
        start=start,
        want_hidden=want_hidden,
    )
    if cache is not None:
        cache.self_attention.end(y.shape[1])
    return Seq2SeqModelOutput(
        last_hidden_state=y,
        past_key_values=cache,
        decoder_hidden_states=tuple(hidden) if hidden else None,
        encoder_last_hidden_state=encoder_hidden,
        encoder_hidden_states=encoder_outputs.hidden_states,
    )


def cross_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
    scale: float | None = None,
) -> torch.Tensor:
    """SDPA of the decoder's queries q (batch, heads, seq, head_dim) over the encoder's keys/values, which may
    hold one row per group of ``batch // k.shape[0]`` consecutive decoder rows: generate encodes each input
    once and its beams (or sampled sequences) share that row, so the cross-attention keys/values are projected,
    stored and read once per input, not once per beam. A group's queries then attend as one longer query
    sequence (the mask, (inputs, 1, 1, src), is the same for all of them); the result has q's shape."""
    b, h, s, d = q.shape
    inputs = k.shape[0]
    if inputs == b:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    group = b // inputs
    q = q.view(inputs, group, h, s, d).transpose(1, 2).reshape(inputs, h, group * s, d)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    return out.view(inputs, h, group, s, d).transpose(1, 2).reshape(b, h, s, d)


def encoder_keep_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(batch, src) 1/0 -> boolean (batch, 1, 1, src) of the keys to attend to, or None when none is padding."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    return attention_mask[:, None, None, :].to(torch.bool)


def decoder_keep_mask(
    attention_mask: torch.Tensor | None, start: int, seq: int, device: torch.device
) -> torch.Tensor | None:
    """Boolean (batch or 1, 1, seq, start + seq): causal over the cache, and the decoder padding if given;
    None for one new token without a mask (it sees every position: a decoding step builds no mask).

    ``attention_mask`` is (batch, start + seq) of 1/0, as in transformers (it covers the cached positions too).
    """
    total = start + seq
    if seq == 1 and attention_mask is None:
        return None
    keep = torch.arange(total, device=device)[None, :] <= torch.arange(start, total, device=device)[:, None]
    keep = keep[None, None]  # (1, 1, seq, total)
    if attention_mask is None:
        return keep
    if attention_mask.shape[-1] != total:
        raise GenerationError(
            f"decoder_attention_mask covers {attention_mask.shape[-1]} positions but the cache plus the decoder "
            f"input hold {total}: pass a mask for the past and the new tokens."
        )
    return keep & attention_mask[:, None, None, :].to(torch.bool)


def additive(keep: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean keep-mask as an additive float mask (0 kept, dtype's min masked)."""
    if keep is None:
        return None
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


def shift_tokens_right(
    labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None
) -> torch.Tensor:
    """Decoder inputs for teacher forcing: the start token, then labels[:-1]; -100 (ignored) becomes pad."""
    if decoder_start_token_id is None:
        raise ConfigError(
            "config.decoder_start_token_id is not set: it is needed to build decoder inputs from labels "
            "(T5 and Marian use the pad id, BART the eos id)."
        )
    if pad_token_id is None:
        raise ConfigError("config.pad_token_id is not set: it is needed to build decoder inputs from labels.")
    shifted = labels.new_zeros(labels.shape)
    shifted[..., 1:] = labels[..., :-1]
    shifted[..., 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def seq2seq_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each decoder position against its label (no shift: the decoder inputs are shifted)."""
    return F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), labels.to(logits.device).reshape(-1), ignore_index=-100
    )


def keep_stored_head(
    config: Any, state: dict[str, torch.Tensor], head_key: str, embedding_keys: tuple[str, ...]
) -> None:
    """Untie the lm_head when the file stores it apart from the embedding it would be tied to, with other
    values: transformers 5 then keeps both (a v1.1 T5 saved by it even says tie_word_embeddings=true), and the
    stored head is the one the model was trained with."""
    head = state.get(head_key)
    if head is None or not config.tie_word_embeddings:
        return
    for key in embedding_keys:
        embedding = state.get(key)
        if embedding is not None:
            if head.shape != embedding.shape or not torch.equal(head, embedding):
                config.tie_word_embeddings = False
            return


def as_encoder_hidden(encoder_outputs: Any) -> torch.Tensor:
    """The encoder's last hidden state from an output object, a tuple or a tensor (what callers pass)."""
    if isinstance(encoder_outputs, torch.Tensor):
        return encoder_outputs
    if hasattr(encoder_outputs, "last_hidden_state"):
        return encoder_outputs.last_hidden_state
    return encoder_outputs[0]


def check_forward_kwargs(model: Any, kwargs: dict[str, Any]) -> Any:
    """Drops what transformers' callers pass that changes nothing here, raises on the rest; returns a cache
    passed under transformers 5's name ``cache``."""
    for inert in ("cache_position", "head_mask", "decoder_head_mask", "cross_attn_head_mask"):
        kwargs.pop(inert, None)
    if kwargs.pop("output_attentions", False):
        raise ValueError(
            f"{type(model).__name__} does not return attention weights (output_attentions=True)."
        )
    cache = kwargs.pop("cache", None)
    if kwargs:
        raise TypeError(f"{type(model).__name__}.forward got unexpected arguments {sorted(kwargs)}.")
    return cache


class Seq2SeqGenerationMixin:
    """``generate`` and ``generation_config`` for encoder-decoder LMs. The generation code lives one layer up
    (cove.generation.encoder_decoder) and is imported when called, as for the decoder-only models; loading
    reads generation_config.json through cove.checkpoint, below the models."""

    generation_config: Any = None
    # whether generation_config.json set max_length (else transformers' default applies: 20 new tokens)
    max_length_from_file: bool = False

    @classmethod
    def _load(cls, snapshot: Any, hub: Any, options: Any, overrides: dict[str, Any]) -> Any:
        """The model plus the generation config of the same snapshot."""
        import dataclasses
        import json

        from cove.checkpoint.generation_config import GENERATION_CONFIG_NAME, GenerationConfig

        folder = snapshot.folder(hub.subfolder)
        given = options.generation_config
        if given is not None and not isinstance(given, GenerationConfig):
            raise ConfigError(f"generation_config= takes a GenerationConfig, got a {type(given).__name__}.")
        options = dataclasses.replace(options, generation_config=None)
        model = super()._load(snapshot, hub, options, overrides)  # type: ignore[misc]
        path = folder / GENERATION_CONFIG_NAME
        if given is not None:
            model.generation_config = given
        elif path.is_file():
            model.generation_config = GenerationConfig.from_pretrained(folder)
            try:
                model.max_length_from_file = "max_length" in json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                model.max_length_from_file = False
        else:
            model.generation_config = seq2seq_generation_config(model.config)
        return model

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        # the models' second upward import (tests/test_layers.py lists it): the encoder-decoder loop
        from cove.generation.encoder_decoder import generate

        if self.generation_config is None:
            self.generation_config = seq2seq_generation_config(self.config)  # type: ignore[attr-defined]
        return generate(self, *args, **kwargs)


def seq2seq_generation_config(model_config: Any) -> Any:
    """transformers' GenerationConfig.from_model_config for an encoder-decoder: the special ids, the decoder
    start and the forced eos its config declares."""
    from cove.checkpoint.generation_config import GenerationConfig

    config = GenerationConfig.from_model_config(model_config)
    config.decoder_start_token_id = getattr(model_config, "decoder_start_token_id", None)
    if "forced_eos_token_id" in type(model_config).field_names():
        config.forced_eos_token_id = model_config.forced_eos_token_id
    return config
