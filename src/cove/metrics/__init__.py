"""Evaluate-style metrics: ``load(name).compute(predictions=..., references=...)`` and ``combine``.

Plain functions live one family per module (classification, regression, text, squad, sequence_labeling,
translation, rouge, perplexity); ``load`` wraps one in a Metric with add/add_batch/compute. Only numpy is
imported here; sacrebleu, rouge-score and torch are imported by the metrics that need them.
"""

from __future__ import annotations

from .base import CombinedMetric, Metric, combine, list_metrics, load

load_metric = load  # cove.load_metric, the name datasets used before evaluate

__all__ = ["CombinedMetric", "Metric", "combine", "list_metrics", "load", "load_metric"]
