"""The key/value cache decoder models fill during generation.

One buffer per layer for keys and one for values, preallocated and grown in chunks: a decoding step writes
its new keys/values in place and attends over a view of the filled part, so nothing is re-concatenated per
step. Lives beside the models (which write into it) and is re-exported by ``cove.generation``.
"""

from __future__ import annotations

import torch

CHUNK = 256  # tokens added to the capacity whenever it runs out


class KVCache:
    def __init__(self, num_layers: int, *, capacity: int = 0, chunk: int = CHUNK):
        self.num_layers = num_layers
        self.keys: list[torch.Tensor | None] = [None] * num_layers  # (batch, kv_heads, capacity, head_dim)
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0  # tokens filled, the same for every layer once a forward pass is done
        self.capacity = capacity
        self.chunk = chunk
        self._start = 0  # where the current forward pass writes

    def get_seq_length(self) -> int:
        return self.length

    def begin(self, new_tokens: int) -> int:
        """Called by the model at the start of a forward pass; returns the position the new tokens take."""
        self._start = self.length
        need = self.length + new_tokens
        if need > self.capacity:
            self.capacity = max(need, self.capacity + self.chunk)
            for i in range(self.num_layers):
                self.keys[i] = self._grown(self.keys[i])
                self.values[i] = self._grown(self.values[i])
        return self._start

    def _grown(self, buf: torch.Tensor | None) -> torch.Tensor | None:
        if buf is None:
            return None
        b, h, _, d = buf.shape
        new = buf.new_empty(b, h, self.capacity, d)
        new[:, :, : self.length] = buf[:, :, : self.length]
        return new

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this pass's keys/values (batch, kv_heads, new, head_dim); return all of them so far."""
        start, end = self._start, self._start + k.shape[2]
        kb, vb = self.keys[layer], self.values[layer]
        if kb is None or vb is None or kb.shape[0] != k.shape[0] or kb.dtype != k.dtype:
            b, h, _, d = k.shape
            kb = k.new_empty(b, h, self.capacity, d)
            vb = v.new_empty(b, h, self.capacity, d)
            self.keys[layer], self.values[layer] = kb, vb
        kb[:, :, start:end] = k
        vb[:, :, start:end] = v
        return kb[:, :, :end], vb[:, :, :end]

    def end(self, new_tokens: int) -> None:
        self.length = self._start + new_tokens

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search picks which hypotheses continue)."""
        for i in range(self.num_layers):
            kb, vb = self.keys[i], self.values[i]
            if kb is not None and vb is not None:
                self.keys[i] = kb.index_select(0, index)
                self.values[i] = vb.index_select(0, index)

    def crop(self, length: int) -> None:
        self.length = min(self.length, length)
