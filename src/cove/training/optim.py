"""AdamW with transformers' weight-decay grouping, and its learning-rate schedules."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch import nn

from cove.errors import TrainingError


def _is_norm(module: nn.Module) -> bool:
    # LayerNorm and the RMSNorm-style scales decoder families define as their own modules
    return isinstance(module, (nn.LayerNorm, nn.GroupNorm)) or "norm" in type(module).__name__.lower()


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Parameters that get weight decay: everything except biases and normalisation weights."""
    names: set[str] = set()
    for module_name, module in model.named_modules():
        if _is_norm(module):
            continue
        for pname, _ in module.named_parameters(recurse=False):
            if "bias" not in pname:
                names.add(f"{module_name}.{pname}" if module_name else pname)
    return names


def create_optimizer(model: nn.Module, args: Any) -> torch.optim.Optimizer:
    decay = decay_parameter_names(model)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in params if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in params if n not in decay], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise TrainingError("The model has no trainable parameters (all have requires_grad=False).")
    kwargs: dict[str, Any] = {
        "lr": args.learning_rate,
        "betas": (args.adam_beta1, args.adam_beta2),
        "eps": args.adam_epsilon,
    }
    if args.optim == "adamw_torch_fused":
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


# Multipliers of the base learning rate at a given optimizer step; module-level functions wrapped in
# functools.partial so the scheduler's state_dict holds no closures.


def _linear(step: int, *, warmup: int, total: int) -> float:
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


def _cosine(step: int, *, warmup: int, total: int, num_cycles: float = 0.5) -> float:
    if step < warmup:
        return step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * num_cycles * 2.0 * progress)))


def _constant(step: int) -> float:
    return 1.0


def _constant_with_warmup(step: int, *, warmup: int) -> float:
    if step < warmup:
        return step / max(1.0, warmup)
    return 1.0


def get_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    num_warmup_steps: int,
    num_training_steps: int,
    scheduler_specific_kwargs: dict[str, Any] | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    extra = dict(scheduler_specific_kwargs or {})
    if name == "linear":
        fn = functools.partial(_linear, warmup=num_warmup_steps, total=num_training_steps)
    elif name == "cosine":
        fn = functools.partial(_cosine, warmup=num_warmup_steps, total=num_training_steps, **extra)
    elif name == "constant":
        fn = functools.partial(_constant)
    elif name == "constant_with_warmup":
        fn = functools.partial(_constant_with_warmup, warmup=num_warmup_steps)
    else:
        raise TrainingError(
            f"lr_scheduler_type={name!r} is not supported; use linear, cosine, constant or constant_with_warmup."
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
