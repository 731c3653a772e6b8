"""The key/value cache decoder models fill during generation.

One buffer per layer for keys and one for values, preallocated and grown in chunks: a decoding step writes
its new keys/values in place and attends over a view of the filled part, so nothing is re-concatenated per
step. Lives beside the models (which write into it) and is re-exported by ``cove.generation``.
"""

from __future__ import annotations

from typing import Any, cast

import torch

CHUNK = 256  # tokens added to the capacity whenever it runs out


def _fits(kb: torch.Tensor | None, vb: torch.Tensor | None, batch: int, like: torch.Tensor) -> bool:
    """Whether a layer's buffers exist and were made for this batch and ``like``'s dtype."""
    return kb is not None and vb is not None and kb.shape[0] == batch and kb.dtype == like.dtype


class KVCache:
    def __init__(self, num_layers: int, *, capacity: int = 0, chunk: int = CHUNK):
        self.num_layers = num_layers
        self.keys: list[torch.Tensor | None] = [None] * num_layers  # (batch, kv_heads, capacity, head_dim)
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0  # tokens filled, the same for every layer once a forward pass is done
        self.capacity = capacity
        self.chunk = chunk
        self._start = 0  # where the current forward pass writes
        # what reorder copies into (then trades with keys/values), made on its first call
        self._spare_keys: list[torch.Tensor | None] = [None] * num_layers
        self._spare_values: list[torch.Tensor | None] = [None] * num_layers
        # what a model works out once for the passes over this cache (the weights its native decoding step
        # reads), by the model's id and dtype: a cache lives for one generation, over which the model does
        # not change
        self.plans: dict[Any, Any] = {}

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
        b, h, _, d = k.shape
        kb, vb = self.buffers(layer, b, h, d, k)
        kb[:, :, start:end] = k
        vb[:, :, start:end] = v
        return kb[:, :, :end], vb[:, :, :end]

    def buffers(
        self, layer: int, batch: int, heads: int, dim: int, like: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer``'s (batch, heads, capacity, dim) key and value buffers, made (with ``like``'s dtype
        and device) when the layer has none yet or they were made for another batch or dtype. A forward pass
        that writes the new positions itself (the native decoding step) takes them from here."""
        kb, vb = self.keys[layer], self.values[layer]
        if not _fits(kb, vb, batch, like):
            kb = like.new_empty(batch, heads, self.capacity, dim)
            vb = like.new_empty(batch, heads, self.capacity, dim)
            self.keys[layer], self.values[layer] = kb, vb
        assert kb is not None and vb is not None
        return kb, vb

    def layer_buffers(
        self, batch: int, heads: int, dim: int, like: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every layer's key and value buffers at once (``buffers`` for each layer): what a step that runs
        all the layers in one native call passes."""
        keys, values = self.keys, self.values
        if all(_fits(kb, vb, batch, like) for kb, vb in zip(keys, values, strict=True)):
            return cast(list[torch.Tensor], list(keys)), cast(list[torch.Tensor], list(values))
        made = [self.buffers(i, batch, heads, dim, like) for i in range(self.num_layers)]
        return [kb for kb, _ in made], [vb for _, vb in made]

    def end(self, new_tokens: int) -> None:
        self.length = self._start + new_tokens

    def reorder(self, index: torch.Tensor) -> None:
        """Keep batch rows ``index`` (beam search picks which hypotheses continue).

        Only the filled positions move. When at most half the rows take another row's place (beam search
        usually keeps most beams where they are: about a quarter move per step in the seq2seq benchmark), just
        those rows are copied in place, through a small gather of their sources; otherwise every row is
        copied into a second set of buffers the two sets then trade places with. Copying whole buffers every
        step moved the unfilled capacity too (at 32 beam rows, 64 new tokens and 6 layers, 50 MB a step
        beside the model's 150 MB of weights), and fresh buffers each step cost page faults besides."""
        rows = next((kb.shape[0] for kb in self.keys if kb is not None), None)
        if rows is not None and index.shape[0] == rows:
            moved = (index != torch.arange(rows, device=index.device)).nonzero().squeeze(1)
            if moved.numel() == 0:
                return
            if 2 * moved.numel() <= rows:
                sources, n = index.index_select(0, moved), self.length
                for store in (self.keys, self.values):
                    for buf in store:
                        if buf is not None:
                            part = buf[:, :, :n]
                            part.index_copy_(0, moved, part.index_select(0, sources))
                return
        for i in range(self.num_layers):
            kb, vb = self.keys[i], self.values[i]
            if kb is not None and vb is not None:
                self.keys[i], self._spare_keys[i] = self._select(kb, self._spare_keys[i], index)
                self.values[i], self._spare_values[i] = self._select(vb, self._spare_values[i], index)

    def _select(
        self, buf: torch.Tensor, spare: torch.Tensor | None, index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(buf's rows ``index`` in ``spare`` or a new buffer, buf as the next spare)."""
        shape = (index.shape[0], *buf.shape[1:])
        if spare is None or spare.shape != shape or spare.dtype != buf.dtype or spare.device != buf.device:
            spare = buf.new_empty(shape)
        n = self.length
        torch.index_select(buf[:, :, :n], 0, index, out=spare[:, :, :n])
        return spare, buf

    def crop(self, length: int) -> None:
        self.length = min(self.length, length)


class RowKVCache:
    """Key/value rows for continuous batching: row ``i`` of every layer's buffer holds one sequence, each at
    its own length, so sequences join and leave a running batch without touching the others.

    Buffers are (rows, kv_heads, capacity, head_dim) per layer, allocated on the first ``load`` (shapes and
    dtype taken from the prefill cache) and grown in chunks along the capacity. They start zeroed and only
    ever hold finite values: a masked position still enters attention as probability 0 times its value,
    and 0 * NaN from uninitialised memory would poison the row. A decoding step over the
    first ``n`` rows is set up with ``prepare``: row ``i`` writes its one new key/value in place at
    ``positions[i]`` and attends over the first ``span`` positions (the caller masks what lies past a
    row's own length). To the model it looks like a ``KVCache`` whose past is ``span - 1`` tokens, so the
    decoders need no path of their own: their mask check, context check and position handling stay as
    they are, with per-row position ids and an (n, span) attention mask passed in.
    """

    def __init__(self, num_layers: int, rows: int, *, chunk: int = CHUNK):
        self.num_layers = num_layers
        self.rows = rows
        self.chunk = chunk
        self.capacity = 0
        self.keys: list[torch.Tensor] = []  # (rows, kv_heads, capacity, head_dim)
        self.values: list[torch.Tensor] = []
        self._n = 0
        self._span = 0
        self._row_index: torch.Tensor | None = None
        self._positions: torch.Tensor | None = None

    @property
    def allocated(self) -> bool:
        return bool(self.keys)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def reserve(self, length: int) -> None:
        """Make room for ``length`` positions in every row (grown by whole chunks, contents kept)."""
        if length <= self.capacity or not self.keys:
            self.capacity = max(self.capacity, length) if not self.keys else self.capacity
            return
        capacity = max(length, self.capacity + self.chunk)
        capacity = -(-capacity // self.chunk) * self.chunk
        for store in (self.keys, self.values):
            for i, buf in enumerate(store):
                rows, heads, old, dim = buf.shape
                new = buf.new_zeros(rows, heads, capacity, dim)
                new[:, :, :old] = buf
                store[i] = new
        self.capacity = capacity

    def load(self, row: int, cache: KVCache, length: int, *, source: int = 0, offset: int = 0) -> None:
        """Copy ``length`` positions of a prefilled cache's row ``source``, from ``offset`` on (a left-padded
        prompt starts past its padding), into positions 0.. of ``row``."""
        if not self.keys:
            first = cache.keys[0]
            assert first is not None
            _, heads, _, dim = first.shape
            capacity = -(-max(length, self.capacity, 1) // self.chunk) * self.chunk
            for _ in range(self.num_layers):
                self.keys.append(first.new_zeros(self.rows, heads, capacity, dim))
                self.values.append(first.new_zeros(self.rows, heads, capacity, dim))
            self.capacity = capacity
        self.reserve(length)
        for i in range(self.num_layers):
            k, v = cache.keys[i], cache.values[i]
            assert k is not None and v is not None
            self.keys[i][row, :, :length] = k[source, :, offset : offset + length]
            self.values[i][row, :, :length] = v[source, :, offset : offset + length]

    def release(self) -> None:
        """Drop the buffers (the next ``load`` allocates them again, at the size it needs)."""
        self.keys, self.values, self.capacity = [], [], 0

    def move(self, source: int, target: int, length: int) -> None:
        """Copy row ``source``'s first ``length`` positions to row ``target`` (to keep the batch compact)."""
        for store in (self.keys, self.values):
            for buf in store:
                buf[target, :, :length] = buf[source, :, :length]

    def prepare(self, positions: torch.Tensor, span: int) -> None:
        """The next forward runs rows 0..n-1 (n = len(positions)), one new token each, written at
        ``positions``; attention covers the first ``span`` positions."""
        self._n = positions.shape[0]
        self._span = span
        self._positions = positions
        self._row_index = torch.arange(self._n, device=positions.device)
        self.reserve(span)

    # the KVCache protocol the decoders call
    def get_seq_length(self) -> int:
        return self._span - 1

    def begin(self, new_tokens: int) -> int:
        if new_tokens != 1:
            raise ValueError(f"RowKVCache steps take one new token per row, got {new_tokens}.")
        return self._span - 1

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k, v (n, kv_heads, 1, head_dim): each row's new key/value lands at its own position."""
        kb, vb = self.keys[layer], self.values[layer]
        kb[self._row_index, :, self._positions] = k[:, :, 0]
        vb[self._row_index, :, self._positions] = v[:, :, 0]
        return kb[: self._n, :, : self._span], vb[: self._n, :, : self._span]

    def end(self, new_tokens: int) -> None:
        pass
