"""Build a Cove causal LM from a GGUF file (see cove.checkpoint.gguf for the file side).

The dequantized weights are cached on disk (cove.checkpoint.gguf_cache): the first load of a file
dequantizes it, later loads read float32 safetensors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cove.checkpoint import gguf_cache
from cove.checkpoint.gguf import GGUFFile
from cove.errors import CheckpointError, ConfigError
from cove.models import registry

logger = logging.getLogger(__name__)


def gguf_model_type(path: Path) -> str:
    """The Cove model_type of a GGUF file, read from its cache entry when there is one (parsing the file's
    metadata, vocabulary included, takes seconds)."""
    entry = None
    if gguf_cache.enabled():
        entry = gguf_cache.lookup(path) or gguf_cache.lookup(path, _packed_root())
    if entry is not None:
        try:
            model_type = json.loads((entry / "config.json").read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError):
            model_type = None
        if isinstance(model_type, str):
            return model_type
    return GGUFFile(path).model_type


def gguf_weights(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config dict, float32 state dict under transformers' names) for a GGUF file, from the disk cache when
    it holds a current entry, else dequantized (and cached)."""
    use_cache = gguf_cache.enabled()
    if use_cache:
        entry = gguf_cache.lookup(path)
        if entry is not None:
            from cove.checkpoint.weights import load_file

            try:
                config = json.loads((entry / "config.json").read_text(encoding="utf-8"))
                return config, load_file(entry / gguf_cache.WEIGHTS)
            except (OSError, ValueError, CheckpointError) as exc:
                logger.warning(
                    "GGUF cache entry %s is unreadable (%s); converting %s again.", entry, exc, path
                )
                gguf_cache.discard(entry)
    source = GGUFFile(path)
    config, state = source.config(), source.state_dict()
    if use_cache:
        try:
            gguf_cache.store(path, config, state)
        except OSError as exc:
            logger.warning(
                "Could not cache the dequantized %s under %s (%s); set COVE_CACHE to a writable folder, "
                "or COVE_GGUF_CACHE=0 to silence this.",
                path,
                gguf_cache.cache_root(),
                exc,
            )
    return config, state


def model_from_gguf(cls: Any, path: Path, *, name: str, options: Any, overrides: dict[str, Any]) -> Any:
    """The model in a GGUF file; ``options`` are the loader's ``LoadOptions``, ``overrides`` config values.

    ``quantization="gguf"`` keeps the file's quantized blocks as stored (cove.quant.gguf); otherwise the
    weights are dequantized (and ``quantization="int8"|"int4"`` requantizes them in ``options.place``)."""
    if options.config is not None:
        raise ConfigError("config= cannot be combined with a GGUF file: the file carries its own config.")
    packed_blocks = options.quantization == "gguf"
    if packed_blocks:
        from cove.hardware import device_type

        if device_type(options.device) != "cpu":
            from cove.errors import QuantizationError

            raise QuantizationError(
                f"quantization='gguf' runs on the CPU (Cove's packed kernels); device={options.device!r} was "
                "asked. Load without quantization= to put the dequantized model on that device."
            )
        config_dict, state, packed = gguf_packed_weights(path)
    else:
        config_dict, state = gguf_weights(path)
    model_type = config_dict["model_type"]
    target = _target_class(cls, path, model_type)
    config_class = registry.config_class(model_type)
    unknown = config_class.unknown_overrides(config_dict, overrides)
    if unknown:
        raise TypeError(
            f"{target.__name__}.from_pretrained() got unexpected keyword argument(s) {unknown}: they are "
            f"neither loading options nor fields of {config_class.__name__} (config overrides)."
        )
    config = config_class.from_dict(config_dict, **overrides)
    config.name_or_path = name
    if not packed_blocks:
        model = target._from_state_dict(config, state, source=str(path), ignore_mismatched_sizes=False)
        return options.place(model)
    import dataclasses

    from cove.quant.gguf import load_packed

    model = load_packed(target, config, state, packed, str(path))
    return dataclasses.replace(options, quantization=None).place(model)


def _target_class(cls: Any, path: Path, model_type: str) -> Any:
    wanted = registry.model_class("causal-lm", model_type)
    if not issubclass(wanted, cls) and not issubclass(cls, wanted):
        raise ConfigError(f"{path} holds a {model_type!r} model; load it with AutoModelForCausalLM.")
    return wanted if issubclass(wanted, cls) else cls


_PACKED_KEY = "_cove_packed"  # in a packed cache entry's config.json: tensor name -> [type name, in_features]


def _packed_root() -> Path:
    return gguf_cache.cache_root() / "packed"


def gguf_packed_weights(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(config dict, float tensors, packed blocks) of a GGUF file, from the disk cache when it holds a
    current entry (parsing a GGUF file's header and vocabulary takes seconds), else read (and cached)."""
    use_cache = gguf_cache.enabled()
    if use_cache:
        entry = gguf_cache.lookup(path, _packed_root())
        if entry is not None:
            from cove.checkpoint.weights import load_file

            try:
                config = json.loads((entry / "config.json").read_text(encoding="utf-8"))
                kinds = config.pop(_PACKED_KEY)
                state = load_file(entry / gguf_cache.WEIGHTS)
                packed = {k: (kinds[k][0], int(kinds[k][1]), state.pop(k)) for k in kinds}
                return config, state, packed
            except (OSError, ValueError, KeyError, TypeError, IndexError, CheckpointError) as exc:
                logger.warning(
                    "Packed GGUF cache entry %s is unreadable (%s); reading %s again.", entry, exc, path
                )
                gguf_cache.discard(entry)
    from cove.quant.gguf import read_packed

    source = GGUFFile(path)
    config = source.config()
    floats, packed = read_packed(source)
    if use_cache:
        stored = {**config, _PACKED_KEY: {k: [t, n] for k, (t, n, _) in packed.items()}}
        try:
            gguf_cache.store(
                path, stored, {**floats, **{k: b for k, (_, _, b) in packed.items()}}, _packed_root()
            )
        except OSError as exc:
            logger.warning("Could not cache the packed %s under %s (%s).", path, _packed_root(), exc)
    return config, floats, packed
