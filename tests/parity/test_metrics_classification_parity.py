"""cove.metrics label and regression metrics against scikit-learn and scipy on random inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cove.metrics import classification, regression

sklearn_metrics = pytest.importorskip("sklearn.metrics")
scipy_stats = pytest.importorskip("scipy.stats")

pytestmark = pytest.mark.parity
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@st.composite
def label_pairs(draw, max_classes=5, strings=False):
    n = draw(st.integers(1, 30))
    k = draw(st.integers(1, max_classes))
    alphabet = ["cat", "dog", "eel", "fox", "gnu", "hen"][:k] if strings else list(range(k))
    refs = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    preds = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    weights = draw(st.none() | st.lists(st.floats(0.0, 5.0), min_size=n, max_size=n).filter(any))
    return preds, refs, weights


def _assert_same(ours, theirs):
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=1e-9, atol=1e-12
    )


@SETTINGS
@given(
    data=label_pairs(),
    average=st.sampled_from(["micro", "macro", "weighted", None]),
    zero_division=st.sampled_from(["warn", 0, 1]),
)
def test_prf_multiclass_averages_match_sklearn(data, average, zero_division):
    preds, refs, weights = data
    for ours, theirs, key in (
        (classification.precision, sklearn_metrics.precision_score, "precision"),
        (classification.recall, sklearn_metrics.recall_score, "recall"),
        (classification.f1, sklearn_metrics.f1_score, "f1"),
    ):
        got = _quiet(ours, preds, refs, average=average, sample_weight=weights, zero_division=zero_division)[
            key
        ]
        want = _quiet(
            theirs, refs, preds, average=average, sample_weight=weights, zero_division=zero_division
        )
        _assert_same(got, want)
        assert isinstance(got, float) or (average is None and len(got) > 1)


@SETTINGS
@given(data=label_pairs(max_classes=2), pos_label=st.sampled_from([0, 1]))
def test_prf_binary_matches_sklearn(data, pos_label):
    preds, refs, weights = data
    present = set(preds) | set(refs)
    if pos_label not in present and len(present) >= 2:
        return  # the error case is covered in tests/metrics
    got = _quiet(classification.f1, preds, refs, pos_label=pos_label, sample_weight=weights)["f1"]
    want = _quiet(sklearn_metrics.f1_score, refs, preds, pos_label=pos_label, sample_weight=weights)
    _assert_same(got, want)
    got_p = _quiet(classification.precision, preds, refs, pos_label=pos_label)["precision"]
    _assert_same(got_p, _quiet(sklearn_metrics.precision_score, refs, preds, pos_label=pos_label))


@SETTINGS
@given(
    data=label_pairs(strings=True),
    average=st.sampled_from(["micro", "macro", "weighted", None]),
    st_data=st.data(),
)
def test_prf_string_labels_with_label_subset_match_sklearn(data, average, st_data):
    preds, refs, _ = data
    present = sorted(set(preds) | set(refs))
    labels = st_data.draw(st.lists(st.sampled_from([*present, "yak"]), min_size=1, max_size=4, unique=True))
    if not set(labels) & set(present):
        return  # Cove refuses labels that match nothing (tested in tests/metrics)
    got = _quiet(classification.recall, preds, refs, labels=labels, average=average)["recall"]
    want = _quiet(sklearn_metrics.recall_score, refs, preds, labels=labels, average=average)
    _assert_same(got, want)


@SETTINGS
@given(
    st.integers(1, 20).flatmap(
        lambda n: st.tuples(
            st.lists(st.lists(st.integers(0, 1), min_size=4, max_size=4), min_size=n, max_size=n),
            st.lists(st.lists(st.integers(0, 1), min_size=4, max_size=4), min_size=n, max_size=n),
            st.none() | st.lists(st.floats(0.0, 3.0), min_size=n, max_size=n).filter(any),
        )
    ),
    st.sampled_from(["micro", "macro", "weighted", "samples", None]),
    st.sampled_from([None, [2, 0], [3]]),
)
def test_prf_multilabel_matches_sklearn(triple, average, labels):
    preds, refs, weights = triple
    for ours, theirs, key in (
        (classification.f1, sklearn_metrics.f1_score, "f1"),
        (classification.precision, sklearn_metrics.precision_score, "precision"),
    ):
        got = _quiet(ours, preds, refs, average=average, labels=labels, sample_weight=weights)[key]
        want = _quiet(
            theirs, np.array(refs), np.array(preds), average=average, labels=labels, sample_weight=weights
        )
        _assert_same(got, want)
    acc = classification.accuracy(preds, refs)["accuracy"]
    _assert_same(acc, sklearn_metrics.accuracy_score(np.array(refs), np.array(preds)))


@SETTINGS
@given(data=label_pairs(max_classes=6), normalize=st.booleans())
def test_accuracy_and_mcc_match_sklearn(data, normalize):
    preds, refs, weights = data
    got = classification.accuracy(preds, refs, normalize=normalize, sample_weight=weights)["accuracy"]
    _assert_same(got, sklearn_metrics.accuracy_score(refs, preds, normalize=normalize, sample_weight=weights))
    mcc = _quiet(classification.matthews_correlation, preds, refs, sample_weight=weights)[
        "matthews_correlation"
    ]
    _assert_same(mcc, _quiet(sklearn_metrics.matthews_corrcoef, refs, preds, sample_weight=weights))


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@SETTINGS
@given(
    st.integers(2, 40).flatmap(
        lambda n: st.tuples(
            st.lists(finite, min_size=n, max_size=n),
            st.lists(finite, min_size=n, max_size=n),
            st.none() | st.lists(st.floats(0.1, 3.0), min_size=n, max_size=n),
        )
    ),
    st.booleans(),
)
def test_regression_errors_match_sklearn(triple, squared):
    preds, refs, weights = triple
    mse = regression.mse(preds, refs, sample_weight=weights, squared=squared)["mse"]
    want = sklearn_metrics.mean_squared_error(refs, preds, sample_weight=weights)
    _assert_same(mse, want if squared else np.sqrt(want))
    mae = regression.mae(preds, refs, sample_weight=weights)["mae"]
    _assert_same(mae, sklearn_metrics.mean_absolute_error(refs, preds, sample_weight=weights))


def test_multioutput_mse_matches_sklearn():
    rng = np.random.default_rng(0)
    refs, preds = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    raw = regression.mse(preds, refs, multioutput="raw_values")["mse"]
    _assert_same(raw, sklearn_metrics.mean_squared_error(refs, preds, multioutput="raw_values"))
    weighted = regression.mae(preds, refs, multioutput=[0.2, 0.3, 0.5])["mae"]
    _assert_same(weighted, sklearn_metrics.mean_absolute_error(refs, preds, multioutput=[0.2, 0.3, 0.5]))


@SETTINGS
@given(
    st.integers(3, 40).flatmap(
        lambda n: st.tuples(
            st.lists(st.integers(-5, 5).map(float) | finite, min_size=n, max_size=n),
            st.lists(st.integers(-5, 5).map(float) | finite, min_size=n, max_size=n),
        )
    )
)
def test_correlations_and_pvalues_match_scipy(pair):
    preds, refs = pair
    if len(set(preds)) < 2 or len(set(refs)) < 2:
        return  # constant input: nan, covered in tests/metrics
    pearson = regression.pearsonr(preds, refs, return_pvalue=True)
    want = scipy_stats.pearsonr(refs, preds)
    np.testing.assert_allclose(pearson["pearsonr"], want[0], rtol=1e-9, atol=1e-12)
    # scipy evaluates the p-value as a beta survival function, which rounds to 0 for |r| within a few
    # ulps of 1; the incomplete beta here keeps ~1e-8 there. Hence the absolute tolerance.
    np.testing.assert_allclose(pearson["p-value"], want[1], rtol=1e-7, atol=1e-7)
    spearman = regression.spearmanr(preds, refs, return_pvalue=True)
    want = scipy_stats.spearmanr(refs, preds)
    np.testing.assert_allclose(spearman["spearmanr"], want[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(spearman["spearmanr_pvalue"], want[1], rtol=1e-7, atol=1e-7)


@SETTINGS
@given(st.lists(st.integers(-3, 3) | finite, min_size=1, max_size=50))
def test_rankdata_matches_scipy(values):
    np.testing.assert_array_equal(
        regression.rankdata(np.array(values, dtype=float)), scipy_stats.rankdata(values)
    )


def test_matthews_multilabel_matches_sklearn_per_column():
    rng = np.random.default_rng(3)
    refs, preds = rng.integers(0, 2, size=(25, 4)), rng.integers(0, 2, size=(25, 4))
    per_column = [sklearn_metrics.matthews_corrcoef(refs[:, i], preds[:, i]) for i in range(4)]
    got = classification.matthews_correlation(preds.tolist(), refs.tolist())["matthews_correlation"]
    _assert_same(got, per_column)
    macro = classification.matthews_correlation(preds, refs, average="macro")["matthews_correlation"]
    _assert_same(macro, np.mean(per_column))
