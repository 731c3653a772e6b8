"""``IterableDataset``: rows read lazily from files, with map/filter/shuffle/take/skip, in constant memory.

Each operation wraps the row generator of the one before; nothing is materialised beyond one reader
block, one map batch and the shuffle buffer. Shuffling follows `datasets` (file order shuffled with a
copy of the generator, then a buffer that is permuted when full, half of it yielded), so a seed gives
the same order for a single-file dataset.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from cove.data.features import Features, cast_table, encode_rows_for_features
from cove.data.formatting import canonical_format, format_table
from cove.data.readers import iter_tables
from cove.errors import DatasetError

RowSource = Callable[[], Iterator[dict[str, Any]]]


class IterableDataset:
    """A stream of rows (dicts); iterate it, or chain map/filter/shuffle/take/skip."""

    def __init__(
        self,
        source: RowSource,
        features: Features | None = None,
        split: str | None = None,
        column_names: list[str] | None = None,
        format_type: str | None = None,
        files: list[str] | None = None,
        reopen: Callable[[list[str]], RowSource] | None = None,
    ) -> None:
        self._source = source
        self._features = features
        self._split = split
        self._column_names = (
            column_names if column_names is not None else (list(features) if features else None)
        )
        self._format_type = format_type
        self._files = files
        self._reopen = reopen  # rebuilds the source over reordered files (for shuffle)

    @classmethod
    def from_files(
        cls,
        builder: str,
        files: list[str],
        options: dict[str, Any] | None = None,
        features: Features | None = None,
        split: str | None = None,
    ) -> IterableDataset:
        options = dict(options or {})

        def reopen(order: list[str]) -> RowSource:
            def rows() -> Iterator[dict[str, Any]]:
                for path in order:
                    for table in iter_tables(builder, path, **options):
                        if features is not None:
                            table = cast_table(table, features)
                        for start in range(0, table.num_rows, 1000):
                            yield from table.slice(start, 1000).to_pylist()

            return rows

        column_names = None
        if builder == "parquet" and files:
            import pyarrow.parquet as pq

            column_names = pq.read_schema(files[0]).names
            if features is None:
                features = Features.from_arrow_schema(pq.read_schema(files[0]))
        elif builder == "text":
            column_names = ["text"]
        return cls(reopen(list(files)), features, split, column_names, files=list(files), reopen=reopen)

    @classmethod
    def from_generator(
        cls,
        generator: Callable[..., Iterator[dict[str, Any]]],
        features: Features | None = None,
        gen_kwargs: dict | None = None,
        split: str | None = None,
    ) -> IterableDataset:
        """Rows from generator(**gen_kwargs), read lazily; with features, each row is encoded to them (as
        datasets does: ClassLabel names become ids, values take the features' types)."""
        kwargs = dict(gen_kwargs or {})
        own = Features(features) if features is not None else None

        def rows() -> Iterator[dict[str, Any]]:
            if own is None:
                yield from generator(**kwargs)
                return
            for block in _batches(iter(generator(**kwargs)), 1000):
                columns: dict[str, Any] = {name: [row.get(name) for row in block] for name in own}
                yield from encode_rows_for_features(columns, own).to_pylist()

        return cls(rows, own, split)

    def _derive(self, source: RowSource, **changes: Any) -> IterableDataset:
        kwargs: dict[str, Any] = {
            "features": self._features,
            "split": self._split,
            "column_names": self._column_names,
            "format_type": self._format_type,
        }
        kwargs.update(changes)
        return IterableDataset(source, **kwargs)

    @property
    def features(self) -> Features | None:
        return self._features.copy() if self._features is not None else None

    @property
    def column_names(self) -> list[str] | None:
        return list(self._column_names) if self._column_names is not None else None

    @property
    def split(self) -> str | None:
        return self._split

    def __repr__(self) -> str:
        cols = self._column_names if self._column_names is not None else "Unknown"
        return f"IterableDataset({{\n    features: {cols},\n    num_shards: {len(self._files or [None])}\n}})"

    def __iter__(self) -> Iterator[Any]:
        if self._format_type is None:
            yield from self._source()
            return
        for row in self._source():
            yield format_table(pa.Table.from_pylist([row]), {"type": self._format_type}, "row")

    def iter(self, batch_size: int, drop_last_batch: bool = False) -> Iterator[dict[str, list[Any]]]:
        for batch in _batches(self._source(), batch_size):
            if drop_last_batch and len(batch) < batch_size:
                return
            yield _to_columns(batch)

    def with_format(self, type: str | None = None) -> IterableDataset:
        return self._derive(self._source, format_type=canonical_format(type))

    def take(self, n: int) -> IterableDataset:
        source = self._source

        def rows() -> Iterator[dict[str, Any]]:
            if n <= 0:
                return
            for i, row in enumerate(source()):
                yield row
                if i + 1 >= n:
                    return

        return self._derive(rows)

    def skip(self, n: int) -> IterableDataset:
        source = self._source

        def rows() -> Iterator[dict[str, Any]]:
            for i, row in enumerate(source()):
                if i >= n:
                    yield row

        return self._derive(rows)

    def shuffle(
        self,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        buffer_size: int = 1000,
        max_buffer_input_shards: int = 10,
    ) -> IterableDataset:
        if buffer_size < 1:
            raise DatasetError(f"shuffle(buffer_size={buffer_size}): the buffer needs at least 1 row.")
        generator = np.random.default_rng(seed) if generator is None else copy.deepcopy(generator)
        source = self._source
        if self._files and self._reopen is not None and len(self._files) > 1:
            order = list(range(len(self._files)))
            copy.deepcopy(generator).shuffle(order)
            source = self._reopen([self._files[i] for i in order])

        def rows() -> Iterator[dict[str, Any]]:
            rng = copy.deepcopy(generator)
            buffer: list[dict[str, Any]] = []
            # rows join the buffer in blocks of this size (datasets' Arrow path), which decides when it is full
            block = max(1, buffer_size // max(1, max_buffer_input_shards))
            for rows_in in _batches(source(), block):
                buffer.extend(rows_in)
                if len(buffer) >= buffer_size:
                    perm = rng.permutation(len(buffer))
                    keep = buffer_size // 2
                    cut = len(buffer) - keep
                    for i in perm[:cut]:
                        yield buffer[i]
                    buffer = [buffer[i] for i in perm[cut:]]
            if buffer:
                for i in rng.permutation(len(buffer)):
                    yield buffer[i]

        return self._derive(rows)

    def filter(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        fn_kwargs: dict[str, Any] | None = None,
    ) -> IterableDataset:
        if function is None:
            return self
        source = self._source
        cols = [input_columns] if isinstance(input_columns, str) else input_columns
        kwargs = dict(fn_kwargs or {})
        size = batch_size if batched and batch_size and batch_size > 0 else 1

        def rows() -> Iterator[dict[str, Any]]:
            index = 0
            for batch in _batches(source(), size):
                if batched:
                    columns = _to_columns(batch)
                    args: list[Any] = [columns[c] for c in cols] if cols else [columns]
                    if with_indices:
                        args.append(list(range(index, index + len(batch))))
                    mask = list(function(*args, **kwargs))
                    if len(mask) != len(batch):
                        raise DatasetError(
                            f"A batched filter must return one bool per row: got {len(mask)} for {len(batch)} rows."
                        )
                else:
                    row = batch[0]
                    args = [row[c] for c in cols] if cols else [row]  # type: ignore[no-redef]
                    if with_indices:
                        args.append(index)
                    mask = [function(*args, **kwargs)]
                for row, keep in zip(batch, mask):
                    if keep:
                        yield row
                index += len(batch)

        return self._derive(rows)

    def map(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        drop_last_batch: bool = False,
        remove_columns: str | list[str] | None = None,
        features: Features | None = None,
        fn_kwargs: dict[str, Any] | None = None,
    ) -> IterableDataset:
        if function is None:
            return self
        source = self._source
        cols = [input_columns] if isinstance(input_columns, str) else input_columns
        remove = [remove_columns] if isinstance(remove_columns, str) else list(remove_columns or [])
        if self._column_names is not None:
            missing = [c for c in remove if c not in self._column_names]
            if missing:
                raise DatasetError(
                    f"map(remove_columns=...): {missing} not in the columns {self._column_names}."
                )
        kwargs = dict(fn_kwargs or {})
        size = batch_size if batched and batch_size and batch_size > 0 else 1
        if batched and (batch_size is None or batch_size <= 0):
            size = 1 << 62
        out_features = Features(features) if features is not None else None

        def rows() -> Iterator[dict[str, Any]]:
            index = 0
            for batch in _batches(source(), size):
                if batched and drop_last_batch and len(batch) < size:
                    return
                if batched:
                    columns = _to_columns(batch)
                    args: list[Any] = [columns[c] for c in cols] if cols else [columns]
                    if with_indices:
                        args.append(list(range(index, index + len(batch))))
                    out = function(*args, **kwargs)
                    out = columns if out is None and not cols else (out or {})
                    yield from _merge_batch(columns, out, remove, len(batch))
                else:
                    row = batch[0]
                    args = [row[c] for c in cols] if cols else [row]  # type: ignore[no-redef]
                    if with_indices:
                        args.append(index)
                    out = function(*args, **kwargs)
                    out = row if out is None and not cols else (out or {})
                    if not isinstance(out, Mapping):
                        raise DatasetError(f"A map function must return a dict, got {type(out).__name__}.")
                    merged = {k: v for k, v in row.items() if k not in remove}
                    merged.update(out)
                    yield merged
                index += len(batch)

        if out_features is not None:
            inner = rows

            def rows() -> Iterator[dict[str, Any]]:  # type: ignore[no-redef]
                for batch in _batches(inner(), 1000):
                    yield from cast_table(pa.Table.from_pylist(batch), out_features).to_pylist()

        # the function may add or drop columns: unknown until iterated
        return self._derive(rows, features=out_features, column_names=None)

    def remove_columns(self, column_names: str | list[str]) -> IterableDataset:
        names = [column_names] if isinstance(column_names, str) else list(column_names)
        source = self._source

        def rows() -> Iterator[dict[str, Any]]:
            for row in source():
                missing = [n for n in names if n not in row]
                if missing:
                    raise DatasetError(f"remove_columns: {missing} not in the columns {list(row)}.")
                yield {k: v for k, v in row.items() if k not in names}

        cols = [c for c in self._column_names if c not in names] if self._column_names else None
        feats = (
            Features({k: v for k, v in self._features.items() if k not in names}) if self._features else None
        )
        return self._derive(rows, column_names=cols, features=feats)

    def rename_column(self, original_column_name: str, new_column_name: str) -> IterableDataset:
        return self.rename_columns({original_column_name: new_column_name})

    def rename_columns(self, column_mapping: dict[str, str]) -> IterableDataset:
        source = self._source

        def rows() -> Iterator[dict[str, Any]]:
            for row in source():
                missing = [n for n in column_mapping if n not in row]
                if missing:
                    raise DatasetError(f"rename_columns: {missing} not in the columns {list(row)}.")
                yield {column_mapping.get(k, k): v for k, v in row.items()}

        cols = [column_mapping.get(c, c) for c in self._column_names] if self._column_names else None
        feats = (
            Features({column_mapping.get(k, k): v for k, v in self._features.items()})
            if self._features
            else None
        )
        return self._derive(rows, column_names=cols, features=feats)


def _batches(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _to_columns(batch: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys: dict[str, None] = {}
    for row in batch:
        for k in row:
            keys.setdefault(k, None)
    return {k: [row.get(k) for row in batch] for k in keys}


def _merge_batch(
    columns: dict[str, list[Any]], out: Mapping[str, Any], remove: list[str], n: int
) -> Iterator[dict[str, Any]]:
    if not isinstance(out, Mapping):
        raise DatasetError(f"A batched map function must return a dict of columns, got {type(out).__name__}.")
    out = {k: _as_list(v) for k, v in out.items()}
    lengths = {len(v) for v in out.values()}
    if len(lengths) > 1:
        raise DatasetError(
            f"The function returned columns of different lengths: { {k: len(v) for k, v in out.items()} }."
        )
    kept = {k: v for k, v in columns.items() if k not in remove}
    m = lengths.pop() if lengths else n
    if m != n and any(k not in out for k in kept):
        raise DatasetError(
            f"The function returned {m} rows for a batch of {n} while keeping the input columns "
            f"{[k for k in kept if k not in out]}: pass remove_columns= so the row count can change."
        )
    merged = {**kept, **out}
    keys = list(merged)
    for i in range(m):
        yield {k: merged[k][i] for k in keys}


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, list):
        return values
    if hasattr(values, "tolist"):
        return values.tolist()
    return list(values)
