"""T5 (and T5 v1.1 / FLAN-T5): an encoder-decoder with relative position buckets, RMS-style norms, no biases.

v1.0 uses a relu feed-forward and ties the lm_head to the shared embedding, scaling the decoder output by
d_model**-0.5 before it; v1.1 / FLAN-T5 use a gated-gelu feed-forward and an untied, unscaled lm_head.
The relative position bias is learned by each stack's first layer and shared by all its layers.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

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
    additive,
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
from cove.quant import kernels


@dataclass
class T5Config(PretrainedConfig):
    model_type = "t5"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
        "head_dim": "d_kv",
    }

    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    initializer_factor: float = 1.0
    feed_forward_proj: str = "relu"
    # derived from feed_forward_proj when config.json does not carry them (transformers lets them override)
    dense_act_fn: str | None = None
    is_gated_act: bool | None = None
    # transformers 5 writes this; older configs say it through tie_word_embeddings (v1.1: false, no scaling)
    scale_decoder_outputs: bool | None = None
    is_encoder_decoder: bool = True
    is_decoder: bool = False
    use_cache: bool = True
    classifier_dropout: float = 0.0
    pad_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 1
    decoder_start_token_id: int | None = None

    def __post_init__(self) -> None:
        parts = self.feed_forward_proj.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ConfigError(
                f"feed_forward_proj={self.feed_forward_proj!r} is not supported; use '{{act}}' or "
                "'gated-{act}', e.g. 'relu' or 'gated-gelu'."
            )
        if self.dense_act_fn is None:
            self.dense_act_fn = "gelu_new" if self.feed_forward_proj == "gated-gelu" else parts[-1]
        if self.is_gated_act is None:
            self.is_gated_act = parts[0] == "gated"
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        if self.scale_decoder_outputs is None:
            self.scale_decoder_outputs = self.tie_word_embeddings is not False
        super().__post_init__()

    def validate(self) -> None:
        if self.dense_act_fn not in ACTIVATIONS:
            raise ConfigError(
                f"dense_act_fn={self.dense_act_fn!r} (from feed_forward_proj={self.feed_forward_proj!r}) is not "
                f"supported; use one of {sorted(ACTIVATIONS)}."
            )
        if self.is_decoder:
            raise ConfigError(
                "is_decoder=True (a T5 stack used alone as a decoder) is not supported by Cove; "
                "load the full encoder-decoder."
            )
        if not self.is_encoder_decoder:
            raise ConfigError("is_encoder_decoder=False is not supported for T5 configs by Cove.")
        if self.relative_attention_num_buckets < 4:
            raise ConfigError(
                f"relative_attention_num_buckets={self.relative_attention_num_buckets} is too small; T5 needs >= 4."
            )


class T5LayerNorm(nn.Module):
    """RMS norm without bias or mean subtraction; the variance is accumulated in fp32."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = kernels.rms_norm(x, self.weight, self.eps)  # a no-grad float32 step's norm in one native op
        if fused is not None:
            return fused
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


class T5Attention(nn.Module):
    """Unscaled dot-product attention (T5 folds the scale into its init); the bias/mask comes in ``mask``."""

    def __init__(self, config: T5Config, layer: int, cross: bool = False):
        super().__init__()
        self.layer, self.heads, self.head_dim = layer, config.num_heads, config.d_kv
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        self.dropout = config.dropout_rate
        # one matmul at inference: q/k/v of self-attention read the same input, a cross-attention's k/v the
        # encoder's output (its queries read the decoder's)
        self.kv = FusedLinears(self.k, self.v) if cross else None
        self.qkv = None if cross else FusedLinears(self.q, self.k, self.v)

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
        """Self-attention over ``x`` (writing to ``cache``), or cross-attention over the given ``kv``."""
        b, s, _ = x.shape
        dropout = self.dropout if self.training else 0.0
        if kv is None:
            assert self.qkv is not None
            q, k, v = (self._heads(t) for t in self.qkv(x))
            if cache is not None:
                k, v = cache.update(self.layer, k, v)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=1.0)
        else:
            out = cross_attention(self._heads(run_linear(self.q, x)), *kv, mask, dropout, scale=1.0)
        return run_linear(self.o, out.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))


def _gelu_new_explicit(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class T5FeedForward(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.gated = bool(config.is_gated_act)
        if self.gated:
            self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
            self.wi_01 = FusedLinears(self.wi_0, self.wi_1)  # one matmul at inference
        else:
            self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        act = str(config.dense_act_fn)
        # transformers' gelu_new is the explicit tanh formula; in bf16 its roundings differ from F.gelu's
        # fused kernel enough to change tokens, so T5 (whose v1.1 runs it d_ff wide) computes it the same way
        self.act: Any = _gelu_new_explicit if act == "gelu_new" else ACTIVATIONS[act]
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            gate, up = self.wi_01(x)
            h = self.act(gate) * up
        else:
            h = self.act(run_linear(self.wi, x))
        h = self.dropout(h)
        if isinstance(self.wo, nn.Linear):  # float32 in a float16 model (see T5PreTrainedModel._load)
            h = h.to(self.wo.weight.dtype)
        return run_linear(self.wo, h)


class T5Block(nn.Module):
    """Pre-norm: self-attention, cross-attention (decoder only), feed-forward, each with a residual."""

    def __init__(self, config: T5Config, layer: int, is_decoder: bool):
        super().__init__()
        self.attn_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.attn = T5Attention(config, layer)
        if is_decoder:
            self.cross_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
            self.cross = T5Attention(config, layer, cross=True)
        self.ff_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.ff = T5FeedForward(config)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.layer = layer

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        cache: EncoderDecoderCache | None = None,
        encoder_hidden: torch.Tensor | None = None,
        encoder_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        self_cache = cache.self_attention if cache is not None else None
        x = x + self.dropout(self.attn(self.attn_norm(x), mask, cache=self_cache))
        if encoder_hidden is not None:
            if cache is not None:
                kv = cache.cross_kv(self.layer, self.cross.project_kv, encoder_hidden)
            else:
                kv = self.cross.project_kv(encoder_hidden)
            x = x + self.dropout(self.cross(self.cross_norm(x), encoder_mask, kv=kv))
        x = x + self.dropout(self.ff(self.ff_norm(x)))
        if x.dtype == torch.float16:  # as transformers: keep fp16 activations finite
            limit = torch.finfo(x.dtype).max - (1000 if bool(torch.isinf(x).any()) else 0)
            x = x.clamp(-limit, limit)
        return x


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Mesh TensorFlow's buckets: exact for small distances, logarithmic up to max_distance, then one bucket."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = relative_position.abs()
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    large = max_exact + (
        torch.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(is_small, relative_position, large)


class T5Stack(nn.Module):
    """The encoder or the decoder: blocks over embedded tokens, the first layer's relative bias shared."""

    def __init__(self, config: T5Config, num_layers: int, is_decoder: bool):
        super().__init__()
        self.config, self.is_decoder = config, is_decoder
        self.relative_bias = nn.Embedding(config.relative_attention_num_buckets, config.num_heads)
        self.blocks = nn.ModuleList(T5Block(config, i, is_decoder) for i in range(num_layers))
        self.final_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def position_bias(self, query_len: int, key_len: int, start: int, device: torch.device) -> torch.Tensor:
        context = torch.arange(start, start + query_len, dtype=torch.long, device=device)[:, None]
        memory = torch.arange(key_len, dtype=torch.long, device=device)[None, :]
        buckets = relative_position_bucket(
            memory - context,  # (query, key)
            bidirectional=not self.is_decoder,
            num_buckets=self.config.relative_attention_num_buckets,
            max_distance=self.config.relative_attention_max_distance,
        )
        return self.relative_bias(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, heads, query, key)

    def forward(
        self,
        x: torch.Tensor,
        attention_mask: torch.Tensor | None,
        *,
        encoder_hidden: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        start: int = 0,
        want_hidden: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        s = x.shape[1]
        if self.is_decoder:
            keep = decoder_keep_mask(attention_mask, start, s, x.device)
        else:
            keep = encoder_keep_mask(attention_mask)
        bias = self.position_bias(s, start + s, start, x.device).to(x.dtype)
        mask = bias if keep is None else torch.where(keep, bias, torch.finfo(x.dtype).min)
        cross_mask = additive(encoder_keep_mask(encoder_attention_mask), x.dtype)
        x = self.dropout(x)
        hidden: list[torch.Tensor] | None = [x] if want_hidden else None
        # the decoder's layers go on one thread when generate asks, for its small steps
        with layer_threads() if self.is_decoder else nullcontext():
            for block in self.blocks:
                x = block(x, mask, cache, encoder_hidden, cross_mask)
                if hidden is not None:
                    hidden.append(x)
            x = self.dropout(self.final_norm(x))
        if hidden is not None:
            hidden[-1] = x  # as transformers: the last entry is after the final norm
        return x, hidden


def _stack_rules(side: str, decoder: bool) -> dict[str, str]:
    ff = 2 if decoder else 1
    rules = {
        # the relative bias lives in the first layer's self-attention in checkpoints, on the stack in Cove
        f"{side}.block.0.layer.0.SelfAttention.relative_attention_bias": f"{side}.relative_bias",
        f"{side}.block.{{}}.layer.0.SelfAttention": f"{side}.blocks.{{}}.attn",
        f"{side}.block.{{}}.layer.0.layer_norm": f"{side}.blocks.{{}}.attn_norm",
    }
    if decoder:
        rules[f"{side}.block.{{}}.layer.1.EncDecAttention"] = f"{side}.blocks.{{}}.cross"
        rules[f"{side}.block.{{}}.layer.1.layer_norm"] = f"{side}.blocks.{{}}.cross_norm"
    rules[f"{side}.block.{{}}.layer.{ff}.DenseReluDense"] = f"{side}.blocks.{{}}.ff"
    rules[f"{side}.block.{{}}.layer.{ff}.layer_norm"] = f"{side}.blocks.{{}}.ff_norm"
    rules[f"{side}.final_layer_norm"] = f"{side}.final_norm"
    return rules


T5_ENCODER_WEIGHT_MAP = {"shared": "shared", **_stack_rules("encoder", decoder=False)}
T5_WEIGHT_MAP = {**T5_ENCODER_WEIGHT_MAP, **_stack_rules("decoder", decoder=True)}
# copies of the shared embedding older checkpoints store under the stacks' names
_EMBEDDING_ALIASES = {
    "encoder.embed_tokens.weight": "shared.weight",
    "decoder.embed_tokens.weight": "shared.weight",
}
# a relative bias transformers once created (unused) in the first cross-attention
_UNUSED_CROSS_BIAS = r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\."


class T5PreTrainedModel(PreTrainedModel):
    config_class = T5Config
    aliases = _EMBEDDING_ALIASES
    shared: nn.Embedding
    encoder: T5Stack

    @classmethod
    def _from_state_dict(cls, config: PretrainedConfig, state: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        model = super()._from_state_dict(config, state, **kwargs)
        # the loaded feed-forward output weights, before any dtype cast (see _load); detached, since a cast
        # swaps the parameters' data in place
        model.__dict__["_loaded_wo"] = {
            name: module.wo.weight.detach()
            for name, module in model.named_modules()
            if isinstance(module, T5FeedForward)
        }
        return model

    @classmethod
    def _load(cls, snapshot: Any, hub: Any, options: Any, overrides: dict[str, Any]) -> Any:
        """As transformers (``_keep_in_fp32_modules = ["wo"]``): loaded in float16, the feed-forward output
        projections stay float32, where T5's activations would otherwise overflow."""
        model: Any = super()._load(snapshot, hub, options, overrides)
        loaded = model.__dict__.pop("_loaded_wo", {})
        if model.shared.weight.dtype == torch.float16:
            for name, weight in loaded.items():
                wo = model.get_submodule(name).wo
                wo.weight = nn.Parameter(weight.to(device=wo.weight.device, dtype=torch.float32))
        return model

    def init_module(self, module: nn.Module) -> None:
        """Mesh TensorFlow's init, as transformers': the query absorbs the 1/sqrt(d_kv) T5 never applies."""
        factor, d_model = self.config.initializer_factor, self.config.d_model
        if isinstance(module, T5Attention):
            inner = module.heads * module.head_dim
            nn.init.normal_(module.q.weight, std=factor * (d_model * module.head_dim) ** -0.5)
            nn.init.normal_(module.k.weight, std=factor * d_model**-0.5)
            nn.init.normal_(module.v.weight, std=factor * d_model**-0.5)
            nn.init.normal_(module.o.weight, std=factor * inner**-0.5)
        elif isinstance(module, T5FeedForward):
            for name in ("wi", "wi_0", "wi_1"):
                if hasattr(module, name):
                    nn.init.normal_(getattr(module, name).weight, std=factor * d_model**-0.5)
            nn.init.normal_(module.wo.weight, std=factor * module.wo.in_features**-0.5)
        elif isinstance(module, T5Stack):
            nn.init.normal_(module.relative_bias.weight, std=factor * d_model**-0.5)
        elif isinstance(module, T5LayerNorm):
            nn.init.constant_(module.weight, factor)
        elif module is getattr(self, "shared", None) or module is getattr(self, "lm_head", None):
            nn.init.normal_(module.weight, std=factor * 1.0)  # type: ignore[arg-type]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def _embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, what: str) -> Any:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(f"Pass exactly one of {what}input_ids or {what}inputs_embeds.")
        return self.shared(input_ids) if inputs_embeds is None else inputs_embeds  # (batch, seq, d_model)

    def _shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return self._shift_right(labels)

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
        x = self._embed(input_ids, inputs_embeds, "")
        x, hidden = self.encoder(x, attention_mask, want_hidden=self._want_hidden(output_hidden_states))
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden) if hidden else None)


class _T5EncoderDecoder(T5PreTrainedModel):
    """The modules and the encoder-then-decoder pass T5Model and T5ForConditionalGeneration share."""

    def __init__(self, config: T5Config):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, config.num_layers, is_decoder=False)
        self.decoder = T5Stack(config, int(config.num_decoder_layers or config.num_layers), is_decoder=True)

    def decoder_layer_count(self) -> int:
        return len(self.decoder.blocks)

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
        y = self._embed(decoder_input_ids, decoder_inputs_embeds, "decoder_")
        use_cache = self.config.use_cache if use_cache is None else use_cache
        return run_decoder(
            self.decoder,
            y,
            decoder_attention_mask,
            encoder_outputs,
            attention_mask,
            past_key_values=past_key_values,
            use_cache=bool(use_cache) and not self.training,
            num_layers=len(self.decoder.blocks),
            want_hidden=want_hidden,
        )


class T5Model(_T5EncoderDecoder):
    is_base_model = True
    weight_map = WeightMap(T5_WEIGHT_MAP)
    ignorable = (r"^lm_head\.", _UNUSED_CROSS_BIAS)

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


class T5ForConditionalGeneration(Seq2SeqGenerationMixin, _T5EncoderDecoder):
    weight_map = WeightMap({**T5_WEIGHT_MAP, "lm_head": "lm_head"})
    ignorable = (_UNUSED_CROSS_BIAS,)
    new_modules = ("lm_head",)  # an untied head on top of a T5Model checkpoint starts fresh
    tied = {"lm_head.weight": "shared.weight"}

    def __init__(self, config: T5Config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)

    @classmethod
    def _from_state_dict(cls, config: PretrainedConfig, state: dict[str, torch.Tensor], **kwargs: Any) -> Any:
        keep_stored_head(config, state, "lm_head.weight", ("shared.weight", "decoder.embed_tokens.weight"))
        return super()._from_state_dict(config, state, **kwargs)

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
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self._shift_right(labels)
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
        y = out.last_hidden_state
        if logits_to_keep:
            y = y[:, -logits_to_keep:]
        if self.config.scale_decoder_outputs:
            y = y * self.config.d_model**-0.5
        logits = run_linear(self.lm_head, y)  # (batch, target, vocab)
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


class T5EncoderModel(T5PreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(T5_ENCODER_WEIGHT_MAP)
    ignorable = (r"^decoder\.", r"^lm_head\.")

    def __init__(self, config: T5Config):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, config.num_layers, is_decoder=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Any:
        check_forward_kwargs(self, kwargs)
        out = self.encode(input_ids, attention_mask, inputs_embeds, output_hidden_states)
        return out if return_dict else out.to_tuple()


# -- mT5: T5 v1.1's architecture over a multilingual vocabulary ---------------------------------


@dataclass
class MT5Config(T5Config):
    model_type = "mt5"

    vocab_size: int = 250112
    d_ff: int = 1024
    num_layers: int = 8
    num_heads: int = 6
    feed_forward_proj: str = "gated-gelu"
    decoder_start_token_id: int | None = 0

    def __post_init__(self) -> None:
        # transformers 5 never scales mT5's lm_head input, whatever config.json says
        self.scale_decoder_outputs = False
        super().__post_init__()


class MT5Model(T5Model):
    config_class = MT5Config


class MT5ForConditionalGeneration(T5ForConditionalGeneration):
    config_class = MT5Config


class MT5EncoderModel(T5EncoderModel):
    config_class = MT5Config
