"""Turning a float model into a quantized one, and back.

- ``quantize_model(model, "int8" | "int4")``: every nn.Linear whose in_features fit the block size (32)
  becomes a QuantLinear (int8: Q8_0 blocks; int4: Q4_1 groups of 32); layers that do not fit stay float,
  and a warning names them. A tied embedding/LM head becomes one Q8_0 table (QuantEmbedding) read by both
  the lookup and the head kernel, as llama.cpp keeps its output matrix at 8 bits.
- ``install_packed(model, packed)``: the GGUF path: modules whose weights a GGUF file stores as blocks
  take those blocks as they are (``cove.quant.gguf``).
- ``dequantize_model(model)``: back to nn.Linear / nn.Embedding in float32 (to fine-tune or save).

Fused projections (``FusedLinears`` over q/k/v or gate/up) are rebuilt over the quantized layers: the
blocks of the members concatenated once, each member a view of its rows, so one kernel call computes all.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from cove.errors import QuantizationError
from cove.quant.formats import FORMATS, SCHEMES
from cove.quant.modules import QuantEmbedding, QuantLinear

logger = logging.getLogger("cove.quant")

QUANTIZATIONS = ("int8", "int4", "gguf")
_HEAD_FORMAT = "Q8_0"


def check_quantization(value: Any) -> str | None:
    """``from_pretrained(quantization=...)``'s value, checked: None or one of QUANTIZATIONS."""
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in QUANTIZATIONS:
        raise QuantizationError(
            f"quantization={value!r} is not supported; use one of {', '.join(map(repr, QUANTIZATIONS))} "
            "('int8': Q8_0 blocks, 'int4': Q4_1 groups of 32, 'gguf': a GGUF file's own blocks as stored) "
            "or None for float weights."
        )
    return value.lower()


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, (QuantLinear, QuantEmbedding)) for m in model.modules())


def describe(model: nn.Module) -> str:
    """ "210 x Q4_1, 1 x Q8_0 (tied embedding/head); 61 float tensors": what a quantized model holds."""
    counts: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, (QuantLinear, QuantEmbedding)):
            counts[module.format.name] = counts.get(module.format.name, 0) + 1
    return ", ".join(f"{n} x {name}" for name, n in sorted(counts.items())) or "no quantized layers"


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    owner, _, attr = name.rpartition(".")
    return (model.get_submodule(owner) if owner else model), attr


def _tied_head(model: nn.Module) -> tuple[str, str] | None:
    """(embedding module path, head module path) when the model ties them and the tie is in place."""
    tied = getattr(type(model), "tied", None) or {}
    if not getattr(getattr(model, "config", None), "tie_word_embeddings", False):
        return None
    for target, source in tied.items():
        head, embed = target.rpartition(".")[0], source.rpartition(".")[0]
        try:
            if model.get_submodule(head).weight is model.get_submodule(embed).weight:
                return embed, head
        except AttributeError:
            continue
    return None


def quantize_model(model: nn.Module, scheme: str) -> nn.Module:
    """Quantize ``model``'s linear layers in place with ``scheme`` ("int8" or "int4"); returns the model."""
    if scheme not in SCHEMES:
        raise QuantizationError(f"quantize_model() takes {sorted(SCHEMES)}, not {scheme!r}.")
    _check_cpu(model)
    if is_quantized(model):
        raise QuantizationError("This model is quantized already; load it in float to quantize it again.")
    fmt = FORMATS[SCHEMES[scheme]]
    skipped: list[str] = []
    plan = fused_plan(model)
    with torch.no_grad():
        tie = _tied_head(model)
        if tie is not None:
            embed_name, head_name = tie
            embedding = model.get_submodule(embed_name)
            assert isinstance(embedding, nn.Embedding)
            if embedding.embedding_dim % 32 == 0:
                table = QuantEmbedding(
                    _quantize(embedding.weight, _HEAD_FORMAT),
                    _HEAD_FORMAT,
                    embedding.embedding_dim,
                    embedding.padding_idx,
                )
                _set(model, embed_name, table)
                _set(model, head_name, table.as_linear())
        for name, module in list(model.named_modules()):
            if type(module) is not nn.Linear:
                continue
            assert isinstance(module, nn.Linear)
            if module.in_features % fmt.block_elems:
                skipped.append(f"{name} (in_features={module.in_features})")
                continue
            layer_fmt = _HEAD_FORMAT if name == "lm_head" else fmt.name
            packed = _quantize(module.weight, layer_fmt)
            _set(model, name, QuantLinear(packed, layer_fmt, module.in_features, module.bias))
    if skipped:
        logger.warning(
            "quantization=%r packs rows in groups of %d; these layers do not fit and stay float: %s",
            scheme,
            fmt.block_elems,
            ", ".join(skipped),
        )
    refuse_fused(plan)
    _own_storage(model)
    return model


def _own_storage(model: nn.Module) -> None:
    """Give the float tensors left (norms, layers that stayed float) storage of their own: tensors loaded
    from a memory-mapped file are views of one mapping, which a single RMSNorm weight would otherwise keep
    alive, with every page quantization read still resident."""
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point() and not tensor.is_meta:
                tensor.data = tensor.data.clone()


def _quantize(weight: torch.Tensor, fmt: str) -> torch.Tensor:
    from cove.quant.formats import quantize

    return quantize(weight, fmt)


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    owner, attr = _parent(model, name)
    setattr(owner, attr, module)


def _check_cpu(model: nn.Module) -> None:
    devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
    if devices - {"cpu"}:
        raise QuantizationError(
            f"Cove's quantized kernels run on the CPU; this model is on {sorted(devices)}. Load it on the CPU "
            "(device='cpu') to quantize it, or load it unquantized on the accelerator."
        )


class QuantFused:
    """FusedLinears' interface over quantized members: ``joined(x)`` is one kernel call when the members
    share a format (their blocks concatenated once; each member module a view of its rows)."""

    def __init__(self, *members: nn.Module):
        self.members = [m for m in members if isinstance(m, QuantLinear)]
        assert len(self.members) == len(members)
        quant = self.members
        self.sizes = [m.out_features for m in self.members]
        self.fused: QuantLinear | None = None
        formats = {m.format.name for m in quant}
        if len(formats) == 1 and len({m.in_features for m in quant}) == 1:
            packed = torch.cat([m.packed for m in quant])
            biases = [m.bias for m in quant]
            bias = None
            if any(b is not None for b in biases):
                bias = torch.cat(
                    [
                        b.detach() if b is not None else torch.zeros(m.out_features)
                        for b, m in zip(biases, quant)
                    ]
                )
            self.fused = QuantLinear(packed, quant[0].format.name, quant[0].in_features, bias).eval()
            start = 0
            for member in quant:  # the quant read the fused rows: no second copy of the blocks
                member.packed = self.fused.packed[start : start + member.out_features]
                if member.bias is not None and self.fused.bias is not None:
                    member.bias.data = self.fused.bias.data[start : start + member.out_features]
                start += member.out_features

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.joined(x).split(self.sizes, dim=-1))

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None and not self.members[0].training:  # a member in training mode raises
            return self.fused(x)
        return torch.cat([m(x) for m in self.members], dim=-1)


def fused_plan(model: nn.Module) -> list[tuple[nn.Module, str, list[str]]]:
    """Before modules are swapped: each FusedLinears (owner, attribute, names of its member children)."""
    from cove.models.modeling import FusedLinears

    plan = []
    for module in model.modules():
        children = {id(child): name for name, child in module.named_children()}
        for attr, value in vars(module).items():
            if isinstance(value, FusedLinears) and all(id(lin) in children for lin in value.linears):
                plan.append((module, attr, [children[id(lin)] for lin in value.linears]))
    return plan


def refuse_fused(plan: list[tuple[nn.Module, str, list[str]]]) -> None:
    """After the swap: point each planned FusedLinears at a QuantFused over its (now quantized) members."""
    for owner, attr, names in plan:
        members = [owner.get_submodule(name) for name in names]
        if all(isinstance(m, QuantLinear) for m in members):
            setattr(owner, attr, QuantFused(*members))
        elif any(isinstance(m, QuantLinear) for m in members):
            setattr(owner, attr, _Separate(members))  # float and quantized members: one by one


class _Separate:
    def __init__(self, members: list[nn.Module]):
        self.members = members

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [m(x) for m in self.members]

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self(x), dim=-1)


def dequantize_model(model: nn.Module) -> nn.Module:
    """Every quantized module back to a float32 nn.Linear / nn.Embedding (in place); ties are kept."""
    plan: list[tuple[nn.Module, str, list[str]]] = []
    for module in model.modules():
        for attr, value in vars(module).items():
            if isinstance(value, (QuantFused, _Separate)):
                children = {id(c): n for n, c in module.named_children()}
                plan.append((module, attr, [children[id(m)] for m in value.members]))
    done: dict[int, nn.Module] = {}
    for name, module in list(model.named_modules()):
        if not isinstance(module, (QuantLinear, QuantEmbedding)):
            continue
        key = module.packed.data_ptr()
        shared = done.get(key)
        if isinstance(module, QuantEmbedding):
            embedding = nn.Embedding(
                module.num_embeddings, module.embedding_dim, padding_idx=module.padding_idx
            )
            embedding.weight = nn.Parameter(module.dequantized())
            done[key] = embedding
            _set(model, name, embedding)
        else:
            linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            weight = shared.weight if isinstance(shared, nn.Embedding) else nn.Parameter(module.dequantized())
            linear.weight = weight
            if module.bias is not None:
                linear.bias = nn.Parameter(module.bias.detach().clone())
            _set(model, name, linear)
    from cove.models.modeling import FusedLinears

    for owner, attr, names in plan:
        linears = [owner.get_submodule(n) for n in names]
        setattr(owner, attr, FusedLinears(*[lin for lin in linears if isinstance(lin, nn.Linear)]))
    return model
