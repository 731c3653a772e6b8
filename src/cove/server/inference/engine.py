"""The serving engine: loaded models, their queues and workers, batching and eviction.

``Engine.get(target)`` returns the loaded model of a commit, loading it on first use (once, even when many
requests ask at the same moment: the first loads, the others wait on its future) from a snapshot folder
built out of the hub's own store. Loaded models are kept in least-recently-used order; when their memory
passes ``COVE_INFERENCE_MEMORY_MB`` the oldest are evicted: taken out of the table at once (new requests load
them again) and closed after their worker has finished every request it holds.

Each loaded model has a bounded queue (past ``COVE_INFERENCE_MAX_QUEUE`` waiting requests, ``submit``
raises ``ModelOverloadedError``: 429) and its worker threads: an encoder ``COVE_INFERENCE_WORKERS`` (one per
core by default), each on one OpenMP thread taking its own batches from the shared queue, so every core
computes without the barrier waits of one two-thread forward; an encoder-decoder one, in arrival order.
An encoder's worker batches requests dynamically: it takes the first waiting request, then every other
one already queued, then waits up to ``COVE_MAX_BATCH_WAIT_MS`` for more while their input tokens stay under ``COVE_MAX_BATCH_TOKENS``; their
features go through the pipeline's own ``prepare`` / ``forward`` / ``complete`` stages, length-sorted, in
forward passes of at most that many padded tokens. Requests with different parameters share a batch only
when their parameters are equal (fill-mask's ``targets`` change its forward). An encoder-decoder's worker
runs one pipeline call per request; causal LMs decode in the continuous batcher (``generation.py``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove.server.inference.errors import (
    InferenceFailedError,
    InferenceInputError,
    ModelLoadError,
    ModelOverloadedError,
)
from cove.server.inference.metrics import BATCH_BUCKETS, SECONDS_BUCKETS, Metrics
from cove.server.inference.tasks import ENCODER_TASKS, PIPELINE_OF, SEQ2SEQ_TASKS, ModelInfo

if TYPE_CHECKING:
    from cove.server.inference.generation import Generator
    from cove.server.settings import Settings
    from cove.store import FileEntry, RepoStore

log = logging.getLogger("cove.server.inference")

_STOP = object()
_UNLIMITED = 10**18  # tokenizers without a model_max_length say 1e30


@dataclass(frozen=True)
class Target:
    """One commit of one model repo, as a request resolved it (the caller may read it)."""

    repo_id: str
    commit: str
    info: ModelInfo


@dataclass
class TaskJob:
    """One request for an encoder or encoder-decoder task: what the pipeline is called with."""

    task: str  # the pipeline task that runs it (sentence-similarity for pooled embeddings)
    inputs: Any  # what the pipeline takes: a string, a list, a dict
    params: dict[str, Any]  # the pipeline's call parameters
    tokens: int  # input tokens: the batch budget and the usage figures
    similarity: bool = False  # inputs = [source, *candidates]: cosine scores of the candidates
    future: Future[Any] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


@dataclass
class _Group:
    pipe: Any
    params: Any
    members: list[tuple[TaskJob, str, Any]]  # (job, how a single input was given, its Prepared)


class ServedModel:
    """One loaded commit: its pipelines (one per task it serves, sharing the weights), worker and queue."""

    def __init__(self, engine: Engine, target: Target, folder: Path):
        import cove

        self.engine = engine
        self.repo_id = target.repo_id
        self.commit = target.commit
        self.info = target.info
        self.folder = folder
        self.settings = engine.settings
        self.metrics = engine.metrics
        self.last_used = time.monotonic()
        self.generator: Generator | None = None
        own = self.info.task
        assert own is not None
        # the feature-extraction family loads as sentence-similarity, which knows the model's pooling
        first = "sentence-similarity" if own == "feature-extraction" else own
        primary = cove.pipeline(
            PIPELINE_OF[first],
            model=str(folder),
            dtype=self.settings.inference_dtype,
            quantization=_quantization_for(self.settings.inference_quantization, folder),
        )
        self.model = primary.model
        self.tokenizer = primary.tokenizer
        self.pipelines: dict[str, Any] = {first: primary}
        self.memory_bytes = _memory_of(self.model)
        self._lock = threading.Lock()
        self._pending = 0
        self._closing = False
        self._seconds_per_job = 0.05  # running mean, for Retry-After
        self._queue: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._working = 0  # worker threads not yet finished; the last one out releases the weights
        self._closer: threading.Thread | None = None
        if own == "text-generation":
            from cove.server.inference.generation import Generator

            self.generator = Generator(
                self.model,
                self.tokenizer,
                max_rows=self.settings.inference_max_rows,
                max_queue=self.settings.inference_max_queue,
                name=self.repo_id,
                metrics=self.metrics,
            )
        else:
            # seq2seq generation holds its request for seconds: one worker keeps their order first-come
            workers = 1 if own in SEQ2SEQ_TASKS else self.settings.workers_per_model
            self._working = workers
            for i in range(workers):
                thread = threading.Thread(
                    target=self._work, name=f"cove-infer {self.repo_id} {i}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    # -- what requests read ----------------------------------------------------------------------

    @property
    def input_limit(self) -> int | None:
        """The most tokens an input may have: the tokenizer's model_max_length, else the position table."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < _UNLIMITED:
            return limit
        positions = self.info.config.get("max_position_embeddings") or self.info.config.get("n_positions")
        return int(positions) if isinstance(positions, int) and positions > 0 else None

    def count_tokens(self, text: str, pair: str | None = None) -> int:
        enc = self.tokenizer(text, pair) if pair is not None else self.tokenizer(text)
        return len(enc["input_ids"])

    def check_length(self, tokens: int, truncate: bool, what: str = "The input") -> None:
        limit = self.input_limit
        if limit is not None and tokens > limit and not truncate:
            raise InferenceInputError(
                f"{what} is {tokens} tokens, over {self.repo_id!r}'s limit of {limit} tokens: shorten it, or "
                "ask for truncation (parameters.truncation=true; TEI/feature-extraction: truncate=true)."
            )

    def pipeline(self, task: str, task_name: str | None = None) -> Any:
        """The pipeline for task over this model's weights (made on first use, in the worker thread)."""
        import cove

        key = task_name or task
        pipe = self.pipelines.get(key)
        if pipe is None:
            primary = next(iter(self.pipelines.values()))
            extra = {"task_name": task_name} if task_name else {}
            pipe = cove.pipeline(PIPELINE_OF[task], model=primary.model, tokenizer=primary.tokenizer, **extra)
            self.pipelines[key] = pipe
        return pipe

    # -- the queue ---------------------------------------------------------------------------

    def submit(self, job: TaskJob) -> Future[Any]:
        with self._lock:
            if self._closing:
                raise ModelOverloadedError(
                    f"{self.repo_id!r} is being unloaded: retry shortly.", retry_after=1
                )
            if self._pending >= self.settings.inference_max_queue:
                wait = self._seconds_per_job * self._pending
                raise ModelOverloadedError(
                    f"{self.repo_id!r} has {self._pending} requests waiting, the most it queues "
                    f"(COVE_INFERENCE_MAX_QUEUE={self.settings.inference_max_queue}): retry later.",
                    retry_after=wait,
                )
            self._pending += 1
        self.last_used = time.monotonic()
        job.future.add_done_callback(lambda _: self._done())
        self._queue.put(job)
        return job.future

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1

    @property
    def pending(self) -> int:
        if self.generator is not None:
            stats = self.generator.stats()
            return int(stats.get("running", 0)) + int(stats.get("queued", 0))
        return self._pending

    def close(self) -> None:
        """Stop taking requests; the worker finishes those it holds, then the weights are released."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self.generator is not None:
            generator = self.generator

            def finish() -> None:
                generator.close(wait=True)
                self._release()

            self._closer = threading.Thread(
                target=finish, name=f"cove-infer close {self.repo_id}", daemon=True
            )
            self._closer.start()
        else:
            for _ in self._threads:  # one stop mark per worker, behind every request already queued
                self._queue.put(_STOP)

    def join(self, timeout: float | None = None) -> None:
        """Wait until a closed model has served what it held and let go of its weights."""
        for thread in (*self._threads, self._closer):
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)

    def _release(self) -> None:
        self.pipelines.clear()
        self.model = None
        self.generator = None
        self.engine._released(self)

    # -- the worker ------------------------------------------------------------------------------

    def _work(self) -> None:
        if self.settings.inference_worker_one_thread:
            from cove.generation.continuous import set_thread_intra_op_threads

            set_thread_intra_op_threads(1)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    break
                jobs = [first]
                stop = False
                if first.task in ENCODER_TASKS:
                    stop = self._gather(jobs)
                self._run(jobs)
                if stop:
                    break
        finally:
            with self._lock:
                self._working -= 1
                last = self._working == 0
            if last:
                self._release()

    def _gather(self, jobs: list[TaskJob]) -> bool:
        """Add queued requests to jobs while the token budget lasts; True when the stop mark was met."""
        budget = self.settings.max_batch_tokens
        tokens = jobs[0].tokens
        deadline = time.monotonic() + self.settings.max_batch_wait_ms / 1000
        while tokens < budget:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return False
            if nxt is _STOP:
                return True
            jobs.append(nxt)
            tokens += nxt.tokens
        return False

    def _run(self, jobs: list[TaskJob]) -> None:
        started = time.monotonic()
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        for job in live:
            self.metrics.observe(
                "cove_inference_queue_seconds", started - job.enqueued, SECONDS_BUCKETS, model=self.repo_id
            )
        if not live:
            return
        if live[0].task in SEQ2SEQ_TASKS:
            for job in live:
                self._call(job)
        else:
            self._batch(live)
        elapsed = time.monotonic() - started
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * elapsed / len(live)
        for _ in live:
            self.metrics.observe(
                "cove_inference_compute_seconds", elapsed, SECONDS_BUCKETS, model=self.repo_id
            )

    def _call(self, job: TaskJob) -> None:
        """An encoder-decoder request: its pipeline's own call (generation inside)."""
        self.metrics.observe("cove_inference_batch_size", 1, BATCH_BUCKETS, model=self.repo_id)
        try:
            params = dict(job.params)
            task_name = params.pop("task_name", None)
            pipe = self.pipeline(job.task, task_name)
            job.future.set_result(pipe(job.inputs, **params))
        except Exception as exc:
            job.future.set_exception(_as_failure(exc))

    def _batch(self, jobs: list[TaskJob]) -> None:
        from cove.pipelines.base import batched_forward

        groups: list[_Group] = []
        for job in jobs:
            try:
                pipe = self.pipeline(job.task)
                params = pipe.make_params(pipe.params, job.params)
                if job.similarity:
                    single, items = "", list(job.inputs)
                else:
                    single, items = pipe.normalize_inputs(job.inputs, params)
                prepared = pipe.prepare(list(items), params)
            except Exception as exc:
                job.future.set_exception(_as_failure(exc))
                continue
            group = next((g for g in groups if g.pipe is pipe and g.params == params), None)
            if group is None:
                groups.append(group := _Group(pipe, params, []))
            group.members.append((job, single, prepared))
        for group in groups:
            rows = [f.inputs for _, _, prepared in group.members for f in prepared.features]
            self.metrics.observe(
                "cove_inference_batch_size", len(group.members), BATCH_BUCKETS, model=self.repo_id
            )
            try:
                outputs = (
                    batched_forward(
                        rows,
                        lambda batch, g=group: g.pipe.forward(batch, g.params),  # type: ignore[misc]
                        batch_size=len(rows),
                        pad_token_id=group.pipe.tokenizer.pad_token_id or 0,
                        max_tokens=self.settings.max_batch_tokens,
                    )
                    if rows
                    else []
                )
            except Exception as exc:
                failure = _as_failure(exc)
                for job, _, _ in group.members:
                    job.future.set_exception(failure)
                continue
            start = 0
            for job, single, prepared in group.members:
                mine = outputs[start : start + len(prepared.features)]
                start += len(prepared.features)
                try:
                    job.future.set_result(self._finish(group, job, single, prepared, mine))
                except Exception as exc:
                    job.future.set_exception(_as_failure(exc))

    @staticmethod
    def _finish(group: _Group, job: TaskJob, single: str, prepared: Any, outputs: list[Any]) -> Any:
        pipe, params = group.pipe, group.params
        if job.similarity:
            import torch

            return pipe.similarities(torch.stack(outputs))
        result = pipe.finalize(pipe.complete(prepared, outputs, params), single, params)
        return _plain(result)


def _plain(value: Any) -> Any:
    """Tensors (pooled embeddings) as nested lists, so results are JSON."""
    if hasattr(value, "tolist") and not isinstance(value, list | dict | str):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _as_failure(exc: Exception) -> Exception:
    """Input errors stay what they are (422); anything else the model raised is a failed inference."""
    from cove.errors import CoveError
    from cove.server.inference.errors import classify

    if isinstance(exc, CoveError) and classify(exc)[0] < 500:
        return exc
    if isinstance(exc, ValueError | TypeError) and not isinstance(exc, CoveError):
        log.warning("inference input error", exc_info=exc)
    failure = InferenceFailedError(f"The model failed on this input: {type(exc).__name__}: {exc}")
    failure.__cause__ = exc
    return failure


def _memory_of(model: Any) -> int:
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    return int(total)


class Engine:
    """Every loaded model of one server, loaded on demand and evicted least-recently-used."""

    def __init__(self, settings: Settings, store: RepoStore):
        self.settings = settings
        self.store = store
        self.root = settings.data_dir.expanduser() / "inference"
        self.metrics = Metrics()
        self._lock = threading.Lock()
        self._models: OrderedDict[str, ServedModel] = OrderedDict()
        self._loading: dict[str, Future[ServedModel]] = {}
        self._failed: dict[str, tuple[float, ModelLoadError]] = {}
        self._draining: list[ServedModel] = []
        self._closed = False

    @property
    def budget_bytes(self) -> int:
        return self.settings.inference_memory_mb * 1024**2

    def peek(self, commit: str) -> ServedModel | None:
        """The loaded model of commit, or None; never loads (safe on the event loop)."""
        with self._lock:
            served = self._models.get(commit)
            if served is not None:
                self._models.move_to_end(commit)
                served.last_used = time.monotonic()
            return served

    def loaded(self) -> list[ServedModel]:
        with self._lock:
            return list(self._models.values())

    def get(self, target: Target, tree: Callable[[], dict[str, FileEntry]]) -> ServedModel:
        """The loaded model of target (tree() lists its files, read only when a load is needed)."""
        key = target.commit
        with self._lock:
            if self._closed:
                raise ModelOverloadedError("The inference engine is shutting down.", retry_after=5)
            served = self._models.get(key)
            if served is not None:
                self._models.move_to_end(key)
                served.last_used = time.monotonic()
                return served
            failed = self._failed.get(key)
            if (
                failed is not None
                and time.monotonic() - failed[0] < self.settings.inference_load_retry_seconds
            ):
                raise ModelLoadError(str(failed[1]))  # a fresh error: no traceback grows across requests
            pending = self._loading.get(key)
            owner = pending is None
            if pending is None:
                pending = self._loading[key] = Future()
        if not owner:
            return pending.result()
        try:
            served = self._load(target, tree)
        except BaseException as exc:
            error = exc if isinstance(exc, ModelLoadError) else _load_error(target, exc)
            with self._lock:
                self._loading.pop(key, None)
                self._failed[key] = (time.monotonic(), error)
            self.metrics.count("cove_inference_model_loads_total", model=target.repo_id, result="error")
            pending.set_exception(error)
            raise error from exc
        with self._lock:
            self._loading.pop(key, None)
            self._failed.pop(key, None)
            self._models[key] = served
            victims = self._over_budget(keep=key)
        self.metrics.count("cove_inference_model_loads_total", model=target.repo_id, result="ok")
        for victim in victims:
            log.info("evicting %s@%s to stay under the memory budget", victim.repo_id, victim.commit[:12])
            self.metrics.count("cove_inference_evictions_total", model=victim.repo_id)
            victim.close()
        pending.set_result(served)
        return served

    def _load(self, target: Target, tree: Callable[[], dict[str, FileEntry]]) -> ServedModel:
        from cove.server.inference.snapshots import materialize, wanted

        files = tree()
        estimate = sum(e.size for p, e in wanted(files).items() if p.endswith((".safetensors", ".gguf")))
        with self._lock:
            victims = self._over_budget(keep=None, incoming=estimate)
        for victim in victims:
            self.metrics.count("cove_inference_evictions_total", model=victim.repo_id)
            victim.close()
        folder = materialize(self.store, self.root, target.commit, files)
        started = time.monotonic()
        served = ServedModel(self, target, folder)
        log.info(
            "loaded %s@%s (%s, %.0f MB) in %.1f s",
            target.repo_id,
            target.commit[:12],
            target.info.task,
            served.memory_bytes / 1024**2,
            time.monotonic() - started,
        )
        return served

    def _over_budget(self, keep: str | None, incoming: int = 0) -> list[ServedModel]:
        """Take least-recently-used models out until the rest (and incoming bytes) fit; call under the lock."""
        victims = []
        total = sum(m.memory_bytes for m in self._models.values()) + incoming
        total += sum(m.memory_bytes for m in self._draining)
        for key in list(self._models):
            if total <= self.budget_bytes:
                break
            if key == keep:
                continue
            victim = self._models.pop(key)
            self._draining.append(victim)
            victims.append(victim)
            total -= victim.memory_bytes
        return victims

    def _released(self, served: ServedModel) -> None:
        with self._lock:
            if served in self._draining:
                self._draining.remove(served)
            if self._models.get(served.commit) is served:  # its worker died: load afresh next time
                del self._models[served.commit]

    def gauges(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        with self._lock:
            models = list(self._models.values())
        for served in models:
            generator = served.generator
            if generator is not None:
                generator.sync_metrics()
        return {
            "cove_inference_loaded_models": [({}, len(models))],
            "cove_inference_model_memory_bytes": [
                ({"model": m.repo_id, "commit": m.commit[:12]}, m.memory_bytes) for m in models
            ],
            "cove_inference_queue_depth": [({"model": m.repo_id}, m.pending) for m in models],
        }

    def close(self, timeout: float = 60.0) -> None:
        """Refuse new requests, let every loaded model finish what it holds, and wait for that (at most
        timeout seconds), so no model thread is still computing when the process exits."""
        with self._lock:
            self._closed = True
            models = list(self._models.values())
            self._models.clear()
            self._draining.extend(models)
            closing = list(self._draining)
        for served in models:
            served.close()
        for served in closing:
            served.join(timeout)


def _load_error(target: Target, exc: BaseException) -> ModelLoadError:
    log.warning("loading %s@%s failed", target.repo_id, target.commit[:12], exc_info=exc)
    error = ModelLoadError(
        f"{target.repo_id!r} (commit {target.commit[:12]}) could not be loaded: {type(exc).__name__}: {exc}"
    )
    error.__cause__ = exc
    return error


def _quantization_for(setting: str | None, folder: Any) -> str | None:
    """The server's inference_quantization for one model: "gguf" applies to GGUF repos only."""
    if setting == "gguf" and not any(Path(folder).glob("*.gguf")):
        return None
    return setting
