"""``generate`` for encoder-decoder models (T5, BART, Marian): the encoder runs once, then the decoder is
stepped by the same greedy / sampling / beam-search loops the decoder-only models use (cove.generation.utils),
over a preallocated self-attention cache and cross-attention keys/values projected once.

Decisions follow transformers 5's generate for encoder-decoders: the decoder starts from
``decoder_start_token_id``, ``max_length``/``min_length`` count decoder tokens including that start, and
without any length setting 20 new tokens are generated; outputs are token-identical to it.
"""

from __future__ import annotations

from typing import Any

import torch

from cove.errors import GenerationError
from cove.generation.config import GenerationConfig
from cove.generation.logits_process import build_processors
from cove.generation.utils import (
    StopStrings,
    _prepare_config,
    prompt_attention_mask,
    rows_per_input,
    run_search,
    small_step_limit,
    under_inference_mode,
)
from cove.models.kv_cache import KVCache
from cove.models.seq2seq import EncoderDecoderCache

_DEFAULT_MAX_LENGTH = GenerationConfig().max_length  # 20: the value transformers treats as "unset"


class _DecoderView:
    """The encoder-decoder model seen as a decoder-only LM by the shared generation loops.

    The loops hand it a ``KVCache`` (which beam search reorders); it becomes the self-attention half of an
    ``EncoderDecoderCache`` whose cross-attention keys/values are projected on the first step, one row per
    input, shared by its beams. Those are never reordered: beam search only moves hypotheses between the beams
    of one input.
    """

    def __init__(self, model: Any, encoder_hidden: torch.Tensor, encoder_mask: torch.Tensor | None):
        self.model = model
        self.encoder_hidden = encoder_hidden
        self.encoder_mask = encoder_mask
        self.config = _LayerCount(model.decoder_layer_count())
        self.cache: EncoderDecoderCache | None = None

    def __call__(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        past_key_values: KVCache,
        logits_to_keep: int,
    ) -> Any:
        if self.cache is None or self.cache.self_attention is not past_key_values:
            self.cache = EncoderDecoderCache(past_key_values.num_layers, self_attention=past_key_values)
        return self.model(
            encoder_outputs=(self.encoder_hidden,),
            attention_mask=self.encoder_mask,
            decoder_input_ids=input_ids,
            decoder_attention_mask=attention_mask,
            past_key_values=self.cache,
            use_cache=True,
            logits_to_keep=logits_to_keep,
        )


class _LayerCount:
    def __init__(self, n: int):
        self.num_hidden_layers = n


def generate(model: Any, *args: Any, **kwargs: Any) -> Any:
    return under_inference_mode(_generate, model, *args, **kwargs)


def _generate(
    model: Any,
    input_ids: Any = None,
    attention_mask: Any = None,
    generation_config: GenerationConfig | None = None,
    *,
    decoder_input_ids: Any = None,
    encoder_outputs: Any = None,
    streamer: Any = None,
    tokenizer: Any = None,
    seed: int | None = None,
    small_step_rows: int | None = None,
    **kwargs: Any,
) -> Any:
    small_rows = small_step_limit(small_step_rows)
    kwargs.pop("use_cache", None)  # the cache is always used
    if "inputs" in kwargs:  # transformers' name for the encoder input
        if input_ids is not None:
            raise GenerationError("Pass the input once: input_ids or inputs, not both.")
        input_ids = kwargs.pop("inputs")
    if kwargs.pop("decoder_attention_mask", None) is not None:
        raise GenerationError(
            "decoder_attention_mask is not supported by Cove's generate: pass an unpadded decoder prompt."
        )
    kwargs.pop("token_type_ids", None)  # encoders here take none; tokenizers may still return zeros
    explicit_length = "max_length" in kwargs or "max_new_tokens" in kwargs
    config = _prepare_config(model, generation_config, kwargs)
    device = model.device

    # the encoder, once
    if encoder_outputs is None:
        if input_ids is None:
            raise GenerationError(
                "An encoder-decoder model needs input_ids (the text to encode) to generate from."
            )
        input_ids = torch.as_tensor(input_ids, dtype=torch.long)
        if input_ids.ndim == 1:
            input_ids = input_ids[None]
        if input_ids.ndim != 2 or input_ids.shape[1] == 0:
            raise GenerationError(
                f"input_ids must be a non-empty (batch, seq), got shape {tuple(input_ids.shape)}."
            )
        input_ids = input_ids.to(device)
        attention_mask = prompt_attention_mask(input_ids, attention_mask, config)
        encoder_hidden = model.encode(input_ids, attention_mask).last_hidden_state
    else:
        encoder_hidden = getattr(encoder_outputs, "last_hidden_state", None)
        if encoder_hidden is None:
            encoder_hidden = encoder_outputs[0]
        if attention_mask is not None:
            attention_mask = torch.as_tensor(attention_mask).to(device=device, dtype=torch.long)
    batch = encoder_hidden.shape[0]

    # the decoder's prompt: the start token (prepended to a given decoder prompt, as transformers does)
    start = config.decoder_start_token_id
    if start is None:
        start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        start = config.bos_token_id
    if start is None:
        raise GenerationError(
            "Neither decoder_start_token_id nor bos_token_id is set: generate does not know the decoder's first "
            "token. Pass decoder_start_token_id=... (T5 and Marian use the pad id, BART the eos id)."
        )
    starts = torch.full((batch, 1), int(start), dtype=torch.long, device=device)
    if decoder_input_ids is None:
        decoder_input_ids = starts
    else:
        decoder_input_ids = torch.as_tensor(decoder_input_ids, dtype=torch.long).to(device)
        if decoder_input_ids.ndim == 1:
            decoder_input_ids = decoder_input_ids[None]
        if bool((decoder_input_ids[:, 0] != start).all()):
            decoder_input_ids = torch.cat([starts, decoder_input_ids], dim=-1)
    prompt_len = decoder_input_ids.shape[1]

    window = getattr(
        model.config, "max_position_embeddings", None
    )  # learned/sinusoidal positions; T5 has none
    if config.max_new_tokens is not None:
        max_length = prompt_len + config.max_new_tokens
    elif not explicit_length and not model.max_length_from_file and config.max_length == _DEFAULT_MAX_LENGTH:
        max_length = _DEFAULT_MAX_LENGTH + prompt_len  # transformers' default: 20 new tokens
        if window is not None:
            max_length = min(max_length, window)
    else:
        max_length = config.max_length
    if max_length <= prompt_len:
        raise GenerationError(
            f"max_length={max_length} leaves no room after the {prompt_len}-token decoder prompt: raise "
            "max_length or set max_new_tokens."
        )
    if window is not None and max_length > window:
        raise GenerationError(
            f"max_length={max_length} exceeds the decoder's {window} positions (max_position_embeddings): "
            f"lower max_length or max_new_tokens."
        )
    config = config.update(max_length=max_length, max_new_tokens=None)
    stop = StopStrings(config.stop_strings, tokenizer) if config.stop_strings is not None else None
    generator = torch.Generator(device=device).manual_seed(int(seed)) if seed is not None else None

    # each input's beams (or sampled sequences) share its one encoder row: the decoder's cross-attention
    # projects, keeps and reads it once per input (cove.models.seq2seq.cross_attention), not once per beam
    expand = rows_per_input(config, streamer)
    if expand > 1:
        decoder_input_ids = decoder_input_ids.repeat_interleave(expand, dim=0)
    processors = build_processors(config, prompt_len)
    view = _DecoderView(model, encoder_hidden, attention_mask)
    return run_search(
        view, decoder_input_ids, None, config, processors, max_length, stop, generator, streamer, small_rows
    )
