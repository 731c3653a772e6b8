"""BERT (and MiniLM, which is a small BERT): encoder, pooler and task heads (the heads' forward is shared by
the encoder families: models/encoder_heads.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cove.checkpoint.config import PretrainedConfig
from cove.checkpoint.weight_map import WeightMap
from cove.errors import ConfigError
from cove.models.encoder_heads import (
    EncoderForMaskedLM,
    EncoderForQuestionAnswering,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
)
from cove.models.modeling import (
    ACTIVATIONS,
    FusedLinears,
    Packing,
    PreTrainedModel,
    attention,
    dropout_mask,
    get_activation,
    padding_mask,
    run_linear,
)
from cove.models.outputs import BaseModelOutputWithPooling


@dataclass
class BertConfig(PretrainedConfig):
    model_type = "bert"

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    position_embedding_type: str = "absolute"
    classifier_dropout: float | None = None
    is_decoder: bool = False
    add_cross_attention: bool = False
    use_cache: bool = True

    def validate(self) -> None:
        if self.position_embedding_type != "absolute":
            raise ConfigError(
                f"position_embedding_type={self.position_embedding_type!r} is not supported; Cove implements 'absolute'."
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ConfigError(
                f"hidden_act={self.hidden_act!r} is not supported; use one of {sorted(ACTIVATIONS)}."
            )
        if self.is_decoder or self.add_cross_attention:
            raise ConfigError(
                "BERT as a decoder (is_decoder / add_cross_attention) is not supported by Cove."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size={self.hidden_size} is not a multiple of num_attention_heads={self.num_attention_heads}."
            )


# checkpoint module path -> Cove module path, for the backbone
BERT_WEIGHT_MAP = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
    "encoder.layer.{}.attention.self.query": "layers.{}.attn.q",
    "encoder.layer.{}.attention.self.key": "layers.{}.attn.k",
    "encoder.layer.{}.attention.self.value": "layers.{}.attn.v",
    "encoder.layer.{}.attention.output.dense": "layers.{}.attn.o",
    "encoder.layer.{}.attention.output.LayerNorm": "layers.{}.attn_norm",
    "encoder.layer.{}.intermediate.dense": "layers.{}.ffn.up",
    "encoder.layer.{}.output.dense": "layers.{}.ffn.down",
    "encoder.layer.{}.output.LayerNorm": "layers.{}.ffn_norm",
    "pooler.dense": "pooler.dense",
}

# weights of other tasks' heads and legacy buffers, dropped (with a warning) when a model does not use them
_OTHER_HEADS = (r"^cls\.", r"^classifier\.", r"^qa_outputs\.", r"position_ids$")


# -- training dropout: F.dropout's masks, drawn faster (modeling.dropout_mask) ------------------------


def _fast_dropout(x: torch.Tensor, p: float) -> bool:
    return x.device.type == "cpu" and 0.0 < p < 1.0


def train_dropout(x: torch.Tensor, p: float, packing: Packing | None = None) -> torch.Tensor:
    """Training dropout (nn.Dropout's result and random draws); ``x`` packed by ``packing`` gets the mask the
    padded (batch, seq, features) tensor would, at its real tokens."""
    if packing is not None:
        return packing.dropout(x, p)
    if not _fast_dropout(x, p):
        return nn.functional.dropout(x, p, training=True)
    return x * dropout_mask(tuple(x.shape), p, x.dtype)


def training_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, dropout: float
) -> torch.Tensor:
    """F.scaled_dot_product_attention with dropout, in training on CPU: its math (the composite path torch
    takes when there is dropout: q and k each scaled by the root of 1/sqrt(head_dim), additive mask, softmax,
    dropout), with the dropout mask drawn by ``dropout_mask`` and without the fully-masked-row checks of its
    safe softmax (Cove's padding mask is finite, a row is never fully masked)."""
    if not (_fast_dropout(q, dropout) and q.dtype == torch.float32):
        return attention(q, k, v, mask, dropout=dropout)[0]
    scale = math.sqrt(1 / math.sqrt(q.shape[-1]))
    scores = (q * scale) @ (k.transpose(-1, -2) * scale)
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(dim=-1)
    return (weights * dropout_mask(tuple(weights.shape), dropout, weights.dtype)) @ v


# -- training: the word-embedding gradient in reused memory ------------------------------------


def _storage_refs(t: torch.Tensor) -> int:
    return int(torch._C._storage_Use_Count(t.untyped_storage()._cdata))


try:
    _SOLE_REFS: int | None = _storage_refs(torch.empty(1))  # a tensor nothing else shares, as counted here
except (AttributeError, RuntimeError):  # torch without the counter: no reuse
    _SOLE_REFS = None


def _grad_memory(owner: nn.Module, like: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """A zeroed (shape) tensor for owner's weight gradient, in the memory of the previous step's one when
    nothing holds that any more (the Trainer sets gradients to None after each step)."""
    buf: torch.Tensor | None = getattr(owner, "_cove_grad_memory", None)
    if (
        buf is None
        or _SOLE_REFS is None
        or buf.shape != shape
        or buf.dtype != like.dtype
        or buf.device != like.device
        or _storage_refs(buf) != _SOLE_REFS
    ):
        buf = torch.empty(shape, dtype=like.dtype, device=like.device)
        owner._cove_grad_memory = buf  # type: ignore[assignment]  # a plain attribute, not in the state dict
    return buf.view(shape).zero_()  # a new tensor over that memory: autograd takes it as the .grad


class _TrainingEmbedding(torch.autograd.Function):
    """F.embedding whose weight gradient (embedding_dense_backward's sum, in its order: index_add_ over the
    tokens, the padding row left at zero) is written into reused memory: a fresh 47 MB gradient (MiniLM's
    word embeddings) page-faults through every step (~25 ms a step on a 2-core CPU)."""

    @staticmethod
    def forward(ctx: Any, ids: torch.Tensor, weight: torch.Tensor, owner: nn.Embedding) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.owner, ctx.shape = owner, weight.shape
        return nn.functional.embedding(ids, weight, owner.padding_idx)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor, None]:
        (ids,) = ctx.saved_tensors
        out = _grad_memory(ctx.owner, grad, ctx.shape)
        out.index_add_(0, ids.reshape(-1), grad.reshape(-1, grad.shape[-1]))
        if ctx.owner.padding_idx is not None:
            out[ctx.owner.padding_idx] = 0
        return None, out, None


def embed_tokens(embedding: nn.Embedding, ids: Any) -> torch.Tensor:
    """``embedding(ids)``; in training on CPU, with the weight gradient in reused memory."""
    weight = embedding.weight
    if not (
        embedding.training
        and torch.is_grad_enabled()
        and weight.requires_grad
        and weight.device.type == "cpu"
        and embedding.max_norm is None
        and not embedding.scale_grad_by_freq
        and not embedding.sparse
    ):
        return embedding(ids)  # type: ignore[no-any-return]
    return _TrainingEmbedding.apply(ids, weight, embedding)  # type: ignore[no-any-return]


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)
        self.dropout = dropout
        self.qkv = FusedLinears(self.q, self.k, self.v)  # one matmul at inference

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        need_weights: bool = False,
        packing: Packing | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (batch, seq, hidden), or (tokens, hidden) packed by `packing` (then so is the output)."""
        qkv = self.qkv.joined(x)
        if packing is not None:
            qkv = packing.unpack(qkv)  # attention needs the (batch, seq) layout
        b, s, _ = qkv.shape
        h = x.shape[-1]
        # (batch, seq, hidden) -> (batch, heads, seq, head_dim)
        q, k, v = (t.view(b, s, self.heads, -1).transpose(1, 2) for t in qkv.split(h, dim=-1))
        if self.training and self.dropout and not need_weights:
            out, weights = training_attention(q, k, v, mask, self.dropout), None
        else:
            out, weights = attention(
                q, k, v, mask, dropout=self.dropout if self.training else 0.0, need_weights=need_weights
            )
        out = out.transpose(1, 2).reshape(b, s, h)
        return run_linear(self.o, out if packing is None else packing.pack(out)), weights

    def first_token(
        self, x: torch.Tensor, mask: torch.Tensor | None, packing: Packing | None
    ) -> torch.Tensor:
        """The attention output at position 0 only, (batch, hidden): every token's keys and values, one query
        per row (inference; what a head that reads the first token needs from the last layer)."""
        kv = torch.cat([run_linear(self.k, x), run_linear(self.v, x)], dim=-1)
        first = x[:, 0] if packing is None else x[packing.first]  # (batch, hidden)
        if packing is not None:
            kv = packing.unpack(kv)
        b, s, _ = kv.shape
        h = first.shape[-1]
        k, v = (t.view(b, s, self.heads, -1).transpose(1, 2) for t in kv.split(h, dim=-1))
        q = run_linear(self.q, first).view(b, self.heads, 1, -1)
        out, _ = attention(q, k, v, mask)  # (batch, heads, 1, head_dim)
        return run_linear(self.o, out.reshape(b, h))


class FeedForward(nn.Module):
    def __init__(self, hidden: int, intermediate: int, act: str):
        super().__init__()
        self.up = nn.Linear(hidden, intermediate)
        self.down = nn.Linear(intermediate, hidden)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_linear(self.down, self.act(run_linear(self.up, x)))


class EncoderLayer(nn.Module):
    """Post-norm transformer layer (BERT, RoBERTa and DistilBERT share its maths)."""

    def __init__(
        self,
        hidden: int,
        heads: int,
        intermediate: int,
        act: str,
        eps: float,
        dropout: float,
        attn_dropout: float,
        attn_output_dropout: bool = True,  # DistilBERT applies no dropout to the attention output
    ):
        super().__init__()
        self.attn_output_dropout = attn_output_dropout
        self.attn = SelfAttention(hidden, heads, attn_dropout)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn = FeedForward(hidden, intermediate, act)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        need_weights: bool = False,
        packing: Packing | None = None,
        first_token_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if first_token_only:  # the last layer under a first-token head: position 0 only, (batch, 1, hidden)
            first = x[:, 0] if packing is None else x[packing.first]
            first = self.attn_norm(first + self.attn.first_token(x, mask, packing))
            return self.ffn_norm(first + self.ffn(first))[:, None], None
        attn, weights = self.attn(x, mask, need_weights, packing)
        x = self.attn_norm(x + (self._dropout(attn, packing) if self.attn_output_dropout else attn))
        x = self.ffn_norm(x + self._dropout(self.ffn(x), packing))
        return x, weights

    def _dropout(self, x: torch.Tensor, packing: Packing | None) -> torch.Tensor:
        if not self.training:
            return x
        return train_dropout(x, self.dropout.p, packing)  # packed: the padded pass's mask, at the real tokens


def run_layers(
    layers: nn.ModuleList,
    x: torch.Tensor,
    attention_mask: torch.Tensor | None,
    output_hidden_states: bool,
    output_attentions: bool,
    first_token_only: bool = False,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
    """first_token_only: at inference, when per-layer states and attentions are not asked for, the last layer
    computes position 0 alone and the result is (batch, 1, hidden) (for heads that read only that token)."""
    mask = padding_mask(attention_mask, x.dtype)
    hidden_states = [x] if output_hidden_states else None
    attentions: list[torch.Tensor] | None = [] if output_attentions else None
    packing = Packing.maybe(attention_mask, needs_all=output_hidden_states or output_attentions)
    first_only = (
        first_token_only
        and not (output_hidden_states or output_attentions or torch.is_grad_enabled())
        and not any(layer.training for layer in layers)
    )
    if packing is not None:
        x = packing.pack(x)
    last = len(layers) - 1
    for i, layer in enumerate(layers):
        x, weights = layer(x, mask, output_attentions, packing, first_only and i == last)
        if hidden_states is not None:
            hidden_states.append(x)
        if attentions is not None:
            attentions.append(weights)
    if packing is not None and not (first_only and len(layers)):
        x = packing.unpack(x)
    return x, tuple(hidden_states) if hidden_states else None, tuple(attentions) if attentions else None


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        x = (
            embed_tokens(self.word, input_ids) if inputs_embeds is None else inputs_embeds
        )  # (batch, seq, hidden)
        seq = x.shape[1]
        if seq > self.position.num_embeddings:
            raise ConfigError(
                f"Input of {seq} tokens is longer than the model's {self.position.num_embeddings} positions: "
                "truncate it (tokenizer truncation=True)."
            )
        if position_ids is None:
            position_ids = torch.arange(seq, device=x.device)[None, :]
        if token_type_ids is None:
            token_type_ids = torch.zeros(x.shape[:2], dtype=torch.long, device=x.device)
        x = x + self.token_type(token_type_ids) + self.position(position_ids)
        x = self.norm(x)
        return train_dropout(x, self.dropout.p) if self.training else x


class BertPooler(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x[:, 0]))  # first token: (batch, hidden)


def _check_inputs(input_ids: Any, inputs_embeds: Any) -> None:
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of input_ids or inputs_embeds.")


class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(BERT_WEIGHT_MAP)

    def get_input_embeddings(self) -> nn.Embedding:
        return getattr(self, self.base_model_prefix).embeddings.word


class BertModel(BertPreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(BERT_WEIGHT_MAP)
    new_modules = ("pooler",)
    ignorable = _OTHER_HEADS

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.hidden_size,
                config.num_attention_heads,
                config.intermediate_size,
                config.hidden_act,
                config.layer_norm_eps,
                config.hidden_dropout_prob,
                config.attention_probs_dropout_prob,
            )
            for _ in range(config.num_hidden_layers)
        )
        self.pooler = BertPooler(config.hidden_size) if add_pooling_layer else None

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool = True,
        *,
        first_token_only: bool = False,
    ) -> Any:
        """first_token_only (for heads that read position 0): at inference, last_hidden_state may come back
        as (batch, 1, hidden), the last layer having computed that position alone."""
        _check_inputs(input_ids, inputs_embeds)
        x = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        x, hidden_states, attentions = run_layers(
            self.layers,
            x,
            attention_mask,
            bool(
                output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
            ),
            bool(output_attentions if output_attentions is not None else self.config.output_attentions),
            first_token_only,
        )
        pooled = self.pooler(x) if self.pooler is not None else None
        out = BaseModelOutputWithPooling(
            last_hidden_state=x, pooler_output=pooled, hidden_states=hidden_states, attentions=attentions
        )
        return out if return_dict else out.to_tuple()


def _prefixed(prefix: str, extra: dict[str, str]) -> WeightMap:
    return WeightMap(BERT_WEIGHT_MAP).prefixed(prefix) | WeightMap(extra)


def _classifier_dropout(config: BertConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class BertForSequenceClassification(BertPreTrainedModel, EncoderForSequenceClassification):
    weight_map = _prefixed("bert", {"classifier": "classifier"})
    new_modules = ("classifier", "bert.pooler")
    ignorable = (r"^cls\.", r"^qa_outputs\.", r"position_ids$")

    def __init__(self, config: BertConfig):
        super().__init__(config, BertModel(config))
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def classify(self, base: Any) -> torch.Tensor:
        return self.classifier(self.dropout(base.pooler_output))  # (batch, num_labels)


class BertForTokenClassification(BertPreTrainedModel, EncoderForTokenClassification):
    weight_map = _prefixed("bert", {"classifier": "classifier"})
    new_modules = ("classifier",)
    ignorable = (r"^cls\.", r"^qa_outputs\.", r"^bert\.pooler\.", r"position_ids$")

    def __init__(self, config: BertConfig):
        super().__init__(
            config, BertModel(config, add_pooling_layer=False), dropout=_classifier_dropout(config)
        )


class BertForQuestionAnswering(BertPreTrainedModel, EncoderForQuestionAnswering):
    weight_map = _prefixed("bert", {"qa_outputs": "qa_outputs"})
    new_modules = ("qa_outputs",)
    ignorable = (r"^cls\.", r"^classifier\.", r"^bert\.pooler\.", r"position_ids$")

    def __init__(self, config: BertConfig):
        super().__init__(config, BertModel(config, add_pooling_layer=False))


class BertForMaskedLM(BertPreTrainedModel, EncoderForMaskedLM):
    weight_map = _prefixed(
        "bert",
        {
            "cls.predictions.transform.dense": "mlm.dense",
            "cls.predictions.transform.LayerNorm": "mlm.norm",
            "cls.predictions.bias": "mlm.decoder.bias",
            "cls.predictions.decoder": "mlm.decoder",
        },
    )
    new_modules = ("mlm",)
    ignorable = (
        r"^cls\.seq_relationship\.",
        r"^classifier\.",
        r"^qa_outputs\.",
        r"^bert\.pooler\.",
        r"position_ids$",
    )
    tied = {"mlm.decoder.weight": "bert.embeddings.word.weight"}
    aliases = {"cls.predictions.decoder.bias": "cls.predictions.bias"}

    def __init__(self, config: BertConfig):
        super().__init__(
            config,
            BertModel(config, add_pooling_layer=False),
            act=config.hidden_act,
            eps=config.layer_norm_eps,
        )
