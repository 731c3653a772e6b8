"""A GGUF model with its quantized tensors kept as the file stores them (``quantization="gguf"``).

The float tensors (norms, F32/F16 weights) load as usual; every weight the file stores in a format the
kernels read (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) stays packed: its module becomes a
QuantLinear (an embedding: a QuantEmbedding, whose blocks the tied LM head reads too; GPT-2's Conv1D, whose
float weight is stored (in, out), a QuantLinear over the file's (out, in) rows, fused q/k/v included). Tensors in other quantized formats
are dequantized to float32, and a warning names them. Resident memory is about the file's size.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from cove.errors import QuantizationError
from cove.quant.apply import _set, _tied_head, fused_plan, refuse_fused
from cove.quant.formats import EXACT_IN_Q8_0, FORMATS, as_q8_0
from cove.quant.modules import QuantEmbedding, QuantLinear

logger = logging.getLogger("cove.quant")

# checkpoint-name endings of weights a model keeps as (in, out) (GPT-2's Conv1D); their packed rows are the
# output features, as for every other packed tensor
_IN_OUT_WEIGHTS = {
    "gpt2": (".attn.c_attn.weight", ".attn.c_proj.weight", ".mlp.c_fc.weight", ".mlp.c_proj.weight")
}


def packed_types() -> dict[str, tuple[int, int]]:
    """GGML type name -> (block elements, block bytes) for the formats the kernels read."""
    return {name: (f.block_elems, f.block_bytes) for name, f in FORMATS.items()}


def read_packed(source: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(float tensors, packed blocks) of a GGUFFile, warning about quantized types without a kernel."""
    others = sorted(
        {t for t in source.tensor_types().values() if t not in FORMATS and t not in ("F32", "F16")}
    )
    if others:
        logger.warning(
            "%s: tensors of type(s) %s have no packed kernel in Cove; they are dequantized to float32 "
            "(packed kernels: %s).",
            source.path,
            others,
            ", ".join(FORMATS),
        )
    floats, packed = source.packed_state_dict(packed_types())
    return floats, packed


def load_packed(
    target: Any, config: Any, floats: dict[str, Any], packed: dict[str, Any], source: str
) -> nn.Module:
    """Build ``target`` (a causal-LM class) from float tensors and packed blocks under checkpoint names
    (packed values: (type name, in_features, uint8 blocks))."""
    from cove.checkpoint.weight_map import apply_weight_map

    for key, (qtype, k, blocks) in packed.items():
        fmt = FORMATS.get(qtype)
        if (
            fmt is None
            or blocks.dtype != torch.uint8
            or blocks.dim() != 2
            or blocks.shape[1] != fmt.row_bytes(k)
        ):
            raise QuantizationError(
                f"{source}: packed tensor {key!r} ({qtype}, {k} features) is inconsistent"
            )
    in_out = _IN_OUT_WEIGHTS.get(getattr(config, "model_type", ""), ())
    placeholders = {
        key: torch.empty(
            *((k, blocks.shape[0]) if key.endswith(in_out) else (blocks.shape[0], k)), device="meta"
        )
        for key, (_, k, blocks) in packed.items()
    }
    model = target._from_state_dict(
        config, {**floats, **placeholders}, source=source, ignore_mismatched_sizes=False
    )
    install_packed(model, apply_weight_map(packed, target.weight_map, source=source))
    return model


def install_packed(model: nn.Module, packed: dict[str, tuple[str, int, torch.Tensor]]) -> None:
    """Swap in a QuantLinear / QuantEmbedding for every ``<module>.weight`` in ``packed`` (model names)."""
    plan = fused_plan(model)
    packed = _one_format_per_fusion(model, plan, packed)
    tie = _tied_head(model)
    for key, (qtype, in_features, blocks) in packed.items():
        name = key.removesuffix(".weight")
        module = model.get_submodule(name)
        if isinstance(module, nn.Embedding):
            embedding = QuantEmbedding(blocks, qtype, in_features, module.padding_idx)
            _set(model, name, embedding)
            if tie is not None and tie[0] == name:
                _set(model, tie[1], embedding.as_linear())
        elif isinstance(module, nn.Linear) or _is_conv1d(module, in_features, blocks.shape[0]):
            bias = getattr(module, "bias", None)
            bias = bias if bias is not None and not bias.is_meta else None
            _set(model, name, QuantLinear(blocks, qtype, in_features, bias))
        else:
            raise QuantizationError(
                f"{key}: a packed GGUF tensor for a {type(module).__name__}, not a linear layer"
            )
    left = [n for n, p in model.named_parameters() if p.is_meta] + [
        n for n, b in model.named_buffers() if b.is_meta
    ]
    if left:
        raise QuantizationError(f"internal: after installing the GGUF blocks, {left[:5]} have no values")
    refuse_fused(plan)


def _one_format_per_fusion(
    model: nn.Module,
    plan: list[tuple[nn.Module, str, list[str]]],
    packed: dict[str, tuple[str, int, torch.Tensor]],
) -> dict[str, tuple[str, int, torch.Tensor]]:
    """``packed`` with the members of a fused projection that mix Q8_0 with Q4_0 / Q5_0 all stored as Q8_0
    (the same values exactly): llama.cpp's K-quant mixes give some layers a Q8_0 v beside Q5_0 q and k, and
    a fused q/k/v over one format is one kernel call and keeps the layer on the native decoding step."""
    names = {id(module): name for name, module in model.named_modules()}
    out = dict(packed)
    for owner, _, children in plan:
        prefix = f"{names[id(owner)]}." if names.get(id(owner)) else ""
        keys = [f"{prefix}{child}.weight" for child in children]
        kinds = {out[key][0] for key in keys if key in out}
        if (
            len(kinds) > 1
            and "Q8_0" in kinds
            and kinds <= set(EXACT_IN_Q8_0)
            and all(key in out for key in keys)
        ):
            for key in keys:
                qtype, k, blocks = out[key]
                out[key] = ("Q8_0", k, as_q8_0(blocks, qtype, k))
    return out


def _is_conv1d(module: nn.Module, in_features: int, out_features: int) -> bool:
    from cove.models.gpt2 import Conv1D

    return isinstance(module, Conv1D) and tuple(module.weight.shape) == (in_features, out_features)
