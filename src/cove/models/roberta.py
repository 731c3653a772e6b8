"""RoBERTa: BERT's encoder with padding-aware positions, one token type, and its own heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
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
from cove.models.modeling import sequence_classification_loss, span_loss
from cove.models.outputs import (
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
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


class RobertaForSequenceClassification(RobertaPreTrainedModel):
    weight_map = _prefixed({"classifier": "classifier"})
    new_modules = ("classifier",)
    ignorable = (r"^lm_head\.", r"^qa_outputs\.", r"^roberta\.pooler\.", r"position_ids$")

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool = True,
    ) -> Any:
        base = self.roberta(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_hidden_states,
            output_attentions,
            first_token_only=True,
        )
        logits = self.classifier(base.last_hidden_state)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return out if return_dict else out.to_tuple()


class RobertaForTokenClassification(RobertaPreTrainedModel):
    weight_map = _prefixed({"classifier": "classifier"})
    new_modules = ("classifier",)
    ignorable = (r"^lm_head\.", r"^qa_outputs\.", r"^roberta\.pooler\.", r"position_ids$")

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool = True,
    ) -> Any:
        base = self.roberta(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_hidden_states,
            output_attentions,
        )
        logits = self.classifier(self.dropout(base.last_hidden_state))
        loss = (
            F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
            if labels is not None
            else None
        )
        out = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return out if return_dict else out.to_tuple()


class RobertaForQuestionAnswering(RobertaPreTrainedModel):
    weight_map = _prefixed({"qa_outputs": "qa_outputs"})
    new_modules = ("qa_outputs",)
    ignorable = (r"^lm_head\.", r"^classifier\.", r"^roberta\.pooler\.", r"position_ids$")

    def __init__(self, config: RobertaConfig):
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool = True,
    ) -> Any:
        base = self.roberta(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_hidden_states,
            output_attentions,
        )
        start, end = (
            t.squeeze(-1).contiguous() for t in self.qa_outputs(base.last_hidden_state).split(1, dim=-1)
        )
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start, end, start_positions, end_positions)
        out = QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start,
            end_logits=end,
            hidden_states=base.hidden_states,
            attentions=base.attentions,
        )
        return out if return_dict else out.to_tuple()


class RobertaLMHead(nn.Module):
    def __init__(self, config: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(x))))  # (batch, seq, vocab)


class RobertaForMaskedLM(RobertaPreTrainedModel):
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
        super().__init__(config)
        self.roberta = RobertaModel(config, add_pooling_layer=False)
        self.mlm = RobertaLMHead(config)
        self.tie_weights()

    def masked_lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The vocabulary logits for hidden states of any leading shape."""
        return self.mlm(hidden)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool = True,
    ) -> Any:
        base = self.roberta(
            input_ids,
            attention_mask,
            token_type_ids,
            position_ids,
            inputs_embeds,
            output_hidden_states,
            output_attentions,
        )
        logits = self.masked_lm_logits(base.last_hidden_state)
        loss = (
            F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
            if labels is not None
            else None
        )
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return out if return_dict else out.to_tuple()
