"""Task heads over any encoder backbone: sequence classification, token classification, question answering
and masked LM, shared by BERT, RoBERTa and DistilBERT.

A family's task class is a few lines in its own file: it builds its backbone and passes it here with the
head's family-specific values (dropout rates, the MLM activation), and declares its checkpoint's weight-name
map; Cove's module names are the same in every family, so only the maps differ. Sequence classification
differs in its layers (BERT: its pooler, dropout, a linear layer; RoBERTa: dense + tanh over <s>;
DistilBERT: pre_classifier + ReLU), so each family builds those and writes ``classify``.

A backbone is called by keyword, ``backbone(input_ids=, attention_mask=, token_type_ids=, position_ids=,
inputs_embeds=, output_hidden_states=, output_attentions=, first_token_only=)``, and returns
``last_hidden_state`` (plus ``pooler_output`` when it has a pooler), ``hidden_states`` and ``attentions``.
A backbone without token types (DistilBERT) accepts ``token_type_ids`` and ignores it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cove.checkpoint.config import PretrainedConfig
from cove.errors import ConfigError
from cove.models.modeling import (
    PreTrainedModel,
    get_activation,
    sequence_classification_loss,
    span_loss,
)
from cove.models.outputs import (
    MaskedLMOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)


class EncoderTaskModel(PreTrainedModel):
    """A backbone, registered under the family's ``base_model_prefix`` (``bert``, ``roberta``,
    ``distilbert``: the checkpoint's names keep it), and a head."""

    def __init__(self, config: PretrainedConfig, backbone: nn.Module):
        super().__init__(config)
        self.add_module(self.base_model_prefix, backbone)

    @property
    def backbone(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)  # type: ignore[no-any-return]


class EncoderForSequenceClassification(EncoderTaskModel):
    """(batch, num_labels) logits from the first token. At inference the backbone's last layer computes that
    position alone (``first_token_only``)."""

    def classify(self, base: Any) -> torch.Tensor:
        """The backbone's output -> (batch, num_labels) logits, through the family's layers."""
        raise NotImplementedError

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
        base = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            first_token_only=True,
        )
        logits = self.classify(base)
        loss = sequence_classification_loss(self.config, logits, labels) if labels is not None else None
        out = SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return out if return_dict else out.to_tuple()


class EncoderForTokenClassification(EncoderTaskModel):
    """(batch, seq, num_labels) logits: dropout and one linear layer over every token."""

    def __init__(self, config: PretrainedConfig, backbone: nn.Module, *, dropout: float):
        super().__init__(config, backbone)
        self.dropout = nn.Dropout(dropout)
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
        base = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        logits = self.classifier(self.dropout(base.last_hidden_state))  # (batch, seq, num_labels)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
        out = TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return out if return_dict else out.to_tuple()


class EncoderForQuestionAnswering(EncoderTaskModel):
    """Start and end logits per token, (batch, seq) each, from one linear layer (after dropout in DistilBERT)."""

    def __init__(self, config: PretrainedConfig, backbone: nn.Module, *, dropout: float = 0.0):
        if config.num_labels != 2:
            raise ConfigError(
                f"{type(self).__name__} needs num_labels=2 (a start and an end logit per token), got "
                f"{config.num_labels}: set num_labels=2 (or drop id2label/label2id) in the config."
            )
        super().__init__(config, backbone)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
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
        base = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        logits = self.qa_outputs(self.dropout(base.last_hidden_state))  # (batch, seq, 2)
        start, end = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
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


class MaskedLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> vocabulary projection: BERT's ``cls.predictions``, RoBERTa's
    ``lm_head``, DistilBERT's ``vocab_*`` layers. The projection's weight is tied to the word embeddings."""

    def __init__(self, hidden: int, vocab: int, act: str, eps: float):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.act = get_activation(act)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(self.act(self.dense(x))))  # (..., vocab)


class EncoderForMaskedLM(EncoderTaskModel):
    """(batch, seq, vocab) logits; ``masked_lm_logits`` applies the head to any rows (fill-mask passes only
    the mask positions': the head costs as much as the encoder itself)."""

    def __init__(self, config: PretrainedConfig, backbone: nn.Module, *, act: str, eps: float):
        super().__init__(config, backbone)
        self.mlm = MaskedLMHead(config.hidden_size, config.vocab_size, act, eps)
        self.tie_weights()

    def masked_lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The vocabulary logits for hidden states of any leading shape."""
        return self.mlm(hidden)  # type: ignore[no-any-return]

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
        base = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
        )
        logits = self.masked_lm_logits(base.last_hidden_state)  # (batch, seq, vocab)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1))
        out = MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=base.hidden_states, attentions=base.attentions
        )
        return out if return_dict else out.to_tuple()
