"""cove.metrics front: load/add/add_batch/compute/combine, errors, evaluate's output shapes."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

import cove
import cove.metrics
from cove.errors import MetricError


def test_exports_and_lazy_import():
    assert cove.load_metric is cove.metrics.load
    assert set(cove.metrics.list_metrics()) >= {
        "accuracy", "precision", "recall", "f1", "matthews_correlation", "mse", "mae", "pearsonr",
        "spearmanr", "exact_match", "squad", "squad_v2", "seqeval", "bleu", "sacrebleu", "rouge", "perplexity",
    }  # fmt: skip
    assert issubclass(MetricError, ValueError)


def test_import_cove_metrics_does_not_import_heavy_packages():
    import subprocess

    code = "import cove.metrics, sys; print(sorted(m for m in ('torch','sacrebleu','rouge_score','sklearn','scipy') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_evaluate_documented_examples():
    f1 = cove.metrics.load("f1")
    assert f1.compute(references=[0, 1, 0, 1, 0], predictions=[0, 0, 1, 1, 0]) == {"f1": 0.5}
    assert (
        round(f1.compute(references=[0, 1, 0, 1, 0], predictions=[0, 0, 1, 1, 0], pos_label=0)["f1"], 2)
        == 0.67
    )
    weighted = f1.compute(
        references=[0, 1, 0, 1, 0], predictions=[0, 0, 1, 1, 0], sample_weight=[0.9, 0.5, 3.9, 1.2, 0.3]
    )
    assert round(weighted["f1"], 2) == 0.35
    preds, refs = [0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2]
    assert round(f1.compute(predictions=preds, references=refs, average="macro")["f1"], 2) == 0.27
    assert round(f1.compute(predictions=preds, references=refs, average="micro")["f1"], 2) == 0.33
    per_class = f1.compute(predictions=preds, references=refs, average=None)["f1"]
    assert isinstance(per_class, np.ndarray)
    np.testing.assert_allclose(per_class, [0.8, 0.0, 0.0])
    multilabel = cove.load_metric("f1", "multilabel").compute(
        predictions=[[0, 1, 1], [1, 1, 0]], references=[[0, 1, 1], [0, 1, 0]], average="macro"
    )
    assert round(multilabel["f1"], 2) == 0.67
    seq = cove.load_metric("seqeval").compute(
        predictions=[["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]],
        references=[["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]],
    )
    assert list(seq) == [
        "MISC",
        "PER",
        "overall_precision",
        "overall_recall",
        "overall_f1",
        "overall_accuracy",
    ]
    assert seq["overall_f1"] == 0.5 and seq["PER"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "number": 1,
    }
    squad = cove.load_metric("squad").compute(
        predictions=[{"prediction_text": "1976", "id": "56e10a3be3433e1400422b22"}],
        references=[{"answers": {"answer_start": [97], "text": ["1976"]}, "id": "56e10a3be3433e1400422b22"}],
    )
    assert squad == {"exact_match": 100.0, "f1": 100.0}
    v2 = cove.load_metric("squad_v2").compute(
        predictions=[{"prediction_text": "1976", "id": "x", "no_answer_probability": 0.0}],
        references=[{"answers": {"answer_start": [97], "text": ["1976"]}, "id": "x"}],
    )
    assert v2 == {
        "exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0, "HasAns_f1": 100.0, "HasAns_total": 1,
        "best_exact": 100.0, "best_exact_thresh": 0.0, "best_f1": 100.0, "best_f1_thresh": 0.0,
    }  # fmt: skip


def test_output_keys_and_types():
    bleu = cove.load_metric("bleu").compute(
        predictions=["hello there general kenobi"], references=[["hello there general kenobi"]]
    )
    assert bleu == {
        "bleu": 1.0, "precisions": [1.0, 1.0, 1.0, 1.0], "brevity_penalty": 1.0, "length_ratio": 1.0,
        "translation_length": 4, "reference_length": 4,
    }  # fmt: skip
    sacre = cove.load_metric("sacrebleu").compute(
        predictions=["hello there general kenobi"], references=["hello there general kenobi"]
    )
    assert list(sacre) == ["score", "counts", "totals", "precisions", "bp", "sys_len", "ref_len"]
    assert sacre["score"] == pytest.approx(100.0) and sacre["counts"] == [4, 3, 2, 1]
    rouge = cove.load_metric("rouge").compute(predictions=["hello there"], references=["hello there"])
    assert rouge == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0, "rougeLsum": 1.0}
    for name, key in [("mse", "mse"), ("mae", "mae"), ("pearsonr", "pearsonr"), ("spearmanr", "spearmanr")]:
        out = cove.load_metric(name).compute(predictions=[1.0, 2.0, 4.0], references=[1.5, 2.0, 3.0])
        assert list(out) == [key] and isinstance(out[key], float)
    assert cove.load_metric("mse").compute(predictions=[1.0, 2.0, 4.0], references=[1.5, 2.0, 3.0])[
        "mse"
    ] == pytest.approx((0.25 + 0 + 1) / 3)
    assert cove.load_metric("mse").compute(predictions=[0.0, 0.0], references=[3.0, 4.0], squared=False)[
        "mse"
    ] == pytest.approx(math.sqrt(12.5))
    assert list(
        cove.load_metric("pearsonr").compute(predictions=[1, 2, 3], references=[1, 3, 2], return_pvalue=True)
    ) == [
        "pearsonr",
        "p-value",
    ]
    mcc = cove.load_metric("matthews_correlation").compute(
        predictions=[1, 2, 2, 0, 3, 3], references=[1, 3, 2, 0, 3, 2]
    )
    assert mcc == {"matthews_correlation": pytest.approx(0.5384615384615384)}


def test_add_and_add_batch_accumulate_then_reset():
    metric = cove.load_metric("accuracy")
    metric.add(prediction=1, reference=1)
    metric.add_batch(predictions=[0, 1], references=[0, 0])
    assert metric.compute() == {"accuracy": pytest.approx(2 / 3)}
    with pytest.raises(MetricError, match="nothing to score"):
        metric.compute()  # the buffer was emptied
    metric.add_batch(predictions=[1], references=[1])
    assert metric.compute(predictions=[0], references=[1]) == {"accuracy": 0.5}  # buffered + given


def test_load_options_are_compute_defaults():
    strict = cove.load_metric("seqeval", mode="strict", scheme="IOB2")
    loose = cove.load_metric("seqeval")
    preds, refs = [["I-PER", "I-PER", "O"]], [["B-PER", "I-PER", "O"]]
    assert loose.compute(predictions=preds, references=refs)["overall_f1"] == 1.0
    assert strict.compute(predictions=preds, references=refs)["overall_f1"] == 0.0


def test_combine_merges_and_prefixes_collisions():
    clf = cove.metrics.combine(["accuracy", "f1", "precision", "recall"])
    out = clf.compute(predictions=[0, 1, 0], references=[0, 1, 1])
    assert out == {
        "accuracy": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "precision": 1.0,
        "recall": 0.5,
    }
    # average= goes only to the metrics that take it
    macro = clf.compute(predictions=[0, 2, 1, 0, 0, 1], references=[0, 1, 2, 0, 1, 2], average="macro")
    assert macro["f1"] == pytest.approx(0.26666666666666666) and macro["accuracy"] == pytest.approx(1 / 3)
    clash = cove.metrics.combine(["f1", "seqeval"], force_prefix=True)
    assert clash.names == ["f1", "seqeval"]
    same = cove.metrics.combine([cove.load_metric("f1"), cove.load_metric("f1", pos_label=0)])
    assert same.compute(predictions=[0, 1], references=[0, 0]) == {
        "f1_0_f1": 0.0,
        "f1_1_f1": pytest.approx(2 / 3),
    }
    prefixed = cove.metrics.combine(["accuracy", "mse"], force_prefix=True).compute(
        predictions=[1, 2], references=[1, 1]
    )
    assert prefixed == {"accuracy_accuracy": 0.5, "mse_mse": 0.5}
    clf.add_batch(predictions=[1, 1], references=[1, 0])
    assert clf.compute()["accuracy"] == 0.5


def test_errors_are_clear():
    with pytest.raises(MetricError, match=r"Did you mean 'accuracy'"):
        cove.load_metric("acurracy")
    with pytest.raises(MetricError, match=r"'squad_v2' or 'squad'|'squad' or 'squad_v2'"):
        cove.load_metric("squad2")
    with pytest.raises(MetricError, match="3 predictions but 2 references"):
        cove.load_metric("f1").compute(predictions=[0, 1, 1], references=[0, 1])
    with pytest.raises(MetricError, match="multiclass but average='binary'"):
        cove.load_metric("f1").compute(predictions=[0, 1, 2], references=[0, 1, 2])
    with pytest.raises(MetricError, match="pos_label='spam'"):
        cove.load_metric("precision").compute(predictions=[0, 1], references=[1, 0], pos_label="spam")
    with pytest.raises(MetricError, match="pos_label=1 is not a label"):
        cove.load_metric("recall").compute(predictions=["a", "b"], references=["b", "a"])
    with pytest.raises(MetricError, match="none of labels"):
        cove.load_metric("f1").compute(
            predictions=[0, 1, 2], references=[0, 1, 2], labels=[7, 8], average="macro"
        )
    with pytest.raises(MetricError, match="average='mean'"):
        cove.load_metric("f1").compute(predictions=[0, 1], references=[0, 1], average="mean")
    with pytest.raises(MetricError, match="continuous"):
        cove.load_metric("accuracy").compute(predictions=[0.5, 1], references=[0, 1])
    with pytest.raises(MetricError, match="no option 'averge'"):
        cove.load_metric("f1").compute(predictions=[0, 1], references=[0, 1], averge="macro")
    with pytest.raises(MetricError, match="sequence 0 has 2 predicted tags but 1"):
        cove.load_metric("seqeval").compute(predictions=[["O", "O"]], references=[["O"]])
    with pytest.raises(MetricError, match="at least 2 pairs"):
        cove.load_metric("pearsonr").compute(predictions=[1.0], references=[1.0])
    with pytest.raises(MetricError, match="non-zero weight"):
        cove.load_metric("accuracy").compute(predictions=[1], references=[1], sample_weight=[0.0])


def test_constant_input_correlation_is_nan():
    with pytest.warns(UserWarning, match="constant"):
        assert math.isnan(
            cove.load_metric("pearsonr").compute(predictions=[1, 1, 1], references=[1, 2, 3])["pearsonr"]
        )


def test_exact_match_options():
    em = cove.load_metric("exact_match")
    refs = ["the cat", "theater", "YELLING", "agent007"]
    preds = ["cat?", "theater", "yelling", "agent"]
    assert em.compute(predictions=preds, references=refs)["exact_match"] == 0.25
    assert (
        em.compute(predictions=preds, references=refs, regexes_to_ignore=["the "], ignore_case=True)[
            "exact_match"
        ]
        == 0.5
    )
    out = em.compute(
        predictions=preds,
        references=refs,
        regexes_to_ignore=["the "],
        ignore_case=True,
        ignore_punctuation=True,
        ignore_numbers=True,
    )
    assert out["exact_match"] == 1.0
    # normalized to empty only counts when the originals were equal
    assert em.compute(predictions=["!!"], references=["?"], ignore_punctuation=True)["exact_match"] == 0.0


def test_missing_optional_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sacrebleu", None)
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    monkeypatch.setitem(sys.modules, "rouge_score.rouge_scorer", None)
    with pytest.raises(MetricError, match=r"pip install sacrebleu"):
        cove.load_metric("sacrebleu").compute(predictions=["a"], references=["a"])
    with pytest.raises(MetricError, match=r"pip install rouge-score"):
        cove.load_metric("rouge").compute(predictions=["a"], references=["a"])
    # bleu is self-contained
    assert cove.load_metric("bleu").compute(predictions=["a b c d"], references=["a b c d"])["bleu"] == 1.0


def test_more_input_errors():
    with pytest.raises(MetricError, match="same number of references"):
        cove.load_metric("sacrebleu").compute(
            predictions=["a b", "c d"], references=[["a b"], ["c d", "c e"]]
        )
    with pytest.raises(MetricError, match="list of tag sequences"):
        cove.load_metric("seqeval").compute(predictions=["B-PER", "O"], references=["B-PER", "O"])
    with pytest.raises(MetricError, match="scheme='IOB9'"):
        cove.load_metric("seqeval").compute(
            predictions=[["O"]], references=[["O"]], mode="strict", scheme="IOB9"
        )
    with pytest.raises(MetricError, match="all strings or all numbers"):
        cove.load_metric("accuracy").compute(predictions=["a", "b"], references=[0, 1])
    with pytest.raises(MetricError, match="has no gold answers"):
        cove.load_metric("squad").compute(
            predictions=[{"id": "q", "prediction_text": "x"}],
            references=[{"id": "q", "answers": {"text": []}}],
        )


def test_numpy_inputs_and_zero_division():
    metric = cove.load_metric("precision")
    metric.add_batch(predictions=np.array([0, 0, 0]), references=np.array([0, 1, 1]))
    assert metric.compute(zero_division=1) == {"precision": 1.0}  # nothing predicted positive
    seq = cove.load_metric("seqeval").compute(
        predictions=[["O", "O"]], references=[["B-X", "O"]], zero_division=1
    )
    assert seq["X"] == {"precision": 1.0, "recall": 0.0, "f1": 0.0, "number": 1}


def test_numpy_and_list_batches_mix():
    metric = cove.load_metric("f1")
    metric.add_batch(predictions=np.array([0, 1, 2]), references=np.array([0, 1, 1]))
    metric.add_batch(predictions=np.array([2, 2]), references=np.array([2, 0]))
    metric.add(prediction=1, reference=1)
    whole = cove.load_metric("f1").compute(
        predictions=[0, 1, 2, 2, 2, 1], references=[0, 1, 1, 2, 0, 1], average="macro"
    )
    assert metric.compute(average="macro") == whole
    mse = cove.load_metric("mse")
    mse.add_batch(predictions=np.ones((2, 3)), references=np.zeros((2, 3)))
    mse.add_batch(predictions=np.ones((1, 3)), references=np.ones((1, 3)))
    np.testing.assert_allclose(mse.compute(multioutput="raw_values")["mse"], [2 / 3] * 3)
