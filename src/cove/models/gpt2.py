"""GPT-2: learned positions, pre-norm blocks, and the checkpoint's Conv1D layout (weights stored (in, out))."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
from cove.models.modeling import (
    ACTIVATIONS,
    PreTrainedModel,
    get_activation,
    linear_in_out,
    run_linear,
)
from cove.models.outputs import BaseModelOutputWithPast, CausalLMOutputWithPast


@dataclass
class GPT2Config(PretrainedConfig):
    model_type = "gpt2"

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    activation_function: str = "gelu_new"
    resid_pdrop: float = 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    scale_attn_weights: bool = True
    scale_attn_by_inverse_layer_idx: bool = False
    reorder_and_upcast_attn: bool = False
    add_cross_attention: bool = False
    use_cache: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256

    def validate(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} is not a multiple of n_head={self.n_head}.")
        if self.activation_function not in ACTIVATIONS:
            raise ConfigError(
                f"activation_function={self.activation_function!r} is not supported; use one of {sorted(ACTIVATIONS)}."
            )
        if self.add_cross_attention:
            raise ConfigError(
                "GPT-2 with cross-attention (add_cross_attention=True) is not supported by Cove."
            )

    # transformers-style names read the GPT-2 fields
    @property
    def hidden_size(self) -> int:
        return self.n_embd

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layer

    @property
    def num_attention_heads(self) -> int:
        return self.n_head

    @property
    def max_position_embeddings(self) -> int:
        return self.n_positions


class Conv1D(nn.Module):
    """A linear layer whose weight is stored (in, out), as in the GPT-2 checkpoints."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear_in_out(x, self.weight, self.bias)


class Attention(nn.Module):
    def __init__(self, config: GPT2Config, layer: int):
        super().__init__()
        self.layer, self.heads = layer, config.n_head
        self.c_attn = Conv1D(config.n_embd, 3 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        head_dim = config.n_embd // config.n_head
        self.scale = head_dim**-0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scale /= float(layer + 1)
        self.attn_dropout, self.resid_dropout = config.attn_pdrop, nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor, mask: Any, is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        b, s, h = x.shape
        # (batch, seq, 3 * hidden) -> 3 x (batch, heads, seq, head_dim)
        q, k, v = (t.view(b, s, self.heads, -1).transpose(1, 2) for t in self.c_attn(x).split(h, dim=2))
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=is_causal,
            scale=self.scale,
        )
        return self.resid_dropout(self.c_proj(out.transpose(1, 2).reshape(b, s, h)))


class MLP(nn.Module):
    def __init__(self, config: GPT2Config):
        super().__init__()
        inner = config.n_inner or 4 * config.n_embd
        self.c_fc = Conv1D(config.n_embd, inner)
        self.c_proj = Conv1D(inner, config.n_embd)
        self.act = get_activation(config.activation_function)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPT2Config, layer: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = Attention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, mask: Any, is_causal: bool, cache: KVCache | None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask, is_causal, cache)
        return x + self.mlp(self.ln_2(x))


GPT2_WEIGHT_MAP = {
    "wte": "wte",
    "wpe": "wpe",
    "h.{}.ln_1": "h.{}.ln_1",
    "h.{}.attn.c_attn": "h.{}.attn.c_attn",
    "h.{}.attn.c_proj": "h.{}.attn.c_proj",
    "h.{}.ln_2": "h.{}.ln_2",
    "h.{}.mlp.c_fc": "h.{}.mlp.c_fc",
    "h.{}.mlp.c_proj": "h.{}.mlp.c_proj",
    "ln_f": "ln_f",
}
# causal-mask buffers older checkpoints carry
_BUFFERS = (r"(^|\.)attn\.bias$", r"(^|\.)attn\.masked_bias$")


class GPT2PreTrainedModel(PreTrainedModel):
    config_class = GPT2Config
    base_model_prefix = "transformer"

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(GPT2_WEIGHT_MAP)

    def init_module(self, module: nn.Module) -> None:
        if isinstance(module, Conv1D):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.bias)
        else:
            super().init_module(module)


class GPT2Model(GPT2PreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(GPT2_WEIGHT_MAP)
    ignorable = (r"^lm_head\.", *_BUFFERS)

    def __init__(self, config: GPT2Config):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.wte

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
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
        x = self.wte(input_ids) if inputs_embeds is None else inputs_embeds  # (batch, seq, hidden)
        b, s, _ = x.shape
        use_cache = self.config.use_cache if use_cache is None else use_cache
        cache, start = start_cache(past_key_values, bool(use_cache) and not self.training, len(self.h), s)
        if start + s > self.config.n_positions:
            raise GenerationError(
                f"{start + s} tokens exceed GPT-2's context window of {self.config.n_positions}: "
                "shorten the prompt or lower max_new_tokens."
            )
        if position_ids is None:
            position_ids = default_positions(start, s, b, x.device)
        x = x + self.wpe(position_ids)
        if token_type_ids is not None:
            x = x + self.wte(token_type_ids)
        x = self.drop(x)
        mask, is_causal = causal_mask(attention_mask, start, s, x.device)
        want_hidden = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        hidden: list[torch.Tensor] | None = [x] if want_hidden else None
        with layer_threads():  # one thread when generate asks, for its small steps
            for block in self.h:
                x = block(x, mask, is_causal, cache)
                if hidden is not None:
                    hidden.append(x)
            x = self.ln_f(x)
        if hidden is not None:
            hidden[-1] = x
        if cache is not None:
            cache.end(s)
        out = BaseModelOutputWithPast(
            last_hidden_state=x, past_key_values=cache, hidden_states=tuple(hidden) if hidden else None
        )
        return out if return_dict else out.to_tuple()


class GPT2LMHeadModel(GenerationMixin, GPT2PreTrainedModel):
    weight_map = WeightMap(GPT2_WEIGHT_MAP).prefixed("transformer") | WeightMap({"lm_head": "lm_head"})
    ignorable = _BUFFERS
    tied = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPT2Config):
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.transformer.wte

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        logits_to_keep: int = 0,
        **kwargs: Any,
    ) -> Any:
        base = self.transformer(
            input_ids,
            past_key_values,
            attention_mask,
            token_type_ids,
            position_ids,
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
