"""squad / squad_v2 against the official SQuAD scripts' semantics.

The oracle below restates the official v1.1 and v2.0 evaluation scripts (as evaluate wraps them) in
their own shape: a nested dataset of articles/paragraphs/qas, a qid->text prediction dict and a
qid->probability dict. Cove's flat implementation must agree with it on random inputs, and both must
agree with hand-computed cases.
"""

from __future__ import annotations

import collections
import math
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.errors import MetricError
from cove.metrics import squad as cove_squad

pytestmark = pytest.mark.parity
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- oracle: the official scripts' semantics ------------------------------------------------------


def _norm(s):
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _f1_v1(pred, gold):
    p, g = _norm(pred).split(), _norm(gold).split()
    common = collections.Counter(p) & collections.Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def oracle_v1(dataset, predictions):
    f1 = em = total = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    continue
                golds = [a["text"] for a in qa["answers"]]
                pred = predictions[qa["id"]]
                em += max(_norm(pred) == _norm(g) for g in golds)
                f1 += max(_f1_v1(pred, g) for g in golds)
    return {"exact_match": 100.0 * em / total, "f1": 100.0 * f1 / total}


def _toks(s):
    return _norm(s).split() if s else []


def _f1_v2(gold, pred):
    g, p = _toks(gold), _toks(pred)
    common = collections.Counter(g) & collections.Counter(p)
    same = sum(common.values())
    if len(g) == 0 or len(p) == 0:
        return int(g == p)
    if same == 0:
        return 0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def oracle_v2(dataset, preds, na_probs, thresh=1.0):
    has_ans = {
        qa["id"]: bool(qa["answers"]["text"]) for a in dataset for p in a["paragraphs"] for qa in p["qas"]
    }
    exact_raw, f1_raw = {}, {}
    for article in dataset:
        for p in article["paragraphs"]:
            for qa in p["qas"]:
                golds = [t for t in qa["answers"]["text"] if _norm(t)] or [""]
                pred = preds[qa["id"]]
                exact_raw[qa["id"]] = max(int(_norm(g) == _norm(pred)) for g in golds)
                f1_raw[qa["id"]] = max(_f1_v2(g, pred) for g in golds)

    def apply(scores):
        return {q: float(not has_ans[q]) if na_probs[q] > thresh else s for q, s in scores.items()}

    def ev(ex, f1, qids):
        return {
            "exact": 100.0 * sum(ex[k] for k in qids) / len(qids),
            "f1": 100.0 * sum(f1[k] for k in qids) / len(qids),
            "total": len(qids),
        }

    ex, f1 = apply(exact_raw), apply(f1_raw)
    out = ev(ex, f1, list(ex))
    for prefix, qids in (
        ("HasAns", [k for k, v in has_ans.items() if v]),
        ("NoAns", [k for k, v in has_ans.items() if not v]),
    ):
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in ev(ex, f1, qids).items()})

    def best(scores):
        cur = best_score = sum(1 for k in has_ans if not has_ans[k])
        best_t = 0.0
        for qid in sorted(na_probs, key=lambda k: na_probs[k]):
            if qid not in scores:
                continue
            diff = scores[qid] if has_ans[qid] else (-1 if preds[qid] else 0)
            cur += diff
            if cur > best_score:
                best_score, best_t = cur, na_probs[qid]
        return 100.0 * best_score / len(scores), best_t

    out["best_exact"], out["best_exact_thresh"] = best(exact_raw)
    out["best_f1"], out["best_f1_thresh"] = best(f1_raw)
    return out


# --- random inputs ---------------------------------------------------------------------------------

answer_words = st.sampled_from(
    ["Paris", "paris", "the", "a", "An", "city", "City.", "of", "lights", "1976", "!", ",", ""]
)
answers = st.lists(answer_words, max_size=5).map(" ".join)


@st.composite
def squad_cases(draw, allow_unanswerable):
    n = draw(st.integers(1, 8))
    refs, preds = [], []
    for i in range(n):
        min_answers = 0 if allow_unanswerable else 1
        golds = draw(st.lists(answers, min_size=min_answers, max_size=3))
        refs.append({"id": f"q{i}", "answers": {"text": golds, "answer_start": [0] * len(golds)}})
        preds.append(
            {
                "id": f"q{i}",
                "prediction_text": draw(answers),
                "no_answer_probability": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])),
            }
        )
    order = draw(st.permutations(range(n)))
    return [preds[i] for i in order], refs


def _close(got, want):
    assert list(got) == list(want)
    for key, value in want.items():
        assert math.isclose(got[key], value, rel_tol=1e-12, abs_tol=1e-12), key


@SETTINGS
@given(squad_cases(allow_unanswerable=False), st.booleans())
def test_squad_v1_matches_official_semantics(case, drop_one):
    preds, refs = case
    if drop_one:
        preds = preds[1:]  # an unanswered question scores 0 but still counts
    v1_preds = [{"id": p["id"], "prediction_text": p["prediction_text"]} for p in preds]
    dataset = [
        {
            "paragraphs": [
                {
                    "qas": [
                        {"id": r["id"], "answers": [{"text": t} for t in r["answers"]["text"]]} for r in refs
                    ]
                }
            ]
        }
    ]
    want = oracle_v1(dataset, {p["id"]: p["prediction_text"] for p in preds})
    _close(cove_squad.squad(v1_preds, refs), want)


@SETTINGS
@given(squad_cases(allow_unanswerable=True), st.sampled_from([0.0, 0.5, 1.0]))
def test_squad_v2_matches_official_semantics(case, thresh):
    preds, refs = case
    dataset = [{"paragraphs": [{"qas": refs}]}]
    want = oracle_v2(
        dataset,
        {p["id"]: p["prediction_text"] for p in preds},
        {p["id"]: p["no_answer_probability"] for p in preds},
        thresh,
    )
    _close(cove_squad.squad_v2(preds, refs, no_answer_threshold=thresh), want)


# --- hand-computed cases ---------------------------------------------------------------------------


def test_squad_hand_checked():
    refs = [
        {
            "id": "a",
            "answers": {"text": ["The Eiffel Tower", "Eiffel tower in Paris"], "answer_start": [0, 0]},
        },
        {"id": "b", "answers": {"text": ["1976"], "answer_start": [0]}},
    ]
    preds = [{"id": "a", "prediction_text": "eiffel tower, paris"}, {"id": "b", "prediction_text": "in 1976"}]
    out = cove_squad.squad(preds, refs)
    # a: normalized "eiffel tower paris" vs "eiffel tower" -> EM 0, F1 2*(2/3*1)/(5/3) = 0.8;
    #    vs "eiffel tower in paris" -> P=1, R=3/4 -> F1 6/7 (best). b: "in 1976" vs "1976": P=1/2, R=1 -> 2/3.
    assert out["exact_match"] == 0.0
    assert math.isclose(out["f1"], 100 * (6 / 7 + 2 / 3) / 2)
    assert cove_squad.squad([{"id": "b", "prediction_text": "The 1976."}], refs[1:]) == {
        "exact_match": 100.0,
        "f1": 100.0,
    }


def test_squad_v2_hand_checked_thresholds():
    refs = [
        {"id": "h", "answers": {"text": ["red car"], "answer_start": [3]}},
        {"id": "n", "answers": {"text": [], "answer_start": []}},
    ]
    preds = [
        {"id": "h", "prediction_text": "red car", "no_answer_probability": 0.7},
        {"id": "n", "prediction_text": "blue", "no_answer_probability": 0.4},
    ]
    out = cove_squad.squad_v2(preds, refs)  # threshold 1.0: everything answered
    assert out == {
        "exact": 50.0,
        "f1": 50.0,
        "total": 2,
        "HasAns_exact": 100.0,
        "HasAns_f1": 100.0,
        "HasAns_total": 1,
        "NoAns_exact": 0.0,
        "NoAns_f1": 0.0,
        "NoAns_total": 1,
        # sweep: start 1 (abstain on all); n (0.4) answered wrongly -> 0; h (0.7) right -> 1: never above 1
        "best_exact": 50.0,
        "best_exact_thresh": 0.0,
        "best_f1": 50.0,
        "best_f1_thresh": 0.0,
    }
    strict = cove_squad.squad_v2(preds, refs, no_answer_threshold=0.5)  # h abstains (wrong), n still answers
    assert strict["exact"] == 0.0 and strict["HasAns_exact"] == 0.0
    preds[1]["prediction_text"] = ""  # an empty answer to an unanswerable question is right
    assert cove_squad.squad_v2(preds, refs)["exact"] == 100.0


def test_squad_v2_needs_every_prediction():
    refs = [{"id": "x", "answers": {"text": ["a b"], "answer_start": [0]}}]
    with pytest.raises(MetricError, match="no prediction"):
        cove_squad.squad_v2([{"id": "y", "prediction_text": "a", "no_answer_probability": 0.0}], refs)
