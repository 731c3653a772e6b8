"""Regression metrics: mse, mae, pearsonr, spearmanr (numpy only; p-values without scipy)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from cove.errors import MetricError


def _pair(predictions: Any, references: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        y_pred = np.asarray(predictions, dtype=float)
        y_true = np.asarray(references, dtype=float)
    except (TypeError, ValueError) as exc:
        raise MetricError(f"{metric}: predictions and references must be numbers ({exc}).") from exc
    if len(y_pred) != len(y_true):
        raise MetricError(
            f"{metric}: got {len(y_pred)} predictions but {len(y_true)} references; "
            "give one reference per prediction."
        )
    if len(y_true) == 0:
        raise MetricError(f"{metric}: predictions and references are empty; there is nothing to score.")
    if y_pred.shape != y_true.shape or y_true.ndim > 2:
        raise MetricError(
            f"{metric}: shapes differ or are not 1-D/2-D: predictions {y_pred.shape}, references {y_true.shape}."
        )
    return y_true, y_pred


def _multioutput(errors: np.ndarray, multioutput: Any, metric: str) -> Any:
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return errors
        if multioutput == "uniform_average":
            return float(np.mean(errors))
        raise MetricError(
            f"{metric}: multioutput={multioutput!r}; use 'raw_values', 'uniform_average' or weights."
        )
    weights = np.asarray(multioutput, dtype=float)
    if weights.shape != errors.shape:
        raise MetricError(
            f"{metric}: multioutput weights have shape {weights.shape}, expected {errors.shape}."
        )
    return float(np.average(errors, weights=weights))


def _weights(sample_weight: Any, n: int, metric: str) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=float)
    if weights.shape != (n,):
        raise MetricError(f"{metric}: sample_weight has shape {weights.shape}, expected ({n},).")
    if not np.all(np.isfinite(weights)) or not np.any(weights):
        raise MetricError(
            f"{metric}: sample_weight must be finite with at least one non-zero weight, got {weights[:5]}..."
        )
    return weights


def mse(
    predictions: Any,
    references: Any,
    sample_weight: Any = None,
    multioutput: Any = "uniform_average",
    squared: bool = True,
) -> dict[str, Any]:
    """Mean squared error; ``squared=False`` gives the root (per output, then averaged)."""
    y_true, y_pred = _pair(predictions, references, "mse")
    weights = _weights(sample_weight, len(y_true), "mse")
    errors = np.average((y_true - y_pred) ** 2, axis=0, weights=weights)
    if not squared:
        errors = np.sqrt(errors)
    return {"mse": _multioutput(np.atleast_1d(errors), multioutput, "mse")}


def mae(
    predictions: Any, references: Any, sample_weight: Any = None, multioutput: Any = "uniform_average"
) -> dict[str, Any]:
    """Mean absolute error."""
    y_true, y_pred = _pair(predictions, references, "mae")
    weights = _weights(sample_weight, len(y_true), "mae")
    errors = np.average(np.abs(y_true - y_pred), axis=0, weights=weights)
    return {"mae": _multioutput(np.atleast_1d(errors), multioutput, "mae")}


def rankdata(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts_group = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    group = np.cumsum(starts_group) - 1  # group id per sorted position
    bounds = np.concatenate([np.flatnonzero(starts_group), [len(values)]])
    mean_rank = (bounds[:-1] + 1 + bounds[1:]) / 2.0  # mean of ranks start+1..end
    ranks = np.empty(len(values))
    ranks[order] = mean_rank[group]
    return ranks


def _correlation(x: np.ndarray, y: np.ndarray, metric: str) -> float:
    xm, ym = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xm), np.linalg.norm(ym)
    if nx == 0 or ny == 0:
        warnings.warn(
            f"{metric}: an input is constant, so the correlation is undefined (nan).",
            UserWarning,
            stacklevel=3,
        )
        return float("nan")
    return float(np.clip(np.dot(xm / nx, ym / ny), -1.0, 1.0))


def _betacf(a: float, b: float, x: float) -> float:
    # Continued fraction of the incomplete beta function (modified Lentz).
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 100_000):
        for aa in (
            m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            delta = c * d
            h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def correlation_pvalue(r: float, n: int) -> float:
    """Two-sided p-value of a correlation r over n pairs (t-test with n - 2 degrees of freedom)."""
    if math.isnan(r):
        return float("nan")
    if n == 2:
        return 1.0
    if abs(r) >= 1.0:
        return 0.0
    df = n - 2
    return betainc(df / 2.0, 0.5, 1.0 - r * r)


def _vectors(predictions: Any, references: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _pair(predictions, references, metric)
    if y_true.ndim != 1:
        raise MetricError(f"{metric}: needs 1-D predictions and references, got shape {y_true.shape}.")
    if len(y_true) < 2:
        raise MetricError(f"{metric}: needs at least 2 pairs, got {len(y_true)}.")
    return y_true, y_pred


def pearsonr(predictions: Any, references: Any, return_pvalue: bool = False) -> dict[str, float]:
    """Pearson correlation; ``return_pvalue`` adds the two-sided p-value under 'p-value'."""
    y_true, y_pred = _vectors(predictions, references, "pearsonr")
    r = _correlation(y_true, y_pred, "pearsonr")
    if return_pvalue:
        return {"pearsonr": r, "p-value": correlation_pvalue(r, len(y_true))}
    return {"pearsonr": r}


def spearmanr(predictions: Any, references: Any, return_pvalue: bool = False) -> dict[str, float]:
    """Spearman rank correlation (ties get average ranks); ``return_pvalue`` adds 'spearmanr_pvalue'."""
    y_true, y_pred = _vectors(predictions, references, "spearmanr")
    rho = _correlation(rankdata(y_true), rankdata(y_pred), "spearmanr")
    if return_pvalue:
        return {"spearmanr": rho, "spearmanr_pvalue": correlation_pvalue(rho, len(y_true))}
    return {"spearmanr": rho}
