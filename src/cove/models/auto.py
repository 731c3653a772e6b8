"""The Auto* front doors: pick the family from config.json's model_type, then the task's class."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, ClassVar

from cove.checkpoint.config import PretrainedConfig, load_config, read_config_dict
from cove.errors import ConfigError
from cove.hub.resolve import HubOptions, Snapshot, resolve
from cove.models import registry


class AutoConfig:
    def __init__(self) -> None:
        raise TypeError(
            "AutoConfig is a factory: use AutoConfig.from_pretrained(name) or AutoConfig.for_model(type)."
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Any, **kwargs: Any) -> Any:
        """config.json as its family's config class; keywords as ``PretrainedConfig.from_pretrained``."""
        return load_config(
            pretrained_model_name_or_path,
            kwargs,
            lambda data: registry.config_class(data.get("model_type")),
            caller="AutoConfig.from_pretrained",
        )

    @classmethod
    def for_model(cls, model_type: str, **kwargs: Any) -> PretrainedConfig:
        return registry.config_class(model_type).from_dict({}, **kwargs)


class _AutoModel:
    task: ClassVar[str] = "base"

    def __init__(self) -> None:
        raise TypeError(
            f"{type(self).__name__} is a factory: use .from_pretrained(name) or .from_config(config)."
        )

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str] | Snapshot, **kwargs: Any
    ) -> Any:
        """Pick the class from config.json's model_type (or the GGUF file's architecture), then load it from
        the same resolved snapshot; keywords as ``PreTrainedModel.from_pretrained``."""
        from cove.models.modeling import LoadOptions  # torch: only when a model is loaded, not a config

        hub = HubOptions.pop_from(kwargs)
        options = LoadOptions.pop_from(kwargs)
        snapshot = resolve(pretrained_model_name_or_path, hub)
        config = options.config
        model_type: str | None
        if isinstance(config, PretrainedConfig):
            model_type = config.model_type
        elif config is not None:  # a name or path to read config.json from, resolved once too
            config_snapshot = resolve(config, hub)
            options = dataclasses.replace(options, config=config_snapshot)
            model_type = read_config_dict(config_snapshot.folder(hub.subfolder)).get("model_type")
        else:
            from cove.checkpoint.gguf import find_gguf

            folder = snapshot.folder(hub.subfolder)
            gguf = find_gguf(snapshot.name, folder, options.gguf_file)
            if gguf is not None and cls.task != "causal-lm":
                raise ConfigError(f"{gguf} is a GGUF file: load it with AutoModelForCausalLM.")
            if gguf is not None:
                from cove.models.gguf import gguf_model_type

                model_type = gguf_model_type(gguf)
            else:
                model_type = read_config_dict(folder).get("model_type")
        return registry.model_class(cls.task, model_type)._load(snapshot, hub, options, kwargs)

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
