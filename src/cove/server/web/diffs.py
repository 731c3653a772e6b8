"""What changed between two versions of a file, as data the commit page renders: a unified diff of text
(with line numbers, capped), a key-by-key diff of JSON/YAML mappings (config.json, the card's front
matter; nested keys dotted, list items indexed), and a tensor diff of two weight headers (tensors added,
removed, changed in shape or dtype, and the parameter-count change). Pure functions, no I/O."""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from cove.server.web.weights import Tensor, WeightsHeader

MAX_DIFF_LINES = 2000  # lines one file's diff shows
MAX_KEYS = 10_000  # flattened keys one mapping yields; past it the rest are one "..." entry
_SIMPLE_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


# --- text -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # "hunk" | "context" | "add" | "del"
    text: str
    old_no: int | None = None
    new_no: int | None = None


@dataclass(frozen=True)
class TextDiff:
    lines: tuple[DiffLine, ...]
    added: int
    removed: int
    truncated: bool  # more lines changed than the diff shows

    @property
    def unchanged(self) -> bool:
        return self.added == 0 and self.removed == 0


def text_diff(old: str, new: str, *, context: int = 3, max_lines: int = MAX_DIFF_LINES) -> TextDiff:
    """The unified diff of two texts, hunk by hunk, showing at most max_lines lines."""
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=len(a) + len(b) > 2000)
    added = removed = 0
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            removed += i2 - i1
        if tag in ("replace", "insert"):
            added += j2 - j1
    lines: list[DiffLine] = []
    truncated = False
    for group in matcher.get_grouped_opcodes(context):
        if len(lines) >= max_lines:
            truncated = True
            break
        first, last = group[0], group[-1]
        old_start, old_len = first[1], last[2] - first[1]
        new_start, new_len = first[3], last[4] - first[3]
        lines.append(DiffLine("hunk", f"@@ -{old_start + 1},{old_len} +{new_start + 1},{new_len} @@"))
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                lines += [DiffLine("context", a[i], i + 1, j1 + k + 1) for k, i in enumerate(range(i1, i2))]
                continue
            lines += [DiffLine("del", a[i], i + 1, None) for i in range(i1, i2)]
            lines += [DiffLine("add", b[j], None, j + 1) for j in range(j1, j2)]
    if len(lines) > max_lines:
        lines, truncated = lines[:max_lines], True
    return TextDiff(tuple(lines), added, removed, truncated)


# --- mappings ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyChange:
    key: str
    kind: str  # "added" | "removed" | "changed"
    old: Any = None
    new: Any = None


def _join(prefix: str, key: str) -> str:
    part = key if _SIMPLE_KEY.match(key) else json.dumps(key)
    return f"{prefix}.{part}" if prefix else part


def flatten(value: Any, prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested mappings as dotted keys (`a.b.c`), lists of mappings indexed (`model-index[0].name`);
    other lists and scalars are leaf values. Keys that are not plain words are quoted."""
    out = {} if out is None else out
    if len(out) >= MAX_KEYS:
        out.setdefault(f"{prefix}...", "(more keys not compared)")
        return out
    if isinstance(value, dict) and value:
        for key, item in value.items():
            flatten(item, _join(prefix, str(key)), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            flatten(item, f"{prefix}[{i}]", out)
    else:
        out[prefix or "(root)"] = value
    return out


def key_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[KeyChange]:
    """Keys added, removed and changed between two mappings, in key order."""
    a = flatten(old) if old else {}
    b = flatten(new) if new else {}
    changes = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            changes.append(KeyChange(key, "added", new=b[key]))
        elif key not in b:
            changes.append(KeyChange(key, "removed", old=a[key]))
        elif _canonical(a[key]) != _canonical(b[key]):
            changes.append(KeyChange(key, "changed", a[key], b[key]))
    return changes


def _canonical(value: Any) -> str:
    # 1 and 1.0 are the same config value; True and 1 are not
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, default=str)


def show_value(value: Any, limit: int = 300) -> str:
    """A value as the diff shows it: JSON, cut to limit characters."""
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- weights ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorChange:
    name: str
    kind: str  # "added" | "removed" | "changed"
    old: Tensor | None = None
    new: Tensor | None = None


@dataclass(frozen=True)
class TensorDiff:
    changes: tuple[TensorChange, ...]
    old_params: int
    new_params: int
    unchanged: int  # tensors with the same name, dtype and shape (their values may still differ)

    @property
    def param_delta(self) -> int:
        return self.new_params - self.old_params

    def count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)


def tensor_diff(old: WeightsHeader | None, new: WeightsHeader | None) -> TensorDiff:
    """Tensors added, removed and changed in shape or dtype between two headers (None: no file)."""
    a = old.tensor_map() if old is not None else {}
    b = new.tensor_map() if new is not None else {}
    changes = []
    same = 0
    for name in sorted(set(a) | set(b)):
        if name not in a:
            changes.append(TensorChange(name, "added", new=b[name]))
        elif name not in b:
            changes.append(TensorChange(name, "removed", old=a[name]))
        elif (a[name].dtype, a[name].shape) != (b[name].dtype, b[name].shape):
            changes.append(TensorChange(name, "changed", a[name], b[name]))
        else:
            same += 1
    return TensorDiff(
        tuple(changes),
        old.total_params if old is not None else 0,
        new.total_params if new is not None else 0,
        same,
    )
