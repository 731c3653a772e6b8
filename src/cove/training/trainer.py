"""``Trainer``: the fine-tuning loop, with transformers' API, step accounting and data order.

Data order: epoch ``e`` visits ``torch.randperm(n, generator=seed + e)`` (transformers' seedable sampler and
torch's DistributedSampler draw the same permutation), so a run matches transformers' on the same data and
seed, a resumed run matches one that never stopped, and two processes with half the batch each see the same
global batches as one process.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

from cove.errors import TrainingError
from cove.models.modeling import skip_padding
from cove.training.arguments import TrainingArguments
from cove.training.callbacks import (
    TRAINER_STATE_NAME,
    CallbackHandler,
    JsonlLoggerCallback,
    ProgressCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
    reporting_callbacks,
)
from cove.training.collators import DataCollatorWithPadding, default_data_collator
from cove.training.optim import create_optimizer, get_scheduler
from cove.training.utils import (
    EvalLoopOutput,
    EvalPrediction,
    PredictionOutput,
    TrainOutput,
    get_rng_state,
    set_rng_state,
    set_seed,
)

logger = logging.getLogger("cove.training")

PREFIX_CHECKPOINT_DIR = "checkpoint"
OPTIMIZER_NAME = "optimizer.pt"
SCHEDULER_NAME = "scheduler.pt"
TRAINING_ARGS_NAME = "training_args.json"
_CHECKPOINT_RE = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
_MAX_ROWS_READ_FOR_ETA = 200_000  # without group_by_length's lengths, larger sets get tqdm's ETA


def get_last_checkpoint(folder: str | os.PathLike[str]) -> str | None:
    """The ``checkpoint-N`` folder with the largest N under ``folder``, or None."""
    path = Path(folder)
    if not path.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in path.iterdir()
        if p.is_dir() and (m := _CHECKPOINT_RE.match(p.name)) and (p / TRAINER_STATE_NAME).exists()
    ]
    return str(max(found)[1]) if found else None


class EpochSampler(Sampler[int]):
    """Indices of one epoch: a seeded permutation (or the identity), sharded across processes, with a skip."""

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ):
        self.length = length
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self.skip = 0  # samples of this process to leave out at the start (resuming mid-epoch)
        self.lengths: list[int] | None = None  # set for group_by_length
        self.batch_size = 1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.length, generator=g).tolist()
        else:
            indices = list(range(self.length))
        if self.num_replicas > 1:
            # torch's DistributedSampler: pad by wrapping around (or drop the tail), then stride
            if self.drop_last:
                total = (self.length // self.num_replicas) * self.num_replicas
                indices = indices[:total]
            else:
                total = math.ceil(self.length / self.num_replicas) * self.num_replicas
                pad = total - len(indices)
                indices += (indices * math.ceil(pad / max(len(indices), 1)))[:pad]
            indices = indices[self.rank : total : self.num_replicas]
        if self.lengths is not None:
            indices = self._grouped(indices)
        return indices

    def _grouped(self, indices: list[int]) -> list[int]:
        """transformers' LengthGroupedSampler: mega-batches of 50 batches, each sorted longest first, with
        the longest example's batch first (so an out-of-memory shows at once)."""
        assert self.lengths is not None
        size = 50 * self.batch_size
        megas = [
            sorted(indices[i : i + size], key=lambda j: self.lengths[j], reverse=True)  # type: ignore[index]
            for i in range(0, len(indices), size)
        ]
        if not megas:
            return indices
        longest = max(range(len(megas)), key=lambda m: self.lengths[megas[m][0]])  # type: ignore[index]
        megas[0][0], megas[longest][0] = megas[longest][0], megas[0][0]
        return [i for mega in megas for i in mega]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.skip :])

    def __len__(self) -> int:
        return len(self._indices()) - self.skip


def _nested_concat(a: Any, b: Any, padding_index: int = -100) -> Any:
    """Concatenate along the batch axis, padding axis 1 when sequence lengths differ (as transformers does)."""
    if a is None:
        return b
    if isinstance(a, (list, tuple)):
        return type(a)(_nested_concat(x, y, padding_index) for x, y in zip(a, b))
    if a.ndim < 2 or a.shape[1] == b.shape[1]:
        return np.concatenate([a, b], axis=0)
    width = max(a.shape[1], b.shape[1])
    out = np.full((a.shape[0] + b.shape[0], width, *a.shape[2:]), padding_index, dtype=a.dtype)
    out[: a.shape[0], : a.shape[1]] = a
    out[a.shape[0] :, : b.shape[1]] = b
    return out


def _to_numpy(x: Any) -> Any:
    if isinstance(x, (list, tuple)):
        return type(x)(_to_numpy(v) for v in x)
    x = x.detach()
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return x.cpu().numpy()


class Trainer:
    """Fine-tune a model: ``train()``, ``evaluate()``, ``predict()``, ``save_model()``, ``push_to_hub()``."""

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Callable[[list[Any]], dict[str, Any]] | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        model_init: Callable[[], nn.Module] | None = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: list[TrainerCallback] | None = None,
        optimizers: tuple[Any, Any] = (None, None),
        preprocess_logits_for_metrics: Callable[[Any, Any], Any] | None = None,
        tokenizer: Any = None,
    ):
        if args is None:
            args = TrainingArguments(output_dir="trainer_output")
        if not isinstance(args, TrainingArguments):
            raise TrainingError(f"args must be a cove.TrainingArguments, got {type(args).__name__}.")
        self.args = args
        set_seed(args.seed)
        self._setup_distributed()
        if model is None:
            if model_init is None:
                raise TrainingError("Trainer needs a model (or a model_init function that builds one).")
            model = model_init()
        self.model_init = model_init
        self.model = model
        self.processing_class = processing_class if processing_class is not None else tokenizer
        if data_collator is None:
            data_collator = (
                DataCollatorWithPadding(self.processing_class)
                if getattr(self.processing_class, "pad_token_id", None) is not None
                else default_data_collator
            )
        self.data_collator = data_collator
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.optimizer, self.lr_scheduler = optimizers
        self.state = TrainerState()
        self.control = TrainerControl()
        default_callbacks: list[TrainerCallback] = [JsonlLoggerCallback()]
        default_callbacks += reporting_callbacks(list(args.report_to or []))
        if not args.disable_tqdm:
            default_callbacks.append(ProgressCallback())
        self.callback_handler = CallbackHandler(default_callbacks + list(callbacks or []))
        name = type(model).__name__
        self.label_names = args.label_names or (
            ["start_positions", "end_positions"] if "QuestionAnswering" in name else ["labels"]
        )
        self._signature_columns: list[str] | None = None
        self._non_embedding_params: int | None = None
        self._current_flos = 0.0
        self._wrapped: nn.Module = model
        self.control = self.callback_handler.call("on_init_end", args, self.state, self.control)

    # -- distributed -------------------------------------------------------------------------

    def _setup_distributed(self) -> None:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
            dist.init_process_group(backend="gloo")
        self.world_size = self.args.world_size
        self.rank = self.args.process_index

    @property
    def is_world_process_zero(self) -> bool:
        return self.rank == 0

    # -- callbacks ---------------------------------------------------------------------------

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        return self.callback_handler.pop_callback(callback)

    def _event(self, name: str, **kwargs: Any) -> None:
        self.control = self.callback_handler.call(
            name, self.args, self.state, self.control, model=self.model, **kwargs
        )

    # -- data --------------------------------------------------------------------------------

    def _model_columns(self) -> list[str]:
        if self._signature_columns is None:
            forward = self.model.forward
            params = inspect.signature(forward).parameters
            self._signature_columns = [*params, "label", "label_ids", *self.label_names]
        return self._signature_columns

    def _prepare_dataset(self, dataset: Any, description: str) -> tuple[Any, Callable[[list[Any]], Any]]:
        if dataset is None:
            raise TrainingError(f"Trainer: {description} needs a {description}_dataset.")
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TrainingError(
                f"The {description} dataset must be map-style (with __len__ and __getitem__), got "
                f"{type(dataset).__name__}."
            )
        collator = self.data_collator
        if not self.args.remove_unused_columns:
            return dataset, collator
        keep = set(self._model_columns())
        columns = getattr(dataset, "column_names", None)
        if isinstance(columns, list) and hasattr(dataset, "remove_columns"):
            unused = [c for c in columns if c not in keep]
            if unused:
                dataset = dataset.remove_columns(unused)
            return dataset, collator

        def collate(features: list[Any]) -> Any:
            return collator([{k: v for k, v in dict(f).items() if k in keep} for f in features])

        return dataset, collate

    def _dataloader(self, dataset: Any, *, train: bool, batch_size: int) -> tuple[DataLoader, EpochSampler]:
        dataset, collate = self._prepare_dataset(dataset, "train" if train else "eval")
        sampler = EpochSampler(
            len(dataset),
            shuffle=train,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            num_replicas=self.world_size if train else 1,
            rank=self.rank if train else 0,
            drop_last=self.args.dataloader_drop_last if train else False,
        )
        if train and self.args.group_by_length:
            sampler.lengths = self._lengths(dataset)
            sampler.batch_size = batch_size
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate,
            drop_last=self.args.dataloader_drop_last if train else False,
            num_workers=self.args.dataloader_num_workers,
            # no generator of its own: as in transformers, each epoch's iterator draws its base seed from
            # the global RNG, so dropout then draws the same masks as transformers' Trainer on the same seed
        )
        return loader, sampler

    def _lengths(self, dataset: Any) -> list[int]:
        name = self.args.length_column_name
        columns = getattr(dataset, "column_names", None)
        if isinstance(columns, list) and name in columns:
            return [int(n) for n in dataset[name]]
        if isinstance(columns, list) and "input_ids" in columns:  # one column read, not row by row
            return [len(ids) for ids in dataset["input_ids"]]
        try:
            return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
        except (KeyError, TypeError):
            raise TrainingError(
                f"group_by_length=True needs an 'input_ids' feature or a {name!r} column with each example's length."
            ) from None

    def get_train_dataloader(self) -> DataLoader:
        return self._dataloader(self.train_dataset, train=True, batch_size=self.args.train_batch_size)[0]

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        return self._dataloader(dataset, train=False, batch_size=self.args.eval_batch_size)[0]

    # -- optimisation ------------------------------------------------------------------------

    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        if self.optimizer is None:
            self.optimizer = create_optimizer(self.model, self.args)
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(
                self.args.lr_scheduler_type,
                self.optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                scheduler_specific_kwargs=self.args.lr_scheduler_kwargs,
            )

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.args.bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def compute_loss(
        self, model: nn.Module, inputs: dict[str, Any], return_outputs: bool = False, **_: Any
    ) -> Any:
        outputs = model(**inputs)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs[0]
        if loss is None:
            raise TrainingError(
                f"The model returned no loss: the batch has keys {sorted(inputs)}, but the model computes a "
                f"loss only when given {self.label_names}. Add labels to the dataset (or set label_names)."
            )
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model: nn.Module, inputs: dict[str, Any], accumulation: int = 1) -> torch.Tensor:
        model.train()
        padding_free = skip_padding(training=True) if self.args.padding_free else contextlib.nullcontext()
        with self._autocast(), padding_free:
            loss = self.compute_loss(model, inputs)
        loss = loss / accumulation
        loss.backward()
        return loss.detach().float()

    # -- the loop ----------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> TrainOutput:
        if kwargs:
            raise TrainingError(f"Trainer.train() got unknown arguments {sorted(kwargs)}.")
        args = self.args
        if resume_from_checkpoint is None:
            resume_from_checkpoint = args.resume_from_checkpoint
        if resume_from_checkpoint is False:
            resume_from_checkpoint = None
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(args.output_dir)
            if resume_from_checkpoint is None:
                raise TrainingError(
                    f"resume_from_checkpoint=True but {args.output_dir!r} has no checkpoint-* folder to resume from."
                )
        if resume_from_checkpoint is not None and not os.path.isfile(
            os.path.join(resume_from_checkpoint, TRAINER_STATE_NAME)
        ):
            raise TrainingError(
                f"{resume_from_checkpoint!r} is not a Trainer checkpoint (no {TRAINER_STATE_NAME}); pass a "
                "checkpoint-N folder or True for the latest one."
            )
        if resume_from_checkpoint is not None:
            self._load_model_from_checkpoint(resume_from_checkpoint)

        loader, sampler = self._dataloader(self.train_dataset, train=True, batch_size=args.train_batch_size)
        ga = args.gradient_accumulation_steps
        steps_in_epoch = len(loader)
        if steps_in_epoch == 0:
            raise TrainingError(
                f"The training set gives no batch: {len(sampler)} examples with batch size "
                f"{args.train_batch_size} and dataloader_drop_last={args.dataloader_drop_last}."
            )
        updates_per_epoch = max(math.ceil(steps_in_epoch / ga), 1)
        if args.max_steps > 0:
            max_steps = args.max_steps
            num_epochs = math.ceil(max_steps / updates_per_epoch)
        else:
            max_steps = math.ceil(args.num_train_epochs * updates_per_epoch)
            num_epochs = math.ceil(args.num_train_epochs)

        self.state = TrainerState(
            max_steps=max_steps,
            num_train_epochs=num_epochs,
            train_batch_size=args.train_batch_size,
            logging_steps=_absolute(args.logging_steps, max_steps),
            eval_steps=_absolute(args.eval_steps, max_steps) if args.eval_steps is not None else None,
            save_steps=_absolute(args.save_steps, max_steps),
            is_local_process_zero=self.is_world_process_zero,
            is_world_process_zero=self.is_world_process_zero,
        )
        self.control = TrainerControl()
        self.create_optimizer_and_scheduler(max_steps)
        epochs_trained, updates_done_in_epoch = 0, 0
        if resume_from_checkpoint is not None:
            self._load_optimizer_and_state(resume_from_checkpoint)
            epochs_trained = self.state.global_step // updates_per_epoch
            updates_done_in_epoch = self.state.global_step % updates_per_epoch

        model = self.model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            model = DistributedDataParallel(self.model)
        self._wrapped = model
        self._tr_loss = torch.zeros(())
        self._current_flos = 0.0
        self._total_loss = 0.0
        self._last_logged = self.state.global_step
        start_step = self.state.global_step
        start_time = time.time()
        model.zero_grad(set_to_none=True)
        self._event(
            "on_train_begin",
            step_costs=self._planned_step_costs(
                sampler, steps_in_epoch, range(epochs_trained, num_epochs), updates_done_in_epoch, max_steps
            ),
        )
        if args.eval_on_start:
            self._evaluate_and_track()

        for epoch in range(epochs_trained, num_epochs):
            first_update = updates_done_in_epoch if epoch == epochs_trained else 0
            sampler.set_epoch(epoch)
            sampler.skip = first_update * ga * args.train_batch_size
            batches = iter(loader)
            if resume_from_checkpoint is not None and epoch == epochs_trained:
                self._load_rng_state(resume_from_checkpoint)
            self._event("on_epoch_begin")
            for update in range(first_update, updates_per_epoch):
                n_micro = min(ga, steps_in_epoch - update * ga)
                self._event("on_step_begin")
                for i in range(n_micro):
                    inputs = next(batches)
                    sync = i == n_micro - 1 or not isinstance(model, nn.parallel.DistributedDataParallel)
                    with contextlib.nullcontext() if sync else model.no_sync():  # type: ignore[operator]
                        step_loss = self.training_step(model, inputs, n_micro)
                    self._current_flos += self.floating_point_ops(inputs)
                    if args.logging_nan_inf_filter and not torch.isfinite(step_loss):
                        self._tr_loss += self._tr_loss / (1 + self.state.global_step - self._last_logged)
                    else:
                        self._tr_loss += step_loss
                grad_norm = None
                if args.max_grad_norm and args.max_grad_norm > 0:
                    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm))
                learning_rate = self.lr_scheduler.get_last_lr()[0]
                self.optimizer.step()
                self.lr_scheduler.step()
                model.zero_grad(set_to_none=True)
                self.state.global_step += 1
                self.state.epoch = epoch + min((update + 1) * ga, steps_in_epoch) / steps_in_epoch
                self._event("on_step_end")
                self._decide_step_actions()
                self._maybe_log_save_evaluate(grad_norm, learning_rate)
                if self.state.global_step >= max_steps:
                    self.control.should_training_stop = True
                if self.control.should_training_stop or self.control.should_epoch_stop:
                    break
            self.control.should_epoch_stop = False
            self._event("on_epoch_end")
            self._decide_epoch_actions()
            self._maybe_log_save_evaluate(None, self.lr_scheduler.get_last_lr()[0])
            if self.control.should_training_stop:
                break

        self._total_loss += self._reduce(self._tr_loss)
        self.store_flos()
        steps_run = self.state.global_step - start_step
        runtime = time.time() - start_time
        train_loss = self._total_loss / max(steps_run, 1)
        samples = steps_run * args.train_batch_size * ga * self.world_size
        metrics: dict[str, float] = {
            "train_runtime": round(runtime, 4),
            "train_samples_per_second": round(samples / max(runtime, 1e-9), 3),
            "train_steps_per_second": round(steps_run / max(runtime, 1e-9), 3),
            "total_flos": self.state.total_flos,
            "train_loss": train_loss,
            "epoch": self.state.epoch or 0.0,
        }
        if args.load_best_model_at_end and self.state.best_model_checkpoint is not None:
            self._load_model_from_checkpoint(self.state.best_model_checkpoint)
        best = self.state.best_model_checkpoint
        if args.save_total_limit == 1 and best is not None and self.is_world_process_zero:
            # the latest checkpoint was kept only to resume from: with the run done, the best alone stays
            for folder in self._sorted_checkpoints():
                if os.path.isdir(best) and not os.path.samefile(folder, best):
                    shutil.rmtree(folder, ignore_errors=True)
        self.log(metrics)
        self._event("on_train_end")
        self._train_metrics = metrics
        if args.push_to_hub:
            self.push_to_hub()
        return TrainOutput(self.state.global_step, train_loss, metrics)

    def _planned_step_costs(
        self, sampler: EpochSampler, steps_in_epoch: int, epochs: range, updates_done: int, max_steps: int
    ) -> list[float] | None:
        """The tokens each remaining optimizer step computes (the real tokens when padding-free, else its
        batches' padded size), from the sampler's order and the examples' lengths; for the progress bar's
        ETA. None when the lengths are not known cheaply (no input_ids column, not a list of examples)."""
        if self.args.disable_tqdm or not self.is_world_process_zero:
            return None
        lengths = sampler.lengths
        if lengths is None:
            dataset = self.train_dataset
            if not (
                isinstance(dataset, list) or "input_ids" in (getattr(dataset, "column_names", None) or [])
            ):
                return None
            if len(dataset) > _MAX_ROWS_READ_FOR_ETA:  # reading every row's ids would cost more than it tells
                return None
            try:
                lengths = self._lengths(dataset)
            except TrainingError:
                return None
        batch, ga = self.args.train_batch_size, self.args.gradient_accumulation_steps
        costs: list[float] = []
        saved_epoch, saved_skip = sampler.epoch, sampler.skip
        try:
            for epoch in epochs:
                first = epoch == epochs.start
                sampler.set_epoch(epoch)
                sampler.skip = updates_done * ga * batch if first else 0
                order = list(sampler)
                batches = [order[i : i + batch] for i in range(0, len(order), batch)]
                batches = batches[: steps_in_epoch - (updates_done * ga if first else 0)]
                for start in range(0, len(batches), ga):
                    micro = batches[start : start + ga]
                    if self.args.padding_free:
                        costs.append(float(sum(lengths[i] for b in micro for i in b)))
                    else:
                        costs.append(float(sum(len(b) * max(lengths[i] for i in b) for b in micro)))
        finally:
            sampler.set_epoch(saved_epoch)
            sampler.skip = saved_skip
        return costs[: max_steps - self.state.global_step]

    def floating_point_ops(self, inputs: dict[str, Any]) -> float:
        """transformers' estimate of a forward + backward pass: 6 x input tokens x non-embedding parameters
        (0 for a model that is not a Cove pretrained model, as transformers gives 0 for a plain module)."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0.0
        if self._non_embedding_params is None:
            embeddings = {
                f"{name}.weight"
                for name, module in self.model.named_modules()
                if isinstance(module, nn.Embedding)
            }
            self._non_embedding_params = sum(
                p.numel() for name, p in self.model.named_parameters() if name not in embeddings
            )
        return float(6 * inputs[main_input].numel() * self._non_embedding_params)

    def store_flos(self) -> None:
        """Move this run's FLOP count (summed over processes) into ``state.total_flos``."""
        flos = torch.tensor(self._current_flos, dtype=torch.float64)
        if self.world_size > 1:
            dist.all_reduce(flos)
        self.state.total_flos += float(flos)
        self._current_flos = 0.0

    def _reduce(self, value: torch.Tensor) -> float:
        """The mean over processes of a scalar tensor (a no-op with one process)."""
        if self.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= self.world_size
        return float(value)

    def _decide_step_actions(self) -> None:
        args, state, control = self.args, self.state, self.control
        step = state.global_step
        if args.logging_strategy == "steps" and step % state.logging_steps == 0:
            control.should_log = True
        if args.logging_first_step and step == 1:
            control.should_log = True
        if (
            args.eval_strategy == "steps"
            and state.eval_steps
            and step % state.eval_steps == 0
            and args.eval_delay <= step
        ):
            control.should_evaluate = True
        if args.save_strategy == "steps" and step % state.save_steps == 0:
            control.should_save = True
        if step >= state.max_steps:
            control.should_training_stop = True
            # as transformers 5: the final state is always evaluated and saved
            if args.eval_strategy == "steps" and state.eval_steps and args.eval_delay <= step:
                control.should_evaluate = True
            if args.save_strategy == "steps":
                control.should_save = True

    def _decide_epoch_actions(self) -> None:
        args, control = self.args, self.control
        if args.logging_strategy == "epoch":
            control.should_log = True
        if args.eval_strategy == "epoch" and args.eval_delay <= (self.state.epoch or 0):
            control.should_evaluate = True
        if args.save_strategy == "epoch":
            control.should_save = True

    def _maybe_log_save_evaluate(self, grad_norm: float | None, learning_rate: float) -> None:
        control = self.control
        if control.should_log and self.state.global_step > self._last_logged:
            loss = self._reduce(self._tr_loss)
            self._tr_loss.zero_()
            logs: dict[str, float] = {"loss": loss / (self.state.global_step - self._last_logged)}
            if grad_norm is not None:
                logs["grad_norm"] = grad_norm
            logs["learning_rate"] = learning_rate
            self._total_loss += loss
            self._last_logged = self.state.global_step
            self.store_flos()
            self.log(logs)
        control.should_log = False
        if control.should_evaluate:
            is_new_best = self._evaluate_and_track()
            if self.args.save_strategy == "best":
                control.should_save = is_new_best
        if control.should_save:
            self._save_checkpoint()
            self._event("on_save")
            control.should_save = False

    def _evaluate_and_track(self) -> bool:
        """Evaluate, and record the best metric so far; True when this evaluation is a new best."""
        metrics = self.evaluate()
        better = False
        name = self.args.metric_for_best_model
        if name is not None:
            key = name if name.startswith("eval_") else f"eval_{name}"
            if key not in metrics:
                raise TrainingError(
                    f"metric_for_best_model={name!r}: {key!r} is not among the evaluation metrics "
                    f"{sorted(metrics)}; return it from compute_metrics or pick another."
                )
            value = metrics[key]
            best = self.state.best_metric
            better = best is None or (value > best if self.args.greater_is_better else value < best)
            if better:
                self.state.best_metric = value
                self.state.best_global_step = self.state.global_step
        self.control.should_evaluate = False
        return better

    def log(self, logs: dict[str, float]) -> None:
        if self.state.epoch is not None:
            logs["epoch"] = self.state.epoch  # in place, as transformers does: evaluate() returns it too
        self.state.log_history.append({**logs, "step": self.state.global_step})
        self._event("on_log", logs=logs)

    # -- evaluation --------------------------------------------------------------------------

    def evaluate(
        self, eval_dataset: Any = None, ignore_keys: list[str] | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise TrainingError("evaluate() needs an eval_dataset (pass one here or to the Trainer).")
        start = time.time()
        output = self.evaluation_loop(dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        runtime = time.time() - start
        metrics = dict(output.metrics)
        batches = math.ceil(output.num_samples / self.args.eval_batch_size)
        metrics[f"{metric_key_prefix}_runtime"] = round(runtime, 4)
        metrics[f"{metric_key_prefix}_samples_per_second"] = round(output.num_samples / max(runtime, 1e-9), 3)
        metrics[f"{metric_key_prefix}_steps_per_second"] = round(batches / max(runtime, 1e-9), 3)
        self.log(metrics)
        self._event("on_evaluate", metrics=metrics)
        return metrics

    def predict(
        self, test_dataset: Any, ignore_keys: list[str] | None = None, metric_key_prefix: str = "test"
    ) -> PredictionOutput:
        output = self.evaluation_loop(
            test_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )
        self._event("on_predict", metrics=output.metrics)
        return PredictionOutput(output.predictions, output.label_ids, output.metrics)

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, Any, Any]:
        has_labels = all(inputs.get(k) is not None for k in self.label_names)
        labels = None
        if has_labels:
            labels = tuple(inputs[k] for k in self.label_names)
            labels = labels[0] if len(labels) == 1 else labels
        with torch.no_grad(), self._autocast():
            outputs = model(**inputs)
        loss = outputs.get("loss") if isinstance(outputs, dict) else None
        if prediction_loss_only:
            return loss, None, None
        ignore = set(ignore_keys or []) | {"loss", "hidden_states", "attentions", "past_key_values"}
        if isinstance(outputs, dict):
            logits = tuple(v for k, v in outputs.items() if k not in ignore and isinstance(v, torch.Tensor))
        else:
            logits = tuple(outputs[1:] if has_labels else outputs)
        return loss, (logits[0] if len(logits) == 1 else logits), labels

    def evaluation_loop(
        self,
        dataset: Any,
        *,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
        prediction_loss_only: bool | None = None,
    ) -> EvalLoopOutput:
        loader = self._dataloader(dataset, train=False, batch_size=self.args.eval_batch_size)[0]
        model = self.model
        model.eval()
        only_loss = self.args.prediction_loss_only if prediction_loss_only is None else prediction_loss_only
        losses: list[float] = []
        counts: list[int] = []
        preds: Any = None
        labels: Any = None
        num_samples = 0
        for inputs in loader:
            batch = next(iter(v for v in inputs.values() if isinstance(v, torch.Tensor))).shape[0]
            loss, logits, label = self.prediction_step(model, inputs, only_loss, ignore_keys)
            num_samples += batch
            if loss is not None:
                losses.append(float(loss))
                counts.append(batch)
            if logits is not None:
                if self.preprocess_logits_for_metrics is not None:
                    logits = self.preprocess_logits_for_metrics(logits, label)
                preds = _nested_concat(preds, _to_numpy(logits))
            if label is not None:
                labels = _nested_concat(labels, _to_numpy(label))
            self._event("on_prediction_step", eval_dataloader=loader)
        metrics: dict[str, float] = {}
        if self.compute_metrics is not None and preds is not None and labels is not None:
            metrics = dict(self.compute_metrics(EvalPrediction(predictions=preds, label_ids=labels)))
        if losses:
            # each batch's mean loss weighted by its size: the mean over examples
            metrics["loss"] = float(np.average(losses, weights=counts))
        for key in list(metrics):
            if not key.startswith(f"{metric_key_prefix}_"):
                metrics[f"{metric_key_prefix}_{key}"] = metrics.pop(key)
        return EvalLoopOutput(preds, labels, metrics, num_samples)

    # -- checkpoints -------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        self.store_flos()
        folder = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.state.best_global_step == self.state.global_step and self.args.metric_for_best_model:
            self.state.best_model_checkpoint = folder
        if self.is_world_process_zero:
            self.save_model(folder, _internal_call=True)
            if not self.args.save_only_model:
                torch.save(self.optimizer.state_dict(), os.path.join(folder, OPTIMIZER_NAME))
                torch.save(self.lr_scheduler.state_dict(), os.path.join(folder, SCHEDULER_NAME))
            self.state.save_to_json(os.path.join(folder, TRAINER_STATE_NAME))
        if self.world_size > 1:
            dist.barrier()
        if not self.args.save_only_model:
            name = "rng_state.pth" if self.world_size == 1 else f"rng_state_{self.rank}.pth"
            torch.save(get_rng_state(), os.path.join(folder, name))
        if self.world_size > 1:
            dist.barrier()
        if self.is_world_process_zero:
            self._rotate_checkpoints()

    def _sorted_checkpoints(self) -> list[str]:
        root = Path(self.args.output_dir)
        found = [
            (int(m.group(1)), str(p))
            for p in root.glob(f"{PREFIX_CHECKPOINT_DIR}-*")
            if (m := _CHECKPOINT_RE.match(p.name))
        ]
        return [p for _, p in sorted(found)]

    def _rotate_checkpoints(self) -> None:
        limit = self.args.save_total_limit
        if not limit or limit <= 0:
            return
        checkpoints = self._sorted_checkpoints()
        best = self.state.best_model_checkpoint
        keep_best = best is not None and best in checkpoints
        if keep_best and limit == 1 and checkpoints[-1] != best:
            limit = 2  # the best and the latest, so training can still resume
        deletable = [c for c in checkpoints if not (keep_best and c == best)]
        excess = len(checkpoints) - limit
        for folder in deletable[: max(excess, 0)]:
            shutil.rmtree(folder, ignore_errors=True)

    def _load_model_from_checkpoint(self, folder: str) -> None:
        from safetensors.torch import load_file

        path = Path(folder)
        model: Any = self.model
        if hasattr(model, "config") and hasattr(type(model), "from_pretrained"):
            import copy

            loaded = type(model).from_pretrained(path, config=copy.deepcopy(model.config))
            state = loaded.state_dict()
        elif (path / "model.safetensors").exists():
            state = load_file(str(path / "model.safetensors"))
        else:
            raise TrainingError(f"{folder} holds no model weights (model.safetensors).")
        self.model.load_state_dict(state)

    def _load_optimizer_and_state(self, folder: str) -> None:
        path = Path(folder)
        for name in (OPTIMIZER_NAME, SCHEDULER_NAME):
            if not (path / name).exists():
                raise TrainingError(
                    f"Cannot resume from {folder}: {name} is missing (was it saved with save_only_model=True?)."
                )
        self.optimizer.load_state_dict(torch.load(path / OPTIMIZER_NAME, weights_only=True))
        self.lr_scheduler.load_state_dict(torch.load(path / SCHEDULER_NAME, weights_only=True))
        saved = TrainerState.load_from_json(path / TRAINER_STATE_NAME)
        if saved.max_steps != self.state.max_steps:
            logger.warning(
                "%s was saved by a run of %d steps; this run has %d.",
                folder,
                saved.max_steps,
                self.state.max_steps,
            )
        saved.max_steps = self.state.max_steps
        saved.is_local_process_zero = self.state.is_local_process_zero
        saved.is_world_process_zero = self.state.is_world_process_zero
        if saved.best_model_checkpoint is not None and not os.path.isdir(saved.best_model_checkpoint):
            saved.best_model_checkpoint = None
        self.state = saved

    def _load_rng_state(self, folder: str) -> None:
        name = "rng_state.pth" if self.world_size == 1 else f"rng_state_{self.rank}.pth"
        path = Path(folder) / name
        if not path.exists():
            logger.warning("%s has no %s: the resumed run's randomness will differ.", folder, name)
            return
        set_rng_state(torch.load(path, weights_only=True))

    # -- saving and sharing ------------------------------------------------------------------

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Model (safetensors + config), tokenizer, training arguments and the model card."""
        folder = output_dir or self.args.output_dir
        if not self.is_world_process_zero:
            return
        os.makedirs(folder, exist_ok=True)
        model: Any = self.model
        if hasattr(model, "save_pretrained"):
            model.save_pretrained(folder)
        else:
            from safetensors.torch import save_file

            save_file(
                {k: v.contiguous() for k, v in self.model.state_dict().items()},
                os.path.join(folder, "model.safetensors"),
            )
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(folder)
        Path(folder, TRAINING_ARGS_NAME).write_text(self.args.to_json_string() + "\n")
        self.create_model_card(output_dir=folder)

    def create_model_card(self, output_dir: str | None = None, **kwargs: Any) -> str:
        from cove.training.model_card import write_model_card

        return write_model_card(self, output_dir or self.args.output_dir, **kwargs)

    def push_to_hub(self, commit_message: str = "End of training", **kwargs: Any) -> Any:
        """Save the model to ``output_dir`` and upload that folder (without checkpoints) to ``hub_model_id``."""
        try:
            from cove.hub import create_repo, upload_folder  # type: ignore[attr-defined]
        except ImportError:
            raise TrainingError(
                "push_to_hub needs cove.hub's upload_folder, which this Cove build does not have yet."
            ) from None
        repo_id = self.args.hub_model_id or os.path.basename(os.path.normpath(self.args.output_dir))
        self.save_model(self.args.output_dir)
        if not self.is_world_process_zero:
            return None
        token = self.args.hub_token
        create_repo(repo_id, token=token, private=bool(self.args.hub_private_repo), exist_ok=True)
        # upload the final model only: checkpoints and TensorBoard runs stay local
        with tempfile.TemporaryDirectory(prefix="cove-push-") as staged:
            root = Path(self.args.output_dir)
            for path in root.iterdir():
                if _CHECKPOINT_RE.match(path.name) or path.name == "runs" or not path.is_file():
                    continue
                shutil.copy2(path, Path(staged) / path.name)
            return upload_folder(repo_id, staged, token=token, commit_message=commit_message, **kwargs)


def _absolute(steps: float, max_steps: int) -> int:
    """transformers' convention: a logging/eval/save interval below 1 is a fraction of max_steps."""
    if steps < 1:
        return max(math.ceil(max_steps * steps), 1)
    return int(steps)
