"""The Auto* front doors: pick the family from config.json's model_type, then the task's class."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from cove.checkpoint.config import PretrainedConfig, read_config_dict
from cove.errors import ConfigError
from cove.models import registry


class AutoConfig:
    def __init__(self) -> None:
        raise TypeError(
            "AutoConfig is a factory: use AutoConfig.from_pretrained(name) or AutoConfig.for_model(type)."
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any
    ) -> PretrainedConfig:
        from cove.hub.resolve import resolve_model_dir

        folder = resolve_model_dir(pretrained_model_name_or_path, revision=kwargs.pop("revision", None))
        raw = read_config_dict(folder)
        config = registry.config_class(raw.get("model_type")).from_dict(raw, **kwargs)
        config.name_or_path = str(pretrained_model_name_or_path)
        return config

    @classmethod
    def for_model(cls, model_type: str, **kwargs: Any) -> PretrainedConfig:
        return registry.config_class(model_type).from_dict(kwargs)


class _AutoModel:
    task: ClassVar[str] = "base"

    def __init__(self) -> None:
        raise TypeError(
            f"{type(self).__name__} is a factory: use .from_pretrained(name) or .from_config(config)."
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike[str], **kwargs: Any) -> Any:
        config = kwargs.get("config")
        if config is None:
            from cove.hub.resolve import resolve_model_dir

            folder = resolve_model_dir(pretrained_model_name_or_path, revision=kwargs.get("revision"))
            from cove.checkpoint.gguf import find_gguf

            gguf = find_gguf(pretrained_model_name_or_path, folder, kwargs.get("gguf_file"))
            if gguf is not None and cls.task != "causal-lm":
                raise ConfigError(f"{gguf} is a GGUF file: load it with AutoModelForCausalLM.")
            model_type: str | None
            if gguf is not None:
                from cove.models.gguf import gguf_model_type

                model_type = gguf_model_type(gguf)
            else:
                model_type = read_config_dict(folder).get("model_type")
        else:
            model_type = config.model_type
        return registry.model_class(cls.task, model_type).from_pretrained(
            pretrained_model_name_or_path, **kwargs
        )

    @classmethod
    def from_config(cls, config: PretrainedConfig, **_: Any) -> Any:
        model = registry.model_class(cls.task, config.model_type)(config)
        model.post_init()
        return model


class AutoModel(_AutoModel):
    task = "base"


class AutoModelForSequenceClassification(_AutoModel):
    task = "sequence-classification"


class AutoModelForTokenClassification(_AutoModel):
    task = "token-classification"


class AutoModelForQuestionAnswering(_AutoModel):
    task = "question-answering"


class AutoModelForMaskedLM(_AutoModel):
    task = "masked-lm"


class AutoModelForCausalLM(_AutoModel):
    task = "causal-lm"


class AutoModelForSeq2SeqLM(_AutoModel):
    task = "seq2seq-lm"
