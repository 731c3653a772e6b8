"""Modules that hold packed weights: QuantLinear (an nn.Linear's stand-in) and QuantEmbedding.

The packed blocks are a uint8 buffer; ``.to(dtype)`` leaves it alone (only floating tensors convert), the
bias stays a float parameter. A quantized module computes in float32 and returns the input's dtype. It
cannot be trained (the blocks have no gradient): ``forward`` in training mode raises, saying what to do.
"""

from __future__ import annotations

import torch
from torch import nn

from cove.errors import QuantizationError
from cove.quant import kernels
from cove.quant.formats import BY_TYPE, FORMATS, BlockFormat, dequantize_torch

_NO_TRAINING = (
    "{name} holds quantized ({fmt}) weights, which cannot be trained: load the model without quantization= "
    "(float32 or bfloat16) to fine-tune it, or call cove.quant.dequantize_model(model) first."
)


def _check_packed(packed: torch.Tensor, fmt: BlockFormat, rows: int, in_features: int) -> None:
    """A packed matrix's shape and type against its format: checked before any kernel reads it."""
    if in_features <= 0 or in_features % fmt.block_elems:
        raise QuantizationError(
            f"{fmt.name} packs rows in blocks of {fmt.block_elems}; {in_features} features is not a multiple."
        )
    want = (rows, fmt.row_bytes(in_features))
    if packed.dtype != torch.uint8 or tuple(packed.shape) != want:
        raise QuantizationError(
            f"{fmt.name} weights of {rows} x {in_features} need a {want} uint8 tensor, got "
            f"{tuple(packed.shape)} {packed.dtype}."
        )


class QuantLinear(nn.Module):
    """y = x @ W^T + b with W as GGML blocks (``formats``), multiplied by the packed-weight kernels."""

    packed: torch.Tensor
    in_features: int
    out_features: int

    def __init__(
        self, packed: torch.Tensor, fmt: str, in_features: int, bias: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        self.format = FORMATS[fmt]
        self.in_features = in_features
        self.out_features = packed.shape[0]
        _check_packed(packed, self.format, self.out_features, in_features)
        self.register_buffer("packed", packed.contiguous())
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fmt: str) -> QuantLinear:
        from cove.quant.formats import quantize

        return cls(quantize(linear.weight, fmt), fmt, linear.in_features, linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise QuantizationError(_NO_TRAINING.format(name="QuantLinear", fmt=self.format.name))
        # the common decoding case (float32, contiguous) costs no conversion calls: each is a dispatch
        flat = x if x.dim() == 2 else x.reshape(-1, self.in_features)
        if flat.dtype is not torch.float32 or not flat.is_contiguous():
            flat = flat.to(torch.float32).contiguous()
        out = kernels.qmatmul(flat, self.packed, self.format.ggml_type, self.in_features)
        if self.bias is not None:
            out += self.bias  # out is the kernel's own new tensor
        if x.dim() != 2:
            out = out.view(*x.shape[:-1], self.out_features)
        return out if x.dtype is torch.float32 else out.to(x.dtype)

    def dequantized(self) -> torch.Tensor:
        return dequantize_torch(self.packed, self.format.ggml_type, self.in_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, format={self.format.name}"


class QuantEmbedding(nn.Module):
    """An embedding table as GGML blocks: a lookup dequantizes the rows it gathers."""

    packed: torch.Tensor

    def __init__(self, packed: torch.Tensor, fmt: str, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        self.format = FORMATS[fmt]
        self.num_embeddings = packed.shape[0]
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        _check_packed(packed, self.format, self.num_embeddings, embedding_dim)
        self.register_buffer("packed", packed.contiguous())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise QuantizationError(_NO_TRAINING.format(name="QuantEmbedding", fmt=self.format.name))
        flat = ids.reshape(-1).to(torch.long).contiguous()
        rows = kernels.dequant_rows(self.packed, flat, self.format.ggml_type, self.embedding_dim)
        return rows.reshape(*ids.shape, self.embedding_dim)

    def dequantized(self) -> torch.Tensor:
        return dequantize_torch(self.packed, self.format.ggml_type, self.embedding_dim)

    def as_linear(self) -> QuantLinear:
        """The tied LM head: the same packed buffer read by the matmul kernel (no copy)."""
        head = QuantLinear.__new__(QuantLinear)
        nn.Module.__init__(head)
        head.format, head.in_features, head.out_features = (
            self.format,
            self.embedding_dim,
            self.num_embeddings,
        )
        head.register_buffer("packed", self.packed)
        head.bias = None
        return head

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, format={self.format.name}"


def format_of(ggml_type: int) -> BlockFormat | None:
    return BY_TYPE.get(ggml_type)


__all__ = ["QuantEmbedding", "QuantLinear"]
