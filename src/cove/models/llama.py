"""Llama-style decoders: Llama, SmolLM2, Qwen2 (attention bias) and Mistral (without a sliding window).

RoPE with the scaling variants a config can name (default, linear, dynamic, llama3, yarn), grouped-query
attention, RMSNorm, SwiGLU, optionally tied embeddings.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from cove.checkpoint.config import PretrainedConfig
from cove.checkpoint.weight_map import WeightMap
from cove.errors import ConfigError, GenerationError
from cove.models.causal import (
    GenerationMixin,
    causal_lm_loss,
    causal_mask,
    default_positions,
    layer_threads,
    start_cache,
)
from cove.models.kv_cache import KVCache
from cove.models.modeling import ACTIVATIONS, FusedLinears, PreTrainedModel, get_activation, run_linear
from cove.models.outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from cove.quant import kernels
from cove.quant.apply import QuantFused
from cove.quant.modules import QuantLinear

ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")


@dataclass
class LlamaConfig(PretrainedConfig):
    model_type = "llama"

    vocab_size: int = 32000
    hidden_size: int = 4096
    intermediate_size: int = 11008
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    pretraining_tp: int = 1
    tie_word_embeddings: bool = False
    rope_theta: float | None = None
    rope_scaling: dict[str, Any] | None = None
    rope_parameters: dict[str, Any] | None = None
    attention_bias: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False

    # q/k/v carry a bias whatever attention_bias says (Qwen2)
    qkv_bias: ClassVar[bool] = False

    def validate(self) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}."
            )
        if self.head_dim is None:
            if self.hidden_size % self.num_attention_heads:
                raise ConfigError(
                    f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads="
                    f"{self.num_attention_heads}; set head_dim."
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"hidden_act={self.hidden_act!r} is not supported; use one of {sorted(ACTIVATIONS)}."
            )
        if self.pretraining_tp != 1:
            # only changes how the matmuls are split in the original code, never the maths
            self.pretraining_tp = 1
        rope = self.rope()
        if rope["rope_type"] not in ROPE_TYPES:
            raise ConfigError(
                f"rope type {rope['rope_type']!r} is not supported; Cove implements {list(ROPE_TYPES)}."
            )
        if rope.get("partial_rotary_factor", 1.0) != 1.0:
            raise ConfigError(
                f"partial_rotary_factor={rope['partial_rotary_factor']} is not supported for {self.model_type}."
            )
        if rope["rope_type"] in ("linear", "dynamic", "llama3") and rope.get("factor") is None:
            raise ConfigError(f"rope type {rope['rope_type']!r} needs a 'factor' in the rope parameters.")

    def rope(self) -> dict[str, Any]:
        """The RoPE parameters, whichever spelling the config uses (v5 rope_parameters or rope_theta +
        rope_scaling)."""
        params = dict(self.rope_parameters or self.rope_scaling or {})
        params["rope_type"] = params.get("rope_type", params.get("type", "default"))
        if params.get("rope_theta") is None:
            params["rope_theta"] = self.rope_theta if self.rope_theta is not None else 10000.0
        if params["rope_type"] in ("llama3", "yarn"):
            original = self.extra.get("original_max_position_embeddings")
            params.setdefault("original_max_position_embeddings", original or self.max_position_embeddings)
        return params


@dataclass
class Qwen2Config(LlamaConfig):
    model_type = "qwen2"
    qkv_bias = True

    vocab_size: int = 151936
    intermediate_size: int = 22016
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    use_sliding_window: bool = False
    sliding_window: int | None = None
    max_window_layers: int = 28
    layer_types: list[str] | None = None

    def validate(self) -> None:
        super().validate()
        if self.use_sliding_window:
            raise ConfigError(
                "use_sliding_window=True is not supported by Cove's Qwen2 (full attention only)."
            )


@dataclass
class MistralConfig(LlamaConfig):
    model_type = "mistral"

    vocab_size: int = 32000
    intermediate_size: int = 14336
    max_position_embeddings: int = 4096 * 32
    sliding_window: int | None = None


def rope_inv_freq(config: LlamaConfig, seq_len: int | None = None) -> tuple[torch.Tensor, float]:
    """Inverse frequencies (head_dim // 2,) and the cos/sin scale, computed as transformers does."""
    # on the CPU even while the model is built on the meta device: this buffer is computed, never loaded
    with torch.device("cpu"):
        return _rope_inv_freq(config, seq_len)


def _rope_inv_freq(config: LlamaConfig, seq_len: int | None) -> tuple[torch.Tensor, float]:
    params = config.rope()
    kind, base = params["rope_type"], float(params["rope_theta"])
    dim = config.head_dim
    assert dim is not None

    def inv(b: float) -> torch.Tensor:
        return 1.0 / (b ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))

    if kind == "default":
        return inv(base), 1.0
    factor = float(params["factor"]) if params.get("factor") is not None else None
    if kind in ("linear", "dynamic", "llama3"):
        assert factor is not None  # LlamaConfig.validate requires it
    if kind == "linear":
        return inv(base) / factor, 1.0  # type: ignore[operator]
    if kind == "dynamic":
        seq = max(seq_len or 0, config.max_position_embeddings)
        base = base * ((factor * seq / config.max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))  # type: ignore[operator]
        return inv(base), 1.0
    original = params["original_max_position_embeddings"]
    if kind == "llama3":
        low_ff, high_ff = params["low_freq_factor"], params["high_freq_factor"]
        inv_freq = inv(base)
        low_wavelen, high_wavelen = original / low_ff, original / high_ff
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)  # type: ignore[operator]
        smooth = (original / wavelen - low_ff) / (high_ff - low_ff)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    # yarn
    if factor is None:
        factor = config.max_position_embeddings / original
    attention_factor = params.get("attention_factor")
    mscale, mscale_all_dim = params.get("mscale"), params.get("mscale_all_dim")

    def get_mscale(scale: float, m: float = 1) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = get_mscale(factor)
    beta_fast, beta_slow = params.get("beta_fast") or 32, params.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if params.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2).to(dtype=torch.float) / dim)
    extrapolation = 1 - ramp
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, float(attention_factor)


class RotaryEmbedding(nn.Module):
    inv_freq: torch.Tensor

    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.config = config
        self.dynamic = config.rope()["rope_type"] == "dynamic"
        inv_freq, self.scale = rope_inv_freq(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.original_inv_freq = inv_freq
        self.cached_len = config.max_position_embeddings
        self._sign: torch.Tensor | None = None  # (-1 x half, +1 x half) for the signed sin

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (batch, seq) -> cos, signed sin (batch, seq, 1, head_dim) for ``apply_rope``."""
        if self.dynamic:
            self._dynamic_update(positions)
        freqs = positions[..., None].float() * self.inv_freq.float()  # (batch, seq, head_dim // 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        if self.scale != 1.0:
            cos, sin = cos * self.scale, sin * self.scale
        sign = self._sign
        if sign is None or sign.device != sin.device or sign.shape[0] != sin.shape[-1]:
            with torch.inference_mode(False):  # an ordinary tensor: the model may train after generating
                sign = torch.ones(sin.shape[-1], device=sin.device)
                sign[: sin.shape[-1] // 2] = -1.0
            self._sign = sign
        return cos.to(dtype)[:, :, None], (sin * sign).to(dtype)[:, :, None]

    def _dynamic_update(self, positions: torch.Tensor) -> None:
        # as transformers: grow the base past the trained length, go back to the original below it
        seq_len = int(positions.max()) + 1
        original = self.config.max_position_embeddings
        if seq_len > self.cached_len:
            inv_freq, _ = rope_inv_freq(self.config, seq_len)
            self.inv_freq = inv_freq.to(self.inv_freq.device)
            self.cached_len = seq_len
        if seq_len < original < self.cached_len:
            self.inv_freq = self.original_inv_freq.to(self.inv_freq.device)
            self.cached_len = original


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """x * cos + rotate_half(x) * sin, with rotate_half(x) = (-x2, x1) written as roll(x) * (-sin1, sin2):
    the same products and sums (so the same bits) in fewer ops."""
    return x * cos + x.roll(x.shape[-1] // 2, dims=-1) * signed_sin


class RMSNorm(nn.Module):
    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fused = kernels.rms_norm(x, self.weight, self.eps)  # a no-grad float32 step's norm in one native op
        if fused is not None:
            return fused
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class Attention(nn.Module):
    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.layer = layer
        assert config.num_key_value_heads is not None and config.head_dim is not None  # set by validate
        self.heads: int = config.num_attention_heads
        self.kv_heads: int = config.num_key_value_heads
        self.head_dim = config.head_dim
        qkv_bias = config.attention_bias or config.qkv_bias
        self.q = nn.Linear(config.hidden_size, self.heads * self.head_dim, bias=qkv_bias)
        self.k = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=qkv_bias)
        self.v = nn.Linear(config.hidden_size, self.kv_heads * self.head_dim, bias=qkv_bias)
        self.o = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=config.attention_bias)
        self.dropout = config.attention_dropout
        self.window = getattr(config, "sliding_window", None)
        self.qkv = FusedLinears(self.q, self.k, self.v)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        is_causal: bool,
        cache: KVCache | None,
    ) -> torch.Tensor:
        b, s, _ = x.shape
        h, kv = self.heads, self.kv_heads
        qkv = self.qkv.joined(x).view(b, s, h + 2 * kv, self.head_dim)  # (batch, seq, all heads, head_dim)
        qk = apply_rope(qkv[:, :, : h + kv], cos, sin)  # q and k heads rotated together
        # (batch, seq, heads, head_dim) -> (batch, heads, seq, head_dim)
        q, k, v = (
            qk[:, :, :h].transpose(1, 2),
            qk[:, :, h:].transpose(1, 2),
            qkv[:, :, h + kv :].transpose(1, 2),
        )
        if cache is not None:
            k, v = cache.update(self.layer, k, v)  # (batch, kv_heads, past + seq, head_dim)
        check_window(self.window, k.shape[2])
        gqa = kv != h
        if gqa and s == 1 and mask is not None and mask.shape[1] == 1:
            # one query a row under a mask shared by the heads: each kv head's query heads as a sequence,
            # (batch, kv_heads, group, head_dim), as transformers' SDPA attention packs them; SDPA's CPU kernel
            # rounds the two layouts differently in the last bit, which in bfloat16 changed greedy tokens
            q, gqa = q.reshape(b, kv, h // kv, self.head_dim), False
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
            enable_gqa=gqa,
        )
        if out.shape[1] != h:
            out = out.reshape(b, h, s, self.head_dim)
        return run_linear(self.o, out.transpose(1, 2).reshape(b, s, self.heads * self.head_dim))


def check_window(window: int | None, length: int) -> None:
    if window is not None and length > window:
        raise GenerationError(
            f"The sequence reached {length} tokens, past this model's sliding_window={window}: "
            "Cove implements full attention only, so keep prompt + new tokens within the window."
        )


class MLP(nn.Module):
    def __init__(self, config: LlamaConfig):
        super().__init__()
        self.gate = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.up = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act = get_activation(config.hidden_act)
        self.gate_up = FusedLinears(self.gate, self.up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x)
        return run_linear(self.down, self.act(gate) * up)


class DecoderLayer(nn.Module):
    def __init__(self, config: LlamaConfig, layer: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.attn = Attention(config, layer)
        self.mlp_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: Any, is_causal: bool, cache: Any
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, is_causal, cache)
        return x + self.mlp(self.mlp_norm(x))

    def decode_weights(self, dtype: torch.dtype = torch.float32) -> tuple[Any, ...] | None:
        """What the native decoding step (``cove_quant::decode_layer``) takes of this layer for inputs of
        ``dtype`` (float32 or bfloat16): the norm weights and each projection (fused q/k/v, o, fused gate/up,
        down) as (weight, bias, GGML type), a weight of ``dtype`` with type -1 or (float32) a QuantLinear's
        packed blocks; None when the layer must run in Python: hooks, projections of another kind (replaced,
        members of mixed formats), an activation other than SiLU, other dtypes."""
        attn, mlp = self.attn, self.mlp
        if mlp.act is not F.silu or any(
            m._forward_hooks or m._forward_pre_hooks for m in (self, attn, mlp, self.attn_norm, self.mlp_norm)
        ):
            return None
        norms = (self.attn_norm.weight, self.mlp_norm.weight)
        if any(w.dtype is not dtype or not w.is_contiguous() for w in norms):
            return None
        parts = [_projection(p, dtype) for p in (attn.qkv, attn.o, mlp.gate_up, mlp.down)]
        if any(p is None for p in parts):
            return None
        qkv, o, gate_up, down = cast(list[tuple[Any, ...]], parts)
        return (norms[0], *qkv, *o, norms[1], *gate_up, *down)


def _projection(
    proj: Any, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor | None, int] | None:
    """(weight, bias, -1) of an nn.Linear or FusedLinears over nn.Linear layers (of ``dtype``, which the
    small-M kernel reads), (blocks, bias, GGML type) of a QuantLinear or a QuantFused over one format (float32
    layers only); None for anything else, or a module carrying hooks."""

    def plain(module: nn.Module) -> bool:
        return not (module._forward_hooks or module._forward_pre_hooks or module.training)

    weight: torch.Tensor | None
    if type(proj) is QuantFused:
        proj = proj.fused if all(plain(m) for m in proj.members) else None
    if type(proj) is QuantLinear:
        if not plain(proj) or dtype is not torch.float32:
            return None
        return proj.packed, proj.bias, proj.format.ggml_type
    if type(proj) is FusedLinears:
        if not all(type(lin) is nn.Linear and plain(lin) for lin in proj.linears):
            return None
        fused = proj.fused()
        if fused is None:
            return None
        weight, bias = fused
    elif type(proj) is nn.Linear and plain(proj):
        weight, bias = proj.weight, proj.bias
    else:
        return None
    tensors = (weight, bias) if bias is not None else (weight,)
    if any(t.dtype is not dtype or not t.is_contiguous() for t in tensors):
        return None
    return weight, bias, -1


LLAMA_WEIGHT_MAP = {
    "embed_tokens": "embed",
    "layers.{}.self_attn.q_proj": "layers.{}.attn.q",
    "layers.{}.self_attn.k_proj": "layers.{}.attn.k",
    "layers.{}.self_attn.v_proj": "layers.{}.attn.v",
    "layers.{}.self_attn.o_proj": "layers.{}.attn.o",
    "layers.{}.mlp.gate_proj": "layers.{}.mlp.gate",
    "layers.{}.mlp.up_proj": "layers.{}.mlp.up",
    "layers.{}.mlp.down_proj": "layers.{}.mlp.down",
    "layers.{}.input_layernorm": "layers.{}.attn_norm",
    "layers.{}.post_attention_layernorm": "layers.{}.mlp_norm",
    "norm": "norm",
}
_BUFFERS = (r"rotary_emb\.inv_freq$", r"self_attn\.rotary_emb\.inv_freq$")


class LlamaPreTrainedModel(PreTrainedModel):
    config_class: ClassVar[type[PretrainedConfig]] = LlamaConfig
    base_model_prefix = "model"

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(LLAMA_WEIGHT_MAP)


class LlamaModel(LlamaPreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(LLAMA_WEIGHT_MAP)
    ignorable = (r"^lm_head\.", *_BUFFERS)

    def __init__(self, config: LlamaConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.layers = nn.ModuleList(DecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary = RotaryEmbedding(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        # inv_freq stays float32 whatever dtype the model is cast to (transformers keeps it so too)
        out = super()._apply(fn, recurse)
        inv = self.rotary.inv_freq
        if inv.dtype != torch.float32 and not inv.is_meta:
            self.rotary.inv_freq = self.rotary.original_inv_freq.to(inv.device)
        return out

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Any:
        kwargs.pop("cache_position", None)
        if kwargs:
            raise TypeError(f"{type(self).__name__}.forward got unexpected arguments {sorted(kwargs)}.")
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = self.embed(input_ids) if inputs_embeds is None else inputs_embeds  # (batch, seq, hidden)
        s = x.shape[1]
        use_cache = self.config.use_cache if use_cache is None else use_cache
        cache, start = start_cache(
            past_key_values, bool(use_cache) and not self.training, len(self.layers), s
        )
        if start + s > self.config.max_position_embeddings and not self.rotary.dynamic:
            raise GenerationError(
                f"{start + s} tokens exceed the model's context window of {self.config.max_position_embeddings}: "
                "shorten the prompt or lower max_new_tokens."
            )
        want_hidden = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        hidden: list[torch.Tensor] | None = [x] if want_hidden else None
        with layer_threads():  # one thread when generate asks, for its small steps
            x = self._layers(x, position_ids, attention_mask, start, cache, hidden)
        if hidden is not None:
            hidden[-1] = x
        if cache is not None:
            cache.end(s)
        out = BaseModelOutputWithPast(
            last_hidden_state=x, past_key_values=cache, hidden_states=tuple(hidden) if hidden else None
        )
        return out if return_dict else out.to_tuple()

    def _layers(
        self,
        x: torch.Tensor,
        position_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        start: int,
        cache: KVCache | None,
        hidden: list[torch.Tensor] | None,
    ) -> torch.Tensor:
        b, s, _ = x.shape
        if position_ids is None:
            position_ids = default_positions(start, s, b, x.device)
        cos, sin = self.rotary(position_ids, x.dtype)
        mask, is_causal = causal_mask(attention_mask, start, s, x.device)
        if s == 1 and type(cache) is KVCache:
            out = self._decode_step(x, cos, sin, mask, start, cache, hidden)
            if out is not None:
                return out
        for layer in self.layers:
            x = layer(x, cos, sin, mask, is_causal, cache)
            if hidden is not None:
                hidden.append(x)
        return self.norm(x)

    def _decode_step(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        start: int,
        cache: KVCache,
        hidden: list[torch.Tensor] | None,
    ) -> torch.Tensor | None:
        """One new token per row, all layers in one native call (csrc/decode.cpp: the same norms and
        products, RoPE and the cache write in place, single-query attention over the cache; one call a layer
        when every layer's output is asked for); None (the caller runs the Python layers) where it does not
        apply: training or autograd, not float32 or bfloat16 on the CPU, no native kernels, more rows than
        the small-M kernel takes, global module hooks, or a layer ``decode_weights`` turns down."""
        if (
            self.training
            or torch.is_grad_enabled()
            or x.dtype not in (torch.float32, torch.bfloat16)
            or x.device.type != "cpu"
            or _global_hooks()
            or not kernels.native_available()
            # float32's limit for bfloat16 steps too (measured inside whole steps, see docs/architecture.md);
            # past it the Python layers' products use GEMM
            or not 0 < x.shape[0] <= kernels.dense_rows()
        ):
            return None
        key = (id(self), x.dtype)
        entry = cache.plans.get(key)
        if (
            entry is None or entry[0]() is not self
        ):  # looked up once per cache: the checks cost ~40 us a layer
            found = [cast(DecoderLayer, layer).decode_weights(x.dtype) for layer in self.layers]
            complete = all(plan is not None for plan in found)
            entry = (
                weakref.ref(self),
                _stack_arguments(cast(list[tuple[Any, ...]], found)) if complete else None,
            )
            cache.plans[key] = entry
        if entry[1] is None:
            return None
        tensors, biases, types = entry[1]
        first = cast(DecoderLayer, self.layers[0])
        attn = first.attn
        check_window(attn.window, start + 1)
        b = x.shape[0]
        keep = mask.reshape(b, mask.shape[-1]) if mask is not None else None  # (batch, positions) bool
        heads, kv, dim = attn.heads, attn.kv_heads, attn.head_dim
        scale = 1.0 / math.sqrt(dim)
        eps = first.attn_norm.eps
        keys, values = cache.layer_buffers(b, kv, dim, x)
        stack = torch.ops.cove_quant.decode_stack
        if hidden is None:
            x = stack(x, tensors, biases, types, keys, values, cos, sin, start, keep, heads, kv, scale, eps)
            return self.norm(x)
        for i in range(len(keys)):  # one layer a call, for each layer's output
            t, p = slice(6 * i, 6 * i + 6), slice(4 * i, 4 * i + 4)
            layer = (tensors[t], biases[p], types[p], keys[i : i + 1], values[i : i + 1])
            x = stack(x, *layer, cos, sin, start, keep, heads, kv, scale, eps)
            hidden.append(x)
        return self.norm(x)


def _stack_arguments(
    plans: list[tuple[Any, ...]],
) -> tuple[list[torch.Tensor], list[torch.Tensor | None], list[int]]:
    """decode_weights' per-layer tuples (attn norm, qkv (w, b, t), o (w, b, t), mlp norm, gate_up (w, b, t),
    down (w, b, t)) flattened as ``cove_quant::decode_stack`` takes them: per layer the two norms and four
    weights, the four biases, the four GGML types."""
    tensors: list[torch.Tensor] = []
    biases: list[torch.Tensor | None] = []
    types: list[int] = []
    for an, qw, qb, qt, ow, ob, ot, mn, gw, gb, gt, dw, db, dt in plans:
        tensors += [an, qw, ow, mn, gw, dw]
        biases += [qb, ob, gb, db]
        types += [qt, ot, gt, dt]
    return tensors, biases, types


def _global_hooks() -> bool:
    """Whether any global forward hook is registered (torch.nn.modules.module.register_module_forward_hook)."""
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks)


class LlamaForCausalLM(GenerationMixin, LlamaPreTrainedModel):
    base_class: ClassVar[type[LlamaModel]] = LlamaModel
    decodes_from_huge_pages = True
    weight_map = WeightMap(LLAMA_WEIGHT_MAP).prefixed("model") | WeightMap({"lm_head": "lm_head"})
    ignorable = _BUFFERS
    tied = {"lm_head.weight": "model.embed.weight"}

    def __init__(self, config: LlamaConfig):
        super().__init__(config)
        self.model = self.base_class(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> Any:
        base = self.model(
            input_ids,
            attention_mask,
            position_ids,
            past_key_values,
            inputs_embeds,
            use_cache,
            output_hidden_states,
            **kwargs,
        )
        x = base.last_hidden_state
        kept = x[:, -logits_to_keep:] if logits_to_keep else x
        logits = run_linear(self.lm_head, kept)  # (batch, seq, vocab)
        loss = causal_lm_loss(logits, labels, self.config.vocab_size) if labels is not None else None
        out = CausalLMOutputWithPast(
            loss=loss, logits=logits, past_key_values=base.past_key_values, hidden_states=base.hidden_states
        )
        return out if return_dict else out.to_tuple()


class Qwen2Model(LlamaModel):
    config_class = Qwen2Config


class Qwen2ForCausalLM(LlamaForCausalLM):
    config_class = Qwen2Config
    base_class = Qwen2Model


class MistralModel(LlamaModel):
    config_class = MistralConfig


class MistralForCausalLM(LlamaForCausalLM):
    config_class = MistralConfig
    base_class = MistralModel
