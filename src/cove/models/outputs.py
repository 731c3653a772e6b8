"""Model outputs: attribute access like transformers' ModelOutput, plus dict and tuple access."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any


class ModelOutput(OrderedDict):
    """A dataclass that is also an ordered dict of its non-None fields (so ``out[0]`` is the first one)."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                super().__setitem__(f.name, value)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return dict(self.items())[key]
        return self.to_tuple()[key]

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.keys() and value is not None:
            super().__setitem__(name, value)
        super().__setattr__(name, value)

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        super().__setattr__(key, value)

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self[k] for k in self.keys())


@dataclass(repr=False, eq=False)
class BaseModelOutput(ModelOutput):
    last_hidden_state: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(repr=False, eq=False)
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Any = None
    pooler_output: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(repr=False, eq=False)
class SequenceClassifierOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


class TokenClassifierOutput(SequenceClassifierOutput):
    """Same fields as SequenceClassifierOutput; logits are per token."""


@dataclass(repr=False, eq=False)
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Any = None
    start_logits: Any = None
    end_logits: Any = None
    hidden_states: Any = None
    attentions: Any = None


class MaskedLMOutput(SequenceClassifierOutput):
    """Same fields as SequenceClassifierOutput; logits are per token."""


@dataclass(repr=False, eq=False)
class CausalLMOutputWithPast(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(repr=False, eq=False)
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: Any = None
    past_key_values: Any = None
    hidden_states: Any = None
    attentions: Any = None


@dataclass(repr=False, eq=False)
class Seq2SeqModelOutput(ModelOutput):
    last_hidden_state: Any = None
    past_key_values: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None

    @property
    def cache(self) -> Any:  # transformers 5's name for past_key_values
        return self.past_key_values


@dataclass(repr=False, eq=False)
class Seq2SeqLMOutput(ModelOutput):
    loss: Any = None
    logits: Any = None
    past_key_values: Any = None
    decoder_hidden_states: Any = None
    decoder_attentions: Any = None
    cross_attentions: Any = None
    encoder_last_hidden_state: Any = None
    encoder_hidden_states: Any = None
    encoder_attentions: Any = None

    @property
    def cache(self) -> Any:  # transformers 5's name for past_key_values
        return self.past_key_values
