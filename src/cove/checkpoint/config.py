"""config.json <-> config dataclasses.

Each family's config is a dataclass whose fields are that family's config.json keys. Keys a family does not
know are kept in ``extra`` and written back on save, so nothing in a checkpoint's config is lost; keys whose
values would change the maths in a way Cove does not implement raise (each family checks its own in
``validate``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cove.errors import ConfigError, MissingFileError

CONFIG_NAME = "config.json"

_DTYPES = {"float32", "float16", "bfloat16", "auto"}


@dataclass
class PretrainedConfig:
    """Fields every family shares. Subclasses add their own config.json keys as fields."""

    model_type: ClassVar[str] = ""
    # config.json keys with a different meaning across families are renamed attributes here
    attribute_map: ClassVar[dict[str, str]] = {}

    architectures: list[str] | None = None
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    tie_word_embeddings: bool = True
    dtype: str | None = None
    output_hidden_states: bool = False
    output_attentions: bool = False
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    name_or_path: str = field(default="", repr=False)

    _PROBLEM_TYPES: ClassVar[tuple[str, ...]] = (
        "regression",
        "single_label_classification",
        "multi_label_classification",
    )

    def __post_init__(self) -> None:
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        if self.label2id is not None:
            self.label2id = {str(k): int(v) for k, v in self.label2id.items()}
        if self.id2label is None and self.label2id:
            self.id2label = {v: k for k, v in self.label2id.items()}
        elif self.id2label is None:
            self.num_labels = 2
        elif self.label2id is None:
            self.label2id = {v: k for k, v in self.id2label.items()}
        if self.problem_type is not None and self.problem_type not in self._PROBLEM_TYPES:
            raise ConfigError(
                f"problem_type={self.problem_type!r} is not supported; use one of {list(self._PROBLEM_TYPES)}."
            )
        if self.dtype is not None and self.dtype not in _DTYPES:
            raise ConfigError(
                f"dtype={self.dtype!r} in config is not supported; use one of {sorted(_DTYPES)}."
            )
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for values this family does not implement."""

    # -- labels -------------------------------------------------------------------------------

    @property
    def num_labels(self) -> int:
        return len(self.id2label) if self.id2label is not None else 2

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if not isinstance(n, int) or n < 1:
            raise ConfigError(f"num_labels must be a positive integer, got {n!r}.")
        if self.id2label is None or len(self.id2label) != n:
            self.id2label = {i: f"LABEL_{i}" for i in range(n)}
            self.label2id = {v: k for k, v in self.id2label.items()}

    # -- dict / json ---------------------------------------------------------------------------

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)} - {"extra", "name_or_path"}

    @classmethod
    def unknown_overrides(cls, data: dict[str, Any], overrides: dict[str, Any]) -> list[str]:
        """The override keys that are neither fields of this config nor keys of its config.json ``data``.

        Loaders raise on them: a keyword meant for something else (a misspelt option, a download setting)
        must not land in config.json, which ``save_pretrained``/``push_to_hub`` would then publish.
        """
        known = cls.field_names() | set(cls.attribute_map) | {"num_labels"} | set(data)
        return sorted(set(overrides) - known)

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> PretrainedConfig:
        data = dict(data)
        if "torch_dtype" in data:  # transformers 4 spelling
            data.setdefault("dtype", data.pop("torch_dtype"))
        data.pop("model_type", None)
        for old, new in cls.attribute_map.items():
            if old in data:
                data[new] = data.pop(old)
        # a num_labels key in the data (old config.json files carry one) counts as asked-for, as an override
        num_labels = overrides.pop("num_labels", data.pop("num_labels", None))
        data.update(overrides)
        names = cls.field_names()
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        relabel = num_labels is not None and "id2label" not in overrides
        if relabel and known.get("id2label") is not None and len(known["id2label"]) != num_labels:
            known.pop("id2label")
            known.pop("label2id", None)
        config = cls(**known, extra=extra)
        if num_labels is not None:
            config.num_labels = num_labels
        return config

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        reverse = {new: old for old, new in self.attribute_map.items()}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "name_or_path"):
                continue
            value = copy.deepcopy(getattr(self, f.name))
            if f.name == "id2label" and value is not None:
                value = {str(k): v for k, v in value.items()}
            out[reverse.get(f.name, f.name)] = value
        out.update(copy.deepcopy(self.extra))
        out["model_type"] = self.model_type
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> None:
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_NAME).write_text(self.to_json_string(), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, name_or_path: Any, **kwargs: Any) -> Any:
        """Read config.json of a folder or hub name; keywords: the download ones (``HubOptions``), config
        overrides, and ``return_unused_kwargs=True`` to get ``(config, unused)`` instead of a TypeError
        for keywords that are not fields."""
        return load_config(name_or_path, kwargs, lambda data: cls, caller=f"{cls.__name__}.from_pretrained")

    def __getattr__(self, name: str) -> Any:
        # keys kept in `extra` read like attributes, as in transformers
        extra = self.__dict__.get("extra")
        if extra is not None and name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def load_config(
    name_or_path: Any,
    kwargs: dict[str, Any],
    config_class: Any,
    *,
    caller: str,
) -> Any:
    """config.json of a folder or hub name, as the config class ``config_class(data)`` picks.

    ``kwargs`` holds the download keywords, ``return_unused_kwargs`` and the config overrides; an override
    that is not a field (nor a key of config.json) raises TypeError naming it.
    """
    from cove.hub.resolve import HubOptions, name_of, resolve

    hub = HubOptions.pop_from(kwargs)
    return_unused = bool(kwargs.pop("return_unused_kwargs", False))
    snapshot = resolve(name_or_path, hub)
    data = read_config_dict(snapshot.folder(hub.subfolder))
    cls = config_class(data)
    unknown = {k: kwargs.pop(k) for k in cls.unknown_overrides(data, kwargs)}
    if unknown and not return_unused:
        raise TypeError(
            f"{caller}() got unexpected keyword argument(s) {sorted(unknown)}: they are neither download "
            f"options nor fields of {cls.__name__}."
        )
    config = cls.from_dict(data, **kwargs)
    config.name_or_path = name_of(name_or_path)
    if snapshot.commit:  # as transformers records it; not a field, so never saved
        config._commit_hash = snapshot.commit
    return (config, unknown) if return_unused else config


def read_config_dict(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise MissingFileError(
            f"No {CONFIG_NAME} in {folder}: a model folder needs one (save it with save_pretrained)."
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); fix or re-save the config.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object, found {type(data).__name__}.")
    return data
