"""SQuAD v1.1 and v2.0 scoring with the official scripts' semantics.

Answers are normalized (lowercase, punctuation and the articles a/an/the removed, whitespace collapsed);
each prediction takes its best score over the gold answers. v2 adds unanswerable questions (no gold
answers: only an empty prediction is right), the no-answer probability threshold, HasAns/NoAns splits and
the best thresholds.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping
from typing import Any

from cove.errors import MetricError

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_score(prediction: str, gold: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(gold))


def f1_score_v1(prediction: str, gold: str) -> float:
    pred, ref = _tokens(prediction), _tokens(gold)
    same = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_score_v2(prediction: str, gold: str) -> float:
    pred, ref = _tokens(prediction), _tokens(gold)
    if not pred or not ref:  # a no-answer on either side: right only if both are empty
        return float(pred == ref)
    return f1_score_v1(prediction, gold)


def _gold_texts(reference: Mapping[str, Any], metric: str) -> list[str]:
    answers = reference.get("answers")
    if isinstance(answers, Mapping):
        texts = answers.get("text", [])
    elif isinstance(answers, list):  # raw SQuAD json: [{"text": ..., "answer_start": ...}, ...]
        texts = [a["text"] if isinstance(a, Mapping) else a for a in answers]
    else:
        raise MetricError(
            f"{metric}: reference {reference.get('id')!r} needs 'answers' as {{'text': [...], 'answer_start': [...]}}, "
            f"got {answers!r:.100}."
        )
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise MetricError(
            f"{metric}: answers['text'] of {reference.get('id')!r} must be a list of strings, got {texts!r:.100}."
        )
    return list(texts)


def _index(predictions: Any, references: Any, metric: str, fields: tuple[str, ...]) -> tuple[dict, dict]:
    preds: dict[str, Mapping[str, Any]] = {}
    for pred in predictions:
        missing = [f for f in ("id", *fields) if not isinstance(pred, Mapping) or f not in pred]
        if missing:
            raise MetricError(
                f"{metric}: each prediction needs keys {['id', *fields]}; {pred!r:.120} lacks {missing}."
            )
        preds[pred["id"]] = pred
    golds: dict[str, list[str]] = {}
    for ref in references:
        if not isinstance(ref, Mapping) or "id" not in ref:
            raise MetricError(f"{metric}: each reference needs 'id' and 'answers'; got {ref!r:.120}.")
        if ref["id"] in golds:
            raise MetricError(f"{metric}: reference id {ref['id']!r} appears twice; ids must be unique.")
        golds[ref["id"]] = _gold_texts(ref, metric)
    if not golds:
        raise MetricError(f"{metric}: references are empty; there is nothing to score.")
    return preds, golds


def squad(predictions: Any, references: Any) -> dict[str, float]:
    """SQuAD v1.1: {'exact_match', 'f1'} in percent; questions without a prediction score 0."""
    preds, golds = _index(predictions, references, "squad", ("prediction_text",))
    exact = f1 = 0.0
    for qid, gold in golds.items():
        if not gold:
            raise MetricError(
                f"squad: reference {qid!r} has no gold answers; use squad_v2 for unanswerable questions."
            )
        if qid not in preds:
            continue
        text = preds[qid]["prediction_text"]
        exact += max(exact_score(text, g) for g in gold)
        f1 += max(f1_score_v1(text, g) for g in gold)
    return {"exact_match": 100.0 * exact / len(golds), "f1": 100.0 * f1 / len(golds)}


def _best_threshold(
    texts: dict[str, str], scores: dict[str, float], na_probs: dict[str, float], has_answer: dict[str, bool]
) -> tuple[float, float]:
    # Sweep the threshold over the sorted no-answer probabilities: at each step one more question is
    # answered instead of abstained on.
    score = best = float(sum(1 for v in has_answer.values() if not v))
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if has_answer[qid]:
            score += scores[qid]
        elif texts[qid]:
            score -= 1
        if score > best:
            best, best_thresh = score, na_probs[qid]
    return 100.0 * best / len(scores), float(best_thresh)


def squad_v2(predictions: Any, references: Any, no_answer_threshold: float = 1.0) -> dict[str, Any]:
    """SQuAD v2.0: exact/f1/total, HasAns_*/NoAns_* splits and best_exact/best_f1 with their thresholds."""
    preds, golds = _index(predictions, references, "squad_v2", ("prediction_text", "no_answer_probability"))
    missing = [qid for qid in golds if qid not in preds]
    if missing:
        raise MetricError(
            f"squad_v2: no prediction for {len(missing)} question(s), e.g. {missing[:3]}; predict every id."
        )
    texts = {qid: p["prediction_text"] for qid, p in preds.items()}
    na_probs = {qid: float(p["no_answer_probability"]) for qid, p in preds.items()}
    has_answer = {qid: bool(gold) for qid, gold in golds.items()}

    exact_raw: dict[str, float] = {}
    f1_raw: dict[str, float] = {}
    for qid, gold in golds.items():
        answers = [g for g in gold if normalize_answer(g)] or [""]
        exact_raw[qid] = max(exact_score(texts[qid], a) for a in answers)
        f1_raw[qid] = max(f1_score_v2(texts[qid], a) for a in answers)

    def thresholded(raw: dict[str, float]) -> dict[str, float]:
        return {
            qid: float(not has_answer[qid]) if na_probs[qid] > no_answer_threshold else s
            for qid, s in raw.items()
        }

    exact, f1 = thresholded(exact_raw), thresholded(f1_raw)

    def summary(qids: list[str]) -> dict[str, Any]:
        return {
            "exact": 100.0 * sum(exact[q] for q in qids) / len(qids),
            "f1": 100.0 * sum(f1[q] for q in qids) / len(qids),
            "total": len(qids),
        }

    out = summary(list(golds))
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [q for q in golds if has_answer[q] is wanted]
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in summary(qids).items()})
    out["best_exact"], out["best_exact_thresh"] = _best_threshold(texts, exact_raw, na_probs, has_answer)
    out["best_f1"], out["best_f1_thresh"] = _best_threshold(texts, f1_raw, na_probs, has_answer)
    return out
