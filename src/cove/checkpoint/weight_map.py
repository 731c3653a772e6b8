"""Checkpoint weight names <-> Cove's module names.

Each family declares a map from the checkpoint's module paths to Cove's, templated with ``{}`` for a layer
index (torchtune's convert_weights style):

    {"encoder.layer.{}.attention.self.query": "layers.{}.attn.q", ...}

A rule matches a whole module path prefix; the parameter name after it (``.weight``, ``.bias``) is kept.
``apply_weight_map`` fails loudly on names no rule covers; ``invert`` gives the map for saving.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

from cove.errors import CheckpointError

T = TypeVar("T")


class WeightMap:
    def __init__(self, rules: Mapping[str, str]):
        self.rules = dict(rules)
        self._compiled = [(self._compile(src), dst) for src, dst in self.rules.items()]

    @staticmethod
    def _compile(template: str) -> re.Pattern[str]:
        parts = [re.escape(p) for p in template.split("{}")]
        return re.compile("^" + r"(\d+)".join(parts) + r"(?=\.|$)")

    def rename(self, name: str) -> str | None:
        """Cove's name for a checkpoint name, or None when no rule covers it."""
        for pattern, dst in self._compiled:
            match = pattern.match(name)
            if match:
                return dst.format(*match.groups()) + name[match.end() :]
        return None

    def invert(self) -> WeightMap:
        return WeightMap({dst: src for src, dst in self.rules.items()})

    def prefixed(self, prefix: str) -> WeightMap:
        if not prefix:
            return self
        return WeightMap({f"{prefix}.{src}": f"{prefix}.{dst}" for src, dst in self.rules.items()})

    def __or__(self, other: WeightMap) -> WeightMap:
        return WeightMap({**self.rules, **other.rules})


def apply_weight_map(
    state: Mapping[str, T], weight_map: WeightMap, *, source: str = "checkpoint"
) -> dict[str, T]:
    """Rename every key of ``state`` through ``weight_map``; a key no rule covers raises, naming it."""
    out: dict[str, T] = {}
    unknown = []
    for key, value in state.items():
        new = weight_map.rename(key)
        if new is None:
            unknown.append(key)
        elif new in out:
            raise CheckpointError(
                f"Two {source} keys map to {new!r} (one is {key!r}); the checkpoint is ambiguous."
            )
        else:
            out[new] = value
    if unknown:
        raise CheckpointError(f"{source} has keys this model does not know: {_preview(unknown)}.")
    return out


def _preview(keys: Iterable[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
