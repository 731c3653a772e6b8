"""Generation behind one adapter: a loaded causal LM's requests go to Cove's continuous batcher
(``cove.generation.continuous.ContinuousBatcher``: one decode batch that requests join and leave at every
step, each with its own KV-cache row, sampling parameters and stop conditions), and its counters reach
``/metrics`` from here. The protocol adapters (``chat.py``) speak only to this module."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from cove.generation.continuous import (
    ContinuousBatcher,
    GenerationHandle,
    GenerationResult,
    SamplingParams,
    TokenEvent,
)
from cove.server.inference.metrics import BATCH_BUCKETS, Metrics

__all__ = ["GenerationHandle", "GenerationResult", "Generator", "SamplingParams", "TokenEvent"]


class Generator:
    """One model's generation: submit token ids with sampling parameters, get a handle of token events."""

    def __init__(
        self, model: Any, tokenizer: Any, *, max_rows: int, max_queue: int, name: str, metrics: Metrics
    ):
        self.name = name
        self.metrics = metrics
        self.batcher = ContinuousBatcher(model, tokenizer, max_rows=max_rows, max_queue=max_queue, name=name)
        self._seen_sizes: dict[int, int] = {}
        self._seen_tokens = 0
        self._sync_lock = threading.Lock()

    @property
    def context_window(self) -> int | None:
        return self.batcher.context_window

    def submit(self, prompt: Sequence[int], params: SamplingParams) -> GenerationHandle:
        """Raises QueueFullError (429) when rows and queue are taken, GenerationInputError (422) for a
        prompt or parameters the model cannot take (a prompt plus max_new_tokens past its context, ...)."""
        return self.batcher.submit(list(prompt), params)

    def stats(self) -> dict[str, Any]:
        return self.batcher.stats()

    def sync_metrics(self) -> None:
        """Fold the batcher's step counts since the last sync into /metrics (batch sizes, generated tokens)."""
        stats = self.batcher.stats()
        with self._sync_lock:
            for size, count in stats["batch_size_histogram"].items():
                for _ in range(count - self._seen_sizes.get(size, 0)):
                    self.metrics.observe("cove_inference_batch_size", size, BATCH_BUCKETS, model=self.name)
                self._seen_sizes[size] = count
            generated = stats["generated_tokens"]
            if generated > self._seen_tokens:
                self.metrics.count(
                    "cove_inference_generated_tokens_total", generated - self._seen_tokens, model=self.name
                )
                self._seen_tokens = generated

    def close(self, *, wait: bool = True) -> None:
        """Stop taking requests; with wait, those accepted are served to their end first."""
        self.batcher.close(wait=wait)
        self.sync_metrics()
