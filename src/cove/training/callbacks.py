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

from cove.errors import MissingIntegrationError, TrainingError

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
    """A tqdm bar over optimizer steps, showing the last logged loss (tqdm shows the ETA), and one over the
    evaluation batches while evaluating or predicting (as transformers' ProgressCallback)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.eval_bar: Any = None

    def on_prediction_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        loader = kwargs.get("eval_dataloader")
        if not state.is_world_process_zero or loader is None or not hasattr(loader, "__len__"):
            return
        if self.eval_bar is None:
            from tqdm.auto import tqdm

            self.eval_bar = tqdm(total=len(loader), leave=self.bar is None, desc="eval", unit="batch")
        self.eval_bar.update(1)

    def _close_eval_bar(self) -> None:
        if self.eval_bar is not None:
            self.eval_bar.close()
            self.eval_bar = None

    def on_evaluate(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._close_eval_bar()

    def on_predict(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self._close_eval_bar()

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


def tensorboard_available() -> bool:
    """True when TensorBoard event files can be written (``tensorboard`` or ``tensorboardX`` installed)."""
    import importlib.util

    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def rewrite_logs(logs: dict[str, Any]) -> dict[str, Any]:
    """transformers' TensorBoard tag names: ``eval_x`` -> ``eval/x``, ``test_x`` -> ``test/x``, else
    ``train/x``."""
    out = {}
    for key, value in logs.items():
        if key.startswith("eval_"):
            out["eval/" + key[len("eval_") :]] = value
        elif key.startswith("test_"):
            out["test/" + key[len("test_") :]] = value
        else:
            out["train/" + key] = value
    return out


class TensorBoardCallback(TrainerCallback):
    """Event files for TensorBoard, with transformers' tags: each log record's numbers as scalars
    (``train/loss``, ``train/learning_rate``, ``train/grad_norm``, ``eval/...``) at the global step, and the
    training arguments and model config as text (``args``, ``model_config``) when training begins.

    Written under ``$TENSORBOARD_LOGGING_DIR`` if set, else ``args.logging_dir``
    (``<output_dir>/runs/<date>_<host>`` by default). Needs ``tensorboard`` (or ``tensorboardX``).
    """

    def __init__(self, tb_writer: Any = None) -> None:
        if not tensorboard_available():
            raise MissingIntegrationError(
                "report_to='tensorboard' (or TensorBoardCallback) needs TensorBoard, which is not installed: "
                "pip install tensorboard, or pass report_to='none' (the JSONL log is always written)."
            )
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's writer needs the tensorboard package; tensorboardX has its own
            from tensorboardX import SummaryWriter  # type: ignore[no-redef]
        self._writer_class = SummaryWriter
        self.writer: Any = tb_writer
        self.logging_dir: str | None = None

    def _log_dir(self, args: Any) -> str:
        env = os.environ.get("TENSORBOARD_LOGGING_DIR")
        return os.path.expanduser(env) if env else args.logging_dir

    def _open(self, args: Any) -> None:
        if self.writer is None:
            self.logging_dir = self._log_dir(args)
            self.writer = self._writer_class(log_dir=self.logging_dir)

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._open(args)
        self.writer.add_text("args", args.to_json_string())
        config = getattr(kwargs.get("model"), "config", None)
        if config is not None and hasattr(config, "to_json_string"):
            self.writer.add_text("model_config", config.to_json_string())

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._open(args)
        for tag, value in rewrite_logs(kwargs.get("logs") or {}).items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag, value, state.global_step)
            elif isinstance(value, str):
                self.writer.add_text(tag, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# report_to names Cove understands; the JSONL log is written whatever report_to says
INTEGRATION_TO_CALLBACK: dict[str, type[TrainerCallback]] = {"tensorboard": TensorBoardCallback}


def available_integrations() -> list[str]:
    """What ``report_to="all"`` turns on: the integrations whose packages are installed."""
    return ["tensorboard"] if tensorboard_available() else []


def reporting_callbacks(report_to: list[str]) -> list[TrainerCallback]:
    """One callback per requested integration; one that is not installed raises (transformers' rule)."""
    names = available_integrations() if "all" in report_to else [n for n in report_to if n != "none"]
    return [INTEGRATION_TO_CALLBACK[name]() for name in names]


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
