"""Prometheus counters and histograms of the inference engine, rendered in the text exposition format
(version 0.0.4) by ``GET /metrics``. Every series is labelled by model (the repo id); the route shows a
caller only the models it may read."""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SECONDS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

_HELP = {
    "cove_inference_requests_total": (
        "counter",
        "Inference requests answered, by model, task and HTTP status.",
    ),
    "cove_inference_queue_depth": ("gauge", "Requests waiting or running per model."),
    "cove_inference_batch_size": (
        "histogram",
        "Requests (encoders) or sequences (generation) per forward pass.",
    ),
    "cove_inference_queue_seconds": (
        "histogram",
        "Time from a request's arrival at its model to its first compute.",
    ),
    "cove_inference_compute_seconds": (
        "histogram",
        "Time a request spent computing (its batch's forward, or its generation).",
    ),
    "cove_inference_generated_tokens_total": ("counter", "Tokens generated per model."),
    "cove_inference_prompt_tokens_total": ("counter", "Input tokens processed per model."),
    "cove_inference_loaded_models": ("gauge", "Models loaded now."),
    "cove_inference_model_memory_bytes": ("gauge", "Parameter and buffer bytes of each loaded model."),
    "cove_inference_model_loads_total": ("counter", "Model loads by result (ok, error)."),
    "cove_inference_evictions_total": ("counter", "Models evicted to stay under COVE_INFERENCE_MEMORY_MB."),
}


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.count += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._histograms: dict[str, dict[tuple[tuple[str, str], ...], _Histogram]] = defaultdict(dict)

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters[name]
            series[key] = series.get(key, 0) + value

    def observe(self, name: str, value: float, buckets: tuple[float, ...], **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._histograms[name]
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(buckets)
            hist.observe(value)

    def models(self) -> set[str]:
        with self._lock:
            found = {
                v for series in self._counters.values() for key in series for k, v in key if k == "model"
            }
            found |= {
                v for series in self._histograms.values() for key in series for k, v in key if k == "model"
            }
        return found

    def render(
        self, gauges: dict[str, list[tuple[dict[str, str], float]]], visible: Callable[[str], bool]
    ) -> str:
        """The exposition text: counters and histograms kept here, plus the engine's gauges of now; series
        of a model that visible() refuses are left out."""

        def shown(key: Iterable[tuple[str, str]]) -> bool:
            model = dict(key).get("model")
            return model is None or model == "" or visible(model)

        lines: list[str] = []
        with self._lock:
            counters = {name: dict(series) for name, series in self._counters.items()}
            histograms = {
                name: {k: (h.buckets, list(h.counts), h.total, h.count) for k, h in series.items()}
                for name, series in self._histograms.items()
            }
        for name, (kind, help_text) in _HELP.items():
            body: list[str] = []
            if kind == "counter":
                for key, value in sorted(counters.get(name, {}).items()):
                    if shown(key):
                        body.append(f"{name}{_labels(key)} {_number(value)}")
            elif kind == "gauge":
                for labels, value in gauges.get(name, []):
                    key = tuple(sorted(labels.items()))
                    if shown(key):
                        body.append(f"{name}{_labels(key)} {_number(value)}")
            else:
                for key, (buckets, counts, total, count) in sorted(histograms.get(name, {}).items()):
                    if not shown(key):
                        continue
                    for bound, n in zip(buckets, counts):
                        body.append(f"{name}_bucket{_labels([*key, ('le', _number(bound))])} {n}")
                    body.append(f"{name}_bucket{_labels([*key, ('le', '+Inf')])} {count}")
                    body.append(f"{name}_sum{_labels(key)} {_number(total)}")
                    body.append(f"{name}_count{_labels(key)} {count}")
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(body)
        return "\n".join(lines) + "\n"
