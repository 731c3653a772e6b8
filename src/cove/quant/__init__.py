"""Quantized weights: GGML block formats, packed-weight matmul kernels, quantize-on-load.

``from_pretrained(..., quantization="int8" | "int4")`` quantizes a float checkpoint's linear layers as it
loads (Q8_0 blocks / Q4_1 groups of 32); ``quantization="gguf"`` keeps a GGUF file's quantized tensors as
the file stores them. The matmuls read the packed blocks (``kernels``: a C++ extension built at first use).
"""

from __future__ import annotations

from typing import Any

from cove.errors import QuantizationError
from cove.quant.apply import (
    QUANTIZATIONS,
    check_quantization,
    dequantize_model,
    describe,
    is_quantized,
    quantize_model,
)
from cove.quant.modules import QuantEmbedding, QuantLinear

__all__ = [
    "QUANTIZATIONS",
    "QuantEmbedding",
    "QuantLinear",
    "check_quantization",
    "dequantize_model",
    "describe",
    "is_quantized",
    "quantize_loaded",
    "quantize_model",
    "refuse_to_save",
]


def quantize_loaded(model: Any, quantization: str) -> Any:
    """What ``from_pretrained(quantization=...)`` does once the float model is loaded and placed."""
    if quantization == "gguf":
        raise QuantizationError(
            "quantization='gguf' keeps a GGUF file's own quantized blocks, and this checkpoint is not a GGUF "
            "file; use quantization='int8' or 'int4' to quantize its float weights on load."
        )
    return quantize_model(model, quantization)


def refuse_to_save(model: Any) -> None:
    """save_pretrained writes float checkpoints: a quantized model says how to get one."""
    if is_quantized(model):
        raise QuantizationError(
            f"This model holds quantized weights ({describe(model)}); save_pretrained writes float "
            "safetensors. Call cove.quant.dequantize_model(model) first to save it in float32 (the "
            "quantization error stays in the weights), or save the model you loaded without quantization=."
        )
