"""Label metrics: accuracy, precision, recall, f1, matthews_correlation.

Semantics follow scikit-learn (which the evaluate metric scripts call): label sets, ``average``
(binary/micro/macro/weighted/samples/None), ``labels``, ``pos_label``, ``sample_weight`` and
``zero_division``. Inputs are 1-D labels (ints or strings) or 2-D 0/1 multilabel indicator arrays.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from cove.errors import MetricError

_AVERAGES = (None, "binary", "micro", "macro", "weighted", "samples")


def _as_array(values: Any, what: str, metric: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype == object:
        kinds = {type(v) for v in array.ravel().tolist()}
        if any(issubclass(k, str) for k in kinds) and not all(issubclass(k, str) for k in kinds):
            raise MetricError(
                f"{metric}: {what} mix strings and numbers ({sorted(k.__name__ for k in kinds)}); "
                "use one label type."
            )
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise MetricError(
                f"{metric}: {what} must be labels (ints or strings), got {values!r:.200}"
            ) from exc
    if array.ndim not in (1, 2):
        raise MetricError(
            f"{metric}: {what} must be 1-D labels or a 2-D multilabel indicator, got shape {array.shape}"
        )
    return array


def _check_weights(sample_weight: Any, n: int, metric: str) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape != (n,):
        raise MetricError(
            f"{metric}: sample_weight has shape {weights.shape}, expected one weight per example ({n})."
        )
    if not np.all(np.isfinite(weights)) or not np.any(weights):
        raise MetricError(
            f"{metric}: sample_weight must be finite with at least one non-zero weight, got {weights[:5]}..."
        )
    return weights


def check_targets(predictions: Any, references: Any, metric: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Returns (kind, y_true, y_pred) with kind in binary/multiclass/multilabel, like sklearn."""
    y_pred = _as_array(predictions, "predictions", metric)
    y_true = _as_array(references, "references", metric)
    if len(y_pred) != len(y_true):
        raise MetricError(
            f"{metric}: got {len(y_pred)} predictions but {len(y_true)} references; "
            "give one reference per prediction."
        )
    if len(y_true) == 0:
        raise MetricError(f"{metric}: predictions and references are empty; there is nothing to score.")
    if y_true.ndim != y_pred.ndim:
        raise MetricError(
            f"{metric}: predictions are {y_pred.ndim}-D but references are {y_true.ndim}-D; "
            "use 1-D labels for both, or 2-D multilabel indicators for both."
        )
    if (y_true.dtype.kind in "US") != (y_pred.dtype.kind in "US"):
        raise MetricError(
            f"{metric}: predictions are {y_pred.dtype} and references are {y_true.dtype}; "
            "labels must be all strings or all numbers."
        )
    for name, array in (("predictions", y_pred), ("references", y_true)):
        if array.dtype.kind == "f" and not np.all(np.isfinite(array) & (array == np.round(array))):
            raise MetricError(
                f"{metric}: {name} hold continuous values (e.g. {array[~(array == np.round(array))][:3]}); "
                "classification metrics need discrete labels. Use mse/mae/pearsonr for regression."
            )
    if y_true.ndim == 2:
        if y_true.shape != y_pred.shape:
            raise MetricError(
                f"{metric}: multilabel shapes differ: predictions {y_pred.shape}, references {y_true.shape}."
            )
        for name, array in (("predictions", y_pred), ("references", y_true)):
            if array.dtype.kind in "US" or not np.isin(array, (0, 1)).all():
                raise MetricError(f"{metric}: 2-D {name} must be a 0/1 multilabel indicator array.")
        return "multilabel", y_true.astype(np.int64), y_pred.astype(np.int64)
    kind = "binary" if len(np.union1d(y_true, y_pred)) <= 2 else "multiclass"
    return kind, y_true, y_pred


def _zero_division_value(zero_division: Any) -> float:
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if isinstance(zero_division, (int, float)) and (zero_division in (0, 1) or np.isnan(zero_division)):
        return float(zero_division)
    raise MetricError(f"zero_division must be 'warn', 0, 1 or nan, got {zero_division!r}.")


def _divide(num: np.ndarray, den: np.ndarray, zero_division: Any, what: str) -> np.ndarray:
    mask = den == 0
    result = np.asarray(num, dtype=float) / np.where(mask, 1, den).astype(float)
    if mask.any():
        result[mask] = _zero_division_value(zero_division)
        if isinstance(zero_division, str):
            warnings.warn(
                f"{what} is ill-defined (0/0) for some labels and set to 0.0; pass zero_division= to choose.",
                UserWarning,
                stacklevel=4,
            )
    return result


def _set_labels(
    kind: str, y_true: np.ndarray, y_pred: np.ndarray, average: Any, labels: Any, pos_label: Any, metric: str
) -> list[Any] | None:
    if average not in _AVERAGES:
        raise MetricError(f"{metric}: average={average!r} is not one of {list(_AVERAGES)}.")
    if average == "samples" and kind != "multilabel":
        raise MetricError(f"{metric}: average='samples' needs multilabel (2-D) inputs; these are {kind}.")
    if average == "binary":
        if kind != "binary":
            raise MetricError(
                f"{metric}: the targets are {kind} but average='binary'; choose average= one of "
                "'micro', 'macro', 'weighted' or None."
            )
        present = np.union1d(y_true, y_pred).tolist()
        if pos_label not in present and len(present) >= 2:
            raise MetricError(
                f"{metric}: pos_label={pos_label!r} is not a label of these targets; it should be one of {present}."
            )
        return [pos_label]
    if labels is not None:
        labels = list(np.asarray(labels).tolist())
        if kind != "multilabel":
            present = set(np.union1d(y_true, y_pred).tolist())
            if not present.intersection(labels):
                raise MetricError(
                    f"{metric}: none of labels={labels!r} occurs in predictions or references "
                    f"(labels present: {sorted(present)}); check the label values and type."
                )
        else:
            bad = [label for label in labels if not (isinstance(label, int) and 0 <= label < y_true.shape[1])]
            if bad:
                raise MetricError(
                    f"{metric}: multilabel labels are column indices in [0, {y_true.shape[1]}), got {bad}."
                )
    return labels


def confusion_counts(
    kind: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    labels: list[Any] | None,
    sample_weight: np.ndarray | None,
    samplewise: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label (or per-sample) true-positive, predicted and true counts, weighted."""
    if kind == "multilabel":
        if labels is not None:
            y_true, y_pred = y_true[:, labels], y_pred[:, labels]
        both = y_true & y_pred
        if samplewise:
            return both.sum(1).astype(float), y_pred.sum(1).astype(float), y_true.sum(1).astype(float)
        w = np.ones(len(y_true)) if sample_weight is None else sample_weight
        return w @ both, w @ y_pred, w @ y_true
    present = np.union1d(y_true, y_pred)
    selected = present if labels is None else np.asarray(labels)
    classes = np.union1d(present, selected)
    true_idx = np.searchsorted(classes, y_true)
    pred_idx = np.searchsorted(classes, y_pred)
    hit = true_idx == pred_idx
    n = len(classes)
    w_hit = None if sample_weight is None else sample_weight[hit]
    tp = np.bincount(true_idx[hit], weights=w_hit, minlength=n).astype(float)
    pred = np.bincount(pred_idx, weights=sample_weight, minlength=n).astype(float)
    true = np.bincount(true_idx, weights=sample_weight, minlength=n).astype(float)
    keep = np.searchsorted(classes, selected)
    return tp[keep], pred[keep], true[keep]


def _nan_average(values: np.ndarray, weights: np.ndarray | None) -> float:
    mask = np.isnan(values)
    if len(values) == 0 or mask.all():
        return float("nan")
    if weights is None:
        return float(np.mean(values[~mask]))
    w = weights[~mask]
    if w.sum() == 0:  # every weight is zero: sklearn falls back to the plain mean
        return float(np.mean(values[~mask]))
    return float(np.average(values[~mask], weights=w))


def precision_recall_fscore(
    predictions: Any,
    references: Any,
    *,
    beta: float = 1.0,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = "binary",
    sample_weight: Any = None,
    zero_division: Any = "warn",
    metric: str = "precision_recall_fscore",
) -> tuple[Any, Any, Any, np.ndarray | None]:
    """sklearn's precision_recall_fscore_support: (precision, recall, fbeta, support)."""
    kind, y_true, y_pred = check_targets(predictions, references, metric)
    weights = _check_weights(sample_weight, len(y_true), metric)
    _zero_division_value(zero_division)
    labels = _set_labels(kind, y_true, y_pred, average, labels, pos_label, metric)
    tp, pred, true = confusion_counts(kind, y_true, y_pred, labels, weights, samplewise=average == "samples")
    if average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)
    precision = _divide(tp, pred, zero_division, "Precision")
    recall = _divide(tp, true, zero_division, "Recall")
    beta2 = beta**2
    if np.isposinf(beta):
        fscore = recall
    elif beta == 0:
        fscore = precision
    else:
        fscore = _divide((1 + beta2) * tp, beta2 * true + pred, zero_division, "F-score")
    if average is None:
        return precision, recall, fscore, true
    avg_weights = true if average == "weighted" else (weights if average == "samples" else None)
    return (
        _nan_average(precision, avg_weights),
        _nan_average(recall, avg_weights),
        _nan_average(fscore, avg_weights),
        None,
    )


def _scalar_or_array(value: Any) -> Any:
    array = np.asarray(value)
    return float(array.reshape(-1)[0]) if array.size == 1 else array  # as evaluate: one score -> float


def accuracy(
    predictions: Any, references: Any, normalize: bool = True, sample_weight: Any = None
) -> dict[str, float]:
    """Fraction (or, with normalize=False, weighted count) of exactly right labels; subset accuracy for multilabel."""
    kind, y_true, y_pred = check_targets(predictions, references, "accuracy")
    weights = _check_weights(sample_weight, len(y_true), "accuracy")
    right = (y_true == y_pred).all(axis=1) if kind == "multilabel" else y_true == y_pred
    if normalize:
        score = np.average(right, weights=weights)
    else:
        score = right.sum() if weights is None else right @ weights
    return {"accuracy": float(score)}


def precision(
    predictions: Any,
    references: Any,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = "binary",
    sample_weight: Any = None,
    zero_division: Any = "warn",
) -> dict[str, Any]:
    p, _, _, _ = precision_recall_fscore(
        predictions, references, labels=labels, pos_label=pos_label, average=average,
        sample_weight=sample_weight, zero_division=zero_division, metric="precision",
    )  # fmt: skip
    return {"precision": _scalar_or_array(p)}


def recall(
    predictions: Any,
    references: Any,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = "binary",
    sample_weight: Any = None,
    zero_division: Any = "warn",
) -> dict[str, Any]:
    _, r, _, _ = precision_recall_fscore(
        predictions, references, labels=labels, pos_label=pos_label, average=average,
        sample_weight=sample_weight, zero_division=zero_division, metric="recall",
    )  # fmt: skip
    return {"recall": _scalar_or_array(r)}


def f1(
    predictions: Any,
    references: Any,
    labels: Any = None,
    pos_label: Any = 1,
    average: str | None = "binary",
    sample_weight: Any = None,
    zero_division: Any = "warn",
) -> dict[str, Any]:
    _, _, f, _ = precision_recall_fscore(
        predictions, references, labels=labels, pos_label=pos_label, average=average,
        sample_weight=sample_weight, zero_division=zero_division, metric="f1",
    )  # fmt: skip
    return {"f1": _scalar_or_array(f)}


def _mcc(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray | None) -> float:
    classes = np.union1d(y_true, y_pred)
    t = np.searchsorted(classes, y_true)
    p = np.searchsorted(classes, y_pred)
    n = len(classes)
    conf = np.bincount(t * n + p, weights=weights, minlength=n * n).reshape(n, n).astype(float)
    t_sum, p_sum = conf.sum(axis=1), conf.sum(axis=0)
    correct, total = np.trace(conf), p_sum.sum()
    cov_tp = correct * total - t_sum @ p_sum
    cov_pp = total**2 - p_sum @ p_sum
    cov_tt = total**2 - t_sum @ t_sum
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_tt * cov_pp))


def matthews_correlation(
    predictions: Any, references: Any, sample_weight: Any = None, average: str | None = None
) -> dict[str, Any]:
    """Matthews correlation (multiclass R_K); multilabel inputs give one per column, or their mean with average='macro'."""
    kind, y_true, y_pred = check_targets(predictions, references, "matthews_correlation")
    weights = _check_weights(sample_weight, len(y_true), "matthews_correlation")
    if kind != "multilabel":
        if average is not None:
            raise MetricError("matthews_correlation: average= applies to multilabel (2-D) inputs only.")
        return {"matthews_correlation": _mcc(y_true, y_pred, weights)}
    per_column = np.array([_mcc(y_true[:, i], y_pred[:, i], weights) for i in range(y_true.shape[1])])
    if average == "macro":
        return {"matthews_correlation": float(per_column.mean())}
    if average is not None:
        raise MetricError(f"matthews_correlation: average={average!r}; expected 'macro' or None.")
    return {"matthews_correlation": per_column}
