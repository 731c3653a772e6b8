"""ROUGE via the rouge-score package (optional extra: ``pip install 'cove[metrics]'``).

Keys and per-example output follow evaluate's rouge. One deliberate difference: with
``use_aggregator=True`` evaluate reports the median of 1000 unseeded bootstrap resamples of the mean
F-measure, which changes from run to run; Cove reports the mean itself (what that median estimates),
so the same inputs always give the same score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cove.errors import MetricError

from .base import optional_import
from .text import check_same_length, check_strings

_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")


class _Tokenizer:
    """rouge-score wants an object with .tokenize(text); evaluate lets users pass a plain callable."""

    def __init__(self, fn: Callable[[str], list[str]]) -> None:
        self.fn = fn

    def tokenize(self, text: str) -> list[str]:
        return list(self.fn(text))


def rouge(
    predictions: Any,
    references: Any,
    rouge_types: list[str] | None = None,
    use_aggregator: bool = True,
    use_stemmer: bool = False,
    tokenizer: Callable[[str], list[str]] | None = None,
) -> dict[str, Any]:
    """F-measure per ROUGE type: mean over examples, or a list per example with use_aggregator=False.

    A reference may be a list of strings: the best-scoring one counts (rouge-score's score_multi).
    """
    scorer_module = optional_import("rouge_score.rouge_scorer", "rouge-score", "rouge")
    preds = check_strings(predictions, "predictions", "rouge")
    refs = list(references)
    check_same_length(preds, refs, "rouge")
    multi = isinstance(refs[0], (list, tuple))
    for ref in refs:
        if multi != isinstance(ref, (list, tuple)):
            raise MetricError(
                "rouge: give every reference as a string, or every reference as a list of strings."
            )
        check_strings(ref if multi else [ref], "references", "rouge")
    types = list(rouge_types or _ROUGE_TYPES)
    bad = [t for t in types if t not in _ROUGE_TYPES and not (t.startswith("rouge") and t[5:].isdigit())]
    if bad:
        raise MetricError(f"rouge: unknown rouge_types {bad}; use rouge1..rouge9, rougeL or rougeLsum.")
    scorer = scorer_module.RougeScorer(
        rouge_types=types, use_stemmer=use_stemmer, tokenizer=_Tokenizer(tokenizer) if tokenizer else None
    )
    per_example: dict[str, list[float]] = {t: [] for t in types}
    for ref, pred in zip(refs, preds):
        scores = scorer.score_multi(list(ref), pred) if multi else scorer.score(ref, pred)
        for t in types:
            per_example[t].append(float(scores[t].fmeasure))
    if not use_aggregator:
        return per_example
    return {t: sum(values) / len(values) for t, values in per_example.items()}
