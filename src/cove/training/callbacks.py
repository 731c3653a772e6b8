"""Trainer state, control flags and callbacks (progress bar, JSONL log, TensorBoard, early stopping).

The event names and the state/control fields follow transformers, so a ported callback keeps working.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cove.errors import TrainingError

TRAINER_STATE_NAME = "trainer_state.json"


@dataclass
class TrainerState:
    epoch: float | None = None
    global_step: int = 0
    max_steps: int = 0
    logging_steps: float = 500
    eval_steps: float | None = 500
    save_steps: float = 500
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    total_flos: float = 0
    log_history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True

    def save_to_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_from_json(cls, path: str | os.PathLike[str]) -> TrainerState:
        data = json.loads(Path(path).read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class TrainerControl:
    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False


class TrainerCallback:
    """Override any of the ``on_*`` events; each receives (args, state, control, **kwargs)."""

    def on_init_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_epoch_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_epoch_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_step_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_evaluate(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_predict(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_save(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any:
        pass

    def on_prediction_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any:
        pass


class CallbackHandler:
    """Calls each callback's event in order; a callback may return a new TrainerControl."""

    def __init__(self, callbacks: list[TrainerCallback]):
        self.callbacks: list[TrainerCallback] = []
        for cb in callbacks:
            self.add_callback(cb)

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        cb = callback() if isinstance(callback, type) else callback
        self.callbacks.append(cb)

    def pop_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        for cb in self.callbacks:
            if cb is callback or (isinstance(callback, type) and isinstance(cb, callback)):
                self.callbacks.remove(cb)
                return cb
        return None

    def call(
        self, event: str, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        for cb in self.callbacks:
            result = getattr(cb, event)(args, state, control, **kwargs)
            if result is not None:
                control = result
        return control


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressCallback(TrainerCallback):
    """A tqdm bar over optimizer steps, showing the last logged loss (tqdm shows the ETA)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step")

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        logs = kwargs.get("logs") or {}
        if self.bar is not None and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs.get('learning_rate', 0):.2e}")
        elif self.bar is not None and "eval_loss" in logs:
            self.bar.write(json.dumps({k: v for k, v in logs.items() if isinstance(v, (int, float))}))

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class JsonlLoggerCallback(TrainerCallback):
    """Appends every log record (with step, epoch and wall time) to ``<output_dir>/train_log.jsonl``."""

    filename = "train_log.jsonl"

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        logs = kwargs.get("logs") or {}
        os.makedirs(args.output_dir, exist_ok=True)
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
        with open(os.path.join(args.output_dir, self.filename), "a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")


class TensorBoardCallback(TrainerCallback):
    """Scalars to TensorBoard under ``logging_dir`` (needs the ``tensorboard`` package)."""

    def __init__(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer_class = SummaryWriter
        self.writer: Any = None

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.writer is None:
            self.writer = self._writer_class(log_dir=args.logging_dir)
        for key, value in (kwargs.get("logs") or {}).items():
            if isinstance(value, (int, float)):
                name = key.replace("eval_", "eval/", 1) if key.startswith("eval_") else f"train/{key}"
                self.writer.add_scalar(name, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


class EarlyStoppingCallback(TrainerCallback):
    """Stop when ``metric_for_best_model`` has not improved by more than ``threshold`` for ``patience`` evals."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0):
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold
        self.patience_counter = 0

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not args.load_best_model_at_end or args.metric_for_best_model is None:
            raise TrainingError(
                "EarlyStoppingCallback needs load_best_model_at_end=True (and metric_for_best_model) in "
                "TrainingArguments, so the best checkpoint is kept."
            )

    def on_evaluate(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        metrics = kwargs.get("metrics") or {}
        name = args.metric_for_best_model
        key = name if name.startswith("eval_") else f"eval_{name}"
        value = metrics.get(key)
        if value is None:
            raise TrainingError(
                f"EarlyStoppingCallback: metric {key!r} is not in the evaluation results {sorted(metrics)}."
            )
        better = (lambda a, b: a > b) if args.greater_is_better else (lambda a, b: a < b)
        best = state.best_metric
        if best is None or (better(value, best) and abs(value - best) > self.early_stopping_threshold):
            self.patience_counter = 0
        else:
            self.patience_counter += 1
        if self.patience_counter >= self.early_stopping_patience:
            control.should_training_stop = True
