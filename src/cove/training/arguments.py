"""``TrainingArguments``: transformers' field names, defaults and meanings, for the options Cove implements.

Unknown names raise (with the closest known names); options transformers has that Cove does not implement
are accepted only at their default value, so a ported script never silently trains differently.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cove.errors import TrainingError

STRATEGIES = ("no", "steps", "epoch")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
OPTIMIZERS = ("adamw_torch", "adamw_torch_fused", "adamw")
REPORT_TO = ("all", "none", "tensorboard")

# transformers options Cove does not implement: accepted at these values only
_UNSUPPORTED_DEFAULTS: dict[str, Any] = {
    "fp16": False,
    "deepspeed": None,
    "fsdp": None,
    "tf32": None,
    "torch_compile": False,
    "gradient_checkpointing": False,
    "auto_find_batch_size": False,
    "neftune_noise_alpha": None,
    "label_smoothing_factor": 0.0,
    "eval_accumulation_steps": None,
    "dataloader_persistent_workers": False,
    "batch_eval_metrics": False,
}
# transformers options that only affect devices or logging Cove does not have: accepted and ignored
_IGNORED = {
    "overwrite_output_dir",
    "do_train",
    "do_eval",
    "do_predict",
    "log_level",
    "log_level_replica",
    "log_on_each_node",
    "save_on_each_node",
    "local_rank",
    "ddp_find_unused_parameters",
    "dataloader_pin_memory",
    "use_cpu",
    "no_cuda",
    "save_safetensors",
    "run_name",
    "hub_strategy",
    "ddp_backend",
    "include_num_input_tokens_seen",
    "bf16_full_eval",
    "full_determinism",
    "disable_tqdm_on_workers",
    "accelerator_config",
    "project",
    "trackio_space_id",
}


def _resolve_bf16(value: Any) -> bool:
    """bf16="auto": autocast where this CPU computes bf16 natively and faster than fp32 (cove.hardware);
    True on a CPU that emulates bf16 still trains in bf16, with one warning."""
    from cove.hardware import prefers_bf16, warn_if_bf16_is_slow

    if isinstance(value, str) and value.lower() == "auto":
        return prefers_bf16("cpu")
    if isinstance(value, str) or value not in (True, False):
        raise TrainingError(f"bf16 must be True, False or 'auto', got {value!r}.")
    value = bool(value)
    if value:
        warn_if_bf16_is_slow("cpu", what="TrainingArguments(bf16=True)")
    return value


def default_logdir() -> str:
    """``runs/<Mon DD_HH-MM-SS>_<host>``: where TensorBoard runs go by default (torch's and transformers')."""
    import socket
    from datetime import datetime

    return os.path.join("runs", datetime.now().strftime("%b%d_%H-%M-%S") + "_" + socket.gethostname())


@dataclass
class _Fields:
    output_dir: str = "trainer_output"  # transformers: None, which then means "trainer_output"
    eval_strategy: str = "no"
    prediction_loss_only: bool = False
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    eval_delay: float = 0
    learning_rate: float = 5e-5
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    num_train_epochs: float = 3.0
    max_steps: int = -1
    lr_scheduler_type: str = "linear"
    lr_scheduler_kwargs: dict[str, Any] | None = None
    warmup_ratio: float = 0.0
    warmup_steps: float = 0
    logging_dir: str | None = None
    logging_strategy: str = "steps"
    logging_first_step: bool = False
    logging_steps: float = 500
    logging_nan_inf_filter: bool = True
    save_strategy: str = "steps"
    save_steps: float = 500
    save_total_limit: int | None = None
    save_only_model: bool = False
    seed: int = 42
    data_seed: int | None = None
    bf16: bool | str = False  # or "auto" (Cove's extension): resolved to a bool for this machine at init
    eval_steps: float | None = None
    eval_on_start: bool = False
    dataloader_drop_last: bool = False
    dataloader_num_workers: int = 0
    disable_tqdm: bool | None = None
    group_by_length: bool = False
    # Cove's extension: Cove's encoders compute only the real tokens of a padded training batch (the same
    # loss and gradients, as padding is masked; the same dropout draws); False runs the padded pass
    padding_free: bool = True
    length_column_name: str = "length"
    remove_unused_columns: bool = True
    label_names: list[str] | None = None
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = None
    greater_is_better: bool | None = None
    optim: str = "adamw_torch_fused"  # transformers 5 default with torch >= 2.8
    report_to: str | list[str] | None = "all"
    resume_from_checkpoint: str | bool | None = None
    push_to_hub: bool = False
    hub_model_id: str | None = None
    hub_token: str | None = None
    hub_private_repo: bool | None = None
    include_for_metrics: list[str] = field(default_factory=list)


_FIELD_NAMES = {f.name for f in fields(_Fields)}
_OLD_NAMES = {"evaluation_strategy": "eval_strategy"}


class TrainingArguments(_Fields):
    """The knobs of a ``Trainer`` run; field names, defaults and semantics follow transformers."""

    def __init__(self, output_dir: str | None = None, **kwargs: Any) -> None:
        for old, new in _OLD_NAMES.items():
            if old in kwargs:
                if new in kwargs:
                    raise TrainingError(f"Pass {new!r} or its old name {old!r}, not both.")
                kwargs[new] = kwargs.pop(old)
        unknown = [k for k in kwargs if k not in _FIELD_NAMES | _UNSUPPORTED_DEFAULTS.keys() | _IGNORED]
        if unknown:
            hints = []
            for name in unknown:
                close = difflib.get_close_matches(name, sorted(_FIELD_NAMES), n=3)
                hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
            raise TrainingError(
                f"Unknown TrainingArguments: {', '.join(hints)}. See cove.TrainingArguments for the fields."
            )
        for name, default in _UNSUPPORTED_DEFAULTS.items():
            if name in kwargs and kwargs[name] != default:
                hint = (
                    " Use bf16='auto' (bf16 where the CPU computes it natively) or bf16=True."
                    if name == "fp16"
                    else ""
                )
                raise TrainingError(
                    f"TrainingArguments({name}={kwargs[name]!r}) is not supported by Cove; leave it at "
                    f"{default!r}.{hint}"
                )
            kwargs.pop(name, None)
        for name in _IGNORED:
            kwargs.pop(name, None)
        super().__init__(output_dir=output_dir if output_dir is not None else "trainer_output", **kwargs)
        self.__post_init__()

    def __post_init__(self) -> None:
        self.output_dir = os.fspath(self.output_dir)
        for name in ("eval_strategy", "save_strategy", "logging_strategy"):
            value = getattr(self, name)
            value = getattr(value, "value", value)  # an enum from ported code
            allowed = (*STRATEGIES, "best") if name == "save_strategy" else STRATEGIES
            if value not in allowed:
                raise TrainingError(f"{name}={value!r} is not supported; use one of {allowed}.")
            setattr(self, name, value)
        if self.save_strategy == "best" and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"
        if self.save_strategy == "best" and self.eval_strategy == "no":
            raise TrainingError(
                "save_strategy='best' needs evaluation: set eval_strategy to 'steps' or 'epoch'."
            )
        self.bf16 = _resolve_bf16(self.bf16)
        if self.lr_scheduler_type not in SCHEDULERS:
            raise TrainingError(
                f"lr_scheduler_type={self.lr_scheduler_type!r} is not supported; use one of {SCHEDULERS}."
            )
        if self.optim not in OPTIMIZERS:
            raise TrainingError(f"optim={self.optim!r} is not supported; use one of {OPTIMIZERS}.")
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise TrainingError(f"{name} must be a positive integer, got {value!r}.")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise TrainingError(f"warmup_ratio must be in [0, 1], got {self.warmup_ratio!r}.")
        if self.warmup_steps < 0:
            raise TrainingError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}.")
        if self.eval_strategy == "steps" and self.eval_steps is None:
            self.eval_steps = self.logging_steps  # transformers' fallback
        for name in ("logging_steps", "save_steps", "eval_steps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise TrainingError(f"{name} must be > 0, got {value!r}.")
        if self.load_best_model_at_end:
            if self.eval_strategy == "no":
                raise TrainingError(
                    "load_best_model_at_end=True needs evaluation: set eval_strategy to 'steps' or 'epoch'."
                )
            if self.save_strategy not in (self.eval_strategy, "best"):
                raise TrainingError(
                    f"load_best_model_at_end=True needs save_strategy == eval_strategy, got "
                    f"{self.save_strategy!r} and {self.eval_strategy!r}."
                )
            if self.eval_strategy == "steps" and self.eval_steps and self.save_steps % self.eval_steps != 0:
                raise TrainingError(
                    f"load_best_model_at_end=True needs save_steps ({self.save_steps}) to be a multiple of "
                    f"eval_steps ({self.eval_steps})."
                )
            if self.metric_for_best_model is None:
                self.metric_for_best_model = "loss"
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if isinstance(self.report_to, str):
            self.report_to = [self.report_to]
        elif self.report_to is None:
            self.report_to = ["none"]
        self.report_to = list(self.report_to)
        unknown = [name for name in self.report_to if name not in REPORT_TO]
        if unknown:
            raise TrainingError(
                f"report_to={unknown!r} is not supported; Cove reports to {REPORT_TO} (and always writes "
                "train_log.jsonl in output_dir)."
            )
        if self.disable_tqdm is None:
            self.disable_tqdm = False
        if self.logging_dir is None:  # transformers 4's default (5 builds the same path in its callback)
            self.logging_dir = os.path.join(self.output_dir, default_logdir())
        if self.push_to_hub and self.hub_model_id is None:
            self.hub_model_id = os.path.basename(os.path.normpath(self.output_dir))

    # -- derived values, as transformers names them ------------------------------------------

    @property
    def world_size(self) -> int:
        import torch.distributed as dist

        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @property
    def process_index(self) -> int:
        import torch.distributed as dist

        return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    @property
    def train_batch_size(self) -> int:
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size

    def get_warmup_steps(self, num_training_steps: int) -> int:
        if self.warmup_steps > 0:
            if self.warmup_steps < 1:  # a float below 1 is a ratio, as in transformers 5
                return math.ceil(num_training_steps * self.warmup_steps)
            return int(self.warmup_steps)
        return math.ceil(num_training_steps * self.warmup_ratio)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("hub_token", None)  # never written into a model card or checkpoint
        return out

    def to_json_string(self) -> str:
        import json

        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)
