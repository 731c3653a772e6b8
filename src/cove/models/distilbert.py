"""DistilBERT: a 6-layer BERT without token types or pooler, with its own config keys, classification layers
and checkpoint names (the heads' forward is shared: models/encoder_heads.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cove.checkpoint.config import PretrainedConfig
from cove.checkpoint.weight_map import WeightMap
from cove.errors import ConfigError
from cove.models.bert import EncoderLayer, _check_inputs, embed_tokens, run_layers, train_dropout
from cove.models.encoder_heads import (
    EncoderForMaskedLM,
    EncoderForQuestionAnswering,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
)
from cove.models.modeling import ACTIVATIONS, PreTrainedModel
from cove.models.outputs import BaseModelOutput


@dataclass
class DistilBertConfig(PretrainedConfig):
    model_type = "distilbert"

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 3072
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int | None = 0

    def validate(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation={self.activation!r} is not supported; use one of {sorted(ACTIVATIONS)}."
            )
        if self.dim % self.n_heads:
            raise ConfigError(f"dim={self.dim} is not a multiple of n_heads={self.n_heads}.")

    # the names other families use, as transformers' attribute_map provides
    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers


DISTILBERT_WEIGHT_MAP = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.LayerNorm": "embeddings.norm",
    "transformer.layer.{}.attention.q_lin": "layers.{}.attn.q",
    "transformer.layer.{}.attention.k_lin": "layers.{}.attn.k",
    "transformer.layer.{}.attention.v_lin": "layers.{}.attn.v",
    "transformer.layer.{}.attention.out_lin": "layers.{}.attn.o",
    "transformer.layer.{}.sa_layer_norm": "layers.{}.attn_norm",
    "transformer.layer.{}.ffn.lin1": "layers.{}.ffn.up",
    "transformer.layer.{}.ffn.lin2": "layers.{}.ffn.down",
    "transformer.layer.{}.output_layer_norm": "layers.{}.ffn_norm",
}


class DistilBertEmbeddings(nn.Module):
    def __init__(self, config: DistilBertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.dim)
        self.norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        x = (
            embed_tokens(self.word, input_ids) if inputs_embeds is None else inputs_embeds
        )  # (batch, seq, dim)
        seq = x.shape[1]
        if seq > self.position.num_embeddings:
            raise ConfigError(
                f"Input of {seq} tokens is longer than the model's {self.position.num_embeddings} positions: "
                "truncate it (tokenizer truncation=True)."
            )
        if position_ids is None:
            position_ids = torch.arange(seq, device=x.device)[None, :]
        x = self.norm(x + self.position(position_ids))
        return train_dropout(x, self.dropout.p) if self.training else x


def sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    position_enc = np.array(
        [[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)]
    )
    table = torch.zeros(n_pos, dim)
    table[:, 0::2] = torch.FloatTensor(np.sin(position_enc[:, 0::2]))
    table[:, 1::2] = torch.FloatTensor(np.cos(position_enc[:, 1::2]))
    return table


class DistilBertPreTrainedModel(PreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(DISTILBERT_WEIGHT_MAP)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.distilbert.embeddings.word  # type: ignore[union-attr,return-value]

    def post_init(self) -> None:
        super().post_init()
        if self.config.sinusoidal_pos_embds:
            base: Any = getattr(self, "distilbert", self)
            position: nn.Embedding = base.embeddings.position
            with torch.no_grad():
                position.weight.copy_(sinusoidal_table(*position.weight.shape))
            position.weight.requires_grad_(False)


class DistilBertModel(DistilBertPreTrainedModel):
    is_base_model = True
    weight_map = WeightMap(DISTILBERT_WEIGHT_MAP)
    ignorable = (
        r"^vocab_(transform|layer_norm|projector)\.",
        r"^pre_classifier\.",
        r"^classifier\.",
        r"^qa_outputs\.",
        r"position_ids$",
    )

    def __init__(self, config: DistilBertConfig):
        super().__init__(config)
        self.embeddings = DistilBertEmbeddings(config)
        self.layers = nn.ModuleList(
            EncoderLayer(
                config.dim,
                config.n_heads,
                config.hidden_dim,
                config.activation,
                1e-12,
                config.dropout,
                config.attention_dropout,
                attn_output_dropout=False,
            )
            for _ in range(config.n_layers)
        )

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor
        | None = None,  # accepted for tokenizers that emit it; DistilBERT has none
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool = True,
        *,
        first_token_only: bool = False,
    ) -> Any:
        """first_token_only: as BertModel's (last_hidden_state may be (batch, 1, dim))."""
        _check_inputs(input_ids, inputs_embeds)
        x = self.embeddings(input_ids, position_ids, inputs_embeds)
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
        out = BaseModelOutput(last_hidden_state=x, hidden_states=hidden_states, attentions=attentions)
        return out if return_dict else out.to_tuple()


def _prefixed(extra: dict[str, str]) -> WeightMap:
    return WeightMap(DISTILBERT_WEIGHT_MAP).prefixed("distilbert") | WeightMap(extra)


_HEADS = {
    "mlm": r"^vocab_(transform|layer_norm|projector)\.",
    "pre_classifier": r"^pre_classifier\.",
    "classifier": r"^classifier\.",
    "qa_outputs": r"^qa_outputs\.",
}


def _other_heads(*mine: str) -> tuple[str, ...]:
    return (*(pattern for head, pattern in _HEADS.items() if head not in mine), r"position_ids$")


class DistilBertForSequenceClassification(DistilBertPreTrainedModel, EncoderForSequenceClassification):
    weight_map = _prefixed({"pre_classifier": "pre_classifier", "classifier": "classifier"})
    new_modules = ("pre_classifier", "classifier")
    ignorable = _other_heads("pre_classifier", "classifier")

    def __init__(self, config: DistilBertConfig):
        super().__init__(config, DistilBertModel(config))
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.seq_classif_dropout)

    def classify(self, base: Any) -> torch.Tensor:
        pooled = F.relu(self.pre_classifier(base.last_hidden_state[:, 0]))  # (batch, dim)
        return self.classifier(self.dropout(pooled))  # type: ignore[no-any-return]


class DistilBertForTokenClassification(DistilBertPreTrainedModel, EncoderForTokenClassification):
    weight_map = _prefixed({"classifier": "classifier"})
    new_modules = ("classifier",)
    ignorable = _other_heads("classifier")

    def __init__(self, config: DistilBertConfig):
        super().__init__(config, DistilBertModel(config), dropout=config.dropout)


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel, EncoderForQuestionAnswering):
    weight_map = _prefixed({"qa_outputs": "qa_outputs"})
    new_modules = ("qa_outputs",)
    ignorable = _other_heads("qa_outputs")

    def __init__(self, config: DistilBertConfig):
        super().__init__(config, DistilBertModel(config), dropout=config.qa_dropout)


class DistilBertForMaskedLM(DistilBertPreTrainedModel, EncoderForMaskedLM):
    weight_map = _prefixed(
        {"vocab_transform": "mlm.dense", "vocab_layer_norm": "mlm.norm", "vocab_projector": "mlm.decoder"}
    )
    new_modules = ("mlm",)
    ignorable = _other_heads("mlm")
    tied = {"mlm.decoder.weight": "distilbert.embeddings.word.weight"}

    def __init__(self, config: DistilBertConfig):
        super().__init__(config, DistilBertModel(config), act=config.activation, eps=1e-12)
