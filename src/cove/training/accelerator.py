"""An Accelerate-style training loop: ``Accelerator.prepare`` your model, optimizer, data loaders and
schedulers, call ``backward``, and the same script runs in one process or under ``torchrun``/``cove launch``.

Behaviour follows the ``accelerate`` package step for step, so a loop ported by changing the import gives
the same losses and weights (tests/training/test_accelerator.py runs both):

- a prepared DataLoader shards batches like accelerate's ``BatchSamplerShard`` (process ``i`` takes batch
  ``i`` of every ``num_processes``; the last round is completed with samples from the start, so every
  process sees as many full batches), reads one batch ahead to know when it yields the last one, and keeps
  a shuffling sampler's generator identical on every process (drawn once from torch's RNG, then broadcast
  from process 0 at each epoch);
- ``accumulate(model)`` counts micro-steps, syncs gradients (and lets the prepared optimizer step) every
  ``gradient_accumulation_steps`` and at the end of the data loader, and skips DDP's all-reduce otherwise;
- the prepared scheduler steps only with the optimizer, ``num_processes`` times per optimizer step unless
  ``split_batches`` (each step consumed ``num_processes`` batches);
- ``gather_for_metrics`` drops the samples the last round repeated.

State lives in the Accelerator (accelerate keeps it in process-wide singletons); objects it prepared
point back to it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, IterableDataset

from cove.errors import TrainingError

logger = logging.getLogger(__name__)

MIXED_PRECISIONS = ("no", "bf16", "auto")
ENV_MIXED_PRECISION = "COVE_MIXED_PRECISION"  # set by `cove launch --mixed_precision`

# save_state's files, named as accelerate names them
MODEL_FILE = "model{}.safetensors"
OPTIMIZER_FILE = "optimizer{}.bin"
SCHEDULER_FILE = "scheduler{}.bin"
RNG_FILE = "random_states_{}.pkl"
CUSTOM_FILE = "custom_checkpoint_{}.pkl"

# torch.utils.data.DataLoader arguments a prepared loader copies from the original (the batching ones are
# replaced by the sharded batch sampler)
_LOADER_KWARGS = (
    "num_workers",
    "collate_fn",
    "pin_memory",
    "timeout",
    "worker_init_fn",
    "multiprocessing_context",
    "generator",
    "prefetch_factor",
    "persistent_workers",
    "pin_memory_device",
    "in_order",
)


def _suffix(i: int) -> str:
    return "" if i == 0 else f"_{i}"


# --- nested data ------------------------------------------------------------------------------------


def _rebuild(data: Any, items: Iterable[Any]) -> Any:
    """A list/tuple/namedtuple like ``data`` holding ``items``."""
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*items)
    return type(data)(items)


def _rebuild_mapping(data: Mapping[Any, Any], items: dict[Any, Any]) -> Any:
    if hasattr(data, "__dataclass_fields__"):  # a ModelOutput: its constructor takes the fields
        return type(data)(**items)
    factory: Any = type(data)
    try:
        return factory(items)
    except TypeError:
        return items


def _apply(
    fn: Callable[[torch.Tensor], Any], data: Any, *, strict: bool, what: str = "", test: Any = None
) -> Any:
    """``fn`` on every tensor of a nested list/tuple/dict; other leaves raise (``strict``) or pass."""
    test = test or (lambda x: isinstance(x, torch.Tensor))
    if test(data):
        return fn(data)
    if isinstance(data, list | tuple):
        return _rebuild(data, (_apply(fn, x, strict=strict, what=what, test=test) for x in data))
    if isinstance(data, Mapping):
        return _rebuild_mapping(
            data, {k: _apply(fn, v, strict=strict, what=what, test=test) for k, v in data.items()}
        )
    if strict:
        raise TypeError(
            f"{what} takes tensors or nested lists/tuples/dicts of tensors, not {type(data).__name__}; "
            "use gather_for_metrics(..., use_gather_object=True) for other picklable objects."
        )
    return data


def _all_tensors(data: Any) -> bool:
    try:
        _apply(lambda t: t, data, strict=True)
    except TypeError:
        return False
    return True


def send_to_device(data: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors in nested containers moved to ``device``; objects with their own ``.to`` (BatchEncoding) too."""
    if isinstance(data, torch.Tensor):
        return data.to(device, non_blocking=non_blocking)
    if isinstance(data, list | tuple):
        return _rebuild(data, (send_to_device(x, device, non_blocking) for x in data))
    if isinstance(data, Mapping) and not callable(getattr(data, "to", None)):
        return _rebuild_mapping(data, {k: send_to_device(v, device, non_blocking) for k, v in data.items()})
    if callable(getattr(data, "to", None)):
        try:
            return data.to(device, non_blocking=non_blocking)
        except TypeError:
            return data.to(device)
    return data


def _to_fp32(data: Any) -> Any:
    low = (torch.float16, torch.bfloat16)
    return _apply(
        lambda t: t.float(),
        data,
        strict=False,
        test=lambda x: isinstance(x, torch.Tensor) and x.dtype in low,
    )


# --- data loaders -----------------------------------------------------------------------------------


class BatchSamplerShard(BatchSampler):
    """One process's batches of a batch sampler, as accelerate's BatchSamplerShard yields them.

    Without ``split_batches``, process ``i`` takes batches ``i, i + n, i + 2n, ...``; with it, every batch is
    cut into ``n`` slices and process ``i`` takes slice ``i``. Unless the sampler drops its last batch, the
    last round is completed with samples from the start of the epoch (``even_batches``), so all processes
    run the same number of full-size steps; ``even_batches=False`` lets the last round be short instead.
    """

    def __init__(
        self,
        batch_sampler: Any,
        num_processes: int = 1,
        process_index: int = 0,
        split_batches: bool = False,
        even_batches: bool = True,
    ) -> None:
        # no BatchSampler.__init__: the wrapped sampler does the batching
        self.batch_sampler = batch_sampler
        self.num_processes = num_processes
        self.process_index = process_index
        self.split_batches = split_batches
        self.even_batches = even_batches
        self.batch_size = getattr(batch_sampler, "batch_size", None)  # type: ignore[assignment]
        self.drop_last = getattr(batch_sampler, "drop_last", False)
        if split_batches and (self.batch_size is None or self.batch_size % num_processes != 0):
            raise TrainingError(
                f"split_batches=True cuts each batch into {num_processes} equal parts, so the batch size "
                f"({self.batch_size}) must be a multiple of the number of processes ({num_processes})."
            )

    @property
    def total_length(self) -> int:
        return len(self.batch_sampler)

    def __len__(self) -> int:
        total = len(self.batch_sampler)
        if self.split_batches:
            return total
        rounds, extra = divmod(total, self.num_processes)
        if extra == 0 or self.drop_last:
            return rounds
        if self.even_batches:
            return rounds + 1
        return rounds + 1 if self.process_index < extra else rounds

    def __iter__(self) -> Iterator[list[int]]:
        return self._iter_split() if self.split_batches else self._iter_whole()

    def _iter_split(self) -> Iterator[list[int]]:
        size, rank = self.batch_size, self.process_index
        assert size is not None  # checked in __init__
        share = size // self.num_processes
        first: list[int] = []
        batch: list[int] = []
        for idx, batch in enumerate(self.batch_sampler):
            if idx == 0:
                first = list(batch)
            if len(batch) == size:
                yield batch[share * rank : share * (rank + 1)]
        if self.drop_last or not first or len(batch) >= size:
            return
        if not self.even_batches:
            if len(batch) > share * rank:
                yield batch[share * rank : share * (rank + 1)]
            return
        while len(first) < size:  # fewer samples than one batch in all
            first += first
        batch = list(batch) + first
        yield batch[share * rank : share * (rank + 1)]

    def _iter_whole(self) -> Iterator[list[int]]:
        n, rank, size = self.num_processes, self.process_index, self.batch_size
        start: list[Any] = []  # the first round's samples (batches, for samplers without a batch size)
        mine: list[int] | None = None
        idx, batch = -1, list[Any]()
        for idx, batch in enumerate(self.batch_sampler):
            if not self.drop_last and idx < n:
                if size is None:
                    start.append(batch)
                else:
                    start += batch
            if idx % n == rank:
                mine = batch
            # a round is yielded only once every process has a full batch in it
            if idx % n == n - 1 and (size is None or len(batch) == size):
                assert mine is not None
                yield mine
                mine = None
        if self.drop_last or not start:
            return
        if not self.even_batches:
            if mine:
                yield mine
            return
        if mine and (size is None or len(mine) == size):
            yield mine
        needed = n * size if size is not None else n
        while len(start) < needed:
            start += start
        if size is None or len(batch) == size:
            batch, idx = [], idx + 1
        # complete the last round (and the last batch) with samples from the start
        cursor = 0
        while idx % n != 0 or batch:
            if size is None:
                batch = start[cursor]
                cursor += 1
            else:
                end = cursor + size - len(batch)
                batch = list(batch) + start[cursor:end]
                cursor = end
            if idx % n == rank:
                yield batch
            batch, idx = [], idx + 1


class SkipBatchSampler(BatchSampler):
    """A batch sampler without its first ``skip_batches`` batches (resuming inside an epoch)."""

    def __init__(self, batch_sampler: Any, skip_batches: int = 0) -> None:
        self.batch_sampler = batch_sampler
        self.skip_batches = skip_batches
        self.batch_size = getattr(batch_sampler, "batch_size", None)  # type: ignore[assignment]
        self.drop_last = getattr(batch_sampler, "drop_last", False)

    def __iter__(self) -> Iterator[list[int]]:
        for index, batch in enumerate(self.batch_sampler):
            if index >= self.skip_batches:
                yield batch

    @property
    def total_length(self) -> int:
        return len(self.batch_sampler)

    def __len__(self) -> int:
        return len(self.batch_sampler) - self.skip_batches


class _GradientState:
    """What accumulate() and gather_for_metrics() need to know: whether this micro-step syncs, and the
    data loader being iterated (the innermost, when loops nest)."""

    def __init__(self, num_steps: int) -> None:
        self.num_steps = num_steps
        self.sync_gradients = True
        self.sync_with_dataloader = True
        self.adjust_scheduler = True
        self.loaders: list[DataLoaderShard] = []

    @property
    def end_of_dataloader(self) -> bool:
        return bool(self.loaders) and self.loaders[-1].end_of_dataloader

    @property
    def remainder(self) -> int:
        return self.loaders[-1].remainder if self.loaders else -1


class DataLoaderShard(DataLoader):
    """A DataLoader over this process's batches that moves them to the device and knows its last batch."""

    def __init__(
        self,
        dataset: Any,
        *,
        accelerator: Accelerator,
        device: torch.device | None,
        synchronized_generator: torch.Generator | None,
        source_drop_last: bool,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, **kwargs)
        self._accelerator = accelerator
        self.device = device
        self.synchronized_generator = synchronized_generator
        self._source_drop_last = source_drop_last
        self._non_blocking = non_blocking
        self._init_kwargs = kwargs
        self.iteration = 0
        self.end_of_dataloader = False
        self.remainder = -1

    def _begin(self) -> None:
        self.end_of_dataloader = False
        self.remainder = -1
        if not self._source_drop_last:
            try:
                length = getattr(self.dataset, "total_dataset_length", None) or len(self.dataset)  # type: ignore[arg-type]
                self.remainder = length % self.total_batch_size
            except (TypeError, AttributeError):
                pass  # no length: gather_for_metrics cannot know what the last round repeated
        self._accelerator._gradient_state.loaders.append(self)

    def _end(self) -> None:
        loaders = self._accelerator._gradient_state.loaders
        if self in loaders:
            loaders.remove(self)

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        if self.synchronized_generator is not None:
            self._accelerator._broadcast_generator(self.synchronized_generator)
        self._begin()
        try:
            self.set_epoch(self.iteration)
            batches = super().__iter__()
            try:
                current = next(batches)
            except StopIteration:
                return
            # one batch ahead, so the last one is known as the last while it is being used
            while True:
                if self.device is not None:
                    current = send_to_device(current, self.device, self._non_blocking)
                try:
                    following = next(batches)
                except StopIteration:
                    self.end_of_dataloader = True
                    yield current
                    break
                yield current
                current = following
            self.iteration += 1
        finally:
            self._end()

    def set_epoch(self, epoch: int) -> None:
        """The epoch seen by samplers and datasets that reshuffle by epoch (``set_epoch``)."""
        self.iteration = epoch
        sampler: Any = self.batch_sampler
        inner: Any = getattr(getattr(sampler, "batch_sampler", None), "sampler", None)
        dataset: Any = self.dataset
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if hasattr(getattr(sampler, "sampler", None), "set_epoch"):
            sampler.sampler.set_epoch(epoch)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(epoch)
        elif hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)

    @property
    def total_batch_size(self) -> int:
        """Samples per step over all processes."""
        sampler = self.batch_sampler
        size = int(getattr(sampler, "batch_size", None) or self.batch_size or 1)
        if getattr(sampler, "split_batches", False):
            return size
        return size * int(getattr(sampler, "num_processes", 1))

    @property
    def total_dataset_length(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]


# --- optimizer and scheduler ------------------------------------------------------------------------


class AcceleratedOptimizer(torch.optim.Optimizer):
    """An optimizer that steps and zeroes gradients only on the micro-steps that sync (accumulate())."""

    def __init__(self, optimizer: torch.optim.Optimizer, accelerator: Accelerator, device_placement: bool):
        # no Optimizer.__init__: every attribute is the wrapped optimizer's
        self.optimizer = optimizer
        self._accelerator = accelerator
        if device_placement and accelerator.device.type != "cpu":
            state = send_to_device(optimizer.state_dict(), accelerator.device)
            optimizer.load_state_dict(state)

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.optimizer.state

    @state.setter
    def state(self, state: Any) -> None:
        self.optimizer.state = state

    @property
    def param_groups(self) -> Any:  # type: ignore[override]
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, groups: Any) -> None:
        self.optimizer.param_groups = groups

    @property
    def defaults(self) -> Any:  # type: ignore[override]
        return self.optimizer.defaults

    @defaults.setter
    def defaults(self, defaults: Any) -> None:
        self.optimizer.defaults = defaults

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def state_dict(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._accelerator.sync_gradients:
            self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        if self._accelerator.sync_gradients:
            return self.optimizer.step(closure)
        return None

    @property
    def step_was_skipped(self) -> bool:
        """Always False: without fp16 there is no loss scaler that skips steps."""
        return False

    def train(self) -> None:
        if callable(getattr(self.optimizer, "train", None)):
            self.optimizer.train()  # type: ignore[attr-defined]

    def eval(self) -> None:
        if callable(getattr(self.optimizer, "eval", None)):
            self.optimizer.eval()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"AcceleratedOptimizer({self.optimizer!r})"


class AcceleratedScheduler:
    """A scheduler that steps only when its optimizer did (accelerate's AcceleratedScheduler)."""

    def __init__(
        self,
        scheduler: Any,
        optimizers: list[AcceleratedOptimizer],
        accelerator: Accelerator,
        step_with_optimizer: bool = True,
        split_batches: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.optimizers = optimizers
        self._accelerator = accelerator
        self.step_with_optimizer = step_with_optimizer
        self.split_batches = split_batches

    def step(self, *args: Any, **kwargs: Any) -> None:
        if not self.step_with_optimizer:
            self.scheduler.step(*args, **kwargs)
            return
        state = self._accelerator._gradient_state
        if not state.sync_gradients:
            if state.adjust_scheduler:
                self.scheduler._step_count += 1  # keeps torch's "step order" check quiet, as accelerate does
            return
        if any(opt.step_was_skipped for opt in self.optimizers):
            return
        # each optimizer step consumed num_processes batches (unless they were split): a schedule written for
        # one process's batch count advances by all of them
        repeats = 1 if self.split_batches else self._accelerator.num_processes
        for _ in range(repeats):
            total = getattr(self.scheduler, "total_steps", None)  # OneCycleLR refuses to step past its end
            if total is None or self.scheduler._step_count <= total:
                self.scheduler.step(*args, **kwargs)

    def get_last_lr(self) -> list[float]:
        return self.scheduler.get_last_lr()

    def get_lr(self) -> Any:
        return self.scheduler.get_lr()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state_dict)

    def __repr__(self) -> str:
        return f"AcceleratedScheduler({self.scheduler!r})"


# --- the accelerator --------------------------------------------------------------------------------


def resolve_mixed_precision(value: str | None, device: torch.device) -> str:
    """What ``mixed_precision`` means here: "no" or "bf16" (None reads $COVE_MIXED_PRECISION, else "no")."""
    asked = value if value is not None else (os.environ.get(ENV_MIXED_PRECISION) or "no")
    name = str(asked).strip().lower()
    if name not in MIXED_PRECISIONS:
        source = "" if value is not None else f" (from ${ENV_MIXED_PRECISION})"
        raise TrainingError(
            f"mixed_precision={asked!r}{source} is not supported: use one of {', '.join(map(repr, MIXED_PRECISIONS))}. "
            "Cove trains in float32 or under bf16 autocast; fp16 (which needs a loss scaler) and fp8 are not "
            "implemented."
        )
    from cove import hardware

    if name == "auto":
        return "bf16" if hardware.prefers_bf16(device.type) else "no"
    if name == "bf16":
        hardware.warn_if_bf16_is_slow(device.type, what="mixed_precision='bf16'")
    return name


class Accelerator:
    """accelerate's Accelerator for plain PyTorch loops on CPU (gloo) or CUDA: DDP, gradient accumulation,
    bf16 autocast, sharded data loaders, gathering and checkpoints."""

    def __init__(
        self,
        device_placement: bool = True,
        split_batches: bool = False,
        mixed_precision: str | None = None,
        gradient_accumulation_steps: int = 1,
        cpu: bool = False,
        even_batches: bool = True,
        step_scheduler_with_optimizer: bool = True,
        non_blocking: bool = False,
    ) -> None:
        if not isinstance(gradient_accumulation_steps, int) or gradient_accumulation_steps < 1:
            raise TrainingError(
                f"gradient_accumulation_steps must be a positive integer, got {gradient_accumulation_steps!r}."
            )
        self._init_distributed(cpu)
        self.mixed_precision = resolve_mixed_precision(mixed_precision, self.device)
        self.device_placement = device_placement
        self.split_batches = split_batches
        self.even_batches = even_batches
        self.step_scheduler_with_optimizer = step_scheduler_with_optimizer
        self.non_blocking = non_blocking
        self._gradient_state = _GradientState(gradient_accumulation_steps)
        self.step = 0  # micro-steps since the last sync, as accelerate counts them
        self._models: list[nn.Module] = []
        self._optimizers: list[AcceleratedOptimizer] = []
        self._schedulers: list[AcceleratedScheduler] = []
        self._dataloaders: list[DataLoaderShard] = []
        self._custom_objects: list[Any] = []

    def _init_distributed(self, cpu: bool) -> None:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        use_cuda = torch.cuda.is_available() and not cpu
        if world > 1 and dist.is_available() and not dist.is_initialized():
            for key in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
                if key not in os.environ:
                    raise TrainingError(
                        f"WORLD_SIZE={world} but {key} is not set: start the script with `cove launch "
                        "--nproc_per_node N script.py` (or torchrun), which sets the rendezvous variables."
                    )
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        if dist.is_available() and dist.is_initialized():
            self.process_index = dist.get_rank()
            self.num_processes = dist.get_world_size()
        else:
            self.process_index, self.num_processes = 0, 1
        self.local_process_index = int(os.environ.get("LOCAL_RANK", self.process_index))
        if use_cuda:
            index = self.local_process_index if self.num_processes > 1 else torch.cuda.current_device()
            self.device = torch.device("cuda", index)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")

    # -- processes ------------------------------------------------------------------------------------

    @property
    def use_distributed(self) -> bool:
        return self.num_processes > 1

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    @property
    def is_local_main_process(self) -> bool:
        return self.local_process_index == 0

    @property
    def is_last_process(self) -> bool:
        return self.process_index == self.num_processes - 1

    def print(self, *args: Any, **kwargs: Any) -> None:
        """print() on the local main process only."""
        if self.is_local_main_process:
            print(*args, **kwargs)

    def wait_for_everyone(self) -> None:
        """A barrier across processes (nothing in one process)."""
        if self.use_distributed:
            dist.barrier()

    @contextlib.contextmanager
    def main_process_first(self) -> Iterator[None]:
        """The main process runs the block first (e.g. to build a cache), the others after it."""
        if not self.is_main_process:
            self.wait_for_everyone()
        yield
        if self.is_main_process:
            self.wait_for_everyone()

    @contextlib.contextmanager
    def split_between_processes(self, inputs: Any, apply_padding: bool = False) -> Iterator[Any]:
        """This process's contiguous share of a list, tuple, tensor or dict of them (the first processes
        take one more when it does not divide); ``apply_padding`` repeats the last element so all shares
        have the same length."""
        if self.num_processes == 1:
            yield inputs
            return
        if isinstance(inputs, dict):
            lengths = {len(v) for v in inputs.values()}
            if len(lengths) > 1:
                raise TrainingError(
                    "split_between_processes: every value of the dict must have the same length."
                )
            length = lengths.pop() if lengths else 0
        else:
            length = len(inputs)
        per, extra = divmod(length, self.num_processes)
        start = self.process_index * per + min(self.process_index, extra)
        end = start + per + (1 if self.process_index < extra else 0)
        width = per + (1 if extra else 0)

        def split(values: Any) -> Any:
            if isinstance(values, dict):
                return {k: split(v) for k, v in values.items()}
            if not isinstance(values, list | tuple | torch.Tensor):
                raise TrainingError(
                    f"split_between_processes takes a list, tuple, tensor or dict of them, not {type(values).__name__}."
                )
            part: Any = values[start:end]
            if apply_padding and len(part) < width:
                if isinstance(values, torch.Tensor):
                    pad = values[-1:].expand(width - len(part), *values.shape[1:])
                    part = torch.cat([part, pad])
                else:
                    part = part + type(part)([values[-1]] * (width - len(part)))
            return part

        yield split(inputs)

    # -- prepare --------------------------------------------------------------------------------------

    def prepare(self, *args: Any, device_placement: list[bool] | None = None) -> Any:
        """Prepare models, optimizers, DataLoaders and LR schedulers (any of them, in any order); returns
        them in the order given (one object alone, not a tuple)."""
        if device_placement is None:
            placements: list[bool | None] = [None] * len(args)
        elif len(device_placement) != len(args):
            raise TrainingError(
                f"device_placement has {len(device_placement)} entries for {len(args)} objects: give one per object."
            )
        else:
            placements = list(device_placement)
        for obj in args:
            if not isinstance(obj, _PREPARABLE):
                raise TypeError(
                    f"Accelerator.prepare() cannot prepare a {type(obj).__module__}.{type(obj).__name__}: it takes "
                    "torch.nn.Module models, torch.optim.Optimizer optimizers, torch.utils.data.DataLoader loaders "
                    "and torch.optim.lr_scheduler.LRScheduler schedulers."
                )
        # schedulers last, once the optimizers they follow are prepared (accelerate's two passes)
        first = [self._prepare_first(obj, d) for obj, d in zip(args, placements, strict=True)]
        result = tuple(self._prepare_scheduler_pass(obj) for obj in first)
        return result if len(result) > 1 else result[0]

    def _prepare_first(self, obj: Any, placement: bool | None) -> Any:
        if isinstance(obj, DataLoader):
            return self.prepare_data_loader(obj, device_placement=placement)
        if isinstance(obj, nn.Module):
            return self.prepare_model(obj, device_placement=placement)
        if isinstance(obj, torch.optim.Optimizer):
            return self.prepare_optimizer(obj, device_placement=placement)
        return obj

    def _prepare_scheduler_pass(self, obj: Any) -> Any:
        if isinstance(obj, torch.optim.lr_scheduler.LRScheduler) and not isinstance(
            obj, AcceleratedScheduler
        ):
            return self.prepare_scheduler(obj)
        return obj

    def prepare_model(self, model: nn.Module, device_placement: bool | None = None) -> nn.Module:
        """The model on the device, its forward under bf16 autocast (outputs back in fp32) when mixed
        precision is on, wrapped in DistributedDataParallel under several processes."""
        if getattr(model, "_cove_prepared", False):
            if model not in self._models:
                self._models.append(model)
            return model
        self._models.append(model)
        if self.mixed_precision == "bf16":
            original = model.forward
            autocast = self.autocast

            @functools.wraps(original)
            def forward(*args: Any, **kwargs: Any) -> Any:
                with autocast():
                    outputs = original(*args, **kwargs)
                return _to_fp32(outputs)

            model._original_forward = original  # type: ignore[assignment]
            model.forward = forward  # type: ignore[method-assign]
        if self.device_placement if device_placement is None else device_placement:
            model = model.to(self.device)
        if self.use_distributed and any(p.requires_grad for p in model.parameters()):
            if self.device.type == "cuda":
                index = self.device.index
                model = nn.parallel.DistributedDataParallel(model, device_ids=[index], output_device=index)
            else:
                model = nn.parallel.DistributedDataParallel(model)
        self._models[-1] = model
        model._cove_prepared = True  # type: ignore[assignment]
        return model

    def prepare_optimizer(
        self, optimizer: torch.optim.Optimizer, device_placement: bool | None = None
    ) -> AcceleratedOptimizer:
        if isinstance(optimizer, AcceleratedOptimizer):
            if optimizer not in self._optimizers:
                self._optimizers.append(optimizer)
            return optimizer
        placement = self.device_placement if device_placement is None else device_placement
        prepared = AcceleratedOptimizer(optimizer, self, placement)
        self._optimizers.append(prepared)
        return prepared

    def prepare_scheduler(self, scheduler: Any) -> AcceleratedScheduler:
        if isinstance(scheduler, AcceleratedScheduler):
            if scheduler not in self._schedulers:
                self._schedulers.append(scheduler)
            return scheduler
        mine = [opt for opt in self._optimizers if opt.optimizer is getattr(scheduler, "optimizer", None)]
        prepared = AcceleratedScheduler(
            scheduler,
            mine or list(self._optimizers),
            self,
            step_with_optimizer=self.step_scheduler_with_optimizer,
            split_batches=self.split_batches,
        )
        self._schedulers.append(prepared)
        return prepared

    def prepare_data_loader(
        self, loader: DataLoader, device_placement: bool | None = None
    ) -> DataLoaderShard:
        """This process's share of the loader's batches (all of them in one process)."""
        if isinstance(loader, DataLoaderShard):
            if loader not in self._dataloaders:
                self._dataloaders.append(loader)
            return loader
        placement = self.device_placement if device_placement is None else device_placement
        prepared = self._shard(loader, placement)
        self._dataloaders.append(prepared)
        return prepared

    def _shard(self, loader: DataLoader, placement: bool, skip_batches: int = 0) -> DataLoaderShard:
        if isinstance(loader.dataset, IterableDataset) and self.num_processes > 1:
            raise TrainingError(
                "Sharding a DataLoader over an iterable dataset across processes is not supported yet: use a "
                "map-style dataset (with __len__ and __getitem__), or shard the stream yourself."
            )
        kwargs: dict[str, Any] = {k: getattr(loader, k) for k in _LOADER_KWARGS if hasattr(loader, k)}
        batch_sampler: Any = loader.batch_sampler
        sampler_is_batch_sampler = isinstance(loader.sampler, BatchSampler)
        if sampler_is_batch_sampler:
            batch_sampler = loader.sampler
        generator = None
        if self.num_processes > 1:
            if batch_sampler is None:
                raise TrainingError(
                    "A DataLoader with batch_size=None yields single samples, which cannot be sharded across "
                    "processes: give it a batch_size (or a batch_sampler)."
                )
            sampler = getattr(batch_sampler, "sampler", loader.sampler)
            if hasattr(sampler, "generator"):
                # one generator for the shuffle, the same on every process (broadcast from process 0 each epoch)
                if sampler.generator is None:
                    sampler.generator = torch.Generator()
                    sampler.generator.manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
                generator = sampler.generator
            batch_sampler = BatchSamplerShard(
                batch_sampler,
                num_processes=self.num_processes,
                process_index=self.process_index,
                split_batches=self.split_batches,
                even_batches=self.even_batches,
            )
        if skip_batches:
            batch_sampler = SkipBatchSampler(batch_sampler, skip_batches)
        if isinstance(loader.dataset, IterableDataset):
            kwargs.update(batch_size=loader.batch_size, drop_last=loader.drop_last)
        elif batch_sampler is None:
            kwargs.update(sampler=loader.sampler, batch_size=None)
        elif sampler_is_batch_sampler:
            kwargs.update(sampler=batch_sampler, batch_size=loader.batch_size)
        else:
            kwargs["batch_sampler"] = batch_sampler
        return DataLoaderShard(
            loader.dataset,
            accelerator=self,
            device=self.device if placement else None,
            synchronized_generator=generator,
            source_drop_last=loader.drop_last,
            non_blocking=self.non_blocking,
            **kwargs,
        )

    def skip_first_batches(self, dataloader: DataLoaderShard, num_batches: int = 0) -> DataLoaderShard:
        """The prepared loader without its first ``num_batches`` batches, to resume inside an epoch (use the
        original loader for the epochs after)."""
        if not isinstance(dataloader, DataLoaderShard):
            raise TypeError("skip_first_batches takes a DataLoader returned by Accelerator.prepare().")
        kwargs = dict(dataloader._init_kwargs)
        key = "batch_sampler" if "batch_sampler" in kwargs else "sampler"
        kwargs[key] = SkipBatchSampler(kwargs[key], num_batches)
        return DataLoaderShard(
            dataloader.dataset,
            accelerator=self,
            device=dataloader.device,
            synchronized_generator=dataloader.synchronized_generator,
            source_drop_last=dataloader._source_drop_last,
            non_blocking=dataloader._non_blocking,
            **kwargs,
        )

    def _broadcast_generator(self, generator: torch.Generator) -> None:
        if not self.use_distributed:
            return
        state = generator.get_state()
        if self.device.type == "cuda":  # nccl broadcasts device tensors only
            moved = state.to(self.device)
            dist.broadcast(moved, 0)
            state = moved.cpu()
        else:
            dist.broadcast(state, 0)
        generator.set_state(state)

    # -- the training step ----------------------------------------------------------------------------

    @property
    def gradient_accumulation_steps(self) -> int:
        return self._gradient_state.num_steps

    @gradient_accumulation_steps.setter
    def gradient_accumulation_steps(self, steps: int) -> None:
        if not isinstance(steps, int) or steps < 1:
            raise TrainingError(f"gradient_accumulation_steps must be a positive integer, got {steps!r}.")
        self._gradient_state.num_steps = steps

    @property
    def sync_gradients(self) -> bool:
        """Whether this micro-step syncs gradients (and so steps the optimizer)."""
        return self._gradient_state.sync_gradients

    @sync_gradients.setter
    def sync_gradients(self, value: bool) -> None:
        self._gradient_state.sync_gradients = value

    @property
    def end_of_dataloader(self) -> bool:
        return self._gradient_state.end_of_dataloader

    def _do_sync(self) -> None:
        state = self._gradient_state
        if state.sync_with_dataloader and state.end_of_dataloader:
            self.step = 0
            state.sync_gradients = True
        else:
            self.step += 1
            state.sync_gradients = self.step % state.num_steps == 0

    @contextlib.contextmanager
    def no_sync(self, model: nn.Module) -> Iterator[None]:
        """No gradient all-reduce in the block (DDP's no_sync); nothing in one process."""
        context = getattr(model, "no_sync", None) if self.use_distributed else None
        with context() if context is not None else contextlib.nullcontext():
            yield

    @contextlib.contextmanager
    def accumulate(self, *models: nn.Module) -> Iterator[None]:
        """One micro-step of gradient accumulation: sets ``sync_gradients`` and, on the micro-steps that do
        not sync, keeps DDP from all-reducing the models' gradients."""
        self._do_sync()
        with contextlib.ExitStack() as stack:
            for model in models:
                stack.enter_context(contextlib.nullcontext() if self.sync_gradients else self.no_sync(model))
            yield

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        """``loss.backward()`` with the loss divided by ``gradient_accumulation_steps``."""
        (loss / self.gradient_accumulation_steps).backward(**kwargs)

    def clip_grad_norm_(
        self, parameters: Iterable[torch.Tensor], max_norm: float, norm_type: float = 2
    ) -> torch.Tensor:
        """``torch.nn.utils.clip_grad_norm_``; returns the total norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(list(parameters), max_norm, norm_type=norm_type)

    def clip_grad_value_(self, parameters: Iterable[torch.Tensor], clip_value: float) -> None:
        torch.nn.utils.clip_grad_value_(list(parameters), clip_value)

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """bf16 autocast on the device when mixed_precision is bf16; nothing otherwise."""
        if self.mixed_precision == "bf16":
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16):
                yield
        else:
            yield

    def unwrap_model(self, model: nn.Module, keep_fp32_wrapper: bool = True) -> nn.Module:
        """The model without its DistributedDataParallel wrapper (and, with ``keep_fp32_wrapper=False``,
        without the autocast forward)."""
        while isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        if not keep_fp32_wrapper and "_original_forward" in model.__dict__:
            del model.forward
            del model._original_forward
        return model

    # -- collectives ----------------------------------------------------------------------------------

    def gather(self, tensor: Any) -> Any:
        """Every process's tensors concatenated on the first dimension (scalars become length-1), in
        process order; nested lists/tuples/dicts of tensors are gathered leaf by leaf."""
        if not self.use_distributed:
            return tensor

        def one(t: torch.Tensor) -> torch.Tensor:
            t = (t.clone()[None] if t.ndim == 0 else t).contiguous()
            parts = [torch.empty_like(t) for _ in range(self.num_processes)]
            dist.all_gather(parts, t)
            return torch.cat(parts, dim=0)

        return _apply(one, tensor, strict=True, what="gather()")

    def gather_object(self, obj: Any) -> list[Any]:
        """Every process's picklable objects; lists are concatenated in process order."""
        if not self.use_distributed:
            return obj  # type: ignore[no-any-return]
        parts: list[Any] = [None] * self.num_processes
        dist.all_gather_object(parts, obj)
        out: list[Any] = []
        for part in parts:
            out.extend(part if isinstance(part, list | tuple) else [part])
        return out

    def gather_for_metrics(self, input_data: Any, use_gather_object: bool = False) -> Any:
        """gather(), minus the samples the last round of a prepared loader repeated to keep processes even."""
        use_gather_object = use_gather_object or not _all_tensors(input_data)
        data = self.gather_object(input_data) if use_gather_object else self.gather(input_data)
        state = self._gradient_state
        if not state.end_of_dataloader or state.remainder <= 0:
            return data
        keep = state.remainder
        if use_gather_object:
            return data[:keep]
        return _apply(lambda t: t[:keep], data, strict=False)

    def reduce(self, tensor: Any, reduction: str = "sum", scale: float = 1.0) -> Any:
        """All processes' tensors reduced: "sum", "mean", "max" or "none"; every process gets the result."""
        if reduction not in ("sum", "mean", "max", "none"):
            raise TrainingError(f"reduce(reduction={reduction!r}): use 'sum', 'mean', 'max' or 'none'.")

        def one(t: torch.Tensor) -> torch.Tensor:
            out = t.clone()
            if not self.use_distributed or reduction == "none":
                return out
            dist.all_reduce(out, dist.ReduceOp.MAX if reduction == "max" else dist.ReduceOp.SUM)
            if reduction == "mean":
                out /= self.num_processes
            return out

        return _apply(one, tensor, strict=True, what="reduce()")

    def pad_across_processes(
        self, tensor: Any, dim: int = 0, pad_index: int = 0, pad_first: bool = False
    ) -> Any:
        """Tensors padded along ``dim`` to the largest size any process has, so they can be gathered."""

        def one(t: torch.Tensor) -> torch.Tensor:
            if not self.use_distributed or dim >= t.ndim or dim < -t.ndim:
                return t
            axis = dim % t.ndim
            sizes = self.gather(torch.tensor(t.shape, device=t.device)[None]).cpu()
            longest = int(sizes[:, axis].max())
            if longest == t.shape[axis]:
                return t
            shape = list(t.shape)
            shape[axis] = longest
            out = t.new_zeros(shape) + pad_index
            lo = longest - t.shape[axis] if pad_first else 0
            index = tuple(slice(lo, lo + t.shape[axis]) if i == axis else slice(None) for i in range(t.ndim))
            out[index] = t
            return out

        return _apply(one, tensor, strict=True, what="pad_across_processes()")

    # -- checkpoints ----------------------------------------------------------------------------------

    def register_for_checkpointing(self, *objects: Any) -> None:
        """Objects with state_dict()/load_state_dict() that save_state/load_state also keep."""
        for obj in objects:
            if not (
                callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))
            ):
                raise TrainingError(
                    f"register_for_checkpointing: a {type(obj).__name__} has no state_dict()/load_state_dict()."
                )
        self._custom_objects.extend(objects)

    def save_state(self, output_dir: str | os.PathLike[str], safe_serialization: bool = True) -> Path:
        """Models (safetensors), optimizers and schedulers (torch.save, loaded back weights-only), every
        process's RNG states and each prepared loader's shuffle generator, with accelerate's file names."""
        if not safe_serialization:
            raise TrainingError(
                "save_state writes model weights as safetensors only: drop safe_serialization=False."
            )
        folder = Path(output_dir).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        if self.is_main_process:
            for i, model in enumerate(self._models):
                _save_model(self.unwrap_model(model), folder / MODEL_FILE.format(_suffix(i)))
            for i, opt in enumerate(self._optimizers):
                torch.save(opt.state_dict(), folder / OPTIMIZER_FILE.format(_suffix(i)))
            for i, sched in enumerate(self._schedulers):
                torch.save(sched.state_dict(), folder / SCHEDULER_FILE.format(_suffix(i)))
            for i, obj in enumerate(self._custom_objects):
                torch.save(obj.state_dict(), folder / CUSTOM_FILE.format(i))
        torch.save(self._rng_state(), folder / RNG_FILE.format(self.process_index))
        self.wait_for_everyone()  # a load right after (on any process) sees complete files
        return folder

    def _rng_state(self) -> dict[str, Any]:
        from cove.training.utils import get_rng_state

        state: dict[str, Any] = {"step": self.step, **get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        state["loaders"] = [
            {
                "iteration": loader.iteration,
                "generator": None
                if loader.synchronized_generator is None
                else loader.synchronized_generator.get_state(),
            }
            for loader in self._dataloaders
        ]
        return state

    def load_state(self, input_dir: str | os.PathLike[str]) -> None:
        """Restore what save_state wrote into the prepared objects (the same ones, prepared in the same order)."""
        folder = Path(input_dir).expanduser()
        if not folder.is_dir():
            raise TrainingError(f"load_state: {folder} is not a folder; pass the folder save_state wrote.")
        for i, model in enumerate(self._models):
            _load_model(self.unwrap_model(model), folder / MODEL_FILE.format(_suffix(i)))
        for i, opt in enumerate(self._optimizers):
            opt.load_state_dict(_load_torch(folder / OPTIMIZER_FILE.format(_suffix(i)), self.device))
        for i, sched in enumerate(self._schedulers):
            sched.load_state_dict(_load_torch(folder / SCHEDULER_FILE.format(_suffix(i))))
        found = sorted(folder.glob("custom_checkpoint_*.pkl"))
        if len(found) != len(self._custom_objects):
            raise TrainingError(
                f"load_state: {folder} holds {len(found)} custom checkpoints but {len(self._custom_objects)} "
                "objects are registered: register the same objects (register_for_checkpointing) as when saving."
            )
        for i, obj in enumerate(self._custom_objects):
            obj.load_state_dict(_load_torch(folder / CUSTOM_FILE.format(i)))
        self._load_rng_state(folder / RNG_FILE.format(self.process_index))

    def _load_rng_state(self, path: Path) -> None:
        from cove.training.utils import set_rng_state

        try:
            state = torch.load(path, weights_only=True)
        except FileNotFoundError:
            warnings.warn(f"{path} is missing: the random states are not restored.", stacklevel=3)
            return
        except Exception as exc:  # accelerate's pickled states (numpy arrays) are refused
            warnings.warn(
                f"{path} is not a weights-only file Cove wrote ({type(exc).__name__}); the random states are "
                "not restored.",
                stacklevel=3,
            )
            return
        self.step = int(state.get("step", 0))
        set_rng_state(state)
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        for loader, saved in zip(self._dataloaders, state.get("loaders", []), strict=False):
            loader.iteration = int(saved["iteration"])
            if saved["generator"] is not None and loader.synchronized_generator is not None:
                loader.synchronized_generator.set_state(saved["generator"])

    def save_model(self, model: nn.Module, save_directory: str | os.PathLike[str]) -> None:
        """The unwrapped model's weights, on the main process: ``save_pretrained`` when it has one (config
        included), else model.safetensors."""
        if not self.is_main_process:
            return
        unwrapped = self.unwrap_model(model)
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        if callable(getattr(unwrapped, "save_pretrained", None)):
            unwrapped.save_pretrained(folder)  # type: ignore[operator]
        else:
            _save_model(unwrapped, folder / "model.safetensors")

    def free_memory(self) -> None:
        """Drop every reference to the prepared objects and reset the step counter."""
        self._models.clear()
        self._optimizers.clear()
        self._schedulers.clear()
        self._dataloaders.clear()
        self._custom_objects.clear()
        self.step = 0

    def __repr__(self) -> str:
        return (
            f"Accelerator(process {self.process_index}/{self.num_processes}, device={self.device}, "
            f"mixed_precision={self.mixed_precision!r}, gradient_accumulation_steps={self.gradient_accumulation_steps})"
        )


_PREPARABLE = (
    nn.Module,
    torch.optim.Optimizer,
    DataLoader,
    torch.optim.lr_scheduler.LRScheduler,
    AcceleratedScheduler,
)


def _load_torch(path: Path, device: torch.device | None = None) -> Any:
    if not path.is_file():
        raise TrainingError(
            f"load_state: {path.name} is missing from {path.parent}; was it written by save_state?"
        )
    try:
        return torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for refused pickles
        raise TrainingError(
            f"load_state: {path} could not be read with torch.load(weights_only=True) ({exc}); Cove does not "
            "unpickle arbitrary objects."
        ) from exc


def _save_model(model: nn.Module, path: Path) -> None:
    """The model's state dict as safetensors: tied weights once, views into shared buffers (fused q/k/v)
    copied out, since safetensors stores no two names over one storage."""
    from safetensors.torch import save_file

    state = model.state_dict()
    owners: dict[int, int] = {}
    for tensor in state.values():
        ptr = tensor.untyped_storage().data_ptr()
        owners[ptr] = owners.get(ptr, 0) + 1
    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[Any, ...]] = set()
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if key in seen:
            continue  # a tied weight: load_state finds it through its first name
        seen.add(key)
        whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
        shared = owners[tensor.untyped_storage().data_ptr()] > 1 or not whole
        out[name] = tensor.detach().clone() if shared else tensor.detach().contiguous()
    save_file(out, str(path), metadata={"format": "pt"})


def _load_model(model: nn.Module, path: Path) -> None:
    from cove.checkpoint.weights import load_file

    if not path.is_file():
        raise TrainingError(
            f"load_state: {path.name} is missing from {path.parent}; was it written by save_state?"
        )
    state = load_file(path)
    if state and all(k.startswith("module.") for k in state):  # saved from a DDP wrapper (accelerate does)
        state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    # tied weights are saved once (safetensors keeps one name per storage): their other names are not missing
    tensors = model.state_dict(keep_vars=True)

    def slot(t: torch.Tensor) -> tuple[Any, ...]:
        return (t.data_ptr(), tuple(t.shape), t.stride())

    loaded = {slot(tensors[k]) for k in state if k in tensors}
    missing = [k for k in missing if slot(tensors[k]) not in loaded]
    if missing or unexpected:
        raise TrainingError(
            f"load_state: {path} does not match {type(model).__name__}: missing {sorted(missing)[:8]}, "
            f"unexpected {sorted(unexpected)[:8]}. Prepare the same model as when saving."
        )
