"""BLEU two ways, as evaluate has them.

``bleu``: the classic corpus BLEU of tensorflow/nmt (clipped n-gram precisions against the union of the
references, brevity penalty against the *shortest* reference), on 13a-tokenized text. Pure Python.
``sacrebleu``: the sacrebleu package's corpus_bleu (optional extra: ``pip install 'cove[metrics]'``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from cove.errors import MetricError

from .base import optional_import
from .text import check_same_length, check_strings

# mteval-v13a tokenization, as sacrebleu's "13a" tokenizer (evaluate's bleu default).
_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period/comma unless preceded by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # period/comma unless followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
]


def tokenize_13a(line: str) -> list[str]:
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, replacement in _13A_RULES:
        line = pattern.sub(replacement, line)
    return line.split()


def _ngrams(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for order in range(1, max_order + 1):
        for i in range(len(tokens) - order + 1):
            counts[tuple(tokens[i : i + order])] += 1
    return counts


def compute_bleu(
    reference_corpus: Sequence[Sequence[Sequence[str]]],
    translation_corpus: Sequence[Sequence[str]],
    max_order: int = 4,
    smooth: bool = False,
) -> tuple[float, list[float], float, float, int, int]:
    """Corpus BLEU on tokens: (bleu, precisions, brevity_penalty, length_ratio, translation_length, reference_length)."""
    matches = [0] * max_order
    possible = [0] * max_order
    reference_length = translation_length = 0
    for references, translation in zip(reference_corpus, translation_corpus):
        reference_length += min(len(r) for r in references)
        translation_length += len(translation)
        merged: Counter[tuple[str, ...]] = Counter()
        for reference in references:
            merged |= _ngrams(reference, max_order)  # max count of each n-gram over the references
        overlap = _ngrams(translation, max_order) & merged
        for ngram, count in overlap.items():
            matches[len(ngram) - 1] += count
        for order in range(1, max_order + 1):
            possible[order - 1] += max(len(translation) - order + 1, 0)
    if smooth:
        precisions = [(m + 1.0) / (p + 1.0) for m, p in zip(matches, possible)]
    else:
        precisions = [m / p if p > 0 else 0.0 for m, p in zip(matches, possible)]
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order) if min(precisions) > 0 else 0.0
    if reference_length == 0:
        raise MetricError("bleu: every reference is empty after tokenization; BLEU needs reference words.")
    ratio = translation_length / reference_length
    # An empty translation has ratio 0; the penalty's limit there is 0 (nmt would divide by zero).
    bp = 1.0 if ratio > 1.0 else (math.exp(1 - 1.0 / ratio) if ratio > 0 else 0.0)
    return geo_mean * bp, precisions, bp, ratio, translation_length, reference_length


def _reference_lists(references: Any, metric: str) -> list[list[str]]:
    refs = list(references)
    if refs and all(isinstance(r, str) for r in refs):
        return [[r] for r in refs]
    out = []
    for r in refs:
        if isinstance(r, str) or not isinstance(r, (list, tuple)) or not r:
            raise MetricError(
                f"{metric}: references must be strings or non-empty lists of strings (one list per prediction), got {r!r:.80}."
            )
        out.append(check_strings(r, "references", metric))
    return out


def bleu(
    predictions: Any,
    references: Any,
    tokenizer: Callable[[str], Sequence[str]] | None = None,
    max_order: int = 4,
    smooth: bool = False,
) -> dict[str, Any]:
    """evaluate's "bleu": tensorflow/nmt compute_bleu on 13a tokens (or ``tokenizer``'s)."""
    preds = check_strings(predictions, "predictions", "bleu")
    refs = _reference_lists(references, "bleu")
    check_same_length(preds, refs, "bleu")
    if max_order < 1:
        raise MetricError(f"bleu: max_order must be >= 1, got {max_order}.")
    tok = tokenizer or tokenize_13a
    score, precisions, bp, ratio, trans_len, ref_len = compute_bleu(
        [[tok(r) for r in group] for group in refs],
        [tok(p) for p in preds],
        max_order=max_order,
        smooth=smooth,
    )
    return {
        "bleu": score,
        "precisions": precisions,
        "brevity_penalty": bp,
        "length_ratio": ratio,
        "translation_length": trans_len,
        "reference_length": ref_len,
    }


def sacrebleu(
    predictions: Any,
    references: Any,
    smooth_method: str = "exp",
    smooth_value: float | None = None,
    force: bool = False,
    lowercase: bool = False,
    tokenize: str | None = None,
    use_effective_order: bool = False,
) -> dict[str, Any]:
    """sacrebleu's corpus_bleu: score (0-100), counts, totals, precisions, bp, sys_len, ref_len."""
    sb = optional_import("sacrebleu", "sacrebleu", "sacrebleu")
    preds = check_strings(predictions, "predictions", "sacrebleu")
    refs = _reference_lists(references, "sacrebleu")
    check_same_length(preds, refs, "sacrebleu")
    per_prediction = len(refs[0])
    if any(len(group) != per_prediction for group in refs):
        raise MetricError("sacrebleu: every prediction needs the same number of references.")
    streams = [[group[i] for group in refs] for i in range(per_prediction)]
    options = {"tokenize": tokenize} if tokenize else {}
    out = sb.corpus_bleu(
        preds, streams, smooth_method=smooth_method, smooth_value=smooth_value, force=force,
        lowercase=lowercase, use_effective_order=use_effective_order, **options,
    )  # fmt: skip
    return {
        "score": out.score,
        "counts": out.counts,
        "totals": out.totals,
        "precisions": out.precisions,
        "bp": out.bp,
        "sys_len": out.sys_len,
        "ref_len": out.ref_len,
    }
