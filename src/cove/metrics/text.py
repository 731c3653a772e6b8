"""String metrics: exact_match (evaluate's options: regexes_to_ignore, ignore_case/punctuation/numbers)."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from cove.errors import MetricError

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_DIGITS = str.maketrans("", "", string.digits)


def check_strings(values: Any, what: str, metric: str) -> list[str]:
    if isinstance(values, str):
        raise MetricError(f"{metric}: {what} must be a list of strings, got a single string {values[:50]!r}.")
    values = list(values)
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise MetricError(f"{metric}: {what} must be strings, got {type(bad[0]).__name__} {bad[0]!r:.60}.")
    return values


def check_same_length(predictions: Sequence[Any], references: Sequence[Any], metric: str) -> None:
    if len(predictions) != len(references):
        raise MetricError(
            f"{metric}: got {len(predictions)} predictions but {len(references)} references; "
            "give one reference per prediction."
        )
    if not predictions:
        raise MetricError(f"{metric}: predictions and references are empty; there is nothing to score.")


def exact_match(
    predictions: Any,
    references: Any,
    regexes_to_ignore: Sequence[str] | None = None,
    ignore_case: bool = False,
    ignore_punctuation: bool = False,
    ignore_numbers: bool = False,
) -> dict[str, float]:
    """Fraction of predictions equal to their reference after the chosen normalizations.

    As in evaluate, a prediction normalized down to the empty string only counts when the
    original strings were equal.
    """
    preds = check_strings(predictions, "predictions", "exact_match")
    refs = check_strings(references, "references", "exact_match")
    check_same_length(preds, refs, "exact_match")

    def normalize(text: str) -> str:
        for pattern in regexes_to_ignore or ():
            text = re.sub(pattern, "", text)
        if ignore_case:
            text = text.lower()
        if ignore_punctuation:
            text = text.translate(_PUNCTUATION)
        if ignore_numbers:
            text = text.translate(_DIGITS)
        return text

    hits = 0
    for pred, ref in zip(preds, refs):
        norm_pred, norm_ref = normalize(pred), normalize(ref)
        hits += norm_pred == norm_ref and (norm_pred != "" or pred == ref)
    return {"exact_match": hits / len(preds)}
