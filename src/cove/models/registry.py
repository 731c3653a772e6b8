"""model_type and architecture names -> Cove's classes, resolved lazily (a family's module is imported only
when one of its models is used)."""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from cove.errors import ConfigError

# model_type -> the module of that family
FAMILIES: dict[str, str] = {
    "bert": "cove.models.bert",
    "distilbert": "cove.models.distilbert",
    "roberta": "cove.models.roberta",
    "gpt2": "cove.models.gpt2",
    "llama": "cove.models.llama",
    "qwen2": "cove.models.llama",
    "mistral": "cove.models.llama",
    "t5": "cove.models.t5",
    "mt5": "cove.models.t5",
    "bart": "cove.models.bart",
    "mbart": "cove.models.mbart",
    "marian": "cove.models.marian",
}

# model_type -> config class name
CONFIGS: dict[str, str] = {
    "bert": "BertConfig",
    "distilbert": "DistilBertConfig",
    "roberta": "RobertaConfig",
    "gpt2": "GPT2Config",
    "llama": "LlamaConfig",
    "qwen2": "Qwen2Config",
    "mistral": "MistralConfig",
    "t5": "T5Config",
    "mt5": "MT5Config",
    "bart": "BartConfig",
    "mbart": "MBartConfig",
    "marian": "MarianConfig",
}

# task -> model_type -> class name
TASKS: dict[str, dict[str, str]] = {
    "base": {
        "bert": "BertModel",
        "distilbert": "DistilBertModel",
        "roberta": "RobertaModel",
        "gpt2": "GPT2Model",
        "llama": "LlamaModel",
        "qwen2": "Qwen2Model",
        "mistral": "MistralModel",
        "t5": "T5Model",
        "mt5": "MT5Model",
        "bart": "BartModel",
        "mbart": "MBartModel",
        "marian": "MarianModel",
    },
    "sequence-classification": {
        "bert": "BertForSequenceClassification",
        "distilbert": "DistilBertForSequenceClassification",
        "roberta": "RobertaForSequenceClassification",
    },
    "token-classification": {
        "bert": "BertForTokenClassification",
        "distilbert": "DistilBertForTokenClassification",
        "roberta": "RobertaForTokenClassification",
    },
    "question-answering": {
        "bert": "BertForQuestionAnswering",
        "distilbert": "DistilBertForQuestionAnswering",
        "roberta": "RobertaForQuestionAnswering",
    },
    "masked-lm": {
        "bert": "BertForMaskedLM",
        "distilbert": "DistilBertForMaskedLM",
        "roberta": "RobertaForMaskedLM",
    },
    "causal-lm": {
        "gpt2": "GPT2LMHeadModel",
        "llama": "LlamaForCausalLM",
        "qwen2": "Qwen2ForCausalLM",
        "mistral": "MistralForCausalLM",
    },
    "seq2seq-lm": {
        "t5": "T5ForConditionalGeneration",
        "mt5": "MT5ForConditionalGeneration",
        "bart": "BartForConditionalGeneration",
        "mbart": "MBartForConditionalGeneration",
        "marian": "MarianMTModel",
    },
}


def _family(model_type: str | None) -> str:
    if not model_type:
        raise ConfigError("config.json has no 'model_type': Cove cannot tell which model family it is.")
    if model_type not in FAMILIES:
        close = difflib.get_close_matches(model_type, list(FAMILIES), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ConfigError(
            f"model_type={model_type!r} is not supported by Cove.{hint} Supported: {sorted(FAMILIES)}."
        )
    return FAMILIES[model_type]


def config_class(model_type: str | None) -> Any:
    module = importlib.import_module(_family(model_type))
    return getattr(module, CONFIGS[model_type])  # type: ignore[index]


def model_class(task: str, model_type: str | None) -> Any:
    module = importlib.import_module(_family(model_type))
    name = TASKS[task].get(model_type)  # type: ignore[arg-type]
    if name is None:
        supported = sorted(TASKS[task]) or "none yet"
        raise ConfigError(
            f"Cove has no {task} model for model_type={model_type!r}; {task} supports: {supported}."
        )
    return getattr(module, name)


def class_by_architecture(name: str) -> Any | None:
    """The Cove class named in config.json's `architectures`, if Cove has it."""
    for task_classes in TASKS.values():
        for model_type, class_name in task_classes.items():
            if class_name == name:
                return getattr(importlib.import_module(FAMILIES[model_type]), class_name)
    return None
