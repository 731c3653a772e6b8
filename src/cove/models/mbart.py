"""mBART: BART's layers normalised before each residual (pre-norm) with a final layer norm on each stack, and
labels shifted right by wrapping each row's last non-pad token (its language id) to the front instead of a
fixed decoder start token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cove.checkpoint.weight_map import WeightMap
from cove.errors import ConfigError
from cove.models.bart import (
    BART_WEIGHT_MAP,
    BartConfig,
    BartForConditionalGeneration,
    BartModel,
    _tied_copies,
)

MBART_WEIGHT_MAP = {
    **BART_WEIGHT_MAP,
    "encoder.layer_norm": "encoder.layer_norm",
    "decoder.layer_norm": "decoder.layer_norm",
}


@dataclass
class MBartConfig(BartConfig):
    model_type = "mbart"
    pre_norm: ClassVar[bool] = True

    decoder_start_token_id: int | None = None


def shift_tokens_right_wrapping(labels: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """mBART's decoder inputs: each row's last non-pad token (the language id) first, then labels[:-1];
    -100 (ignored) becomes pad."""
    if pad_token_id is None:
        raise ConfigError("config.pad_token_id is not set: it is needed to build decoder inputs from labels.")
    tokens = labels.masked_fill(labels == -100, pad_token_id)
    last = (tokens.ne(pad_token_id).sum(dim=1) - 1).unsqueeze(-1)  # (batch, 1)
    starts = tokens.gather(1, last).squeeze(-1)
    shifted = tokens.clone()
    shifted[:, 1:] = tokens[:, :-1]
    shifted[:, 0] = starts
    return shifted


class MBartModel(BartModel):
    config_class = MBartConfig
    weight_map = WeightMap(MBART_WEIGHT_MAP)

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(MBART_WEIGHT_MAP)

    def _shift_right(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right_wrapping(labels, self.config.pad_token_id)


class MBartForConditionalGeneration(BartForConditionalGeneration):
    config_class = MBartConfig
    weight_map = WeightMap(MBART_WEIGHT_MAP).prefixed("model") | WeightMap(
        {"lm_head": "lm_head", "final_logits_bias": "final_logits_bias"}
    )
    aliases = _tied_copies("model", "shared")
    base_class = MBartModel

    @classmethod
    def base_rules(cls) -> WeightMap:
        return WeightMap(MBART_WEIGHT_MAP)
