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


class StepTimeModel:
    """The remaining training time from the planned work of each step.

    ``costs[i]`` is what the Trainer knows of step ``start_step + i + 1`` before it runs: the tokens its
    batches compute (length-grouped batches differ several-fold, and a mega-batch starts with its longest
    ones, so a steps/s average, tqdm's ETA, is off by the mix of lengths still ahead). A step's duration is
    fitted as ``overhead + rate * cost`` by least squares over the steps seen so far, recent ones weighted
    more (the machine's load drifts); the first step (warm-up) is left out. ``predictions`` records
    (time, step, predicted remaining seconds) at every step, so a run can report how right the ETA was.
    """

    HALF_LIFE = 100  # steps

    def __init__(self, costs: list[float], start_step: int = 0, now: float | None = None):
        self.costs = costs
        self.start_step = start_step
        self.last_step, self.last_time = start_step, time.time() if now is None else now
        self._decay = 0.5 ** (1 / self.HALF_LIFE)
        self._sums = [0.0] * 5  # weighted n, sum x, sum y, sum xx, sum xy
        self.fitted = 0  # steps in the fit
        self.predictions: list[tuple[float, int, float]] = []

    def _cost(self, step: int) -> float:
        return self.costs[step - self.start_step - 1]

    def step_done(self, step: int, now: float | None = None) -> float | None:
        """Record that ``step`` finished (at ``now``); returns the predicted remaining seconds."""
        now = time.time() if now is None else now
        if step <= self.last_step or step - self.start_step > len(self.costs):
            return None
        if step == self.last_step + 1 and self.last_step > self.start_step:  # one step, not the first
            x, y = self._cost(step), now - self.last_time
            self._sums = [v * self._decay for v in self._sums]
            for i, v in enumerate((1.0, x, y, x * x, x * y)):
                self._sums[i] += v
            self.fitted += 1
        self.last_step, self.last_time = step, now
        remaining = self.remaining(step)
        if remaining is not None:
            self.predictions.append((now, step, remaining))
        return remaining

    def remaining(self, step: int) -> float | None:
        n, sx, sy, sxx, sxy = self._sums
        if n <= 0:
            return None
        ahead = self.costs[step - self.start_step :]
        denominator = n * sxx - sx * sx
        if self.fitted >= 5 and denominator > 1e-9 * max(n * sxx, 1e-30):
            rate = (n * sxy - sx * sy) / denominator
            overhead = (sy - rate * sx) / n
            if rate >= 0 and overhead >= 0:
                return overhead * len(ahead) + rate * sum(ahead)
        if sx > 0:  # too few steps, or the fit is not meaningful: time proportional to cost
            return sy / sx * sum(ahead)
        return sy / n * len(ahead)

    def errors(self, end: float, *, within: tuple[float, float] = (0.1, 0.9)) -> list[float]:
        """|predicted - actual| / actual remaining time of the predictions made between the ``within``
        fractions of the run (at the very end the remaining time is too small to be a meaningful base)."""
        total = len(self.costs)
        out = []
        for at, step, predicted in self.predictions:
            done = (step - self.start_step) / max(total, 1)
            actual = end - at
            if within[0] <= done <= within[1] and actual > 0:
                out.append(abs(predicted - actual) / actual)
        return out


class ProgressCallback(TrainerCallback):
    """A tqdm bar over optimizer steps, showing the last logged loss and the ETA (from ``StepTimeModel``
    when the Trainer knows each step's work, tqdm's own estimate otherwise), and one over the evaluation
    batches while evaluating or predicting (as transformers' ProgressCallback)."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.eval_bar: Any = None
        self.eta: StepTimeModel | None = None

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
        if not state.is_world_process_zero:
            return
        costs = kwargs.get("step_costs")
        self.eta = StepTimeModel(list(costs), state.global_step) if costs else None
        self.bar = _bar_with_eta()(
            total=state.max_steps, initial=state.global_step, desc="train", unit="step"
        )

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is None:
            return
        if self.eta is not None:
            remaining = self.eta.step_done(state.global_step)
            if remaining is not None:
                self.bar.eta_seconds = remaining
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


def eta_figures(trainer: Any) -> dict[str, float]:
    """How right the training bar's ETA was: the median and largest |predicted - actual| / actual remaining
    time over the predictions made between 10% and 90% of the steps (empty without a progress bar)."""
    import statistics

    for callback in trainer.callback_handler.callbacks:
        eta = getattr(callback, "eta", None) if isinstance(callback, ProgressCallback) else None
        if eta is not None and (errors := eta.errors(eta.last_time)):
            return {
                "eta_error_median": round(statistics.median(errors), 3),
                "eta_error_max": round(max(errors), 3),
            }
    return {}


def _bar_with_eta() -> Any:
    """A tqdm class whose "remaining" is ``eta_seconds`` when set (tqdm's own estimate until then)."""
    from tqdm.auto import tqdm

    class Bar(tqdm):  # type: ignore[misc, valid-type]
        eta_seconds: float | None = None

        @property
        def format_dict(self) -> dict[str, Any]:
            d = super().format_dict
            if self.eta_seconds is not None and self.total:
                # format_meter derives the remaining time from rate: give it the rate that yields ours
                left = max(self.total - self.n, 0)
                d["rate"] = left / self.eta_seconds if left and self.eta_seconds > 0 else d.get("rate")
                d["bar_format"] = d.get("bar_format") or (
                    "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"
                )
            return d

    return Bar


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
