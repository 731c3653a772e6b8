"""Cove: a self-hosted, offline-first NLP platform.

Public names follow transformers, datasets and evaluate, so code ports by changing the import.
Everything is exported lazily: ``import cove`` imports neither torch, pyarrow nor fastapi.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # configs, tokenizers, models
    "AutoConfig": "cove.models.auto",
    "AutoTokenizer": "cove.tokenization.auto",
    "PreTrainedTokenizerFast": "cove.tokenization.tokenizer",
    "BatchEncoding": "cove.tokenization.tokenizer",
    # the family tokenizer names tutorials import (transformers 5: the Fast names are the same classes)
    "GPT2Tokenizer": "cove.tokenization.classes",
    "GPT2TokenizerFast": "cove.tokenization.classes",
    "BertTokenizer": "cove.tokenization.classes",
    "BertTokenizerFast": "cove.tokenization.classes",
    "DistilBertTokenizer": "cove.tokenization.classes",
    "DistilBertTokenizerFast": "cove.tokenization.classes",
    "RobertaTokenizer": "cove.tokenization.classes",
    "RobertaTokenizerFast": "cove.tokenization.classes",
    "T5Tokenizer": "cove.tokenization.classes",
    "T5TokenizerFast": "cove.tokenization.classes",
    "BartTokenizer": "cove.tokenization.classes",
    "BartTokenizerFast": "cove.tokenization.classes",
    "MarianTokenizer": "cove.tokenization.classes",
    "LlamaTokenizer": "cove.tokenization.classes",
    "LlamaTokenizerFast": "cove.tokenization.classes",
    "AutoModel": "cove.models.auto",
    "AutoModelForSequenceClassification": "cove.models.auto",
    "AutoModelForTokenClassification": "cove.models.auto",
    "AutoModelForQuestionAnswering": "cove.models.auto",
    "AutoModelForMaskedLM": "cove.models.auto",
    "AutoModelForCausalLM": "cove.models.auto",
    "AutoModelForSeq2SeqLM": "cove.models.auto",
    "BertConfig": "cove.models.bert",
    "BertModel": "cove.models.bert",
    "BertForSequenceClassification": "cove.models.bert",
    "BertForTokenClassification": "cove.models.bert",
    "BertForQuestionAnswering": "cove.models.bert",
    "BertForMaskedLM": "cove.models.bert",
    "DistilBertConfig": "cove.models.distilbert",
    "DistilBertModel": "cove.models.distilbert",
    "DistilBertForSequenceClassification": "cove.models.distilbert",
    "DistilBertForTokenClassification": "cove.models.distilbert",
    "DistilBertForQuestionAnswering": "cove.models.distilbert",
    "DistilBertForMaskedLM": "cove.models.distilbert",
    "RobertaConfig": "cove.models.roberta",
    "RobertaModel": "cove.models.roberta",
    "RobertaForSequenceClassification": "cove.models.roberta",
    "RobertaForTokenClassification": "cove.models.roberta",
    "RobertaForQuestionAnswering": "cove.models.roberta",
    "RobertaForMaskedLM": "cove.models.roberta",
    # decoder language models and generation
    "GPT2Config": "cove.models.gpt2",
    "GPT2Model": "cove.models.gpt2",
    "GPT2LMHeadModel": "cove.models.gpt2",
    "LlamaConfig": "cove.models.llama",
    "LlamaModel": "cove.models.llama",
    "LlamaForCausalLM": "cove.models.llama",
    "Qwen2Config": "cove.models.llama",
    "Qwen2Model": "cove.models.llama",
    "Qwen2ForCausalLM": "cove.models.llama",
    "MistralConfig": "cove.models.llama",
    "MistralModel": "cove.models.llama",
    "MistralForCausalLM": "cove.models.llama",
    # encoder-decoder models
    "T5Config": "cove.models.t5",
    "T5Model": "cove.models.t5",
    "T5ForConditionalGeneration": "cove.models.t5",
    "T5EncoderModel": "cove.models.t5",
    "MT5Config": "cove.models.t5",
    "MT5Model": "cove.models.t5",
    "MT5ForConditionalGeneration": "cove.models.t5",
    "MT5EncoderModel": "cove.models.t5",
    "BartConfig": "cove.models.bart",
    "BartModel": "cove.models.bart",
    "BartForConditionalGeneration": "cove.models.bart",
    "MBartConfig": "cove.models.mbart",
    "MBartModel": "cove.models.mbart",
    "MBartForConditionalGeneration": "cove.models.mbart",
    "MarianConfig": "cove.models.marian",
    "MarianModel": "cove.models.marian",
    "MarianMTModel": "cove.models.marian",
    "GenerationConfig": "cove.checkpoint.generation_config",
    "TextIteratorStreamer": "cove.generation.streamers",
    "TextStreamer": "cove.generation.streamers",
    # pipelines
    "pipeline": "cove.pipelines",
    # datasets and metrics
    "load_dataset": "cove.data",
    "load_from_disk": "cove.data",
    "Dataset": "cove.data",
    "DatasetDict": "cove.data",
    "IterableDataset": "cove.data",
    "Features": "cove.data",
    "Value": "cove.data",
    "ClassLabel": "cove.data",
    "Sequence": "cove.data",
    "load_metric": "cove.metrics",
    # training
    "Trainer": "cove.training",
    "TrainingArguments": "cove.training",
    "DataCollatorWithPadding": "cove.training",
    "DataCollatorForTokenClassification": "cove.training",
    "DataCollatorForLanguageModeling": "cove.training",
    "default_data_collator": "cove.training",
    "EarlyStoppingCallback": "cove.training",
    "TrainerCallback": "cove.training",
    "EvalPrediction": "cove.training",
    "set_seed": "cove.training",
    "Accelerator": "cove.training.accelerator",
}

__all__ = sorted(_EXPORTS)


# subpackages reachable as attributes (`cove.metrics.load(...)` after a plain `import cove`), imported on first use
_SUBMODULES = {
    "checkpoint",
    "cli",
    "demo",
    "data",
    "errors",
    "generation",
    "hardware",
    "hub",
    "metrics",
    "models",
    "pipelines",
    "server",
    "tokenization",
    "training",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"cove.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cove' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
