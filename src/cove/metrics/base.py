"""The evaluate-style front: ``load(name)`` gives a Metric with add/add_batch/compute; ``combine``.

A metric is a plain function ``fn(predictions, references, **options) -> dict``. The Metric object only
buffers inputs between ``add`` calls and forwards options, so every number comes from the plain functions.
"""

from __future__ import annotations

import collections
import difflib
import importlib
import inspect
import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cove.errors import MetricError


@dataclass(frozen=True)
class MetricSpec:
    name: str
    module: str  # cove.metrics.<module> defines `function`
    function: str
    inputs: tuple[str, ...] = ("predictions", "references")
    description: str = ""


_SPECS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in [
        MetricSpec("accuracy", "classification", "accuracy", description="fraction of correct labels"),
        MetricSpec("precision", "classification", "precision"),
        MetricSpec("recall", "classification", "recall"),
        MetricSpec("f1", "classification", "f1"),
        MetricSpec("matthews_correlation", "classification", "matthews_correlation"),
        MetricSpec("mse", "regression", "mse"),
        MetricSpec("mae", "regression", "mae"),
        MetricSpec("pearsonr", "regression", "pearsonr"),
        MetricSpec("spearmanr", "regression", "spearmanr"),
        MetricSpec("exact_match", "text", "exact_match"),
        MetricSpec("squad", "squad", "squad"),
        MetricSpec("squad_v2", "squad", "squad_v2"),
        MetricSpec("seqeval", "sequence_labeling", "seqeval"),
        MetricSpec("bleu", "translation", "bleu"),
        MetricSpec("sacrebleu", "translation", "sacrebleu"),
        MetricSpec("rouge", "rouge", "rouge"),
        MetricSpec("perplexity", "perplexity", "perplexity", inputs=("predictions",)),
    ]
}


def optional_import(module: str, package: str, metric: str) -> Any:
    """Import a package that only some metrics need, or say which one to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MetricError(
            f"The {metric!r} metric needs the {package!r} package: pip install {package} "
            "(or pip install 'cove[metrics]')."
        ) from exc


def list_metrics() -> list[str]:
    """Names ``load`` accepts."""
    return sorted(_SPECS)


def _resolve(name: str) -> MetricSpec:
    if not isinstance(name, str):
        raise MetricError(f"A metric name must be a string, got {type(name).__name__}: {name!r}")
    key = name.strip()
    for prefix in ("evaluate-metric/", "evaluate/"):
        if key.startswith(prefix):
            key = key[len(prefix) :]
    key = key.lower().replace("-", "_")
    spec = _SPECS.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, list(_SPECS), n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise MetricError(f"Unknown metric {name!r}.{hint} Available metrics: {', '.join(list_metrics())}.")
    return spec


def _join(batches: list[Any]) -> Any:
    if len(batches) == 1:
        return batches[0]
    if batches and all(isinstance(b, np.ndarray) for b in batches):
        try:
            return np.concatenate(batches)
        except ValueError:  # ragged shapes: let the metric report them
            pass
    return [item for batch in batches for item in batch]


class Metric:
    """One metric: buffers ``add``/``add_batch`` inputs; ``compute`` scores everything buffered.

    Options given to ``load(name, **options)`` are defaults for every ``compute`` call (evaluate passes
    e.g. seqeval's ``scheme`` or squad_v2's ``no_answer_threshold`` that way).
    """

    def __init__(self, spec: MetricSpec, config_name: str | None = None, **defaults: Any) -> None:
        self.name = spec.name
        self.config_name = config_name or "default"
        self._spec = spec
        self._fn: Callable[..., dict[str, Any]] = getattr(
            importlib.import_module(f"cove.metrics.{spec.module}"), spec.function
        )
        self._options = set(inspect.signature(self._fn).parameters) - set(spec.inputs)
        self._check_options(defaults)
        self._defaults = defaults
        self._buffer: dict[str, list[Any]] = {key: [] for key in spec.inputs}  # batches per input

    @property
    def input_names(self) -> tuple[str, ...]:
        return self._spec.inputs

    @property
    def options(self) -> list[str]:
        return sorted(self._options)

    def _check_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - self._options)
        if unknown:
            raise MetricError(
                f"Metric {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                f"its options are: {', '.join(self.options) or '(none)'}."
            )

    def _check_no_references(self, references: Any) -> None:
        if references is not None and "references" not in self._spec.inputs:
            raise MetricError(f"Metric {self.name!r} takes no references; pass predictions= only.")

    def add(self, *, prediction: Any = None, reference: Any = None, **kwargs: Any) -> None:
        """Buffer one example."""
        if kwargs:
            raise MetricError(f"add() takes prediction= and reference= only, got {sorted(kwargs)}.")
        values = {"predictions": prediction, "references": reference}
        self._check_no_references(reference)
        for key in self._spec.inputs:
            if values[key] is None:
                raise MetricError(f"add() on {self.name!r} needs {key[:-1]}=...")
            self._buffer[key].append([values[key]])

    def add_batch(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> None:
        """Buffer a batch of examples."""
        if kwargs:
            raise MetricError(f"add_batch() takes predictions= and references= only, got {sorted(kwargs)}.")
        values = {"predictions": predictions, "references": references}
        self._check_no_references(references)
        batch = {}
        for key in self._spec.inputs:
            if values[key] is None:
                raise MetricError(f"add_batch() on {self.name!r} needs {key}=...")
            value = values[key]
            # numpy batches stay arrays (concatenated at compute); anything else becomes a list
            batch[key] = value if isinstance(value, np.ndarray) and value.ndim >= 1 else list(value)
        if "references" in batch and len(batch["references"]) != len(batch["predictions"]):
            raise MetricError(
                f"{self.name}: add_batch got {len(batch['predictions'])} predictions but "
                f"{len(batch['references'])} references; give one reference per prediction."
            )
        for key, value in batch.items():
            self._buffer[key].append(value)

    def compute(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> dict[str, Any]:
        """Score the buffered examples plus ``predictions``/``references``; empties the buffer."""
        self._check_options(kwargs)
        if predictions is not None or references is not None:
            self.add_batch(predictions=predictions, references=references)
        inputs = {key: _join(self._buffer[key]) for key in self._spec.inputs}
        self._buffer = {key: [] for key in self._spec.inputs}
        if len(inputs["predictions"]) == 0:
            raise MetricError(
                f"{self.name}: nothing to score; pass predictions= (and references=) or add them first."
            )
        return self._fn(**inputs, **{**self._defaults, **kwargs})

    def __repr__(self) -> str:
        return f"Metric(name={self.name!r}, options={self.options})"


def load(path: str, config_name: str | None = None, **options: Any) -> Metric:
    """Load a metric by name, like ``evaluate.load``; no network, no scripts.

    ``config_name="multilabel"`` is accepted for evaluate compatibility: Cove detects multilabel
    (2-D indicator) inputs by their shape.
    """
    return Metric(_resolve(path), config_name=config_name, **options)


class CombinedMetric:
    """Several metrics computed on the same inputs into one dict (``evaluate.combine`` semantics)."""

    def __init__(self, metrics: Sequence[Metric], force_prefix: bool = False) -> None:
        self.metrics = list(metrics)
        self.force_prefix = force_prefix

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.metrics]

    def add(self, *, prediction: Any = None, reference: Any = None) -> None:
        for metric in self.metrics:
            metric.add(prediction=prediction, reference=reference)

    def add_batch(self, *, predictions: Any = None, references: Any = None) -> None:
        for metric in self.metrics:
            metric.add_batch(predictions=predictions, references=references)

    def compute(self, *, predictions: Any = None, references: Any = None, **kwargs: Any) -> dict[str, Any]:
        accepted = set().union(*(m._options for m in self.metrics))
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise MetricError(f"None of {self.names} takes option(s) {unknown}.")
        results = []
        for metric in self.metrics:
            # evaluate passes every option to every metric; we pass each only what it takes.
            own = {k: v for k, v in kwargs.items() if k in metric._options}
            results.append(metric.compute(predictions=predictions, references=references, **own))
        return self._merge(results)

    def _merge(self, results: list[dict[str, Any]]) -> dict[str, Any]:
        key_counts = collections.Counter(itertools.chain.from_iterable(r.keys() for r in results))
        name_counts = collections.Counter(self.names)
        seen: dict[str, int] = collections.defaultdict(int)
        merged: dict[str, Any] = {}
        for name, result in zip(self.names, results):
            for key, value in result.items():
                if key_counts[key] == 1 and not self.force_prefix:
                    merged[key] = value
                elif name_counts[name] > 1:
                    merged[f"{name}_{seen[name]}_{key}"] = value
                else:
                    merged[f"{name}_{key}"] = value
            seen[name] += 1
        return merged

    def __repr__(self) -> str:
        return f"CombinedMetric({self.names})"


def combine(metrics: Iterable[str | Metric], force_prefix: bool = False) -> CombinedMetric:
    """``evaluate.combine``: names or loaded metrics; colliding keys get the metric name as prefix."""
    loaded = [m if isinstance(m, Metric) else load(m) for m in metrics]
    if not loaded:
        raise MetricError("combine() needs at least one metric name or Metric.")
    return CombinedMetric(loaded, force_prefix=force_prefix)
