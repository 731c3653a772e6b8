"""Continuous batching for causal LMs: one worker thread steps a batch that requests join and leave at every
step, so a long generation never holds up a short one.

    batcher = ContinuousBatcher(model, tokenizer, max_rows=16)
    handle = batcher.submit(tokenizer.encode("Hello"), SamplingParams(max_new_tokens=32))
    for event in handle:                 # or: async for event in handle
        print(event.text, end="")
    batcher.close()

How a step works. Every sequence owns a row of a ``RowKVCache`` (per layer, a (rows, kv_heads, capacity,
head_dim) buffer written in place). Requests that join are prefilled first: one alone exactly as ``generate``
prefills a one-row prompt, several of similar length as one left-padded batch (positions from the mask, as
generate runs a padded batch); their keys/values are copied into free rows and their first tokens chosen
from the prefill's last-position logits. Then one forward pass decodes one token for every running row at
once: each row's new token sits at that row's own position (per-row position ids), writes its key/value at
that position, and attends over the positions up to it (an (n, span) attention mask; none when all rows are
equally long); the LM head runs on that one position only. Rows that finish or are cancelled leave before
the next step; the last rows move into the holes, so the running rows are always the first n rows of the
cache and a step never copies or concatenates the cache.

Each request has its own sampling parameters, its own ``torch.Generator`` (seeded from ``seed``, so a sampled
result never depends on which requests share the batch), its own stop tokens, stop strings and incremental
detokenizer. Greedy rows give ``model.generate(input_ids, do_sample=False)``'s tokens run alone: the same
operations on the same values, except that a row's matrix products run inside a larger batch, which can
move a logit in its last bits (never enough to swap two tokens unless their logits tie to ~1e-6).

Threads. The worker never calls ``torch.set_num_threads`` (its effect reaches every thread that starts torch
work later, and a server runs other torch work beside generation). By default it sets its own thread's
OpenMP and MKL thread counts to 1 (``set_thread_intra_op_threads``: thread-local settings, other threads keep
theirs); ``intra_op_threads=None`` leaves the worker on the process's count. Measured on the shared 2-core
box (benchmarks/continuous_batching.py): with both cores' threads a step's OpenMP regions wait at their
barrier for a thread the scheduler has given to another process, and 16 concurrent requests ran at 3-33
tokens/s against 28-114 on one thread under the same load (at batch 1, 20 against 26); on one thread the
other core stays free for the server's HTTP and tokenizer work.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from cove.errors import GenerationError, GenerationInputError, QueueFullError
from cove.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from cove.models.kv_cache import KVCache, RowKVCache
from cove.quant import kernels

logger = logging.getLogger(__name__)

FINISH_REASONS = ("length", "eos_token", "stop_sequence", "cancelled", "error")


@dataclass
class SamplingParams:
    max_new_tokens: int = 20
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int | None = None  # per-request generator: a sampled result never depends on the batch
    stop: Sequence[str] = ()  # generation ends once the text contains one; the text stops before it
    stop_token_ids: Sequence[int] | None = None  # None: the model's eos ids
    ignore_eos: bool = False  # the eos ids never end the request (explicit stop_token_ids still do)
    skip_special_tokens: bool = True  # special tokens add no text
    top_logprobs: int = 0  # the events carry this many most likely tokens with their logprobs


@dataclass
class TokenEvent:
    """One generated token, or (token_id -1) the end of a request that no token caused ("cancelled",
    "error")."""

    token_id: int
    text: str  # the text this token adds: "" while a multi-byte char or a possible stop string is pending
    logprob: float  # log-softmax of the processed logits at the chosen token
    special: bool  # a special token (eos etc.)
    finish_reason: str | None  # None while running; last event: see FINISH_REASONS
    error: str | None = None
    top_logprobs: list[tuple[int, float]] | None = None  # (token id, logprob), best first, when asked


@dataclass
class GenerationResult:
    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[float]
    prompt_tokens: int
    generated_tokens: int
    error: str | None = None


class GenerationHandle:
    """A submitted request: iterate it (blocking, or ``async for``) for its TokenEvents, from the first one
    on whenever iteration starts; ``result()`` waits for the end; ``cancel()`` ends it at the next step."""

    def __init__(self, request_id: int, prompt_tokens: int, batcher: ContinuousBatcher):
        self.request_id = request_id
        self.prompt_tokens = prompt_tokens
        self._batcher = batcher
        self._events: list[TokenEvent] = []
        self._cond = threading.Condition()
        self._listeners: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[TokenEvent]]] = []
        self._finished = False
        self.cancelled = False

    # called by the worker
    def _push(self, event: TokenEvent) -> None:
        with self._cond:
            if self._finished:
                return
            self._events.append(event)
            if event.finish_reason is not None:
                self._finished = True
            self._cond.notify_all()
            listeners = list(self._listeners)
        for loop, queue in listeners:
            with contextlib.suppress(RuntimeError):  # a closed loop: its consumer is gone
                loop.call_soon_threadsafe(queue.put_nowait, event)

    @property
    def done(self) -> bool:
        return self._finished

    def __iter__(self) -> Iterator[TokenEvent]:
        index = 0
        while True:
            with self._cond:
                while index >= len(self._events):
                    self._cond.wait()
                event = self._events[index]
            index += 1
            yield event
            if event.finish_reason is not None:
                return

    def __aiter__(self) -> AsyncIterator[TokenEvent]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[TokenEvent]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[TokenEvent] = asyncio.Queue()
        entry = (loop, queue)
        with self._cond:
            for event in self._events:
                queue.put_nowait(event)
            self._listeners.append(entry)
        try:
            while True:
                event = await queue.get()
                yield event
                if event.finish_reason is not None:
                    return
        finally:
            with self._cond:
                if entry in self._listeners:
                    self._listeners.remove(entry)

    def cancel(self) -> None:
        """The request leaves the batch at the next step (its rows are freed); its last event says
        "cancelled". A request already finished is left as it is."""
        if self._finished or self.cancelled:
            return
        self.cancelled = True
        self._batcher._wake()

    def wait(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._finished, timeout)

    def result(self, timeout: float | None = None) -> GenerationResult:
        """Wait for the end (TimeoutError after ``timeout`` seconds) and return the whole generation."""
        if not self.wait(timeout):
            raise TimeoutError(f"request {self.request_id} did not finish within {timeout} s")
        with self._cond:
            events = list(self._events)
        tokens = [e for e in events if e.token_id >= 0]
        last = events[-1]
        assert last.finish_reason is not None
        return GenerationResult(
            token_ids=[e.token_id for e in tokens],
            text="".join(e.text for e in events),
            finish_reason=last.finish_reason,
            logprobs=[e.logprob for e in tokens],
            prompt_tokens=self.prompt_tokens,
            generated_tokens=len(tokens),
            error=last.error,
        )


class IncrementalDetokenizer:
    """Text per token, as TGI does it: decode a short window before and after the new token and emit what
    was added, holding back while the window ends in an incomplete UTF-8 sequence (U+FFFD). The window
    starts on the prompt's last tokens so a first token's leading space survives."""

    CONTEXT = 5  # prompt tokens kept as left context

    def __init__(self, tokenizer: Any, prompt: Sequence[int], skip_special_tokens: bool):
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids: list[int] = list(prompt[-self.CONTEXT :])
        self.prefix = 0
        self.read = len(self.ids)

    def _decode(self, ids: list[int]) -> str:
        if not ids:
            return ""
        return str(self.tokenizer.decode(ids, skip_special_tokens=self.skip))

    def add(self, token: int) -> str:
        self.ids.append(token)
        if self.tokenizer is None:
            return ""
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            # keep the window short: tokens before ``prefix`` are never decoded again
            if self.prefix > 64:
                del self.ids[: self.prefix]
                self.read -= self.prefix
                self.prefix = 0
            return after[len(before) :]
        return ""

    def flush(self) -> str:
        """What is still held back (an incomplete character comes out as U+FFFD)."""
        if self.tokenizer is None or self.read >= len(self.ids):
            return ""
        before = self._decode(self.ids[self.prefix : self.read])
        after = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return after[len(before) :] if after.startswith(before) else after


class StopStringMatcher:
    """Releases text as it comes, except a tail that could still grow into a stop string; once the text
    contains one, releases what comes before it and reports the stop (OpenAI semantics)."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.released = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        self.text += piece
        if not self.stops:
            out = self.text[self.released :]
            self.released = len(self.text)
            return out, False
        hits = [i for i in (self.text.find(s, self.released) for s in self.stops) if i != -1]
        if hits:
            end = min(hits)
            out = self.text[self.released : end]
            self.released = end
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text) - self.released), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        end = len(self.text) - hold
        out = self.text[self.released : end]
        self.released = end
        return out, False

    def flush(self) -> str:
        out = self.text[self.released :]
        self.released = len(self.text)
        return out


@dataclass(eq=False)
class _Request:
    handle: GenerationHandle
    prompt: list[int]
    params: SamplingParams
    stop_ids: frozenset[int]
    generator: torch.Generator | None
    detok: IncrementalDetokenizer
    matcher: StopStringMatcher
    history: torch.Tensor | None  # (1, prompt + max_new) ids, for the repetition penalty
    submitted: float = field(default_factory=time.perf_counter)
    generated: int = 0
    last_token: int = -1
    length: int = 0  # positions in the cache
    row: int = -1
    finished: bool = False


def set_thread_intra_op_threads(threads: int) -> bool:
    """Run the calling thread's torch ops on ``threads`` intra-op threads, for that thread only; True when
    done.

    ``torch.set_num_threads`` is not thread-local in effect: it also sets the default that every thread
    starting torch work later picks up (and the shared pthreadpool), so a worker calling it would change
    the count of the server's other torch work. The two settings that decide how many threads an op of
    *this* thread uses are thread-local: OpenMP's nthreads ICV (``omp_set_num_threads``, read by ATen's
    parallel regions and oneDNN) and MKL's thread-local count (``mkl_set_num_threads_local``, read by its
    GEMMs). Both are set here, through the libgomp torch ships and the MKL libtorch_cpu links; other
    threads keep theirs. Without MKL that part is skipped; without libgomp nothing is done.
    """
    import ctypes
    import os

    # ATen's lazy per-thread init first, libtorch's and the native kernels' (each library has its own), or
    # it would overwrite the setting later
    torch.get_num_threads()
    kernels.init_threads()
    lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    try:
        ctypes.CDLL(os.path.join(lib, "libgomp.so.1")).omp_set_num_threads(int(threads))
    except (OSError, AttributeError):
        logger.warning("no libgomp in %s: the batcher's worker keeps torch's thread count", lib)
        return False
    try:
        # the Fortran entry point (takes a pointer), exported by the MKL that libtorch_cpu links statically
        mkl = ctypes.CDLL(os.path.join(lib, "libtorch_cpu.so")).mkl_set_num_threads_local_
        mkl(ctypes.byref(ctypes.c_int(int(threads))))
    except (OSError, AttributeError):
        pass
    return True


class ContinuousBatcher:
    """Serves generation requests for one causal LM from one background worker thread (see the module
    docstring). ``max_rows`` sequences decode together; ``max_queue`` more may wait for a row."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_rows: int = 16,
        max_queue: int = 64,
        name: str = "",
        max_prefill_tokens: int = 2048,
        intra_op_threads: int | None = 1,
    ):
        if max_rows < 1 or max_queue < 0:
            raise GenerationError(f"max_rows must be >= 1 and max_queue >= 0, got {max_rows}, {max_queue}.")
        if getattr(model, "training", False):
            raise GenerationError("The model is in training mode (dropout on): call model.eval() first.")
        self.model = model
        self.tokenizer = tokenizer
        self.max_rows = max_rows
        self.max_queue = max_queue
        self.name = name or type(model).__name__
        self.max_prefill_tokens = max_prefill_tokens
        if intra_op_threads is not None and (isinstance(intra_op_threads, bool) or intra_op_threads < 1):
            raise GenerationError(f"intra_op_threads must be None or >= 1, got {intra_op_threads!r}.")
        self.intra_op_threads = intra_op_threads
        config = model.config
        self.num_layers = int(config.num_hidden_layers)
        self.vocab_size = int(config.vocab_size)
        from cove.generation.utils import _context_window

        self.context_window = _context_window(model)
        generation_config = getattr(model, "generation_config", None)
        if generation_config is not None:
            eos = generation_config.eos_ids()
        else:
            raw = getattr(config, "eos_token_id", None)
            eos = [] if raw is None else [raw] if isinstance(raw, int) else list(raw)
        self.eos_ids = frozenset(int(i) for i in eos)
        self.special_ids = frozenset(getattr(tokenizer, "all_special_ids", None) or ()) | self.eos_ids
        self.device = getattr(model, "device", torch.device("cpu"))

        self.cache = RowKVCache(self.num_layers, max_rows)
        self._lock = threading.Condition()
        self._waiting: deque[_Request] = deque()
        self._running: list[_Request] = []
        self._joining: list[_Request] = []  # taken from the queue, not yet running
        self._ids = itertools.count(1)
        self._closing = False
        self._drain = True
        self._steps = 0
        self._generated = 0
        self._prompt_tokens = 0
        self._step_seconds = 0.0  # decoding steps
        self._prefill_seconds = 0.0
        self._prefill_batches: Counter[int] = Counter()  # prefill forwards by how many prompts they ran
        self._recent_step = 0.0  # moving average of a decode step's seconds
        self._batch_sizes: Counter[int] = Counter()
        self._finished: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name=f"cove-batcher-{self.name}", daemon=True)
        self._thread.start()

    # --- submitting ------------------------------------------------------------------------------

    def submit(self, input_ids: Sequence[int], params: SamplingParams | None = None) -> GenerationHandle:
        params = params or SamplingParams()
        prompt = self._check(input_ids, params)
        stop_ids = (
            set(self.eos_ids) if params.stop_token_ids is None else {int(i) for i in params.stop_token_ids}
        )
        if params.ignore_eos:
            stop_ids -= self.eos_ids
        generator = None
        if params.do_sample:
            seed = params.seed if params.seed is not None else random.getrandbits(63)
            generator = torch.Generator(device=self.device).manual_seed(int(seed))
        history = None
        if params.repetition_penalty != 1.0:
            history = torch.zeros(
                1, len(prompt) + params.max_new_tokens, dtype=torch.long, device=self.device
            )
            history[0, : len(prompt)] = torch.tensor(prompt)
        with self._lock:
            if self._closing:
                raise RuntimeError(f"ContinuousBatcher {self.name!r} is closed.")
            if self._live() + len(self._waiting) >= self.max_rows + self.max_queue:
                raise QueueFullError(
                    f"ContinuousBatcher {self.name!r} is full: {self._live()} requests running and "
                    f"{len(self._waiting)} waiting (max_rows={self.max_rows}, max_queue={self.max_queue}).",
                    retry_after=self._retry_after(),
                )
            handle = GenerationHandle(next(self._ids), len(prompt), self)
            request = _Request(
                handle=handle,
                prompt=prompt,
                params=params,
                stop_ids=frozenset(stop_ids),
                generator=generator,
                detok=IncrementalDetokenizer(self.tokenizer, prompt, params.skip_special_tokens),
                matcher=StopStringMatcher(list(params.stop)),
                history=history,
            )
            self._waiting.append(request)
            self._lock.notify_all()
        return handle

    def _check(self, input_ids: Sequence[int], params: SamplingParams) -> list[int]:
        def bad(message: str) -> GenerationInputError:
            return GenerationInputError(message)

        if isinstance(input_ids, torch.Tensor):
            if input_ids.ndim == 2 and input_ids.shape[0] == 1:
                input_ids = input_ids[0]
            if input_ids.ndim != 1:
                raise bad(f"input_ids must be one sequence of token ids, got shape {tuple(input_ids.shape)}.")
            input_ids = input_ids.tolist()
        try:
            prompt = [int(i) for i in input_ids]
        except (TypeError, ValueError):
            raise bad("input_ids must be a sequence of integer token ids.") from None
        if not prompt:
            raise bad("The prompt is empty: pass at least one token.")
        outside = [i for i in prompt if not 0 <= i < self.vocab_size]
        if outside:
            raise bad(f"input_ids hold token ids {outside[:5]} outside the vocabulary of {self.vocab_size}.")
        n = params.max_new_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise bad(f"max_new_tokens must be a positive integer, got {n!r}.")
        if self.context_window is not None and len(prompt) + n > self.context_window:
            raise bad(
                f"The prompt ({len(prompt)} tokens) plus max_new_tokens={n} is {len(prompt) + n} tokens, past "
                f"the model's context window of {self.context_window} tokens: shorten the prompt or lower "
                "max_new_tokens."
            )
        if params.do_sample:
            if not isinstance(params.temperature, (int, float)) or not params.temperature > 0:
                raise bad(f"temperature must be > 0 when sampling, got {params.temperature!r}.")
            if not isinstance(params.top_p, (int, float)) or not 0 < params.top_p <= 1:
                raise bad(f"top_p must be in (0, 1], got {params.top_p!r}.")
            if isinstance(params.top_k, bool) or not isinstance(params.top_k, int) or params.top_k < 0:
                raise bad(f"top_k must be a non-negative integer (0 = off), got {params.top_k!r}.")
        if not isinstance(params.repetition_penalty, (int, float)) or not params.repetition_penalty > 0:
            raise bad(f"repetition_penalty must be > 0, got {params.repetition_penalty!r}.")
        if isinstance(params.stop, str) or any(not isinstance(s, str) for s in params.stop):
            raise bad(f"stop must be a list of strings, got {params.stop!r}.")
        if params.stop and self.tokenizer is None:
            raise bad("stop strings need the batcher's tokenizer to read the text.")
        if params.stop_token_ids is not None and any(
            isinstance(i, bool) or not isinstance(i, int) for i in params.stop_token_ids
        ):
            raise bad(f"stop_token_ids must be integers, got {params.stop_token_ids!r}.")
        if (
            isinstance(params.top_logprobs, bool)
            or not isinstance(params.top_logprobs, int)
            or params.top_logprobs < 0
        ):
            raise bad(f"top_logprobs must be a non-negative integer, got {params.top_logprobs!r}.")
        if params.seed is not None and (isinstance(params.seed, bool) or not isinstance(params.seed, int)):
            raise bad(f"seed must be an integer, got {params.seed!r}.")
        return prompt

    def _retry_after(self) -> float:
        """Seconds until a row is likely free: the fewest tokens any running request still has to make,
        times the recent step time (at least one second)."""
        if not self._running or self._recent_step <= 0:
            return 1.0
        left = min(r.params.max_new_tokens - r.generated for r in self._running)
        return float(max(1, math.ceil(left * self._recent_step)))

    def _live(self) -> int:
        """Requests holding a row, not yet finished (a finished row leaves at the end of its step): running,
        or taken from the queue to join (called with the lock held)."""
        running = sum(not r.finished for r in self._running)
        return running + sum(not r.finished and r.row < 0 for r in self._joining)

    def _wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    # --- inspecting and closing ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._lock:
            running = self._live()
            return {
                "name": self.name,
                "running": running,
                "queued": len(self._waiting),
                "max_rows": self.max_rows,
                "max_queue": self.max_queue,
                "free_rows": self.max_rows - running,
                "steps": self._steps,
                "generated_tokens": self._generated,
                "prompt_tokens": self._prompt_tokens,
                "step_seconds": self._step_seconds,
                "prefill_seconds": self._prefill_seconds,
                "batch_size_histogram": dict(sorted(self._batch_sizes.items())),
                "prefill_batch_histogram": dict(sorted(self._prefill_batches.items())),
                "finished": dict(self._finished),
                "kv_cache_bytes": self.cache.nbytes(),
                "closed": self._closing,
            }

    def close(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Refuse new requests and stop the worker. ``wait=True``: every request already accepted (running
        or waiting) is served to its end first; ``wait=False``: they end now as "cancelled"."""
        with self._lock:
            self._closing = True
            if not wait:
                self._drain = False
            self._lock.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> ContinuousBatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close(wait=exc[0] is None)

    # --- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        if self.intra_op_threads is not None:
            set_thread_intra_op_threads(self.intra_op_threads)
        with torch.inference_mode():
            while True:
                with self._lock:
                    while not (self._waiting or self._running or self._closing):
                        self._lock.wait()
                    if self._closing and not self._drain:
                        for request in [*self._running, *self._waiting]:
                            self._finish(request, "cancelled", None)
                        self._running, self._waiting = [], deque()
                    if self._closing and not (self._waiting or self._running):
                        return
                try:
                    self._iteration()
                except BaseException as e:  # never let the worker die: fail what was running
                    logger.exception("continuous batcher %s: step failed", self.name)
                    with self._lock:
                        for request in [*self._running, *self._joining]:
                            self._finish(request, "error", f"{type(e).__name__}: {e}")
                        self._running, self._joining = [], []

    def _iteration(self) -> None:
        # cancelled requests leave first, waiting or running
        with self._lock:
            for request in [r for r in self._waiting if r.handle.cancelled]:
                self._waiting.remove(request)
                self._finish(request, "cancelled", None)
            for request in self._running:
                if request.handle.cancelled:
                    self._finish(request, "cancelled", None)
            self._compact()
            joining: list[_Request] = []
            budget = self.max_prefill_tokens
            while self._waiting and len(self._running) + len(joining) < self.max_rows:
                size = len(self._waiting[0].prompt)
                if joining and size > budget:
                    break
                budget -= size
                joining.append(self._waiting.popleft())
            self._joining = joining
        for group in self._groups(joining):
            self._join(group)
        with self._lock:
            self._joining = []
            self._compact()
            running = list(self._running)
        if running:
            self._decode(running)
            with self._lock:
                self._compact()
        with self._lock:
            idle = not (self._running or self._waiting)
        if idle and self.cache.capacity > 4 * self.cache.chunk:
            self.cache.release()  # a long request's memory goes back once nothing runs

    def _join(self, group: list[_Request]) -> None:
        """Prefill a group of joining requests, choose their first tokens, and copy their keys/values into
        free rows. One request is prefilled alone, exactly as generate prefills a one-row prompt; several
        run as one left-padded batch (positions from the mask, as generate does for a padded batch). If a
        batch fails, each of its requests is tried alone, so only a request that fails by itself fails."""
        start = time.perf_counter()
        try:
            cache, width, logits = self._prefill(group)
        except Exception as e:
            if len(group) > 1:
                for request in group:
                    self._join([request])
                return
            logger.exception("continuous batcher %s: prefill failed", self.name)
            self._finish(group[0], "error", f"{type(e).__name__}: {e}")
            return
        with self._lock:
            self._prompt_tokens += sum(len(r.prompt) for r in group)
            self._prefill_seconds += time.perf_counter() - start
            self._prefill_batches[len(group)] += 1
        try:
            for request in group:
                request.length = len(request.prompt)
            self._advance(group, logits)
            for i, request in enumerate(group):
                if request.finished:
                    continue
                request.row = len(self._running)  # only this thread changes _running
                self.cache.load(request.row, cache, request.length, source=i, offset=width - request.length)
                with self._lock:
                    self._running.append(request)
        except Exception as e:  # a row already placed is finished here and leaves at the next compaction
            logger.exception("continuous batcher %s: joining failed", self.name)
            for request in group:
                self._finish(request, "error", f"{type(e).__name__}: {e}")

    def _prefill(self, group: list[_Request]) -> tuple[KVCache, int, torch.Tensor]:
        """(the prefill cache, the padded width, last-position logits (len(group), vocab))."""
        lengths = [len(r.prompt) for r in group]
        width = max(lengths)
        if len(group) == 1:
            # generate's capacity too: the same buffer strides, so the same bits as generate alone
            cache = KVCache(self.num_layers, capacity=width + group[0].params.max_new_tokens)
            ids = torch.tensor([group[0].prompt], dtype=torch.long, device=self.device)
            mask = positions = None
        else:
            cache = KVCache(self.num_layers, capacity=width)
            ids = torch.zeros(len(group), width, dtype=torch.long, device=self.device)
            mask = torch.zeros(len(group), width, dtype=torch.long, device=self.device)
            for i, request in enumerate(group):
                ids[i, width - lengths[i] :] = torch.tensor(request.prompt)
                mask[i, width - lengths[i] :] = 1
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            logits_to_keep=1,
        )
        return cache, width, out.logits[:, -1]

    @staticmethod
    def _groups(joining: list[_Request]) -> list[list[_Request]]:
        """Joining requests in prefill batches of similar prompt length: by length, a batch grows while its
        padding stays under a quarter of its tokens (plus a little slack)."""
        groups: list[list[_Request]] = []
        for request in sorted(joining, key=lambda r: len(r.prompt)):
            if groups:
                group = groups[-1]
                real = sum(len(r.prompt) for r in group) + len(request.prompt)
                if (len(group) + 1) * len(request.prompt) <= 1.25 * real + 16:
                    group.append(request)
                    continue
            groups.append([request])
        return groups

    def _decode(self, running: list[_Request]) -> None:
        """One token for every running row, in one forward pass."""
        start = time.perf_counter()
        n = len(running)
        lengths = [r.length for r in running]
        span = max(lengths) + 1
        positions = torch.tensor(lengths, dtype=torch.long, device=self.device)
        tokens = torch.tensor([[r.last_token] for r in running], dtype=torch.long, device=self.device)
        mask = None
        if min(lengths) != max(lengths):
            mask = torch.arange(span, device=self.device)[None, :] <= positions[:, None]  # (n, span)
        self.cache.prepare(positions, span)
        logits = self.model(
            input_ids=tokens,
            attention_mask=mask,
            position_ids=positions[:, None],
            past_key_values=self.cache,
            logits_to_keep=1,
        ).logits[:, -1]
        for request in running:
            request.length += 1
        self._advance(running, logits)
        elapsed = time.perf_counter() - start
        with self._lock:
            self._steps += 1
            self._batch_sizes[n] += 1
            self._step_seconds += elapsed
            self._recent_step = elapsed if self._recent_step == 0 else 0.9 * self._recent_step + 0.1 * elapsed

    def _advance(self, requests: list[_Request], logits: torch.Tensor) -> None:
        """Choose each request's next token from its row of ``logits`` (rows, vocab) and emit it."""
        scores = logits.float()  # written in place for the rows that are processed
        processed = [i for i, r in enumerate(requests) if r.params.do_sample or r.history is not None]
        chosen = torch.argmax(scores, dim=-1)
        sampled: dict[int, int] = {}
        for i in processed:
            request = requests[i]
            row = scores[i : i + 1]
            if request.history is not None:
                seen = request.history[:, : len(request.prompt) + request.generated]
                row = RepetitionPenaltyLogitsProcessor(request.params.repetition_penalty)(seen, row)
            if request.params.do_sample:
                row = _warp(request.params, row)
                probs = F.softmax(row, dim=-1)
                sampled[i] = int(torch.multinomial(probs, num_samples=1, generator=request.generator))
            scores[i : i + 1] = row
        if processed:
            chosen = torch.argmax(scores, dim=-1)
            for i, token in sampled.items():
                chosen[i] = token
        log_probs = torch.log_softmax(scores, dim=-1)
        logprobs = log_probs.gather(1, chosen[:, None])[:, 0].tolist()
        for i, (request, token, logprob) in enumerate(zip(requests, chosen.tolist(), logprobs)):
            top = None
            if request.params.top_logprobs:
                values, ids = log_probs[i].topk(min(request.params.top_logprobs, log_probs.shape[-1]))
                top = list(zip(ids.tolist(), values.tolist()))
            try:
                self._emit(request, int(token), float(logprob), top)
            except Exception as e:
                logger.exception(
                    "continuous batcher %s: request %d failed", self.name, request.handle.request_id
                )
                self._finish(request, "error", f"{type(e).__name__}: {e}")

    def _emit(
        self, request: _Request, token: int, logprob: float, top: list[tuple[int, float]] | None = None
    ) -> None:
        params = request.params
        if request.history is not None:
            request.history[0, len(request.prompt) + request.generated] = token
        request.generated += 1
        request.last_token = token
        with self._lock:
            self._generated += 1
        text, stopped = request.matcher.feed(request.detok.add(token))
        reason = None
        if stopped:
            reason = "stop_sequence"
        elif token in request.stop_ids:
            reason = "eos_token"
        elif request.generated >= params.max_new_tokens:
            reason = "length"
        if reason is not None and reason != "stop_sequence":
            tail, stopped = request.matcher.feed(request.detok.flush())
            text += tail
            if stopped:
                reason = "stop_sequence"
            else:
                text += request.matcher.flush()
        if reason is not None:
            request.finished = True
            with self._lock:
                self._finished[reason] += 1
        special = token in self.special_ids
        request.handle._push(TokenEvent(token, text, logprob, special, reason, top_logprobs=top))

    def _finish(self, request: _Request, reason: str, error: str | None) -> None:
        """End a request that no token ended (cancelled, error)."""
        with self._lock:
            if request.finished:
                return
            request.finished = True
            self._finished[reason] += 1
        request.handle._push(TokenEvent(-1, "", 0.0, False, reason, error))

    def _compact(self) -> None:
        """Drop finished rows; the last running rows move into the holes (called with the lock held)."""
        alive = [r for r in self._running if not r.finished]
        if len(alive) == len(self._running):
            return
        n = len(alive)
        holes = [r.row for r in self._running[:n] if r.finished]
        movers = [r for r in self._running[n:] if not r.finished]
        for hole, request in zip(holes, movers):
            self.cache.move(request.row, hole, request.length)
            request.row = hole
        self._running = sorted(alive, key=lambda r: r.row)


def _warp(params: SamplingParams, scores: torch.Tensor) -> torch.Tensor:
    """transformers' sampling warpers in its order: temperature, top-k, top-p."""
    if params.temperature != 1.0:
        scores = TemperatureLogitsWarper(params.temperature)(scores, scores)
    if params.top_k:
        scores = TopKLogitsWarper(params.top_k)(scores, scores)
    if params.top_p < 1.0:
        scores = TopPLogitsWarper(params.top_p)(scores, scores)
    return scores
