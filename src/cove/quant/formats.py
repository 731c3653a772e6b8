"""GGML block formats: geometry, quantizing float weights into them, and dequantizing them in torch.

A packed matrix is a (rows, bytes_per_row) uint8 tensor, each row ``in_features / block_elems`` blocks laid
out exactly as in a GGUF file (ggml-common.h), so a GGUF tensor is used as it is stored:

- Q8_0: fp16 d, 32 x int8 q; x = d * q
- Q4_0: fp16 d, 16 bytes of nibbles; x = d * (q - 8)
- Q4_1: fp16 d, fp16 m, 16 bytes of nibbles; x = d * q + m
  (nibbles: byte j holds element j in its low half, element j + 16 in its high half)
- Q5_0, Q5_1: Q4_0 / Q4_1 with a fifth bit per weight (4 bytes of high bits after the scales); x = d * (q - 16)
  / d * q + m (llama.cpp's fallback for K-quant files whose rows are not a multiple of 256)
- Q4_K, Q5_K, Q6_K: super-blocks of 256 with 6-bit (Q4_K, Q5_K) or 8-bit (Q6_K) sub-block scales.
All are multiplied by integer kernels reading the blocks as stored; Cove quantizes to the first three.

``quantization="int8"`` packs float weights as Q8_0, ``"int4"`` as Q4_1 (group 32, scale and minimum per
group): the quantizers below round the way ggml's reference quantizers do, so they write the same bytes
as ``gguf.quants.quantize`` (the tests check it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BlockFormat:
    name: str
    ggml_type: int  # GGMLQuantizationType value
    block_elems: int
    block_bytes: int
    torch_dequantizer: bool  # False: dequantize_torch goes through gguf.quants (numpy)

    def row_bytes(self, in_features: int) -> int:
        return in_features // self.block_elems * self.block_bytes


FORMATS = {
    f.name: f
    for f in (
        BlockFormat("Q8_0", 8, 32, 34, True),
        BlockFormat("Q4_0", 2, 32, 18, True),
        BlockFormat("Q4_1", 3, 32, 20, True),
        BlockFormat("Q5_0", 6, 32, 22, False),
        BlockFormat("Q5_1", 7, 32, 24, False),
        BlockFormat("Q4_K", 12, 256, 144, False),
        BlockFormat("Q5_K", 13, 256, 176, False),
        BlockFormat("Q6_K", 14, 256, 210, False),
    )
}
BY_TYPE = {f.ggml_type: f for f in FORMATS.values()}
# what from_pretrained(quantization=...) packs float weights as
SCHEMES = {"int8": "Q8_0", "int4": "Q4_1"}


def _f16_bytes(values: torch.Tensor) -> torch.Tensor:
    """(..., ) float -> (..., 2) uint8: the little-endian fp16 bytes."""
    return values.to(torch.float16).contiguous().view(torch.uint8).reshape(*values.shape, 2)


def quantize(weight: torch.Tensor, fmt: str) -> torch.Tensor:
    """A float (rows, in_features) matrix -> packed (rows, row_bytes) uint8 in ``fmt`` (Q8_0, Q4_0, Q4_1):
    the native quantizer when the kernels are built, else ``quantize_torch`` (the same bytes)."""
    if fmt not in ("Q8_0", "Q4_0", "Q4_1"):
        raise ValueError(f"no quantizer for {fmt!r}; Cove quantizes to Q8_0, Q4_0 and Q4_1")
    from cove.quant import kernels

    return kernels.quantize(weight, FORMATS[fmt].ggml_type)


def quantize_torch(weight: torch.Tensor, fmt: str) -> torch.Tensor:
    """``quantize`` in torch: rounding as ggml's reference quantizers (what gguf.quants.quantize writes)."""
    rows, k = weight.shape
    blocks = weight.detach().to(torch.float32).reshape(rows, k // 32, 32)
    if fmt == "Q8_0":
        d = blocks.abs().amax(-1) / 127
        inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
        scaled = blocks * inv[..., None]
        q = (scaled.sign() * (scaled.abs() + 0.5).floor()).to(torch.int8).view(torch.uint8)  # C's roundf
        return torch.cat([_f16_bytes(d), q], -1).reshape(rows, -1)
    if fmt == "Q4_1":
        low, high = blocks.amin(-1), blocks.amax(-1)
        d = (high - low) / 15
        inv = torch.where(d > 0, 1 / d, torch.zeros_like(d))
        q = torch.trunc((blocks - low[..., None]) * inv[..., None] + 0.5).clamp(0, 15).to(torch.uint8)
        head = torch.cat([_f16_bytes(d), _f16_bytes(low)], -1)
    elif fmt == "Q4_0":
        # the value of largest magnitude maps to -8, as in ggml's quantize_row_q4_0_ref
        index = blocks.abs().argmax(-1, keepdim=True)
        extreme = blocks.gather(-1, index).squeeze(-1)
        d = extreme / -8
        inv = torch.where(d != 0, 1 / d, torch.zeros_like(d))
        q = torch.trunc(blocks * inv[..., None] + 8.5).clamp(0, 15).to(torch.uint8)
        head = _f16_bytes(d)
    else:
        raise ValueError(f"no quantizer for {fmt!r}; Cove quantizes to Q8_0, Q4_0 and Q4_1")
    nibbles = q[..., :16] | (q[..., 16:] << 4)
    return torch.cat([head, nibbles], -1).reshape(rows, -1)


# formats whose every block is exactly a Q8_0 block: x = d * (q - 8) or d * (q - 16), the same fp16 d and
# q - offset in int8
EXACT_IN_Q8_0 = ("Q8_0", "Q4_0", "Q5_0")


def as_q8_0(packed: torch.Tensor, fmt: str, in_features: int) -> torch.Tensor:
    """Packed Q4_0 / Q5_0 (or Q8_0) rows -> the same values as Q8_0 blocks, bit for bit (34 bytes a block
    instead of 18 / 22): how a fused projection whose members mix these formats becomes one matrix."""
    if fmt not in EXACT_IN_Q8_0:
        raise ValueError(f"{fmt} blocks are not exactly Q8_0 blocks")
    if fmt == "Q8_0":
        return packed
    source = FORMATS[fmt]
    rows = packed.shape[0]
    blocks = packed.reshape(rows, in_features // 32, source.block_bytes)
    qs = blocks[..., -16:]
    q = torch.cat([qs & 0x0F, qs >> 4], -1).to(torch.int16)  # element j of the block: (rows, nb, 32)
    if fmt == "Q5_0":  # the fifth bits: 4 little-endian bytes after d, bit j for element j
        bits = blocks[..., 2:6].to(torch.int16)
        shifts = torch.arange(8, dtype=torch.int16)
        high = ((bits[..., :, None] >> shifts) & 1).reshape(rows, -1, 32)
        q = q | (high << 4)
    values = (q - (16 if fmt == "Q5_0" else 8)).to(torch.int8).view(torch.uint8)
    return torch.cat([blocks[..., :2], values], -1).reshape(rows, -1)


def dequantize_torch(packed: torch.Tensor, ggml_type: int, in_features: int) -> torch.Tensor:
    """Packed (rows, row_bytes) -> float32 (rows, in_features), in torch (the no-kernel path)."""
    fmt = BY_TYPE[ggml_type]
    rows = packed.shape[0]
    blocks = packed.reshape(rows, in_features // fmt.block_elems, fmt.block_bytes)
    if not fmt.torch_dequantizer:
        import numpy as np
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        array = dequantize(np.ascontiguousarray(packed.numpy()), GGMLQuantizationType(ggml_type))
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).reshape(rows, in_features)
    d = blocks[..., :2].contiguous().view(torch.float16).to(torch.float32)  # (rows, nb, 1)
    if fmt.name == "Q8_0":
        q = blocks[..., 2:].contiguous().view(torch.int8).to(torch.float32)
        return (d * q).reshape(rows, in_features)
    start = 2 if fmt.name == "Q4_0" else 4
    m = -8 * d if fmt.name == "Q4_0" else blocks[..., 2:4].contiguous().view(torch.float16).float()
    qs = blocks[..., start:]
    q = torch.cat([qs & 0x0F, qs >> 4], -1).to(torch.float32)
    return (d * q + m).reshape(rows, in_features)
