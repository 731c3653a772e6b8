"""BART: a post-norm encoder-decoder with learned positions (offset by 2), optionally sqrt(d_model)-scaled
embeddings, a layer norm on the embeddings and a ``final_logits_bias`` added to the tied lm_head's logits.

The layers here are also Marian's (models/marian.py), which differs only in its positions and embeddings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cove.checkpoint.config import PretrainedConfig
from cove.checkpoint.weight_map import WeightMap
from cove.errors import ConfigError
from cove.models.causal import layer_threads
from cove.models.kv_cache import KVCache
from cove.models.modeling import ACTIVATIONS, FusedLinears, PreTrainedModel, run_linear
from cove.models.outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput
from cove.models.seq2seq import (
    EncoderDecoderCache,
    Seq2SeqGenerationMixin,
    as_encoder_hidden,
    check_forward_kwargs,
    cross_attention,
    decoder_keep_mask,
    encoder_keep_mask,
    keep_stored_head,
    run_decoder,
    seq2seq_lm_loss,
    shift_tokens_right,
)


@dataclass
class BartConfig(PretrainedConfig):
    model_type = "bart"
    attribute_map = {"hidden_size": "d_model", "num_attention_heads": "encoder_attention_heads"}

    vocab_size: int = 50265
    max_position_embeddings: int = 1024
    encoder_layers: int = 12
    encoder_ffn_dim: int = 4096
    encoder_attention_heads: int = 16
    decoder_layers: int = 12
    decoder_ffn_dim: int = 4096
    decoder_attention_heads: int = 16
    encoder_layerdrop: float = 0.0
    decoder_layerdrop: float = 0.0
    activation_function: str = "gelu"
    d_model: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    init_std: float = 0.02
    classifier_dropout: float = 0.0
    scale_embedding: bool = False
    use_cache: bool = True
    is_encoder_decoder: bool = True
    is_decoder: bool = False
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 2
    forced_eos_token_id: int | list[int] | None = 2

    def validate(self) -> None:
        if self.activation_function not in ACTIVATIONS:
            raise ConfigError(
                f"activation_function={self.activation_function!r} is not supported; use one of "
                f"{sorted(ACTIVATIONS)}."
            )
        for side in ("encoder", "decoder"):
            heads = getattr(self, f"{side}_attention_heads")
            if self.d_model % heads:
                raise ConfigError(
                    f"d_model={self.d_model} is not a multiple of {side}_attention_heads={heads}."
                )
        if self.is_decoder or not self.is_encoder_decoder:
            raise ConfigError(
                f"is_decoder={self.is_decoder}, is_encoder_decoder={self.is_encoder_decoder}: Cove implements "
                f"{self.model_type} only as the full encoder-decoder (the decoder-only CausalLM is not supported)."
            )
        for key in ("normalize_before", "add_final_layer_norm", "static_position_embeddings"):
            if self.extra.get(key) and not (self.pre_norm and key != "static_position_embeddings"):
                raise ConfigError(
                    f"{key}={self.extra[key]!r} (an mBART/FSMT-style variant) is not supported by Cove's "
                    f"{self.model_type}; its layers are {'pre' if self.pre_norm else 'post'}-norm with learned positions."
                )

    @property
    def num_hidden_layers(self) -> int:
        return self.encoder_layers

    # BART and Marian normalise after each residual; mBART (models/mbart.py) before, plus a final norm
    pre_norm: ClassVar[bool] = False


class BartAttention(nn.Module):
    def __init__(self, d_model: int, heads: int, dropout: float, layer: int, cross: bool = False):
        super().__init__()
        self.layer, self.heads, self.head_dim = layer, heads, d_model // heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout
        # one matmul at inference: q/k/v of self-attention read the same input, a cross-attention's k/v the
        # encoder's output (its queries read the decoder's)
        self.kv = FusedLinears(self.k_proj, self.v_proj) if cross else None
        self.qkv = None if cross else FusedLinears(self.q_proj, self.k_proj, self.v_proj)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)  # (batch, heads, seq, head_dim)

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.kv is not None
        k, v = self.kv(x)
        return self._heads(k), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        *,
        cache: KVCache | None = None,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Self-attention over ``x`` (writing to ``cache``), or cross-attention over the given ``kv``.
        ``mask`` is boolean (True = attend), broadcastable to (batch, heads, seq, keys)."""
        b, s, h = x.shape
        dropout = self.dropout if self.training else 0.0
        if kv is None:
            assert self.qkv is not None
            q, k, v = (self._heads(t) for t in self.qkv(x))
            if cache is not None:
                k, v = cache.update(self.layer, k, v)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        else:
            out = cross_attention(self._heads(run_linear(self.q_proj, x)), *kv, mask, dropout)
        return run_linear(self.out_proj, out.transpose(1, 2).reshape(b, s, h))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, config: BartConfig):
        super().__init__()
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.act: Any = ACTIVATIONS[config.activation_function]
        self.activation_dropout = config.activation_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(self.act(run_linear(self.fc1, x)), p=self.activation_dropout, training=self.training)
        return run_linear(self.fc2, x)


class BartEncoderLayer(nn.Module):
    """Post-norm: x = norm(x + attn(x)); x = norm(x + ff(x)). Pre-norm (mBART): x = x + attn(norm(x)); ..."""

    def __init__(self, config: BartConfig, layer: int):
        super().__init__()
        d = config.d_model
        self.self_attn = BartAttention(d, config.encoder_attention_heads, config.attention_dropout, layer)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.ff = FeedForward(d, config.encoder_ffn_dim, config)
        self.final_layer_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        self.pre_norm = config.pre_norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), mask))
            x = x + self.dropout(self.ff(self.final_layer_norm(x)))
        else:
            x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, mask)))
            x = self.final_layer_norm(x + self.dropout(self.ff(x)))
        if x.dtype == torch.float16 and not bool(torch.isfinite(x).all()):  # as transformers
            limit = torch.finfo(x.dtype).max - 1000
            x = x.clamp(-limit, limit)
        return x


class BartDecoderLayer(nn.Module):
    """Causal self-attention, cross-attention over the encoder output, feed-forward; post- or pre-norm."""

    def __init__(self, config: BartConfig, layer: int):
        super().__init__()
        d, heads = config.d_model, config.decoder_attention_heads
        self.layer = layer
        self.self_attn = BartAttention(d, heads, config.attention_dropout, layer)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = BartAttention(d, heads, config.attention_dropout, layer, cross=True)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.ff = FeedForward(d, config.decoder_ffn_dim, config)
        self.final_layer_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        self.pre_norm = config.pre_norm

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: EncoderDecoderCache | None,
        encoder_hidden: torch.Tensor,
        encoder_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        self_cache = cache.self_attention if cache is not None else None
        if cache is not None:
            kv = cache.cross_kv(self.layer, self.encoder_attn.project_kv, encoder_hidden)
        else:
            kv = self.encoder_attn.project_kv(encoder_hidden)
        if self.pre_norm:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), mask, cache=self_cache))
            x = x + self.dropout(self.encoder_attn(self.encoder_attn_layer_norm(x), encoder_mask, kv=kv))
            return x + self.dropout(self.ff(self.final_layer_norm(x)))
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, mask, cache=self_cache)))
        x = self.encoder_attn_layer_norm(x + self.dropout(self.encoder_attn(x, encoder_mask, kv=kv)))
        return self.final_layer_norm(x + self.dropout(self.ff(x)))


class LearnedPositions(nn.Embedding):
    """BART's learned positions: row i + 2 holds position i (fairseq kept two rows for padding)."""

    offset = 2

    def __init__(self, max_positions: int, dim: int):
        super().__init__(max_positions + self.offset, dim)
        self.max_positions = max_positions

    def positions(self, start: int, seq: int, device: torch.device | None = None) -> torch.Tensor:
        if start + seq > self.max_positions:
            raise ConfigError(
                f"{start + seq} positions exceed max_position_embeddings={self.max_positions}: truncate the "
                "input (truncation=True, max_length=...) or generate fewer tokens."
            )
        ids = torch.arange(start + self.offset, start + seq + self.offset, device=self.weight.device)
        return super().forward(ids)[None]  # (1, seq, dim)


def _layerdrop(module: nn.Module, p: float) -> bool:
    """Skip this layer in this training step (LayerDrop)?"""
    return module.training and p > 0.0 and bool(torch.rand([]) < p)


class BartEncoder(nn.Module):
    """Positions (+ an optional embedding norm) then the layers, over already embedded tokens."""

    def __init__(self, config: BartConfig, positions: nn.Module, layernorm_embedding: bool):
        super().__init__()
        self.embed_positions: Any = positions
        self.layernorm_embedding = nn.LayerNorm(config.d_model) if layernorm_embedding else None
        self.layers = nn.ModuleList(BartEncoderLayer(config, i) for i in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model) if config.pre_norm else None
        self.dropout = nn.Dropout(config.dropout)
        self.layerdrop = config.encoder_layerdrop

    def forward(
        self, x: torch.Tensor, attention_mask: torch.Tensor | None, want_hidden: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        x = x + self.embed_positions.positions(0, x.shape[1], x.device).to(x.dtype)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = self.dropout(x)
        mask = encoder_keep_mask(attention_mask)
        hidden = [x] if want_hidden else None
        for layer in self.layers:
            if not _layerdrop(self, self.layerdrop):
                x = layer(x, mask)
            if hidden is not None:
                hidden.append(x)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
            if hidden is not None:
                hidden[-1] = x
        return x, hidden


class BartDecoder(nn.Module):
    def __init__(self, config: BartConfig, positions: nn.Module, layernorm_embedding: bool):
        super().__init__()
        self.embed_positions: Any = positions
        self.layernorm_embedding = nn.LayerNorm(config.d_model) if layernorm_embedding else None
        self.layers = nn.ModuleList(BartDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model) if config.pre_norm else None
        self.dropout = nn.Dropout(config.dropout)
        self.layerdrop = config.decoder_layerdrop

    def forward(
        self,
        y: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *,
        encoder_hidden: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: EncoderDecoderCache | None,
        start: int,
        want_hidden: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        s = y.shape[1]
        y = y + self.embed_positions.positions(start, s, y.device).to(y.dtype)
        if self.layernorm_embedding is not None:
            y = self.layernorm_embedding(y)
        y = self.dropout(y)
        mask = decoder_keep_mask(attention_mask, start, s, y.device)
        cross_mask = encoder_keep_mask(encoder_attention_mask)
        hidden = [y] if want_hidden else None
        with layer_threads():  # one thread when generate asks, for its small steps
            for layer in self.layers:
                if not _layerdrop(self, self.layerdrop):
                    y = layer(y, mask, cache, encoder_hidden, cross_mask)
                if hidden is not None:
                    hidden.append(y)
            if self.layer_norm is not None:
                y = self.layer_norm(y)
                if hidden is not None:
                    hidden[-1] = y
        return y, hidden


def _stack_rules(side: str) -> dict[str, str]:
    return {
        f"{side}.embed_positions": f"{side}.embed_positions",
        f"{side}.layernorm_embedding": f"{side}.layernorm_embedding",
        f"{side}.layers.{{}}.self_attn": f"{side}.layers.{{}}.self_attn",
        f"{side}.layers.{{}}.self_attn_layer_norm": f"{side}.layers.{{}}.self_attn_layer_norm",
        f"{side}.layers.{{}}.encoder_attn": f"{side}.layers.{{}}.encoder_attn",
        f"{side}.layers.{{}}.encoder_attn_layer_norm": f"{side}.layers.{{}}.encoder_attn_layer_norm",
        f"{side}.layers.{{}}.fc1": f"{side}.layers.{{}}.ff.fc1",
        f"{side}.layers.{{}}.fc2": f"{side}.layers.{{}}.ff.fc2",
        f"{side}.layers.{{}}.final_layer_norm": f"{side}.layers.{{}}.final_layer_norm",
    }


BART_WEIGHT_MAP = {"shared": "shared", **_stack_rules("encoder"), **_stack_rules("decoder")}
# fairseq's version counters
_VERSION_KEYS = (r"(^|\.)(encoder|decoder)\.version$",)


def _tied_copies(prefix: str, target: str) -> dict[str, str]:
    """Copies of the token embedding older checkpoints store under the stacks' names -> the canonical key."""
    out = {}
    for p in ("", f"{prefix}."):
        for side in ("encoder", "decoder"):
            out[f"{p}{side}.embed_tokens.weight"] = f"{p}{target}.weight"
    return out


class EncoderDecoderModel(PreTrainedModel):
    """The encoder-then-decoder pass BART- and Marian-style base and LM models share. Subclasses build
    ``encoder``/``decoder`` and say how token ids become embeddings."""

    base_model_prefix = "model"
    encoder: BartEncoder
    decoder: BartDecoder
    # hooks the families fill
    embed_encoder_inputs: Any
    embed_decoder_inputs: Any

    def init_module(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and module.weight.requires_grad:
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def _want_hidden(self, output_hidden_states: bool | None) -> bool:
        return bool(
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )

    def encode(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = self.embed_encoder_inputs(input_ids, inputs_embeds)  # (batch, src, d_model)
        x, hidden = self.encoder(x, attention_mask, self._want_hidden(output_hidden_states))
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden) if hidden else None)

    def _run(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_attention_mask: torch.Tensor | None,
        encoder_outputs: Any,
        past_key_values: EncoderDecoderCache | None,
        inputs_embeds: torch.Tensor | None,
        decoder_inputs_embeds: torch.Tensor | None,
        use_cache: bool | None,
        output_hidden_states: bool | None,
    ) -> Seq2SeqModelOutput:
        want_hidden = self._want_hidden(output_hidden_states)
        if encoder_outputs is None:
            encoder_outputs = self.encode(input_ids, attention_mask, inputs_embeds, want_hidden)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(last_hidden_state=as_encoder_hidden(encoder_outputs))
        if (decoder_input_ids is None) == (decoder_inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids or decoder_inputs_embeds (or labels).")
        y = self.embed_decoder_inputs(decoder_input_ids, decoder_inputs_embeds)  # (batch, target, d_model)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return run_decoder(
            self.decoder,
            y,
            decoder_attention_mask,
            encoder_outputs,
            attention_mask,
            past_key_values=past_key_values,
            use_cache=bool(use_cache) and not self.training,
            num_layers=len(self.decoder.layers),
            want_hidden=want_hidden,
        )

    def _shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return self._shift_right(labels)


class BartPreTrainedModel(EncoderDecoderModel):
    config_class = BartConfig

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(BART_WEIGHT_MAP)

    def _build(self, config: BartConfig) -> None:
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.encoder = BartEncoder(
            config, LearnedPositions(config.max_position_embeddings, config.d_model), layernorm_embedding=True
        )
        self.decoder = BartDecoder(
            config, LearnedPositions(config.max_position_embeddings, config.d_model), layernorm_embedding=True
        )

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    # BART scales token embeddings inside its embedding layer: inputs_embeds given by the caller are not scaled
    def embed_encoder_inputs(self, ids: torch.Tensor | None, embeds: torch.Tensor | None) -> torch.Tensor:
        return self.shared(ids) * self.embed_scale if embeds is None else embeds

    embed_decoder_inputs = embed_encoder_inputs


class BartModel(BartPreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(BART_WEIGHT_MAP)
    ignorable = (r"^lm_head\.", r"^final_logits_bias$", *_VERSION_KEYS)
    aliases = _tied_copies("model", "shared")

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self._build(config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Any:
        cache = check_forward_kwargs(self, kwargs)
        past_key_values = past_key_values if past_key_values is not None else cache
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "Pass decoder_input_ids or decoder_inputs_embeds, or input_ids to shift right for denoising."
                )
            decoder_input_ids = self._shift_right(input_ids)  # BART's denoising default
        out = self._run(
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs,
            past_key_values,
            inputs_embeds,
            decoder_inputs_embeds,
            use_cache,
            output_hidden_states,
        )
        return out if return_dict else out.to_tuple()


def add_logits_bias(logits: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """logits + final_logits_bias. Without autograd in place, and not at all when the bias is all zeros (as in
    most BART checkpoints): adding 0 changes no value, and a beam step's logits are 32 x vocab."""
    if torch.is_grad_enabled():
        return logits + bias.to(logits.dtype)
    if bool(bias.any()):
        logits.add_(bias.to(logits.dtype))
    return logits


class ConditionalGenerationHead:
    """The LM head forward of BART-style models: the tied lm_head plus final_logits_bias, the loss on labels
    (decoder inputs shifted right from them when not given)."""

    model: EncoderDecoderModel
    lm_head: nn.Linear
    final_logits_bias: torch.Tensor
    config: Any
    base_class: ClassVar[type[EncoderDecoderModel]]

    def decoder_layer_count(self) -> int:
        return len(self.model.decoder.layers)

    def encode(self, *args: Any, **kwargs: Any) -> BaseModelOutput:
        return self.model.encode(*args, **kwargs)

    @classmethod
    def _with_logits_bias(cls, state: dict[str, torch.Tensor], vocab: int) -> dict[str, torch.Tensor]:
        """transformers treats a missing final_logits_bias as zeros (a base checkpoint under the LM head)."""
        if "final_logits_bias" not in state:
            state = {**state, "final_logits_bias": torch.zeros(1, vocab)}
        return state

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: Any = None,
        past_key_values: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> Any:
        cache = check_forward_kwargs(self, kwargs)
        past_key_values = past_key_values if past_key_values is not None else cache
        if labels is not None:
            use_cache = False  # as transformers: a training-style pass keeps no cache
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.model._shift_right(labels)
        out = self.model._run(
            input_ids,
            attention_mask,
            decoder_input_ids,
            decoder_attention_mask,
            encoder_outputs,
            past_key_values,
            inputs_embeds,
            decoder_inputs_embeds,
            use_cache,
            output_hidden_states,
        )
        y = out.last_hidden_state
        if logits_to_keep:
            y = y[:, -logits_to_keep:]
        logits = add_logits_bias(
            run_linear(self.lm_head, y), self.final_logits_bias
        )  # (batch, target, vocab)
        loss = seq2seq_lm_loss(logits, labels) if labels is not None else None
        result = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=out.past_key_values,
            decoder_hidden_states=out.decoder_hidden_states,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            encoder_hidden_states=out.encoder_hidden_states,
        )
        return result if return_dict else result.to_tuple()


class BartForConditionalGeneration(Seq2SeqGenerationMixin, ConditionalGenerationHead, BartPreTrainedModel):
    weight_map = WeightMap(BART_WEIGHT_MAP).prefixed("model") | WeightMap(
        {"lm_head": "lm_head", "final_logits_bias": "final_logits_bias"}
    )
    ignorable = _VERSION_KEYS
    aliases = _tied_copies("model", "shared")
    tied = {"lm_head.weight": "model.shared.weight"}
    new_modules = ("lm_head",)  # an untied head on top of a BartModel checkpoint starts fresh
    base_class: ClassVar[type[EncoderDecoderModel]] = BartModel

    def __init__(self, config: BartConfig):
        super().__init__(config)
        self.model = self.base_class(config)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @classmethod
    def _from_state_dict(cls, config: PretrainedConfig, state: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        state = cls._with_logits_bias(state, config.vocab_size)  # type: ignore[attr-defined]
        keep_stored_head(
            config, state, "lm_head.weight", ("model.shared.weight", "model.decoder.embed_tokens.weight")
        )
        return super()._from_state_dict(config, state, **kwargs)
