"""Seeding, RNG state capture, and the small result types the Trainer returns."""

from __future__ import annotations

import random
from typing import Any, NamedTuple

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed python's ``random``, numpy and torch, as transformers.set_seed does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from, in types ``torch.load(weights_only=True)`` accepts."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(mt), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "cpu": torch.get_rng_state(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["cpu"])


class EvalPrediction:
    """What ``compute_metrics`` receives: ``predictions`` and ``label_ids`` (numpy), unpackable as a pair."""

    def __init__(self, predictions: Any, label_ids: Any, inputs: Any = None):
        self.predictions = predictions
        self.label_ids = label_ids
        self.inputs = inputs

    def _elements(self) -> tuple[Any, ...]:
        if self.inputs is not None:
            return (self.predictions, self.label_ids, self.inputs)
        return (self.predictions, self.label_ids)

    def __iter__(self) -> Any:
        return iter(self._elements())

    def __getitem__(self, index: int) -> Any:
        return self._elements()[index]

    def __len__(self) -> int:
        return len(self._elements())


class TrainOutput(NamedTuple):
    global_step: int
    training_loss: float
    metrics: dict[str, float]


class PredictionOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float] | None


class EvalLoopOutput(NamedTuple):
    predictions: Any
    label_ids: Any
    metrics: dict[str, float]
    num_samples: int
