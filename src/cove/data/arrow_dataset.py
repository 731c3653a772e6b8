"""``Dataset``: a table of rows on memory-mapped Arrow files, with an optional index mapping.

select/shuffle/filter/sort/train_test_split only build an index array (8 bytes a row), never copy
the data; map/cast write new Arrow files under a fingerprint of (input, function, arguments), so
rerunning the same transform reads the earlier output instead of recomputing it.
Semantics (row order, seeds, features, column order) follow `datasets`, which the parity tests check.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from math import ceil, floor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from cove.data.features import (
    ClassLabel,
    Features,
    Value,
    arrow_type_to_feature,
    cast_table,
    encode_rows_for_features,
)
from cove.data.fingerprint import cache_root, fingerprint, hash_object
from cove.data.formatting import LazyBatch, canonical_format, format_table
from cove.data.mapping import (
    MapRunner,
    filter_child,
    identity_batch,
    identity_row,
    infer_array,
    map_child,
    rows_of,
    to_python,
)
from cove.data.table import ArrowWriter, ChunkIndex, read_arrow
from cove.errors import DatasetError, DatasetIndexError

if TYPE_CHECKING:
    from cove.data.dataset_dict import DatasetDict


def _table_fingerprint(table: pa.Table) -> str:
    """Content hash of an in-memory table (its buffers), so equal data gets equal fingerprints."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(str(table.schema).encode())
    for column in table.columns:
        for chunk in column.chunks:
            h.update(f"{chunk.offset}:{len(chunk)}".encode())
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(memoryview(buf))
    return h.hexdigest()


def _unknown_columns(names: Iterable[str], available: list[str], what: str) -> None:
    missing = [n for n in names if n not in available]
    if missing:
        raise DatasetError(f"{what}: column(s) {missing} not in the dataset, whose columns are {available}.")


def _as_list_of_names(names: str | Iterable[str] | None) -> list[str]:
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    return list(names)


# `datasets` keywords Cove takes by name but whose effect it cannot give: the default (or a value with the
# same effect in Cove) is accepted, anything else raises instead of being ignored. Keywords with no effect
# on the result in Cove (desc, writer_batch_size, batch_size of cast, indices_cache_file_name since index
# mappings live in memory, num_proc where Cove works in one process) are accepted where they are taken.
_CANNOT = {
    "storage_options": "Cove reads and writes local paths only (no fsspec filesystems)",
    "info": "Cove keeps no DatasetInfo; pass features= for the column types",
    "try_original_type": "Cove always tries the original column types first",
    "disable_nullable": "Cove's Arrow columns stay nullable",
    "on_mixed_types": "Cove has no Json() feature (a column of mixed types raises a DatasetError)",
    "set_default": "Cove's dataset cards name one config and mark no default",
    "create_pr": "Cove's hub client commits directly and opens no pull requests",
    "max_shard_size": "push_to_hub writes one Parquet file per split",
    "num_shards": "push_to_hub writes one Parquet file per split",
    "commit_description": "Cove's hub client takes a commit message only",
}


def _only(method: str, name: str, value: Any, *allowed: Any) -> None:
    """Refuse a `datasets` keyword Cove cannot honour unless its value is one that gives Cove's behaviour."""
    if not any(value is a or (a is not None and value == a) for a in allowed):
        raise DatasetError(
            f"{method}({name}={value!r}) is not supported: {_CANNOT[name]}. Leave it at {allowed[0]!r}."
        )


_SIZE_UNITS = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}
_SIZE_UNITS.update({"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "B": 1})


def _size_in_bytes(size: int | str) -> int:
    """A max_shard_size as datasets takes it: bytes, or a string like "500MB" (decimal) or "1GiB" (binary)."""
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:
        return size
    text = str(size).strip().upper()
    for unit, factor in _SIZE_UNITS.items():
        number = text[: -len(unit)].strip()
        if text.endswith(unit) and number.replace(".", "", 1).isdigit() and float(number) > 0:
            return int(float(number) * factor)
    raise DatasetError(
        f"max_shard_size={size!r}: give a number of bytes or a size such as '500MB' or '1GiB'."
    )


class Dataset:
    """Rows of typed columns on memory-mapped Arrow files."""

    def __init__(
        self,
        table: pa.Table,
        *,
        features: Features | None = None,
        fingerprint: str | None = None,
        indices: np.ndarray | None = None,
        cache_files: list[str] | None = None,
        split: str | None = None,
        format: dict[str, Any] | None = None,
    ) -> None:
        self._data = table
        self._chunks: ChunkIndex | None = None
        self._features = features if features is not None else Features.from_arrow_schema(table.schema)
        self._indices = indices
        self._cache_files = list(cache_files or [])
        self._fingerprint = fingerprint or (
            hash_object(("files", self._cache_files)) if self._cache_files else _table_fingerprint(table)
        )
        self._split = split
        self._format: dict[str, Any] = format or {
            "type": None,
            "columns": None,
            "output_all_columns": False,
            "kwargs": {},
        }

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        mapping: Mapping[str, Any],
        features: Features | None = None,
        info: Any = None,
        split: str | None = None,
        on_mixed_types: str | None = None,
    ) -> Dataset:
        _only("from_dict", "info", info, None)
        _only("from_dict", "on_mixed_types", on_mixed_types, None, "use_json")
        lengths = {k: len(v) for k, v in mapping.items()}
        if len(set(lengths.values())) > 1:
            raise DatasetError(f"All columns must have the same length, got {lengths}.")
        if features is not None:
            table = encode_rows_for_features(dict(mapping), Features(features))
            return cls(table, features=Features(features), split=split)
        arrays = {
            k: infer_array(k, v, None) if not isinstance(v, pa.Array) else v for k, v in mapping.items()
        }
        return cls(pa.table(arrays) if arrays else pa.table({}), split=split)

    @classmethod
    def from_list(
        cls,
        mapping: list[dict[str, Any]],
        features: Features | None = None,
        info: Any = None,
        split: str | None = None,
        on_mixed_types: str | None = None,
    ) -> Dataset:
        rows = mapping  # datasets' name for the list of rows
        names: dict[str, None] = {}
        for row in rows:
            for key in row:
                names.setdefault(key, None)
        if features is not None:
            names = dict.fromkeys(features)
        columns = {name: [row.get(name) for row in rows] for name in names}
        return cls.from_dict(
            columns, features=features, info=info, split=split, on_mixed_types=on_mixed_types
        )

    @classmethod
    def from_pandas(
        cls,
        df: Any,
        features: Features | None = None,
        info: Any = None,
        split: str | None = None,
        preserve_index: bool | None = None,
    ) -> Dataset:
        _only("from_pandas", "info", info, None)
        table = pa.Table.from_pandas(df, preserve_index=preserve_index)
        if features is not None:
            table = cast_table(table, Features(features))
            return cls(table, features=Features(features), split=split)
        return cls(table, split=split)

    @classmethod
    def from_file(cls, filename: str | os.PathLike[str]) -> Dataset:
        return cls(read_arrow(filename), cache_files=[str(Path(filename).resolve())])

    @classmethod
    def from_parquet(cls, path_or_paths: Any, split: str | None = None, **kwargs: Any) -> Dataset:
        from cove.data.load import load_dataset

        return load_dataset("parquet", data_files=path_or_paths, split=split or "train", **kwargs)

    @classmethod
    def from_csv(cls, path_or_paths: Any, split: str | None = None, **kwargs: Any) -> Dataset:
        from cove.data.load import load_dataset

        return load_dataset("csv", data_files=path_or_paths, split=split or "train", **kwargs)

    @classmethod
    def from_json(cls, path_or_paths: Any, split: str | None = None, **kwargs: Any) -> Dataset:
        from cove.data.load import load_dataset

        return load_dataset("json", data_files=path_or_paths, split=split or "train", **kwargs)

    @classmethod
    def from_text(cls, path_or_paths: Any, split: str | None = None, **kwargs: Any) -> Dataset:
        from cove.data.load import load_dataset

        return load_dataset("text", data_files=path_or_paths, split=split or "train", **kwargs)

    def _clone(self, **changes: Any) -> Dataset:
        kwargs: dict[str, Any] = {
            "features": self._features,
            "fingerprint": self._fingerprint,
            "indices": self._indices,
            "cache_files": self._cache_files,
            "split": self._split,
            "format": dict(self._format),
        }
        table = changes.pop("table", self._data)
        kwargs.update(changes)
        return Dataset(table, **kwargs)

    # --- properties -----------------------------------------------------------------------

    @property
    def __cove_fingerprint__(self) -> str:
        return self._fingerprint

    @property
    def features(self) -> Features:
        return self._features.copy()

    @property
    def column_names(self) -> list[str]:
        return list(self._data.column_names)

    @property
    def num_rows(self) -> int:
        return len(self._indices) if self._indices is not None else self._data.num_rows

    @property
    def num_columns(self) -> int:
        return self._data.num_columns

    @property
    def shape(self) -> tuple[int, int]:
        return (self.num_rows, self.num_columns)

    @property
    def data(self) -> pa.Table:
        return self._data

    @property
    def cache_files(self) -> list[dict[str, str]]:
        return [{"filename": f} for f in self._cache_files]

    @property
    def split(self) -> str | None:
        return self._split

    @property
    def format(self) -> dict[str, Any]:
        return {
            "type": self._format["type"],
            "format_kwargs": dict(self._format["kwargs"]),
            "columns": self.column_names
            if self._format["columns"] is None
            else list(self._format["columns"]),
            "output_all_columns": self._format["output_all_columns"],
        }

    def __len__(self) -> int:
        return self.num_rows

    def __repr__(self) -> str:
        return f"Dataset({{\n    features: {self.column_names},\n    num_rows: {self.num_rows}\n}})"

    # --- row access -----------------------------------------------------------------------

    def _take_rows(self, rows: np.ndarray) -> pa.Table:
        """Rows of the underlying table by absolute id; contiguous runs stay zero-copy slices."""
        n = len(rows)
        if n == 0:
            return self._data.slice(0, 0)
        first = int(rows[0])
        if int(rows[-1]) - first == n - 1 and (n == 1 or bool(np.all(np.diff(rows) == 1))):
            return self._data.slice(first, n)
        return self._chunk_index().take(rows)

    def _chunk_index(self) -> ChunkIndex:
        if self._chunks is None or self._chunks.table is not self._data:
            self._chunks = ChunkIndex(self._data)
        return self._chunks

    def _fetch_range(self, start: int, stop: int) -> pa.Table:
        if self._indices is None:
            return self._data.slice(start, max(stop - start, 0))
        return self._take_rows(self._indices[start:stop])

    def _fetch_positions(self, positions: np.ndarray) -> pa.Table:
        rows = positions if self._indices is None else self._indices[positions]
        return self._take_rows(rows)

    def _check_positions(self, positions: np.ndarray) -> np.ndarray:
        n = len(self)
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < -n or positions.max() >= n):
            bad = positions[(positions < -n) | (positions >= n)][0]
            raise DatasetIndexError(f"Index {int(bad)} is out of range for a dataset of {n} rows.")
        return np.where(positions < 0, positions + n, positions)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._data.column_names:
                raise DatasetError(f"Column {key!r} not in the dataset; columns are {self.column_names}.")
            table = self._fetch_range(0, len(self)).select([key])
            return format_table(table, self._format, "column")
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            n = len(self)
            index = int(key)
            if not -n <= index < n:
                raise DatasetIndexError(f"Index {index} is out of range for a dataset of {n} rows.")
            index %= n
            return format_table(self._fetch_range(index, index + 1), self._format, "row")
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                table = self._fetch_range(start, max(start, stop))
            else:
                table = self._fetch_positions(np.arange(start, stop, step, dtype=np.int64))
            return format_table(table, self._format, "batch")
        if isinstance(key, (list, tuple, range, np.ndarray)):
            positions = self._check_positions(np.asarray(list(key) if isinstance(key, tuple) else key))
            return format_table(self._fetch_positions(positions), self._format, "batch")
        raise DatasetError(
            f"Cannot index a Dataset with {key!r}: use an int, slice, list of ints or column name."
        )

    def __iter__(self) -> Iterator[Any]:
        for start in range(0, len(self), 1000):
            table = self._fetch_range(start, min(start + 1000, len(self)))
            if self._format["type"] is None and self._format["columns"] is None:
                yield from table.to_pylist()  # one conversion per block, not per row
                continue
            for i in range(table.num_rows):
                yield format_table(table.slice(i, 1), self._format, "row")

    def iter(self, batch_size: int, drop_last_batch: bool = False) -> Iterator[Any]:
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if drop_last_batch and stop - start < batch_size:
                return
            yield format_table(self._fetch_range(start, stop), self._format, "batch")

    # --- formats --------------------------------------------------------------------------

    def set_format(
        self,
        type: str | None = None,
        columns: list[str] | None = None,
        output_all_columns: bool = False,
        **format_kwargs: Any,
    ) -> None:
        if columns is not None:
            columns = _as_list_of_names(columns)
            _unknown_columns(columns, self.column_names, "set_format")
        self._format = {
            "type": canonical_format(type),
            "columns": columns,
            "output_all_columns": output_all_columns,
            "kwargs": format_kwargs,
        }

    def reset_format(self) -> None:
        self.set_format()

    def with_format(
        self,
        type: str | None = None,
        columns: list[str] | None = None,
        output_all_columns: bool = False,
        **format_kwargs: Any,
    ) -> Dataset:
        out = self._clone()
        out.set_format(type, columns, output_all_columns, **format_kwargs)
        return out

    def set_transform(
        self,
        transform: Callable[..., Any] | None,
        columns: list[str] | None = None,
        output_all_columns: bool = False,
    ) -> None:
        raise DatasetError("set_transform is not supported by Cove yet: use map() (cached) instead.")

    @contextlib.contextmanager
    def formatted_as(
        self, type: str | None = None, columns: list[str] | None = None, **kwargs: Any
    ) -> Iterator[None]:
        old = dict(self._format)
        self.set_format(type, columns, **kwargs)
        try:
            yield
        finally:
            self._format = old

    # --- export ---------------------------------------------------------------------------

    def _columns_table(self, names: list[str]) -> pa.Table:
        """Some columns, index mapping applied, without materialising the other columns."""
        table = self._data.select(names)
        return table if self._indices is None else ChunkIndex(table).take(self._indices)

    def _flat_table(self) -> pa.Table:
        return self._fetch_range(0, len(self)) if self._indices is not None else self._data

    def to_pandas(self) -> Any:
        return self._flat_table().to_pandas()

    def to_list(self) -> list[dict[str, Any]]:
        return self._flat_table().to_pylist()

    def to_dict(self) -> dict[str, list[Any]]:
        return self._flat_table().to_pydict()

    # the path parameters carry datasets' name (path_or_buf), so keyword calls port
    def to_parquet(self, path_or_buf: str | os.PathLike[str]) -> None:
        import pyarrow.parquet as pq

        pq.write_table(
            self._flat_table().replace_schema_metadata(self._features.arrow_schema.metadata), str(path_or_buf)
        )

    def to_csv(self, path_or_buf: str | os.PathLike[str], **to_csv_kwargs: Any) -> None:
        """pandas' to_csv; the keywords go to it (an unknown one raises there), index=False by default."""
        to_csv_kwargs.setdefault("index", False)
        self.to_pandas().to_csv(path_or_buf, **to_csv_kwargs)

    def to_json(self, path_or_buf: str | os.PathLike[str], **to_json_kwargs: Any) -> None:
        """JSON Lines through pandas' to_json; the keywords go to it (lines=False writes one array)."""
        options = {"orient": "records", "lines": True, "force_ascii": False, **to_json_kwargs}
        self.to_pandas().to_json(path_or_buf, **options)

    # --- cache files ----------------------------------------------------------------------

    def _cache_dir(self) -> Path:
        if self._cache_files:
            folder = Path(self._cache_files[0]).parent
            if os.access(folder, os.W_OK):  # next to the input, as datasets does; else the shared cache
                return folder
        path = cache_root() / "transforms"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _new_from_table(
        self, table: pa.Table, features: Features, fp: str, files: list[str] | None
    ) -> Dataset:
        return Dataset(
            table,
            features=features,
            fingerprint=fp,
            cache_files=files if files else None,
            split=self._split,
            format=dict(self._format),
        )

    # --- map ------------------------------------------------------------------------------

    def map(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        with_rank: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        drop_last_batch: bool = False,
        remove_columns: str | list[str] | None = None,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        features: Features | None = None,
        disable_nullable: bool = False,
        fn_kwargs: dict[str, Any] | None = None,
        num_proc: int | None = None,
        suffix_template: str = "_{rank:05d}_of_{num_proc:05d}",
        new_fingerprint: str | None = None,
        desc: str | None = None,  # a progress-bar label: Cove shows no progress bar
        try_original_type: bool | None = True,
        on_mixed_types: str | None = "use_json",
    ) -> Dataset:
        _only("map", "disable_nullable", disable_nullable, False)
        _only("map", "try_original_type", try_original_type, True)
        _only("map", "on_mixed_types", on_mixed_types, "use_json", None)
        if with_rank:
            raise DatasetError("map(with_rank=True) is not supported by Cove: there are no GPU ranks here.")
        remove = _as_list_of_names(remove_columns)
        _unknown_columns(remove, self.column_names, "map(remove_columns=...)")
        inputs = _as_list_of_names(input_columns) if input_columns is not None else None
        if inputs is not None:
            _unknown_columns(inputs, self.column_names, "map(input_columns=...)")
        if function is None:
            function = identity_batch if batched else identity_row
        if batch_size is None or batch_size <= 0:
            batch_size = max(len(self), 1)
        if not batched:
            batch_size = 1000  # rows are read in blocks either way
        fn_kwargs = dict(fn_kwargs or {})
        opts = {
            "function": function,
            "with_indices": with_indices,
            "input_columns": inputs,
            "batched": batched,
            "batch_size": batch_size if batched else None,
            "drop_last_batch": drop_last_batch,
            "remove_columns": remove,
            "fn_kwargs": fn_kwargs,
            "features": features.to_dict() if features is not None else None,
            "format": self._format,
        }
        fp = new_fingerprint or fingerprint(self._fingerprint, "map", opts)
        if features is not None:
            features = Features(features)
        use_cache = load_from_cache_file is not False
        path = Path(cache_file_name) if cache_file_name else self._cache_dir() / f"cache-{fp}.arrow"
        manifest = path.with_suffix(".shards.json")
        if use_cache and not keep_in_memory:
            cached = self._load_cached(path, manifest, fp)
            if cached is not None:
                return cached
        runner = MapRunner(self, function, opts, batch_size, features)
        num_proc = num_proc or 1
        if keep_in_memory:
            table = runner.run_in_memory(0, len(self))
            return self._new_from_table(table, runner.output_features(table.schema), fp, None)
        if num_proc > 1 and len(self) >= num_proc:
            return self._map_parallel(runner, path, manifest, fp, num_proc, suffix_template)
        table = runner.run_to_file(0, len(self), path)
        return self._new_from_table(table, runner.output_features(table.schema), fp, [str(path)])

    def _load_cached(self, path: Path, manifest: Path, fp: str) -> Dataset | None:
        if path.exists():
            table = read_arrow(path)
            return self._new_from_table(table, Features.from_arrow_schema(table.schema), fp, [str(path)])
        if manifest.exists():
            names = json.loads(manifest.read_text())["files"]
            files = [str(manifest.parent / n) for n in names]
            if all(os.path.exists(f) for f in files):
                table = pa.concat_tables([read_arrow(f) for f in files])
                return self._new_from_table(table, Features.from_arrow_schema(table.schema), fp, files)
        return None

    def _map_parallel(
        self, runner: MapRunner, path: Path, manifest: Path, fp: str, num_proc: int, suffix_template: str
    ) -> Dataset:
        import multiprocessing as mp

        bounds = np.linspace(0, len(self), num_proc + 1).astype(int)
        names = [path.stem + suffix_template.format(rank=i, num_proc=num_proc) for i in range(num_proc)]
        if len(set(names)) != num_proc:
            raise DatasetError(
                f"map(suffix_template={suffix_template!r}) gives the {num_proc} workers' files the same name: "
                "use {rank} in it."
            )
        files = [path.with_name(f"{name}.arrow") for name in names]
        ctx = mp.get_context("fork")  # the function is inherited, never pickled
        procs = []
        for i in range(num_proc):
            proc = ctx.Process(target=map_child, args=(runner, int(bounds[i]), int(bounds[i + 1]), files[i]))
            proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join()
        errors = []
        for i, proc in enumerate(procs):
            err = files[i].with_suffix(".err")
            if err.exists():
                errors.append(err.read_text())
                err.unlink()
            elif proc.exitcode != 0:
                errors.append(f"worker {i} exited with code {proc.exitcode}")
        if errors:
            raise DatasetError(f"map(num_proc={num_proc}) failed in a worker:\n{errors[0]}")
        tables = [read_arrow(f) for f in files]
        schema = tables[0].schema
        tables = [t if t.schema == schema else t.cast(schema) for t in tables]
        table = pa.concat_tables(tables)
        manifest.write_text(json.dumps({"files": [f.name for f in files]}))
        return self._new_from_table(table, runner.output_features(schema), fp, [str(f) for f in files])

    # --- filter ---------------------------------------------------------------------------

    def filter(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        with_rank: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        fn_kwargs: dict[str, Any] | None = None,
        num_proc: int | None = None,
        suffix_template: str = "_{rank:05d}_of_{num_proc:05d}",  # workers' parts are merged into one file
        new_fingerprint: str | None = None,
        desc: str | None = None,  # a progress-bar label: Cove shows no progress bar
    ) -> Dataset:
        if function is None:
            return self._clone()
        inputs = _as_list_of_names(input_columns) if input_columns is not None else None
        if inputs is not None:
            _unknown_columns(inputs, self.column_names, "filter(input_columns=...)")
        if batch_size is None or batch_size <= 0:
            batch_size = max(len(self), 1)
        fn_kwargs = dict(fn_kwargs or {})
        opts = {
            "function": function,
            "with_indices": with_indices,
            "input_columns": inputs,
            "batched": batched,
            "batch_size": batch_size if batched else None,
            "fn_kwargs": fn_kwargs,
            "format": self._format,
        }
        fp = new_fingerprint or fingerprint(self._fingerprint, "filter", opts)
        # the kept positions are what filter caches (the rows stay where they are)
        path = (
            Path(cache_file_name).with_suffix(".indices.npy")
            if cache_file_name
            else self._cache_dir() / f"cache-{fp}.indices.npy"
        )
        if load_from_cache_file is not False and not keep_in_memory and path.exists():
            keep = np.load(path, allow_pickle=False)
        else:
            step = batch_size if batched else 1000
            if num_proc and num_proc > 1 and len(self) >= num_proc:
                keep = self._filter_parallel(function, opts, step, num_proc, path)
            else:
                keep = self._filter_positions(function, opts, step)
            if not keep_in_memory:
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
                np.save(tmp, keep, allow_pickle=False)
                os.replace(tmp, path)
        rows = keep if self._indices is None else self._indices[keep]
        return self._clone(indices=rows, fingerprint=fp)

    def _filter_parallel(
        self, function: Callable[..., Any], opts: dict[str, Any], step: int, num_proc: int, path: Path
    ) -> np.ndarray:
        import multiprocessing as mp

        bounds = np.linspace(0, len(self), num_proc + 1).astype(int)
        parts = [path.with_name(f".{path.stem}_{i:05d}.{os.getpid()}.npy") for i in range(num_proc)]
        ctx = mp.get_context("fork")  # the function is inherited, never pickled
        procs = []
        for i in range(num_proc):
            args = (self, function, opts, step, int(bounds[i]), int(bounds[i + 1]), parts[i])
            proc = ctx.Process(target=filter_child, args=args)
            proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join()
        try:
            for i, proc in enumerate(procs):
                err = parts[i].with_suffix(".err")
                if err.exists():
                    raise DatasetError(f"filter(num_proc={num_proc}) failed in a worker:\n{err.read_text()}")
                if proc.exitcode != 0:
                    raise DatasetError(
                        f"filter(num_proc={num_proc}): worker {i} exited with code {proc.exitcode}."
                    )
            return np.concatenate([np.load(p, allow_pickle=False) for p in parts])
        finally:
            for p in parts:
                p.unlink(missing_ok=True)
                p.with_suffix(".err").unlink(missing_ok=True)

    def _filter_positions(
        self,
        function: Callable[..., Any],
        opts: dict[str, Any],
        batch_size: int,
        first: int = 0,
        last: int | None = None,
    ) -> np.ndarray:
        chosen: list[np.ndarray] = []
        fmt = self._format
        last = len(self) if last is None else last
        for start in range(first, last, batch_size):
            stop = min(start + batch_size, last)
            table = self._fetch_range(start, stop)
            if opts["input_columns"] is not None:
                table = table.select(opts["input_columns"])
            if opts["batched"] and fmt["type"] is None:
                batch: Any = LazyBatch(table)
            else:
                batch = format_table(table, {**fmt, "columns": None}, "batch")
            if opts["batched"]:
                args = [batch[c] for c in opts["input_columns"]] if opts["input_columns"] else [batch]
                if opts["with_indices"]:
                    args.append(list(range(start, stop)))
                mask = function(*args, **opts["fn_kwargs"])
                mask = np.asarray(to_python(mask), dtype=bool)
                if mask.shape != (stop - start,):
                    raise DatasetError(
                        f"A batched filter function must return one bool per row: got {mask.shape} "
                        f"for a batch of {stop - start} rows."
                    )
            else:
                rows = rows_of(batch, table.num_rows)
                mask = np.empty(stop - start, dtype=bool)
                for i, row in enumerate(rows):
                    args = [row[c] for c in opts["input_columns"]] if opts["input_columns"] else [row]
                    if opts["with_indices"]:
                        args.append(start + i)
                    mask[i] = bool(function(*args, **opts["fn_kwargs"]))
            chosen.append(np.nonzero(mask)[0].astype(np.int64) + start)
        return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)

    # --- index-only transforms ------------------------------------------------------------

    def select(
        self,
        indices: Iterable[int],
        keep_in_memory: bool = False,
        indices_cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        new_fingerprint: str | None = None,
    ) -> Dataset:
        """Rows by position. The index mapping lives in memory (8 bytes a row), so keep_in_memory,
        indices_cache_file_name and writer_batch_size change nothing: no indices file is written."""
        if isinstance(indices, range) and indices.step == 1 and self._indices is None:
            if indices.start < 0 or (len(indices) and indices.stop > len(self)):
                raise DatasetIndexError(
                    f"select({indices}) is out of range for a dataset of {len(self)} rows."
                )
            fp = new_fingerprint or fingerprint(
                self._fingerprint, "select_range", indices.start, indices.stop
            )
            return self._clone(table=self._data.slice(indices.start, len(indices)), fingerprint=fp)
        if isinstance(indices, (pa.Array, pa.ChunkedArray)):
            positions = np.asarray(indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            positions = (
                np.fromiter(indices, dtype=np.int64) if not isinstance(indices, np.ndarray) else indices
            )
            positions = np.asarray(positions, dtype=np.int64)
        n = len(self)
        if positions.size and (positions.min() < 0 or positions.max() >= n):
            bad = positions[(positions < 0) | (positions >= n)][0]
            raise DatasetIndexError(f"Index {int(bad)} is out of range for a dataset of {n} rows.")
        fp = new_fingerprint or fingerprint(self._fingerprint, "select", positions)
        rows = positions if self._indices is None else self._indices[positions]
        return self._clone(indices=rows, fingerprint=fp)

    def shuffle(
        self,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        indices_cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        new_fingerprint: str | None = None,
    ) -> Dataset:
        """A permuted index mapping (see select: no indices file, so the caching keywords change nothing)."""
        if len(self) == 0:
            return self
        if seed is not None and generator is not None:
            raise DatasetError("shuffle() got both seed and generator: pass only one.")
        if generator is None:
            if seed is None:  # same draw from numpy's global state as datasets
                seed = _seed_from_global_state()
            generator = np.random.default_rng(seed)
        permutation = generator.permutation(len(self))
        return self.select(permutation, new_fingerprint=new_fingerprint)

    def sort(
        self,
        column_names: str | list[str],
        reverse: bool | list[bool] = False,
        null_placement: str = "at_end",
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        indices_cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        new_fingerprint: str | None = None,
    ) -> Dataset:
        """A sorted index mapping (see select: no indices file, so the caching keywords change nothing)."""
        names = _as_list_of_names(column_names)
        _unknown_columns(names, self.column_names, "sort")
        flags = [reverse] * len(names) if isinstance(reverse, bool) else list(reverse)
        if len(flags) != len(names):
            raise DatasetError(
                f"sort: reverse has {len(flags)} values for {len(names)} columns; give one per column."
            )
        placement = {"last": "at_end", "first": "at_start"}.get(null_placement, null_placement)
        table = self._columns_table(names)
        keys = [(n, "descending" if r else "ascending") for n, r in zip(names, flags)]
        try:  # pyarrow >= 25 takes the null placement per key
            order = pc.sort_indices(table, sort_keys=[(*k, placement) for k in keys]).to_numpy()
        except (TypeError, ValueError, pa.ArrowInvalid):
            order = pc.sort_indices(table, sort_keys=keys, null_placement=placement).to_numpy()
        return self.select(order, new_fingerprint=new_fingerprint)

    def shard(
        self,
        num_shards: int,
        index: int,
        contiguous: bool = True,
        keep_in_memory: bool = False,
        indices_cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
    ) -> Dataset:
        """One of num_shards parts (an index mapping, see select)."""
        if not 0 <= index < num_shards:
            raise DatasetIndexError(f"shard index {index} must be in [0, {num_shards}).")
        if contiguous:
            div, mod = divmod(len(self), num_shards)
            start = div * index + min(index, mod)
            end = start + div + (1 if index < mod else 0)
            return self.select(np.arange(start, end))
        return self.select(np.arange(index, len(self), num_shards))

    def take(self, n: int) -> Dataset:
        return self.select(range(min(max(n, 0), len(self))))

    def skip(self, n: int) -> Dataset:
        return self.select(range(min(max(n, 0), len(self)), len(self)))

    def to_iterable_dataset(self) -> Any:
        from cove.data.iterable_dataset import IterableDataset

        plain = self.with_format(None)
        return IterableDataset(
            lambda: iter(plain), features=self.features, split=self._split, column_names=self.column_names
        )

    def flatten_indices(
        self,
        keep_in_memory: bool = False,
        cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        features: Features | None = None,
        disable_nullable: bool = False,
        num_proc: int | None = None,
        new_fingerprint: str | None = None,
    ) -> Dataset:
        if self._indices is None and features is None:
            return self
        extra = [Features(features).to_dict()] if features is not None else []
        return self.map(
            keep_in_memory=keep_in_memory,
            cache_file_name=cache_file_name,
            writer_batch_size=writer_batch_size,
            features=features,
            disable_nullable=disable_nullable,
            num_proc=num_proc,
            new_fingerprint=new_fingerprint or fingerprint(self._fingerprint, "flatten_indices", *extra),
        )

    def train_test_split(
        self,
        test_size: float | int | None = None,
        train_size: float | int | None = None,
        shuffle: bool = True,
        stratify_by_column: str | None = None,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        train_indices_cache_file_name: str | None = None,
        test_indices_cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        train_new_fingerprint: str | None = None,
        test_new_fingerprint: str | None = None,
    ) -> DatasetDict:
        """Two index mappings (see select: no indices files, so the caching keywords change nothing)."""
        from cove.data.dataset_dict import DatasetDict

        if len(self) == 0:
            return DatasetDict({"train": self, "test": self})
        if test_size is None and train_size is None:
            test_size = 0.25
        n = len(self)
        for name, size in (("test_size", test_size), ("train_size", train_size)):
            if (isinstance(size, int) and not isinstance(size, bool) and not 0 < size < n) or (
                isinstance(size, float) and not 0 < size < 1
            ):
                raise DatasetError(
                    f"{name}={size} should be either positive and smaller than the number of samples {n} "
                    "or a float in the (0, 1) range"
                )
        if isinstance(train_size, float) and isinstance(test_size, float) and train_size + test_size > 1:
            raise DatasetError(
                f"test_size + train_size = {train_size + test_size} exceeds 1: reduce test_size and/or train_size."
            )
        n_test = ceil(test_size * n) if isinstance(test_size, float) else test_size
        n_train = floor(train_size * n) if isinstance(train_size, float) else train_size
        if train_size is None:
            assert n_test is not None
            n_train = n - n_test
        elif test_size is None:
            assert n_train is not None
            n_test = n - n_train
        assert n_train is not None and n_test is not None
        n_train, n_test = int(n_train), int(n_test)
        if n_train + n_test > n:
            raise DatasetError(
                f"train_size + test_size = {n_train + n_test} rows, more than the {n} rows: reduce them."
            )
        if n_train == 0:
            raise DatasetError(
                f"With {n} rows, test_size={test_size} and train_size={train_size} the train split would be empty."
            )
        if generator is None and shuffle:
            if seed is None:
                seed = _seed_from_global_state()
            generator = np.random.default_rng(seed)
        if not shuffle:
            if stratify_by_column is not None:
                raise DatasetError("A stratified train_test_split needs shuffle=True.")
            train_idx = np.arange(n_train)
            test_idx = np.arange(n_train, n_train + n_test)
        elif stratify_by_column is not None:
            _unknown_columns(
                [stratify_by_column], self.column_names, "train_test_split(stratify_by_column=...)"
            )
            feature = self._features[stratify_by_column]
            if not isinstance(feature, ClassLabel):
                raise DatasetError(
                    f"Stratifying needs a ClassLabel column; {stratify_by_column!r} is {feature!r}. "
                    f"Run class_encode_column({stratify_by_column!r}) first."
                )
            assert generator is not None
            column = self._columns_table([stratify_by_column]).column(0)
            labels = np.asarray(column.to_numpy(zero_copy_only=False))
            train_idx, test_idx = _stratified_split(labels, n_train, n_test, generator, stratify_by_column)
        else:
            assert generator is not None
            permutation = generator.permutation(n)
            test_idx = permutation[:n_test]
            train_idx = permutation[n_test : n_test + n_train]
        return DatasetDict(
            {
                "train": self.select(train_idx, new_fingerprint=train_new_fingerprint),
                "test": self.select(test_idx, new_fingerprint=test_new_fingerprint),
            }
        )

    # --- column transforms ----------------------------------------------------------------

    def rename_column(
        self, original_column_name: str, new_column_name: str, new_fingerprint: str | None = None
    ) -> Dataset:
        return self.rename_columns({original_column_name: new_column_name}, new_fingerprint=new_fingerprint)

    def rename_columns(self, column_mapping: dict[str, str], new_fingerprint: str | None = None) -> Dataset:
        _unknown_columns(column_mapping, self.column_names, "rename_columns")
        new_names = [column_mapping.get(n, n) for n in self.column_names]
        if len(set(new_names)) != len(new_names):
            raise DatasetError(
                f"rename_columns {column_mapping} would give duplicate column names {new_names}."
            )
        features = Features({column_mapping.get(k, k): v for k, v in self._features.items()})
        table = self._data.rename_columns(new_names).replace_schema_metadata(features.arrow_schema.metadata)
        fp = new_fingerprint or fingerprint(self._fingerprint, "rename_columns", column_mapping)
        fmt = dict(self._format)
        if fmt["columns"] is not None:
            fmt["columns"] = [column_mapping.get(c, c) for c in fmt["columns"]]
        return self._clone(table=table, features=features, fingerprint=fp, format=fmt)

    def remove_columns(self, column_names: str | list[str], new_fingerprint: str | None = None) -> Dataset:
        names = _as_list_of_names(column_names)
        _unknown_columns(names, self.column_names, "remove_columns")
        keep = [c for c in self.column_names if c not in names]
        return self.select_columns(keep, new_fingerprint=new_fingerprint)

    def select_columns(self, column_names: str | list[str], new_fingerprint: str | None = None) -> Dataset:
        names = _as_list_of_names(column_names)
        _unknown_columns(names, self.column_names, "select_columns")
        keep = names
        features = Features({k: self._features[k] for k in keep})
        table = self._data.select(keep).replace_schema_metadata(features.arrow_schema.metadata)
        fmt = dict(self._format)
        if fmt["columns"] is not None:
            fmt["columns"] = [c for c in fmt["columns"] if c in keep]
        fp = new_fingerprint or fingerprint(self._fingerprint, "select_columns", keep)
        return self._clone(table=table, features=features, fingerprint=fp, format=fmt)

    def add_column(
        self, name: str, column: Any, new_fingerprint: str | None = None, feature: Any = None
    ) -> Dataset:
        if name in self.column_names:
            raise DatasetError(f"Column {name!r} already exists; remove or rename it first.")
        values = list(column) if not isinstance(column, (pa.Array, np.ndarray)) else column
        if feature is not None:
            own = Features({name: feature})
            array = encode_rows_for_features({name: list(values)}, own).column(name)
        else:
            array = infer_array(name, values, None)
        if len(array) != len(self):
            raise DatasetError(f"add_column: {len(array)} values for a dataset of {len(self)} rows.")
        flat = self._flat_table()
        table = flat.append_column(name, array)
        added = feature if feature is not None else arrow_type_to_feature(array.type)
        features = Features({**self._features, name: added})
        table = table.replace_schema_metadata(features.arrow_schema.metadata)
        out = Dataset(table, features=features, split=self._split, format=dict(self._format))
        if new_fingerprint is not None:
            out._fingerprint = new_fingerprint
        return out

    def unique(self, column: str) -> list[Any]:
        _unknown_columns([column], self.column_names, "unique")
        return pc.unique(self._columns_table([column]).column(0)).to_pylist()

    def cast(
        self,
        features: Features,
        batch_size: int | None = 1000,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        cache_file_name: str | None = None,
        writer_batch_size: int | None = 1000,
        num_proc: int | None = None,
    ) -> Dataset:
        """Cast every column. Cove casts in its own 10,000-row blocks in one process: batch_size,
        writer_batch_size and num_proc change nothing in the result."""
        features = Features(features)
        if sorted(features) != sorted(self.column_names):
            raise DatasetError(
                f"cast: the features' columns {list(features)} must be the dataset's columns {self.column_names}; "
                "use cast_column() for one column."
            )
        features = Features({k: features[k] for k in self.column_names})
        return self._rewrite(
            lambda t: cast_table(t, features),
            features,
            "cast",
            features.to_dict(),
            keep_in_memory=keep_in_memory,
            load_from_cache_file=load_from_cache_file,
            cache_file_name=cache_file_name,
        )

    def cast_column(self, column: str, feature: Any, new_fingerprint: str | None = None) -> Dataset:
        _unknown_columns([column], self.column_names, "cast_column")
        features = self.features
        features[column] = feature
        out = self.cast(features)
        if new_fingerprint is not None:
            out._fingerprint = new_fingerprint
        return out

    def class_encode_column(self, column: str, include_nulls: bool = False) -> Dataset:
        _unknown_columns([column], self.column_names, "class_encode_column")
        src = self._features[column]
        if not isinstance(src, Value):
            raise DatasetError(f"class_encode_column needs a Value column; {column!r} is {src!r}.")
        # datasets stringifies non-string values first, so names sort as strings ('10' < '2')
        names = sorted({str(v) for v in self.unique(column) if include_nulls or v is not None})
        return self._class_encode(column, ClassLabel(names=names), include_nulls)

    def _class_encode(self, column: str, label: ClassLabel, include_nulls: bool) -> Dataset:
        features = self.features
        features[column] = label

        def encode(t: pa.Table) -> pa.Table:
            values = t.column(column).to_pylist()
            codes = pa.array(
                [label.str2int(str(v)) if include_nulls or v is not None else None for v in values],
                type=pa.int64(),
            )
            return cast_table(t.set_column(t.column_names.index(column), column, codes), features)

        return self._rewrite(encode, features, "class_encode", (column, label.names, include_nulls))

    def _rewrite(
        self,
        transform: Callable[[pa.Table], pa.Table],
        features: Features | None,
        op: str,
        args: Any,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        cache_file_name: str | None = None,
    ) -> Dataset:
        """Apply a table -> table transform block by block into a new cached Arrow file (or, with
        keep_in_memory, into memory)."""
        fp = fingerprint(self._fingerprint, op, args)
        if keep_in_memory:
            blocks = [
                transform(self._fetch_range(start, min(start + 10_000, len(self))))
                for start in range(0, len(self), 10_000)
            ] or [transform(self._data.slice(0, 0))]
            in_memory = features or Features.from_arrow_schema(blocks[0].schema)
            metadata = in_memory.arrow_schema.metadata
            table = pa.concat_tables([b.replace_schema_metadata(metadata) for b in blocks])
            return self._new_from_table(table, in_memory, fp, None)
        path = Path(cache_file_name) if cache_file_name else self._cache_dir() / f"cache-{fp}.arrow"
        if path.exists() and load_from_cache_file is not False:
            table = read_arrow(path)
            return self._new_from_table(table, Features.from_arrow_schema(table.schema), fp, [str(path)])
        writer = ArrowWriter(path)
        out_features = features
        try:
            for start in range(0, len(self), 10_000):
                block = transform(self._fetch_range(start, min(start + 10_000, len(self))))
                if out_features is None:
                    out_features = Features.from_arrow_schema(block.schema)
                writer.write(block.replace_schema_metadata(out_features.arrow_schema.metadata))
            if out_features is None:
                out_features = Features.from_arrow_schema(transform(self._data.slice(0, 0)).schema)
            table = writer.close(empty_schema=out_features.arrow_schema)
        except BaseException:
            writer.abort()
            raise
        return self._new_from_table(table, out_features, fp, [str(path)])

    # --- save / load / push ---------------------------------------------------------------

    def save_to_disk(
        self,
        dataset_path: str | os.PathLike[str],
        max_shard_size: int | str | None = None,
        num_shards: int | None = None,
        num_proc: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        """Arrow shards + state.json + dataset_info.json, as datasets writes them. Shards are written one
        after another in this process (num_proc changes nothing in the files)."""
        _only("save_to_disk", "storage_options", storage_options, None)
        if max_shard_size is not None and num_shards is not None:
            raise DatasetError("save_to_disk() got both max_shard_size and num_shards: pass only one.")
        path = Path(dataset_path)
        if any(str(path.resolve()) == str(Path(f).parent.resolve()) for f in self._cache_files):
            raise DatasetError(
                f"save_to_disk({str(path)!r}) would overwrite the files this dataset is read from: pick another folder."
            )
        path.mkdir(parents=True, exist_ok=True)
        if num_shards is None:
            size = self._data.nbytes * len(self) / max(self._data.num_rows, 1)
            limit = _size_in_bytes(max_shard_size) if max_shard_size is not None else 500 << 20
            num_shards = max(1, ceil(size / limit))
        num_shards = max(1, min(num_shards, max(len(self), 1)))
        bounds = np.linspace(0, len(self), num_shards + 1).astype(int)
        files = []
        for i in range(num_shards):
            name = f"data-{i:05d}-of-{num_shards:05d}.arrow"
            writer = ArrowWriter(path / name, schema=self._features.arrow_schema)
            for start in range(int(bounds[i]), int(bounds[i + 1]), 10_000):  # block by block: bounded memory
                writer.write(self._fetch_range(start, min(start + 10_000, int(bounds[i + 1]))))
            writer.close()
            files.append({"filename": name})
        state = {
            "_data_files": files,
            "_fingerprint": self._fingerprint,
            "_format_columns": self._format["columns"],
            "_format_kwargs": self._format["kwargs"],
            "_format_type": self._format["type"],
            "_output_all_columns": self._format["output_all_columns"],
            "_split": self._split,
        }
        (path / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        info = {
            "citation": "",
            "description": "",
            "features": self._features.to_dict(),
            "homepage": "",
            "license": "",
        }
        (path / "dataset_info.json").write_text(json.dumps(info, indent=2, sort_keys=True))

    @staticmethod
    def load_from_disk(
        dataset_path: str | os.PathLike[str],
        keep_in_memory: bool | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> Dataset:
        """A folder save_to_disk wrote, memory-mapped; keep_in_memory=True copies it into memory (None, the
        default, maps it, as datasets does under its default IN_MEMORY_MAX_SIZE of 0)."""
        _only("load_from_disk", "storage_options", storage_options, None)
        path = Path(dataset_path)
        state_file = path / "state.json"
        if not state_file.exists():
            raise DatasetError(
                f"{str(path)!r} is not a dataset saved with save_to_disk (no state.json): "
                "pass the folder save_to_disk wrote."
            )
        state = json.loads(state_file.read_text())
        files = [str((path / f["filename"]).resolve()) for f in state["_data_files"]]
        for f in files:
            if Path(f).parent != path.resolve():
                raise DatasetError(f"state.json in {str(path)!r} names a file outside its folder: {f!r}.")
        tables = [read_arrow(f) for f in files]
        table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        features = None
        info_file = path / "dataset_info.json"
        if info_file.exists():
            raw = json.loads(info_file.read_text()).get("features")
            if raw:
                features = Features.from_dict(raw)
        if features is None or list(features) != table.column_names:
            features = Features.from_arrow_schema(table.schema)
        fmt = {
            "type": state.get("_format_type"),
            "columns": state.get("_format_columns"),
            "output_all_columns": state.get("_output_all_columns", False),
            "kwargs": state.get("_format_kwargs") or {},
        }
        if keep_in_memory:
            table = pa.concat_tables([table]).combine_chunks()
            files = []
        return Dataset(
            table,
            features=features,
            fingerprint=state.get("_fingerprint"),
            cache_files=files,
            split=state.get("_split"),
            format=fmt,
        )

    def push_to_hub(
        self,
        repo_id: str,
        config_name: str = "default",
        set_default: bool | None = None,
        split: str | None = None,
        data_dir: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool | None = False,
        max_shard_size: int | str | None = None,
        num_shards: int | None = None,
        embed_external_files: bool = True,
        num_proc: int | None = None,
    ) -> Any:
        """This dataset as one split of a Hub dataset repo (see DatasetDict.push_to_hub)."""
        from cove.data.dataset_dict import DatasetDict

        if num_shards is not None and num_shards != 1:
            _only("push_to_hub", "num_shards", num_shards, None, 1)
        return DatasetDict({split or self._split or "train": self}).push_to_hub(
            repo_id,
            config_name=config_name,
            set_default=set_default,
            data_dir=data_dir,
            commit_message=commit_message,
            commit_description=commit_description,
            private=private,
            token=token,
            revision=revision,
            create_pr=create_pr,
            max_shard_size=max_shard_size,
            embed_external_files=embed_external_files,
            num_proc=num_proc,
        )


def _seed_from_global_state() -> int:
    """The seed datasets draws from numpy's global state when given none (and it steps that state once)."""
    state: Any = np.random.get_state()
    keys, pos = state[1], state[2]
    seed = int(keys[pos] if pos < 624 else keys[0])
    np.random.random()
    return seed


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    # the same draws, in the same order, as datasets' (and scikit-learn's) stratified split
    continuous = n_draws * class_counts / class_counts.sum()
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        values = np.sort(np.unique(remainder))[::-1]
        for value in values:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(np.int64)


def _stratified_split(
    y: np.ndarray, n_train: int, n_test: int, rng: np.random.Generator, column: str
) -> tuple[np.ndarray, np.ndarray]:
    classes, y_indices = np.unique(y, return_inverse=True)
    n_classes = classes.shape[0]
    class_counts = np.bincount(y_indices)
    if np.min(class_counts) < 2:
        raise DatasetError(
            f"The least populated class in column {column!r} has only 1 row; stratifying needs at least 2 per class."
        )
    if n_train < n_classes or n_test < n_classes:
        raise DatasetError(
            f"train size {n_train} and test size {n_test} must each be at least the number of classes {n_classes}."
        )
    class_indices = np.split(np.argsort(y_indices, kind="mergesort"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(n_classes):
        permutation = rng.permutation(class_counts[i])
        perm = class_indices[i].take(permutation, mode="clip")
        train.extend(perm[: n_i[i]])
        test.extend(perm[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def concatenate_datasets(
    dsets: list[Dataset], info: Any = None, split: str | None = None, axis: int = 0
) -> Dataset:
    """Rows of several datasets one after another (axis=0), or their columns side by side (axis=1)."""
    _only("concatenate_datasets", "info", info, None)
    if not dsets:
        raise DatasetError("concatenate_datasets needs at least one dataset.")
    if axis == 1:
        lengths = {len(d) for d in dsets}
        if len(lengths) != 1:
            raise DatasetError(
                f"concatenate_datasets(axis=1) needs equal lengths, got {[len(d) for d in dsets]}."
            )
        features = Features()
        arrays = {}
        for d in dsets:
            table = d._flat_table()
            for name in table.column_names:
                if name in arrays:
                    raise DatasetError(f"concatenate_datasets(axis=1): column {name!r} appears twice.")
                arrays[name] = table.column(name)
                features[name] = d._features[name]
        return Dataset(
            pa.table(arrays).replace_schema_metadata(features.arrow_schema.metadata),
            features=features,
            split=split,
        )
    first = dsets[0]
    for d in dsets[1:]:
        if d._features != first._features:
            raise DatasetError(
                f"concatenate_datasets needs the same features: {first._features} vs {d._features}; cast one first."
            )
    schema = first._features.arrow_schema
    tables = [d._data.select(first.column_names).cast(schema) for d in dsets]
    table = pa.concat_tables(tables)
    indices = None
    if any(d._indices is not None for d in dsets):
        parts = []
        offset = 0
        for d in dsets:
            own = d._indices if d._indices is not None else np.arange(d._data.num_rows, dtype=np.int64)
            parts.append(own + offset)
            offset += d._data.num_rows
        indices = np.concatenate(parts)
    files = [f for d in dsets for f in d._cache_files] if all(d._cache_files for d in dsets) else None
    fp = fingerprint("concatenate", [d._fingerprint for d in dsets])
    return Dataset(
        table, features=first._features, fingerprint=fp, indices=indices, cache_files=files, split=split
    )
