"""seqeval: entity-level precision/recall/f1 for IOB-style tag sequences, plus token accuracy.

Default mode is conlleval-compatible and reads IOB1, IOB2, IOE1, IOE2 and IOBES alike (a chunk starts
or ends wherever the tag prefixes or entity types say so). ``mode="strict"`` with a ``scheme`` only
counts entities that are well formed under that scheme, as seqeval's strict mode does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from cove.errors import MetricError

# --- default (conlleval) mode ----------------------------------------------------------------

_ENDS_AFTER = {("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")}
_STARTS_AT = {("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")}


def _split(tag: str, suffix: bool) -> tuple[str, str]:
    if suffix:
        return tag[-1:], tag[:-1].rsplit("-", maxsplit=1)[0] or "_"
    return tag[:1], tag[1:].split("-", maxsplit=1)[-1] or "_"


def get_entities(tags: list[str], suffix: bool = False) -> list[tuple[str, int, int]]:
    """(type, first, last) chunks of one tag sequence, inclusive offsets, conlleval rules."""
    chunks = []
    prev_prefix, prev_type, begin = "O", "", 0
    for i, tag in enumerate([*tags, "O"]):
        prefix, type_ = _split(tag, suffix)
        ends = (
            prev_prefix in ("E", "S")
            or (prev_prefix, prefix) in _ENDS_AFTER
            or (prev_prefix not in ("O", ".") and prev_type != type_)
        )
        if ends:
            chunks.append((prev_type, begin, i - 1))
        starts = (
            prefix in ("B", "S")
            or (prev_prefix, prefix) in _STARTS_AT
            or (prefix not in ("O", ".") and prev_type != type_)
        )
        if starts:
            begin = i
        prev_prefix, prev_type = prefix, type_
    return chunks


# --- strict mode -----------------------------------------------------------------------------
# Each scheme: allowed prefixes, then (previous prefix, current prefix, type condition) patterns
# for a token that starts an entity, continues one, and (as the token after it) ends one.
# "*" is any prefix; the condition is "same", "diff" or "any" entity type.

_Pattern = tuple[str, str, str]


def _patterns(text: str) -> set[_Pattern]:
    out = set()
    for item in text.split(","):
        prev, cur, cond = item.split()
        out.add((prev, cur, cond))
    return out


_SCHEMES: dict[str, tuple[str, set[_Pattern], set[_Pattern], set[_Pattern]]] = {
    "IOB1": (
        "IOB",
        _patterns("O I any, I I diff, B I any, I B same, B B same"),
        _patterns("B I same, I I same"),
        _patterns("I I diff, I O any, I B any, B O any, B I diff, B B same"),
    ),
    "IOE1": (
        "IOE",
        _patterns("O I any, I I diff, E I any, E E same"),
        _patterns("I I same, I E same"),
        _patterns("I I diff, I O any, I E diff, E I same, E E same"),
    ),
    "IOB2": (
        "IOB",
        _patterns("* B any"),
        _patterns("B I same, I I same"),
        _patterns("I O any, I I diff, I B any, B O any, B I diff, B B any"),
    ),
    "IOE2": (
        "IOE",
        _patterns("O I any, O E any, E I any, E E any, I I diff, I E diff"),
        _patterns("I E same, I I same"),
        _patterns("E * any"),
    ),
    "IOBES": (
        "IOBES",
        _patterns("* B any, * S any"),
        _patterns("B I same, B E same, I I same, I E same"),
        _patterns("S * any, E * any"),
    ),
    "BILOU": (
        "BILOU",
        _patterns("* B any, * U any"),
        _patterns("B I same, B L same, I I same, I L same"),
        _patterns("U * any, L * any"),
    ),
}
_PREFIXES = set("IOBESUL")


def _matches(prev: tuple[str, str], cur: tuple[str, str], patterns: set[_Pattern]) -> bool:
    for p_prefix, c_prefix, cond in patterns:
        if p_prefix not in ("*", prev[0]) or c_prefix not in ("*", cur[0]):
            continue
        if cond == "any" or (cond == "same") == (prev[1] == cur[1]):
            return True
    return False


def _strict_token(tag: str, suffix: bool, allowed: str, scheme: str) -> tuple[str, str]:
    prefix = tag[-1:] if suffix else tag[:1]
    body = tag[:-1] if suffix else tag[1:]
    if prefix not in allowed:
        raise MetricError(
            f"seqeval: tag {tag!r} is not valid under scheme {scheme}; allowed prefixes: {', '.join(allowed)}."
        )
    return prefix, body.strip("-") or "_"


def strict_entities(tags: list[str], scheme: str, suffix: bool = False) -> list[tuple[str, int, int]]:
    """(type, start, end-exclusive) entities that are well formed under ``scheme``."""
    allowed, starts, insides, ends = _SCHEMES[scheme]
    tokens = [_strict_token(t, suffix, allowed, scheme) for t in tags] + [("O", "_")]
    entities = []
    prev = ("O", "_")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if _matches(prev, token, starts):
            end, last = i + 1, token
            while end < len(tokens) and _matches(last, tokens[end], insides):
                last = tokens[end]
                end += 1
            if end < len(tokens) and _matches(tokens[end - 1], tokens[end], ends):
                entities.append((token[1], i, end))
            i = end
        else:
            i += 1
        prev = tokens[i - 1]
    return entities


def detect_scheme(sequences: Iterable[list[str]], suffix: bool = False) -> str:
    """seqeval's auto_detect: IOB2, IOE2, IOBES or BILOU from the set of prefixes used."""
    prefixes = set()
    for seq in sequences:
        for tag in seq:
            prefix = tag[-1:] if suffix else tag[:1]
            if prefix not in _PREFIXES:
                raise MetricError(
                    f"seqeval: tag {tag!r} has no scheme prefix (one of {''.join(sorted(_PREFIXES))})."
                )
            prefixes.add(prefix)
    core = prefixes - {"O", "I"}
    # Each scheme's own marker prefixes; I and O may appear in any of them.
    for scheme, markers in (
        ("IOB2", {"B"}),
        ("IOE2", {"E"}),
        ("IOBES", {"B", "E", "S"}),
        ("BILOU", {"B", "L", "U"}),
    ):
        if not core or not core <= markers:
            continue
        # a lone S (U) tag set counts only when nothing else occurs, as in seqeval
        if scheme == "IOBES" and not (core in ({"B", "E"}, {"B", "E", "S"}) or prefixes == {"S"}):
            continue
        if scheme == "BILOU" and not (core in ({"B", "L"}, {"B", "L", "U"}) or prefixes == {"U"}):
            continue
        return scheme
    raise MetricError(
        f"seqeval: cannot detect the tagging scheme from prefixes {sorted(prefixes)}; pass scheme= "
        f"(one of {', '.join(_SCHEMES)})."
    )


# --- scores ----------------------------------------------------------------------------------


def _divide(num: float, den: float, zero_division: Any) -> float:
    if den == 0:
        return 0.0 if zero_division in ("warn", 0) else 1.0
    return num / den


def _prf(tp: float, pred: float, true: float, zero_division: Any) -> tuple[float, float, float]:
    precision = _divide(tp, pred, zero_division)
    recall = _divide(tp, true, zero_division)
    denom = precision + recall
    return precision, recall, (2 * precision * recall / denom if denom else 0.0)


def _check_sequences(values: Any, what: str) -> list[list[str]]:
    if isinstance(values, str) or not all(isinstance(s, (list, tuple)) for s in values):
        raise MetricError(
            f"seqeval: {what} must be a list of tag sequences (lists of strings), got {values!r:.100}."
        )
    return [list(s) for s in values]


def seqeval(
    predictions: Any,
    references: Any,
    suffix: bool = False,
    scheme: str | None = None,
    mode: str | None = None,
    zero_division: Any = "warn",
) -> dict[str, Any]:
    """Per entity type {'precision', 'recall', 'f1', 'number'} and overall_precision/recall/f1/accuracy."""
    preds = _check_sequences(predictions, "predictions")
    refs = _check_sequences(references, "references")
    if len(preds) != len(refs):
        raise MetricError(f"seqeval: got {len(preds)} predicted sequences but {len(refs)} references.")
    if not preds:
        raise MetricError("seqeval: predictions and references are empty; there is nothing to score.")
    for i, (p, r) in enumerate(zip(preds, refs)):
        if len(p) != len(r):
            raise MetricError(
                f"seqeval: sequence {i} has {len(p)} predicted tags but {len(r)} reference tags."
            )
    if zero_division not in ("warn", 0, 1):
        raise MetricError(f"seqeval: zero_division must be 'warn', 0 or 1, got {zero_division!r}.")
    if scheme is not None and scheme not in _SCHEMES:
        raise MetricError(f"seqeval: scheme={scheme!r}; choose one of {', '.join(_SCHEMES)}.")
    if mode not in (None, "default", "strict"):
        raise MetricError(f"seqeval: mode={mode!r}; use None (conlleval-compatible) or 'strict'.")

    def entities(sequences: list[list[str]]) -> dict[str, set[tuple[int, int, int]]]:
        found: dict[str, set[tuple[int, int, int]]] = defaultdict(set)
        if mode == "strict":
            chosen = scheme or detect_scheme(refs, suffix)
            for sent, seq in enumerate(sequences):
                for type_, start, end in strict_entities(seq, chosen, suffix):
                    found[type_].add((sent, start, end))
        else:
            # conlleval reads the corpus as one stream with an "O" between sentences.
            flat = [tag for seq in sequences for tag in [*seq, "O"]]
            for type_, start, end in get_entities(flat, suffix):
                found[type_].add((0, start, end))
        return found

    true_entities, pred_entities = entities(refs), entities(preds)
    out: dict[str, Any] = {}
    tp_all = pred_all = true_all = 0
    for type_ in sorted(set(true_entities) | set(pred_entities)):
        gold, guess = true_entities.get(type_, set()), pred_entities.get(type_, set())
        tp = len(gold & guess)
        precision, recall, f1 = _prf(tp, len(guess), len(gold), zero_division)
        out[type_] = {"precision": precision, "recall": recall, "f1": f1, "number": len(gold)}
        tp_all, pred_all, true_all = tp_all + tp, pred_all + len(guess), true_all + len(gold)
    precision, recall, f1 = _prf(tp_all, pred_all, true_all, zero_division)
    out["overall_precision"], out["overall_recall"], out["overall_f1"] = precision, recall, f1
    flat_pred = [t for seq in preds for t in seq]
    flat_true = [t for seq in refs for t in seq]
    out["overall_accuracy"] = (
        sum(p == t for p, t in zip(flat_pred, flat_true)) / len(flat_true) if flat_true else 0.0
    )
    return out
