"""Build a Cove causal LM from a GGUF file (see cove.checkpoint.gguf for the file side)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cove.checkpoint.gguf import GGUFFile
from cove.errors import ConfigError
from cove.models import registry
from cove.models.modeling import resolve_dtype


def model_from_gguf(cls: Any, path: Path, *, name: str, **kwargs: Any) -> Any:
    dtype = kwargs.pop("dtype", None) or kwargs.pop("torch_dtype", None)
    device = kwargs.pop("device", None)
    for ignored in ("revision", "config"):
        if kwargs.pop(ignored, None) is not None and ignored == "config":
            raise ConfigError("config= cannot be combined with a GGUF file: the file carries its own config.")
    source = GGUFFile(path)
    wanted = registry.model_class("causal-lm", source.model_type)
    if not issubclass(wanted, cls) and not issubclass(cls, wanted):
        raise ConfigError(f"{path} holds a {source.model_type!r} model; load it with AutoModelForCausalLM.")
    target = wanted if issubclass(wanted, cls) else cls
    config = registry.config_class(source.model_type).from_dict(source.config(), **kwargs)
    config.name_or_path = name
    model = target._from_state_dict(
        config, source.state_dict(), source=str(path), ignore_mismatched_sizes=False
    )
    torch_dtype = resolve_dtype(dtype, config)
    if torch_dtype is not None:
        model = model.to(torch_dtype)
    if device is not None:
        model = model.to(device)
    from cove.generation.config import GenerationConfig

    model.generation_config = GenerationConfig.from_model_config(config)
    return model.eval()
