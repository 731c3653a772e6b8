"""RoBERTa: BERT's encoder with padding-aware positions, one token type, its own classification layers and
checkpoint names (the heads' forward is shared: models/encoder_heads.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cove.checkpoint.weight_map import WeightMap
from cove.models.bert import (
    BERT_WEIGHT_MAP,
    BertConfig,
    BertEmbeddings,
    BertModel,
    BertPreTrainedModel,
    _classifier_dropout,
)
from cove.models.encoder_heads import (
    EncoderForMaskedLM,
    EncoderForQuestionAnswering,
    EncoderForSequenceClassification,
    EncoderForTokenClassification,
)


@dataclass
class RobertaConfig(BertConfig):
    model_type = "roberta"

    vocab_size: int = 50265
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    type_vocab_size: int = 1
    max_position_embeddings: int = 514
    layer_norm_eps: float = 1e-5


class RobertaEmbeddings(BertEmbeddings):
    """Positions count only non-padding tokens and start after padding_idx (fairseq's make_positions)."""

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id if config.pad_token_id is not None else 1
        self.position.padding_idx = self.padding_idx

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if position_ids is None:
            if input_ids is not None:
                mask = input_ids.ne(self.padding_idx).int()
                position_ids = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + self.padding_idx
            else:
                assert inputs_embeds is not None  # the caller passes input_ids or inputs_embeds
                seq = inputs_embeds.shape[1]
                position_ids = torch.arange(
                    self.padding_idx + 1, seq + self.padding_idx + 1, device=inputs_embeds.device
                )
                position_ids = position_ids[None, :].expand(inputs_embeds.shape[:2])
        return super().forward(input_ids, token_type_ids, position_ids, inputs_embeds)


class RobertaPreTrainedModel(BertPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"


_OTHER_HEADS = (r"^lm_head\.", r"^classifier\.", r"^qa_outputs\.", r"position_ids$")


class RobertaModel(RobertaPreTrainedModel, BertModel):
    is_base_model = True
    weight_map = WeightMap(BERT_WEIGHT_MAP)
    new_modules = ("pooler",)
    ignorable = _OTHER_HEADS

    def __init__(self, config: RobertaConfig, add_pooling_layer: bool = True):
        BertModel.__init__(self, config, add_pooling_layer)
        self.embeddings = RobertaEmbeddings(config)


def _prefixed(extra: dict[str, str]) -> WeightMap:
    return WeightMap(BERT_WEIGHT_MAP).prefixed("roberta") | WeightMap(extra)


class RobertaClassificationHead(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x[:, 0])  # <s> token: (batch, hidden)
        return self.out_proj(self.dropout(torch.tanh(self.dense(x))))


class RobertaForSequenceClassification(RobertaPreTrainedModel, EncoderForSequenceClassification):
    weight_map = _prefixed({"classifier": "classifier"})
    new_modules = ("classifier",)
    ignorable = (r"^lm_head\.", r"^qa_outputs\.", r"^roberta\.pooler\.", r"position_ids$")

    def __init__(self, config: RobertaConfig):
        super().__init__(config, RobertaModel(config, add_pooling_layer=False))
        self.classifier = RobertaClassificationHead(config)

    def classify(self, base: Any) -> torch.Tensor:
        return self.classifier(base.last_hidden_state)  # type: ignore[no-any-return]


class RobertaForTokenClassification(RobertaPreTrainedModel, EncoderForTokenClassification):
    weight_map = _prefixed({"classifier": "classifier"})
    new_modules = ("classifier",)
    ignorable = (r"^lm_head\.", r"^qa_outputs\.", r"^roberta\.pooler\.", r"position_ids$")

    def __init__(self, config: RobertaConfig):
        super().__init__(
            config, RobertaModel(config, add_pooling_layer=False), dropout=_classifier_dropout(config)
        )


class RobertaForQuestionAnswering(RobertaPreTrainedModel, EncoderForQuestionAnswering):
    weight_map = _prefixed({"qa_outputs": "qa_outputs"})
    new_modules = ("qa_outputs",)
    ignorable = (r"^lm_head\.", r"^classifier\.", r"^roberta\.pooler\.", r"position_ids$")

    def __init__(self, config: RobertaConfig):
        super().__init__(config, RobertaModel(config, add_pooling_layer=False))


class RobertaForMaskedLM(RobertaPreTrainedModel, EncoderForMaskedLM):
    weight_map = _prefixed(
        {
            "lm_head.dense": "mlm.dense",
            "lm_head.layer_norm": "mlm.norm",
            "lm_head.bias": "mlm.decoder.bias",
            "lm_head.decoder": "mlm.decoder",
        }
    )
    new_modules = ("mlm",)
    ignorable = (r"^classifier\.", r"^qa_outputs\.", r"^roberta\.pooler\.", r"position_ids$")
    tied = {"mlm.decoder.weight": "roberta.embeddings.word.weight"}
    aliases = {"lm_head.decoder.bias": "lm_head.bias"}

    def __init__(self, config: RobertaConfig):
        # RoBERTa's LM head uses GELU whatever hidden_act says
        super().__init__(
            config, RobertaModel(config, add_pooling_layer=False), act="gelu", eps=config.layer_norm_eps
        )
