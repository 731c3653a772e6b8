"""Shared model infrastructure: loading and saving checkpoints, weight init, attention, fused projections,
activations, losses.

Families subclass ``PreTrainedModel`` and declare:
- ``config_class``; ``base_model_prefix`` (the checkpoint's prefix for the backbone inside a head model);
- ``weight_map``: checkpoint module paths -> Cove's, for this class (backbone rules carry the prefix);
- ``new_modules``: Cove module paths a checkpoint may lack, which are then freshly initialised with a
  warning (a task head on top of a base checkpoint: the fine-tuning start);
- ``ignorable``: regexes of checkpoint keys dropped with a warning (other tasks' heads, legacy buffers);
- ``tied``: Cove parameter -> parameter it shares storage with (saved once, as transformers does).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cove import hardware
from cove.checkpoint.config import PretrainedConfig, read_config_dict
from cove.checkpoint.weight_map import WeightMap, _preview, apply_weight_map
from cove.checkpoint.weights import load_state_dict, save_state_dict
from cove.errors import CheckpointError, ConfigError, UnsafeCheckpointError
from cove.hub.resolve import HubOptions, Snapshot, resolve

logger = logging.getLogger("cove.models")

_INIT_FUNCTIONS = (
    "normal_",
    "uniform_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "trunc_normal_",
    "xavier_uniform_",
)


class _skip_meta_init:
    """While building a model on the meta device to load weights into: torch.nn.init fills of meta tensors
    are skipped. They compute nothing, but the first meta ``normal_`` imports torch._dynamo (1.5-3 s)."""

    def __enter__(self) -> None:
        self.saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
        for name, original in self.saved.items():
            setattr(nn.init, name, self._skip(original))

    def __exit__(self, *exc: object) -> None:
        for name, original in self.saved.items():
            setattr(nn.init, name, original)

    @staticmethod
    def _skip(original: Any) -> Any:
        def init(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            return tensor if tensor.is_meta else original(tensor, *args, **kwargs)

        return init


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: Any, config: PretrainedConfig, device: Any = None) -> torch.dtype | None:
    """``dtype`` for a model bound for ``device``; "auto" is the checkpoint's dtype except bf16 where the
    device emulates it (cove.hardware decides, and warns once about an explicit bf16 there)."""
    from cove.hardware import auto_dtype, warn_if_bf16_is_slow

    source = config.name_or_path or "the checkpoint"
    if dtype is None:  # weights keep their stored dtype, which is transformers 5's default "auto": bf16 aside
        if str(config.dtype).removeprefix("torch.") != "bfloat16":
            return None
        auto = auto_dtype(config.dtype, device, source=source, asked="the default dtype")
        return None if auto == "bfloat16" else torch.float32
    if dtype == "auto":
        return _DTYPES.get(auto_dtype(config.dtype, device, source=source), torch.float32)
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ConfigError(f"dtype={dtype} is not supported; use float32, bfloat16 or float16.")
        resolved = dtype
    elif isinstance(dtype, str) and dtype.replace("torch.", "") in _DTYPES:
        resolved = _DTYPES[dtype.replace("torch.", "")]
    else:
        raise ConfigError(
            f"dtype={dtype!r} is not supported; use 'float32', 'bfloat16', 'float16', 'auto' or a torch.dtype."
        )
    if resolved is torch.bfloat16:
        warn_if_bf16_is_slow(device)
    return resolved


# -- loading options -------------------------------------------------------------------------

# transformers' from_pretrained keywords for features Cove does not have (quantization, offloading, tensor
# parallelism, adapters, kernels, ...): accepted at the value that asks for nothing, refused otherwise
_UNSUPPORTED: dict[str, Any] = {
    "state_dict": None,
    "quantization_config": None,
    "max_memory": None,
    "offload_folder": None,
    "offload_buffers": False,
    "variant": None,
    "adapter_kwargs": None,
    "adapter_name": None,
    "tp_plan": None,
    "tp_size": None,
    "device_mesh": None,
    "distributed_config": None,
    "use_kernels": False,
    "kernel_config": None,
    "allow_all_kernels": False,
    "key_mapping": None,
    "output_loading_info": False,
    "fusion_config": None,
    "disable_mmap": None,
    "tqdm_class": None,
    "experts_implementation": None,
    "from_tf": False,
    "from_flax": False,
}
# keywords transformers 5 itself accepts and drops ("not used anymore"); low_cpu_mem_usage is what Cove
# always does (the model is built on the meta device and the weights are assigned)
_DROPPED = ("low_cpu_mem_usage", "_fast_init", "mirror", "offload_state_dict")
_ATTENTION = (None, "sdpa", "eager")  # both run through `attention` below, which computes the same values


@dataclass
class LoadOptions:
    """The keywords of ``from_pretrained`` that shape the load (the download ones are ``HubOptions``)."""

    config: Any = None  # a config object, or a name/path to read config.json from
    dtype: Any = None
    device: Any = None
    allow_pickle: bool = False
    ignore_mismatched_sizes: bool = False
    use_safetensors: bool | None = None
    gguf_file: Any = None
    generation_config: Any = None
    quantization: str | None = None  # "int8" | "int4" | "gguf" (cove.quant)

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> LoadOptions:
        """Take the loading keywords out of ``kwargs`` (changed in place); what stays are config overrides."""
        for key, default in _UNSUPPORTED.items():
            if key in kwargs:
                value = kwargs.pop(key)
                if value is not None and value != default:
                    raise TypeError(
                        f"from_pretrained({key}={value!r}) is a transformers option Cove does not support; "
                        "drop it."
                    )
        for key in _DROPPED:
            kwargs.pop(key, None)
        attn = kwargs.pop("attn_implementation", None)
        if attn not in _ATTENTION:
            raise ConfigError(
                f"attn_implementation={attn!r} is not supported; Cove computes attention with PyTorch's SDPA "
                "('sdpa'), or explicitly when attention weights are asked for ('eager' is accepted for that)."
            )
        if kwargs.pop("weights_only", True) is not True:
            raise UnsafeCheckpointError(
                "weights_only=False would unpickle arbitrary objects: Cove reads torch files with "
                "weights_only=True only (and only with allow_pickle=True)."
            )
        dtype, torch_dtype = kwargs.pop("dtype", None), kwargs.pop("torch_dtype", None)
        device, device_map = kwargs.pop("device", None), kwargs.pop("device_map", None)
        if device is not None and device_map is not None:
            raise ConfigError(f"Pass device= or device_map=, not both (got {device!r} and {device_map!r}).")
        use_safetensors = kwargs.pop("use_safetensors", None)
        if use_safetensors is not None and not isinstance(use_safetensors, bool):
            raise TypeError(f"use_safetensors must be True, False or None, got {use_safetensors!r}.")
        return cls(
            config=kwargs.pop("config", None),
            dtype=dtype if dtype is not None else torch_dtype,
            device=device if device is not None else device_from_map(device_map),
            allow_pickle=bool(kwargs.pop("allow_pickle", False)),
            ignore_mismatched_sizes=bool(kwargs.pop("ignore_mismatched_sizes", False)),
            use_safetensors=use_safetensors,
            gguf_file=kwargs.pop("gguf_file", None),
            generation_config=kwargs.pop("generation_config", None),
            quantization=_quantization(kwargs.pop("quantization", None)),
        )

    def place(self, model: Any) -> Any:
        """The loaded model in the asked dtype, on the asked device, in eval mode."""
        target = resolve_dtype(self.dtype, model.config, self.device)
        if target is not None:
            model = model.to(target)
        if self.device is not None:
            model = model.to(self.device)
        if self.quantization is not None:
            from cove.quant import quantize_loaded

            model = quantize_loaded(model, self.quantization)
        model = model.eval()
        if getattr(model, "decodes_from_huge_pages", False) and all(
            p.device.type == "cpu" for p in model.parameters()
        ):
            from cove.quant import hugepages

            hugepages.pack_model(model)  # here, before any other thread can run the model
        return model


def _quantization(value: Any) -> str | None:
    if value is None:
        return None
    from cove.quant import check_quantization

    return check_quantization(value)


def device_from_map(device_map: Any) -> Any:
    """transformers' ``device_map`` for a model that fits on one device: that device.

    Cove never splits a model across devices, so a map that places modules on different devices raises;
    ``"auto"`` is the first accelerator when there is one, else the CPU.
    """
    if device_map is None:
        return None
    if isinstance(device_map, dict):
        devices = set(map(str, device_map.values()))
        if len(devices) != 1:
            raise ConfigError(
                f"device_map={device_map!r} spreads the model over {sorted(devices)}: Cove keeps a model on one "
                "device; pass that device (device_map='cuda:0', or device=...)."
            )
        device_map = next(iter(device_map.values()))
    if device_map == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(device_map, int) and not isinstance(device_map, bool):
        return torch.device("cuda", device_map)
    try:
        return torch.device(device_map)
    except (RuntimeError, TypeError):
        raise ConfigError(
            f"device_map={device_map!r} is not a device: pass 'auto', a device name ('cpu', 'cuda:0'), an "
            "index, or a dict mapping every module to one device."
        ) from None


# -- activations -----------------------------------------------------------------------------


def _gelu_new(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": _gelu_new,
    "gelu_pytorch_tanh": _gelu_new,
    "gelu_fast": _gelu_new,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
    "tanh": torch.tanh,
}


def get_activation(name: str) -> Any:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(
            f"Activation {name!r} is not supported; use one of {sorted(ACTIVATIONS)}."
        ) from None


# -- attention -------------------------------------------------------------------------------


def padding_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(batch, seq) 1/0 mask -> additive (batch, 1, 1, seq) mask for SDPA, or None when nothing is masked."""
    if attention_mask is None or bool(attention_mask.all()):
        return None
    mask = attention_mask[:, None, None, :].to(torch.bool)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


_MANTISSA = (1 << 53) - 1


def dropout_mask(
    shape: tuple[int, ...], p: float, dtype: torch.dtype, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """The mask F.dropout(x, p) multiplies a CPU tensor of ``shape`` by in training, bit for bit, from the
    same random stream: torch draws it with ``bernoulli_(1 - p).div_(1 - p)``, which takes one 64-bit
    number per element from the generator, serially, and keeps the element when its low 53 bits, as a
    double in [0, 1), are below 1 - p. ``random_()`` on int64 draws the same numbers in the same order
    (~1.6x faster), and the comparison runs on the integers, vectorised: ``u * 2**-53 < q`` is
    ``u < ceil(q * 2**53)``, exactly (scaling by a power of two is exact). ``rows``: return only these rows
    of the mask viewed as (rows, shape[-1]) (the real tokens of a padded batch); the stream still advances
    by the whole shape, as the padded pass's does."""
    noise = torch.empty(shape, dtype=torch.int64, device="cpu").random_()
    if rows is not None:
        noise = noise.view(-1, shape[-1]).index_select(0, rows)
    keep = (noise & _MANTISSA) < math.ceil((1 - p) * 2.0**53)
    return keep.to(dtype).div_(1 - p)


_SKIP_PADDING: contextvars.ContextVar[bool] = contextvars.ContextVar("cove_skip_padding", default=False)
_SKIP_PADDING_TRAINING: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "cove_skip_padding_training", default=False
)


@contextlib.contextmanager
def skip_padding(*, training: bool = False) -> Any:
    """Inside this block, at inference (autograd off), encoder models compute only the real tokens of a
    padded batch: their token-wise layers (projections, feed-forward, norms) run on the packed tokens and
    only attention sees the padded layout. Padded positions of ``last_hidden_state`` (and of per-token
    logits) come back as zeros, not the values a full pass computes for them: for callers that discard
    them, as the pipelines do.

    ``training=True`` (the Trainer's padding-free steps) does the same under autograd too. The loss and the
    gradients are those of the padded pass (padding is masked out of attention and out of the loss), and
    dropout draws its masks in the padded layout, so the random stream, and each real token's mask, is the
    one the padded pass draws."""
    token = _SKIP_PADDING.set(True)
    train_token = _SKIP_PADDING_TRAINING.set(training)
    try:
        yield
    finally:
        _SKIP_PADDING_TRAINING.reset(train_token)
        _SKIP_PADDING.reset(token)


class Packing:
    """Where the real tokens of a padded (batch, seq) batch sit: packs (batch, seq, f) -> (tokens, f) and back."""

    def __init__(self, attention_mask: torch.Tensor):
        self.batch, self.seq = attention_mask.shape
        self.index = attention_mask.reshape(-1).nonzero().squeeze(1)
        lengths = attention_mask.sum(1)
        self.first = lengths.cumsum(0) - lengths  # each row's position 0 among the packed tokens

    @classmethod
    def maybe(cls, attention_mask: torch.Tensor | None, *, needs_all: bool) -> Packing | None:
        """A Packing when skip_padding() is on (under autograd: skip_padding(training=True)), the batch has
        padding and the caller does not need every position (per-layer hidden states or attention weights)."""
        if (
            attention_mask is None
            or needs_all
            or not _SKIP_PADDING.get()
            or (torch.is_grad_enabled() and not _SKIP_PADDING_TRAINING.get())
            or bool(attention_mask.all())
            or not bool(attention_mask[:, 0].all())  # left padding: position 0 is not a real token
        ):
            return None
        return cls(attention_mask)

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Training dropout of packed ``x`` (tokens, f) with the mask F.dropout draws for the padded
        (batch, seq, f) tensor (bernoulli over that shape, scaled by 1 / (1 - p); on the CPU drawn by
        ``dropout_mask``), at the real tokens."""
        if p == 0.0:
            return x
        if p == 1.0:
            return x * 0.0
        if x.device.type == "cpu":
            return x * dropout_mask((self.batch, self.seq, x.shape[-1]), p, x.dtype, self.index)
        noise = x.new_empty(self.batch * self.seq, x.shape[-1]).bernoulli_(1 - p).div_(1 - p)
        return x * noise.index_select(0, self.index)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.batch * self.seq, x.shape[-1]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(self.batch * self.seq, x.shape[-1])
        out.index_copy_(0, self.index, x)
        return out.view(self.batch, self.seq, x.shape[-1])


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    dropout: float = 0.0,
    need_weights: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """q, k, v: (batch, heads, seq, head_dim) -> (batch, heads, seq, head_dim), optional attention weights."""
    if not need_weights:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout), None
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (batch, heads, seq, seq)
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(dim=-1)
    return F.dropout(weights, p=dropout) @ v, weights


# -- fused projections -----------------------------------------------------------------------


_dense: Any = None  # cove.quant.kernels, imported at the first call (cove.quant imports this module)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through the fastest path this CPU has at inference.

    With autograd off, on the CPU, for an input, contiguous weight and bias all float32 or all bfloat16:
    - at most ``cove.quant.kernels.dense_rows(dtype)`` rows (float32 8: decoding steps, the LM head of a
      step; bfloat16 as many where the kernel multiplies bf16 pairs natively, 1 where only torch does): Cove's
      small-M kernel, which streams every weight row once at close to the read bandwidth (torch's GEMM
      reaches half of it or less at one row) and computes each output in a fixed order, the same bits on
      any thread count (bfloat16 summed in float32, a bfloat16 output rounded once). ``COVE_DENSE_ROWS=0`` turns it off.
    - more rows (prefill, beam steps, encoders), float32: oneDNN's GEMM where
      ``cove.hardware.float32_gemm()`` measured it faster than torch's (MKL's generic paths on AMD CPUs are
      2-4x slower), else F.linear.
    Everything else (training, more bfloat16 rows, other or mixed dtypes, GPU) is F.linear. Models call
    this (or ``run_linear``) for every projection.
    """
    global _dense
    if (
        torch.is_grad_enabled()
        or x.dtype not in (torch.float32, torch.bfloat16)
        or weight.dtype is not x.dtype
        or x.device.type != "cpu"
        or weight.dim() != 2
    ):
        return F.linear(x, weight, bias)
    if _dense is None:
        from cove.quant import kernels

        _dense = kernels
    k = weight.shape[1]
    rows = x.numel() // k if k else 0
    if (
        rows == 0
        or x.shape[-1] != k
        or not weight.is_contiguous()
        or (bias is not None and (bias.dtype is not x.dtype or not bias.is_contiguous()))
    ):
        return F.linear(x, weight, bias)
    if rows > _dense.dense_rows(x.dtype):
        if x.dtype is not torch.float32 or hardware.float32_gemm() != "onednn":
            return F.linear(x, weight, bias)
        out = hardware.onednn_linear(x.reshape(rows, k), weight, bias)
    else:
        out = _dense.dense_linear(x.reshape(rows, k), weight, bias)
    return out.view(*x.shape[:-1], weight.shape[0])


def linear_in_out(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight + bias`` for a weight stored (in, out), as GPT-2's Conv1D keeps it: oneDNN's GEMM on the
    transposed view at inference where ``cove.hardware.float32_gemm()`` chose it (2.4-3.2x torch's addmm
    from 1 to 256 rows on a 2-core EPYC), else ``torch.addmm``/``matmul``."""
    flat = x.reshape(-1, x.shape[-1])
    if (
        not torch.is_grad_enabled()
        and x.dtype is torch.float32
        and weight.dtype is torch.float32
        and x.device.type == "cpu"
        and weight.dim() == 2
        and weight.is_contiguous()
        and flat.shape[0] > 0
        and (bias is None or (bias.dtype is torch.float32 and bias.is_contiguous()))
        and hardware.float32_gemm() == "onednn"
    ):
        out = hardware.onednn_linear(flat, weight.t(), bias)
    elif bias is None:
        out = flat @ weight
    else:
        out = torch.addmm(bias, flat, weight)
    return out.view(*x.shape[:-1], weight.shape[1])


def run_linear(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, with a plain nn.Linear's product through ``linear`` (the small-M kernel at decode
    time). Other modules (a QuantLinear, a wrapped layer) and a Linear carrying forward hooks are called as
    they are."""
    if type(module) is nn.Linear and not (module._forward_hooks or module._forward_pre_hooks):
        return linear(x, module.weight, module.bias)
    return module(x)


class FusedLinears:
    """Several nn.Linear layers that read the same input, evaluated with one matmul at inference.

    Their parameters' storage is re-pointed to views of one concatenated tensor (the Parameter objects stay
    the same, so an optimizer keeps updating what the model uses), so fusing costs no memory and the
    checkpoint layout (separate q/k/v, gate/up) is unchanged. Anything that replaces the parameters
    (``.to(dtype)``, loading) is noticed by pointer and fused again on the next call. Training, and any call
    with autograd on, uses the layers one by one.
    """

    def __init__(self, *linears: nn.Linear):
        self.linears = linears
        self.sizes = [lin.out_features for lin in linears]
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's output."""
        return list(self.joined(x).split(self.sizes, dim=-1))

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        """The layers' outputs side by side on the last dimension."""
        fused = self.fused()
        if fused is None:
            return torch.cat([lin(x) for lin in self.linears], dim=-1)
        return linear(x, *fused)

    def fused(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The concatenated (weight, bias) the layers' parameters are views of, fused now if they were
        replaced; None with autograd on or on the meta device (the layers then run one by one)."""
        first = self.linears[0].weight
        if torch.is_grad_enabled() or first.is_meta:
            return None
        if (
            self.weight is None
            or first.data_ptr() != self.weight.data_ptr()
            or first.dtype != self.weight.dtype
        ):
            self._fuse()
        assert self.weight is not None
        return self.weight, self.bias

    def _fuse(self) -> None:
        # normal tensors even under inference_mode: the parameters must stay usable for training later
        with torch.inference_mode(False), torch.no_grad():
            self._fuse_now()

    def _fuse_now(self) -> None:
        weight = torch.cat([lin.weight.detach() for lin in self.linears])
        biased = [lin.bias is not None for lin in self.linears]
        bias = None
        if any(biased):
            bias = torch.cat(
                [
                    lin.bias.detach() if lin.bias is not None else weight.new_zeros(lin.out_features)
                    for lin in self.linears
                ]
            )
        start = 0
        for lin, size in zip(self.linears, self.sizes):
            # swap the storage, keep the Parameter objects: an optimizer holding them keeps training the
            # weights the model uses (a new Parameter here would silently detach them after an evaluation)
            lin.weight.data = weight[start : start + size]
            if lin.bias is not None and bias is not None:
                lin.bias.data = bias[start : start + size]
            start += size
        self.weight, self.bias = weight, bias


# -- losses ----------------------------------------------------------------------------------


def sequence_classification_loss(
    config: PretrainedConfig, logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Regression, single-label or multi-label loss, chosen as transformers does when problem_type is unset."""
    num_labels = logits.shape[-1]
    problem = config.problem_type
    if problem is None:
        if num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
        config.problem_type = problem
    if problem == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def span_loss(
    start_logits: torch.Tensor, end_logits: torch.Tensor, start: torch.Tensor, end: torch.Tensor
) -> torch.Tensor:
    """Question-answering loss; positions outside the input are ignored, as in transformers."""
    start, end = start.view(-1), end.view(-1)
    ignored = start_logits.shape[1]
    start, end = start.clamp(0, ignored), end.clamp(0, ignored)
    return (
        F.cross_entropy(start_logits, start, ignore_index=ignored)
        + F.cross_entropy(end_logits, end, ignore_index=ignored)
    ) / 2


# -- the base class --------------------------------------------------------------------------

# buffers older transformers versions saved; they hold no learned values
_SILENTLY_DROPPED = re.compile(r"(^|\.)(position_ids|token_type_ids)$")
_LEGACY_NAMES = [(re.compile(r"\.gamma$"), ".weight"), (re.compile(r"\.beta$"), ".bias")]


class PreTrainedModel(nn.Module):
    config_class: ClassVar[type[PretrainedConfig]] = PretrainedConfig
    base_model_prefix: ClassVar[str] = ""
    is_base_model: ClassVar[bool] = False
    weight_map: ClassVar[WeightMap] = WeightMap({})
    new_modules: ClassVar[tuple[str, ...]] = ()
    ignorable: ClassVar[tuple[str, ...]] = ()
    tied: ClassVar[dict[str, str]] = {}
    aliases: ClassVar[dict[str, str]] = {}  # checkpoint key -> canonical checkpoint key
    # whether from_pretrained moves the weights onto huge pages (cove.quant.hugepages): for models whose
    # decoding steps stream every weight once (a step of SmolLM2-135M on one row: ~11% faster)
    decodes_from_huge_pages: ClassVar[bool] = False

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise ConfigError(
                f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}."
            )
        self.config = config

    # -- initialisation ----------------------------------------------------------------------

    def init_module(self, module: nn.Module) -> None:
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif (
            hasattr(module, "weight") and isinstance(module.weight, nn.Parameter) and module.weight.ndim == 1
        ):
            nn.init.ones_(module.weight)  # RMSNorm-style scales

    def post_init(self) -> None:
        """Initialise every weight (a model built from a config, not loaded), then tie."""
        with torch.no_grad():
            for module in self.modules():
                self.init_module(module)
        self.tie_weights()

    def tie_weights(self) -> None:
        if not getattr(self.config, "tie_word_embeddings", True):
            return
        for target, source in self.tied.items():
            owner_name, _, pname = target.rpartition(".")
            setattr(self.get_submodule(owner_name), pname, self.get_parameter(source))

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike[str] | Snapshot, **kwargs: Any
    ) -> PreTrainedModel:
        """Load a model folder or hub name (see ``LoadOptions`` and ``HubOptions`` for the keywords).

        Keywords that are neither loading options nor fields of the config override config.json's values
        (``num_labels=3``, ``output_hidden_states=True``); any other keyword raises TypeError naming it.
        The name is resolved once: config, weights and generation config come from one snapshot.
        """
        hub = HubOptions.pop_from(kwargs)
        options = LoadOptions.pop_from(kwargs)
        snapshot = resolve(pretrained_model_name_or_path, hub)
        return cls._load(snapshot, hub, options, kwargs)

    @classmethod
    def _load(
        cls, snapshot: Snapshot, hub: HubOptions, options: LoadOptions, overrides: dict[str, Any]
    ) -> PreTrainedModel:
        """Build the model from a resolved snapshot (the Auto classes call this once they picked the class)."""
        if options.gguf_file is not None:
            raise ConfigError(
                f"gguf_file={options.gguf_file!r}: GGUF files hold causal LMs; load it with AutoModelForCausalLM."
            )
        if options.generation_config is not None:
            raise ConfigError(f"generation_config= is for models that generate; {cls.__name__} does not.")
        folder = snapshot.folder(hub.subfolder)
        config = cls._load_config(snapshot, hub, options, overrides)
        state = load_state_dict(
            folder, allow_pickle=options.allow_pickle, use_safetensors=options.use_safetensors
        )
        model = cls._from_state_dict(
            config, state, source=str(folder), ignore_mismatched_sizes=options.ignore_mismatched_sizes
        )
        return options.place(model)

    @classmethod
    def _load_config(
        cls, snapshot: Snapshot, hub: HubOptions, options: LoadOptions, overrides: dict[str, Any]
    ) -> PretrainedConfig:
        config = options.config
        if isinstance(config, PretrainedConfig):
            if overrides:
                raise ConfigError(f"Pass either config= or config overrides, not both: {sorted(overrides)}.")
        else:
            source = snapshot if config is None else resolve(config, hub)
            raw = read_config_dict(source.folder(hub.subfolder))
            found = raw.get("model_type")
            if found and found != cls.config_class.model_type:
                raise ConfigError(
                    f"{source.name} holds a {found!r} model, not {cls.config_class.model_type!r}: "
                    f"load it with an Auto class or the {found} classes."
                )
            unknown = cls.config_class.unknown_overrides(raw, overrides)
            if unknown:
                raise TypeError(
                    f"{cls.__name__}.from_pretrained() got unexpected keyword argument(s) {unknown}: they are "
                    f"neither loading options nor fields of {cls.config_class.__name__} (config overrides)."
                )
            config = cls.config_class.from_dict(raw, **overrides)
        config.name_or_path = snapshot.name
        if snapshot.commit:  # what transformers records, read by the model card's lineage; never saved
            setattr(config, "_commit_hash", snapshot.commit)  # noqa: B010 (not a declared field, on purpose)
        return config

    @classmethod
    def _from_state_dict(
        cls,
        config: PretrainedConfig,
        state: dict[str, torch.Tensor],
        *,
        source: str,
        ignore_mismatched_sizes: bool,
    ) -> PreTrainedModel:
        state = cls._normalise_checkpoint_keys(state, source)
        ours = apply_weight_map(state, cls.weight_map, source=source)
        with torch.device("meta"), _skip_meta_init():
            model = cls(config)
        expected = {
            k: v for k, v in model.state_dict().items() if k not in cls.tied or not config.tie_word_embeddings
        }
        mismatched = []
        for key, tensor in list(ours.items()):
            if key not in expected:
                if key in cls.tied:  # an explicitly saved copy of a tied weight
                    ours.pop(key)
                    continue
                raise CheckpointError(
                    f"{source}: checkpoint key maps to {key!r}, which {cls.__name__} does not have."
                )
            want, got = tuple(expected[key].shape), tuple(tensor.shape)
            if got == want:
                continue
            if ignore_mismatched_sizes and cls._is_new_module(key):
                logger.warning(
                    "%s: %s is %s in the checkpoint, %s in the model; re-initialised.", source, key, got, want
                )
                ours.pop(key)
            else:
                mismatched.append(f"{key!r} is {got} in the checkpoint but {want} in the model")
        if mismatched:
            more = f" and {len(mismatched) - 6} more" if len(mismatched) > 6 else ""
            raise CheckpointError(
                f"{source}: weight shapes do not match {cls.__name__}'s config: {'; '.join(mismatched[:6])}{more}. "
                "Check config.json (num_labels, sizes), or pass ignore_mismatched_sizes=True to re-initialise a task head."
            )
        missing = [k for k in expected if k not in ours]
        bad = [k for k in missing if not cls._is_new_module(k)]
        if bad:
            raise CheckpointError(f"{source} is missing weights {cls.__name__} needs: {_preview(bad)}.")
        model.load_state_dict(ours, strict=False, assign=True)
        if missing:
            logger.warning(
                "%s: %s weights were not in the checkpoint and are newly initialised (train the model before "
                "using it for predictions): %s",
                source,
                cls.__name__,
                _preview(missing),
            )
            model._materialise(missing)
        model.tie_weights()
        return model

    @classmethod
    def _is_new_module(cls, key: str) -> bool:
        return any(key == m or key.startswith(m + ".") for m in cls.new_modules)

    @classmethod
    def _normalise_checkpoint_keys(
        cls, state: dict[str, torch.Tensor], source: str
    ) -> dict[str, torch.Tensor]:
        renamed: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            for pattern, repl in _LEGACY_NAMES:
                key = pattern.sub(repl, key)
            renamed[key] = value
        for alias, canonical in cls.aliases.items():
            if alias in renamed:
                value = renamed.pop(alias)
                renamed.setdefault(canonical, value)
        prefix = cls.base_model_prefix
        if prefix:
            has_prefix = any(k.startswith(prefix + ".") for k in renamed)
            if cls.is_base_model and has_prefix:
                # a task model's checkpoint loaded as the base model: keep the backbone
                renamed = {
                    k[len(prefix) + 1 :] if k.startswith(prefix + ".") else k: v for k, v in renamed.items()
                }
            elif not cls.is_base_model and not has_prefix:
                # a base model's checkpoint under a task head: the backbone gets the prefix
                base_rules = cls.base_rules()
                renamed = {
                    (f"{prefix}.{k}" if base_rules.rename(k) is not None else k): v
                    for k, v in renamed.items()
                }
        renamed = {k: v for k, v in renamed.items() if not _SILENTLY_DROPPED.search(k)}
        dropped = [k for k in renamed if any(re.search(p, k) for p in cls.ignorable)]
        if dropped:
            logger.warning(
                "%s: ignoring checkpoint weights %s does not use: %s", source, cls.__name__, _preview(dropped)
            )
        return {k: v for k, v in renamed.items() if k not in dropped}

    @classmethod
    def base_rules(cls) -> WeightMap:
        """The backbone's map, without prefix (families override when they have a base model)."""
        return WeightMap({})

    def _materialise(self, keys: list[str]) -> None:
        owners = {k.rpartition(".")[0] for k in keys}
        for owner in owners:
            module = self.get_submodule(owner)
            for name, param in list(module.named_parameters(recurse=False)):
                if param.is_meta:
                    setattr(module, name, nn.Parameter(torch.empty(param.shape, dtype=param.dtype)))
            with torch.no_grad():
                self.init_module(module)

    # -- saving ------------------------------------------------------------------------------

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under the checkpoint's names, tied copies left out."""
        state = {
            k: v
            for k, v in self.state_dict().items()
            if not (k in self.tied and self.config.tie_word_embeddings)
        }
        return apply_weight_map(state, self.weight_map.invert(), source=type(self).__name__)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        max_shard_size: int | str = "5GB",
        is_main_process: bool = True,
        safe_serialization: bool = True,
        push_to_hub: bool = False,
        token: str | bool | None = None,
        **push_kwargs: Any,
    ) -> list[Path]:
        """config.json + safetensors weights; transformers' keywords: ``is_main_process=False`` writes
        nothing (the other ranks of a distributed run), ``push_to_hub=True`` then commits the folder to
        ``repo_id`` (default: the folder's name) with ``token``, ``private``, ``commit_message``, ``revision``."""
        if safe_serialization is not True:
            raise UnsafeCheckpointError(
                "safe_serialization=False would write a pickle file: Cove saves safetensors only."
            )
        pushing = {
            k: push_kwargs.pop(k)
            for k in ("repo_id", "private", "commit_message", "revision")
            if k in push_kwargs
        }
        for key in ("variant", "state_dict"):
            if push_kwargs.get(key) is not None:
                raise TypeError(f"save_pretrained({key}=...) is a transformers option Cove does not support.")
            push_kwargs.pop(key, None)
        if push_kwargs:
            raise TypeError(f"save_pretrained() got unexpected keyword argument(s) {sorted(push_kwargs)}.")
        if pushing and not push_to_hub:
            raise TypeError(f"{sorted(pushing)} are push options: pass push_to_hub=True as well.")
        if not is_main_process:
            return []
        from cove.quant import refuse_to_save

        refuse_to_save(self)
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        dtype = next(self.parameters()).dtype
        self.config.dtype = {v: k for k, v in _DTYPES.items()}.get(dtype, "float32")
        self.config.save_pretrained(folder)
        files = save_state_dict(self.checkpoint_state_dict(), folder, max_shard_size=max_shard_size)
        if push_to_hub:
            import cove.hub as hub

            repo_id = pushing.pop("repo_id", None) or folder.resolve().name
            hub.create_repo(repo_id, token=token, private=bool(pushing.get("private", False)), exist_ok=True)
            hub.upload_folder(
                repo_id,
                folder,
                token=token,
                commit_message=pushing.get("commit_message") or f"Upload {type(self).__name__}",
                revision=pushing.get("revision"),
            )
        return files

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        from cove.hub.push import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    # -- conveniences ------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def get_input_embeddings(self) -> nn.Embedding:
        raise NotImplementedError
