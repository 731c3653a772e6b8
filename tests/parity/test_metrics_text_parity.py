"""cove.metrics text metrics against seqeval, sacrebleu and rouge-score on random inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.errors import MetricError
from cove.metrics import rouge, sequence_labeling, translation

seqeval_metrics = pytest.importorskip("seqeval.metrics")
seqeval_scheme = pytest.importorskip("seqeval.scheme")
sacrebleu = pytest.importorskip("sacrebleu")
rouge_scorer = pytest.importorskip("rouge_score.rouge_scorer")

pytestmark = pytest.mark.parity
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- seqeval -----------------------------------------------------------------------------------


def _reference_seqeval(preds, refs, **options):
    """evaluate's seqeval metric body, on the seqeval package."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = seqeval_metrics.classification_report(refs, preds, output_dict=True, **options)
        accuracy = seqeval_metrics.accuracy_score(refs, preds)
    overall = report.pop("micro avg")
    report.pop("macro avg")
    report.pop("weighted avg")
    out = {
        name: {
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1-score"],
            "number": s["support"],
        }
        for name, s in report.items()
    }
    out.update(
        overall_precision=overall["precision"],
        overall_recall=overall["recall"],
        overall_f1=overall["f1-score"],
        overall_accuracy=accuracy,
    )
    return out


def _assert_seqeval_equal(got, want):
    assert list(got) == list(want)
    for key, value in want.items():
        if isinstance(value, dict):
            assert got[key]["number"] == value["number"]
            for field in ("precision", "recall", "f1"):
                assert math.isclose(got[key][field], value[field], abs_tol=1e-12), (key, field)
        else:
            assert math.isclose(got[key], value, abs_tol=1e-12), key


def tag_sequences(prefixes, types=("PER", "LOC", "MISC")):
    tag = st.one_of(
        st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from(prefixes), st.sampled_from(types))
    )
    lengths = st.lists(st.integers(0, 8), min_size=1, max_size=5)
    return lengths.flatmap(
        lambda ls: st.tuples(
            st.tuples(*[st.lists(tag, min_size=n, max_size=n) for n in ls]),
            st.tuples(*[st.lists(tag, min_size=n, max_size=n) for n in ls]),
        )
    )


@SETTINGS
@given(tag_sequences("BIES"), st.sampled_from(["warn", 1]))
def test_seqeval_default_mode_matches_seqeval(pair, zero_division):
    preds, refs = (list(map(list, x)) for x in pair)
    if not any(refs):
        return  # seqeval divides by zero on an all-empty corpus
    got = sequence_labeling.seqeval(preds, refs, zero_division=zero_division)
    _assert_seqeval_equal(got, _reference_seqeval(preds, refs, zero_division=zero_division))


@SETTINGS
@given(tag_sequences("BIES"))
def test_seqeval_suffix_tags_match_seqeval(pair):
    preds, refs = ([[_to_suffix(t) for t in seq] for seq in x] for x in pair)
    if not any(refs):
        return
    got = sequence_labeling.seqeval(preds, refs, suffix=True)
    _assert_seqeval_equal(got, _reference_seqeval(preds, refs, suffix=True))


def _to_suffix(tag):
    return tag if tag == "O" else f"{tag[2:]}-{tag[0]}"


SCHEME_PREFIXES = {"IOB1": "IB", "IOB2": "IB", "IOE1": "IE", "IOE2": "IE", "IOBES": "BIES", "BILOU": "BILU"}


@pytest.mark.parametrize("scheme", sorted(SCHEME_PREFIXES))
def test_seqeval_strict_mode_matches_seqeval(scheme):
    @SETTINGS
    @given(tag_sequences(SCHEME_PREFIXES[scheme]), st.booleans())
    def check(pair, suffix):
        convert = _to_suffix if suffix else (lambda tag: tag)
        preds, refs = ([[convert(t) for t in seq] for seq in x] for x in pair)
        if not any(refs):
            return
        got = sequence_labeling.seqeval(preds, refs, mode="strict", scheme=scheme, suffix=suffix)
        want = _reference_seqeval(
            preds, refs, mode="strict", scheme=getattr(seqeval_scheme, scheme), suffix=suffix
        )
        _assert_seqeval_equal(got, want)

    check()


def test_seqeval_strict_rejects_tags_outside_the_scheme():
    with pytest.raises(MetricError, match="S-PER"):
        sequence_labeling.seqeval([["S-PER"]], [["B-PER"]], mode="strict", scheme="IOB2")


@SETTINGS
@given(tag_sequences("BIES"))
def test_seqeval_strict_autodetect_matches_seqeval(pair):
    preds, refs = (list(map(list, x)) for x in pair)
    try:
        want = _reference_seqeval(preds, refs, mode="strict")
    except (ValueError, ZeroDivisionError):
        with pytest.raises(MetricError):
            sequence_labeling.seqeval(preds, refs, mode="strict")
        return
    _assert_seqeval_equal(sequence_labeling.seqeval(preds, refs, mode="strict"), want)


# --- BLEU ------------------------------------------------------------------------------------------

text_chars = st.sampled_from(
    [
        *list("abc xyz.,-&;:!?0123456789\"'()$%\n"),
        "&amp;",
        "&quot;",
        "-\n",
        "<skipped>",
        "é",
        "3-4",
        "x-1",
        "1.5",
        "a.b",
        "2,000",
        "end.",
    ]
)
texts = st.lists(text_chars, max_size=40).map("".join)


@SETTINGS
@given(texts)
def test_13a_tokenizer_matches_sacrebleu(text):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    assert translation.tokenize_13a(text) == Tokenizer13a()(text).split()


words = st.lists(
    st.sampled_from(["the", "cat", "sat", "on", "mat", "a", "dog", ".", ","]), min_size=0, max_size=12
)


@SETTINGS
@given(st.lists(st.tuples(words, words.filter(bool)), min_size=1, max_size=6))
def test_bleu_single_reference_matches_sacrebleu_without_smoothing(pairs):
    # With one reference per sentence, nmt's min reference length equals sacrebleu's closest one, so
    # the two BLEUs must agree exactly (sacrebleu in percent).
    preds = [" ".join(p) for p, _ in pairs]
    refs = [" ".join(r) for _, r in pairs]
    got = translation.bleu(preds, refs)
    want = sacrebleu.corpus_bleu(preds, [refs], smooth_method="none", force=True)
    assert got["translation_length"] == want.sys_len
    assert got["reference_length"] == want.ref_len
    assert math.isclose(100 * got["bleu"], want.score, rel_tol=1e-9, abs_tol=1e-9)
    np.testing.assert_allclose([100 * p for p in got["precisions"]], want.precisions, rtol=1e-9, atol=1e-9)
    if want.sys_len:
        assert math.isclose(got["brevity_penalty"], want.bp, rel_tol=1e-9)


def test_bleu_multi_reference_uses_shortest_reference_and_clipped_counts():
    # Hand-checked: prediction "the the the cat" against refs "the cat" and "the the dog sat".
    # unigram: the x3 clipped to 2 (second ref), cat 1 -> 3/4; bigram: "the the" 1, "the cat" 1 -> 2/3;
    # trigram: "the the the" 0, "the the cat" 0 -> 0/2 -> bleu 0; reference_length = min(2, 4) = 2.
    out = translation.bleu(["the the the cat"], [["the cat", "the the dog sat"]])
    assert out["precisions"] == [0.75, 2 / 3, 0.0, 0.0]
    assert out["bleu"] == 0.0
    assert out["reference_length"] == 2 and out["translation_length"] == 4
    assert out["length_ratio"] == 2.0 and out["brevity_penalty"] == 1.0
    smoothed = translation.bleu(["the the the cat"], [["the cat", "the the dog sat"]], smooth=True)
    expected = math.exp((math.log(4 / 5) + math.log(3 / 4) + math.log(1 / 3) + math.log(1 / 2)) / 4)
    assert math.isclose(smoothed["bleu"], expected, rel_tol=1e-12)


@SETTINGS
@given(
    st.lists(st.tuples(words.filter(bool), words.filter(bool), words.filter(bool)), min_size=1, max_size=5)
)
def test_sacrebleu_metric_matches_sacrebleu(triples):
    preds = [" ".join(p) for p, _, _ in triples]
    refs = [[" ".join(a), " ".join(b)] for _, a, b in triples]
    got = translation.sacrebleu(preds, refs)
    want = sacrebleu.corpus_bleu(preds, [[r[0] for r in refs], [r[1] for r in refs]])
    assert math.isclose(got["score"], want.score, rel_tol=1e-12, abs_tol=1e-12)
    assert got["counts"] == want.counts and got["totals"] == want.totals
    assert (got["sys_len"], got["ref_len"]) == (want.sys_len, want.ref_len)


# --- ROUGE -----------------------------------------------------------------------------------------

sentences = st.lists(
    st.sampled_from(["the", "cats", "sat", "running", "mat", "dog", "ran", "\n"]), max_size=15
).map(" ".join)


@SETTINGS
@given(st.lists(st.tuples(sentences, sentences), min_size=1, max_size=6), st.booleans())
def test_rouge_matches_rouge_score(pairs, use_stemmer):
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    types = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer)
    want = {t: [scorer.score(r, p)[t].fmeasure for p, r in zip(preds, refs)] for t in types}
    per_example = rouge.rouge(preds, refs, use_aggregator=False, use_stemmer=use_stemmer)
    assert per_example == want
    mean = rouge.rouge(preds, refs, use_stemmer=use_stemmer)
    for t in types:
        assert math.isclose(mean[t], float(np.mean(want[t])), rel_tol=1e-12, abs_tol=1e-15)


def test_rouge_multi_reference_takes_the_best_reference():
    scorer = rouge_scorer.RougeScorer(["rouge1"])
    got = rouge.rouge(["the cat sat"], [["a dog ran", "the cat sat down"]], rouge_types=["rouge1"])
    assert (
        got["rouge1"]
        == scorer.score_multi(["a dog ran", "the cat sat down"], "the cat sat")["rouge1"].fmeasure
    )
    assert math.isclose(got["rouge1"], 2 * 1.0 * 0.75 / 1.75)
