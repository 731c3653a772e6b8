"""Arrow files on disk: written batch by batch, read back memory-mapped (zero-copy, larger than RAM is fine).

Files use the Arrow IPC *stream* format, like `datasets`' cache and save_to_disk files, so each library
can read the other's files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from cove.errors import DatasetError


def read_arrow(path: str | os.PathLike[str]) -> pa.Table:
    """A memory-mapped table: its buffers point into the page cache, not into this process's heap."""
    source = pa.memory_map(str(path), "r")
    try:
        reader = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        reader = pa.ipc.open_file(source)
    return reader.read_all()


class ArrowWriter:
    """Writes tables to ``path`` atomically (a temp file renamed on close), casting later batches to the
    first batch's schema so one file has one schema."""

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.schema = schema
        self._sink: Any = None
        self._writer: Any = None
        self.num_rows = 0

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write(self, table: pa.Table | pa.RecordBatch, column_hint: str = "") -> None:
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        if self._writer is None:
            self._open(self.schema if self.schema is not None else table.schema)
        assert self.schema is not None
        if table.schema != self.schema:
            table = self._conform(table)
        self._writer.write_table(table, max_chunksize=max(table.num_rows, 1))
        self.num_rows += table.num_rows

    def _conform(self, table: pa.Table) -> pa.Table:
        assert self.schema is not None
        if table.column_names != self.schema.names:
            if sorted(table.column_names) != sorted(self.schema.names):
                raise DatasetError(
                    f"A batch has columns {table.column_names} but earlier batches had {self.schema.names}: "
                    "every batch must return the same columns."
                )
            table = table.select(self.schema.names)
        try:
            return table.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            diffs = [
                f"{f.name}: {f.type} vs {table.schema.field(f.name).type}"
                for f in self.schema
                if table.schema.field(f.name).type != f.type
            ]
            raise DatasetError(
                f"A later batch does not fit the column types of the first one ({'; '.join(diffs)}): {exc}. "
                "Pass features= to fix the types, or make the first batch representative "
                "(e.g. not all None)."
            ) from None

    def close(self, empty_schema: pa.Schema | None = None) -> pa.Table:
        if self._writer is None:
            schema = self.schema if self.schema is not None else (empty_schema or pa.schema([]))
            self._open(schema)
        self._writer.close()
        self._sink.close()
        os.replace(self._tmp, self.path)
        return read_arrow(self.path)

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
                self._sink.close()
        finally:
            self._tmp.unlink(missing_ok=True)


class ChunkIndex:
    """Row lookup over a table's record batches, so taking rows touches only the batches they live in.

    ``pa.Table.take`` concatenates every chunk of a column before taking (a full copy of the column on each
    call), which defeats memory mapping; this takes per batch and reorders the small result instead.
    """

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.batches = table.to_batches()
        sizes = np.fromiter((b.num_rows for b in self.batches), dtype=np.int64, count=len(self.batches))
        self.offsets = np.concatenate([[0], np.cumsum(sizes)])

    def take(self, rows: np.ndarray) -> pa.Table:
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.batches) <= 1:
            return self.table.take(pa.array(rows, type=pa.int64()))
        chunk = np.searchsorted(self.offsets, rows, side="right") - 1
        order = np.argsort(chunk, kind="stable")
        sorted_chunk = chunk[order]
        local = rows[order] - self.offsets[sorted_chunk]
        bounds = np.flatnonzero(np.diff(sorted_chunk)) + 1
        pieces = []
        for start, stop in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(rows)]])):
            batch = self.batches[int(sorted_chunk[start])]
            pieces.append(batch.take(pa.array(local[start:stop], type=pa.int64())))
        gathered = pa.Table.from_batches(pieces, schema=self.table.schema).combine_chunks()
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        return gathered.take(pa.array(inverse, type=pa.int64()))
