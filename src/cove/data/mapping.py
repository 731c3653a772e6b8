"""The map machinery: run a function over row ranges, merge its output with the input columns the way
`datasets` does (column order, original types tried first, small int types for token columns), and write
the result block by block to an Arrow file; forked workers for ``num_proc``.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from cove.data.features import Features, arrow_type_to_feature, cast_table
from cove.data.formatting import LazyBatch, format_table
from cove.data.table import ArrowWriter
from cove.errors import DatasetError

if TYPE_CHECKING:
    from cove.data.arrow_dataset import Dataset

# datasets stores token columns with small integer types: the same names get the same types here
_OPTIMIZED_INT_TYPES = {
    "attention_mask": pa.int8(),
    "special_tokens_mask": pa.int8(),
    "input_ids": pa.int32(),
    "token_type_ids": pa.int8(),
}


def to_python(values: Any) -> Any:
    """Tensors and arrays returned by user functions -> something pa.array accepts."""
    if isinstance(values, (pa.Array, pa.ChunkedArray, list)):
        if (
            isinstance(values, list)
            and values
            and not isinstance(values[0], (int, float, str, bool, type(None)))
        ):
            return [to_python(v) for v in values]
        return values
    if isinstance(values, np.ndarray):
        return values if values.dtype != object and values.ndim == 1 else values.tolist()
    if hasattr(values, "detach") and hasattr(values, "numpy"):  # torch.Tensor, without importing torch
        return values.detach().cpu().numpy().tolist()
    if isinstance(values, np.generic):
        return values.item()
    if isinstance(values, Mapping):
        return {k: to_python(v) for k, v in values.items()}
    if isinstance(values, tuple):
        return [to_python(v) for v in values]
    return values


def infer_array(name: str, values: Any, try_type: pa.DataType | None) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    if not isinstance(values, list) or (values and not isinstance(values[0], (list, int, float, str, bool))):
        values = to_python(values)  # tensors, arrays, tuples: lists of plain values go to Arrow as they are
    if try_type is not None:
        try:
            return pa.array(values, type=try_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            pass
    try:
        try:
            out = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            out = pa.array(to_python(values))  # e.g. a list of lists of tensors
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DatasetError(
            f"Column {name!r} returned by the function has values Arrow cannot store together ({exc}). "
            "Return one type per column (e.g. all ints or all strings)."
        ) from None
    small = _OPTIMIZED_INT_TYPES.get(name) if try_type is None else None
    if small is not None:
        with contextlib.suppress(pa.ArrowInvalid):
            if pa.types.is_int64(out.type):
                out = out.cast(small)
            elif pa.types.is_list(out.type) and pa.types.is_int64(out.type.value_type):
                out = out.cast(pa.list_(small))
            elif (
                pa.types.is_list(out.type)
                and pa.types.is_list(out.type.value_type)
                and pa.types.is_int64(out.type.value_type.value_type)
            ):
                out = out.cast(pa.list_(pa.list_(small)))
    return out


def identity_row(example: dict[str, Any]) -> dict[str, Any]:
    return example


def identity_batch(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


def rows_of(batch: Any, n: int) -> list[dict[str, Any]]:
    if isinstance(batch, dict):
        keys = list(batch)
        return [{k: batch[k][i] for k in keys} for i in range(n)]
    raise DatasetError("Row-wise functions need the python, numpy or torch format.")


def filter_child(
    ds: Dataset,
    function: Callable[..., Any],
    opts: dict[str, Any],
    step: int,
    first: int,
    last: int,
    path: Path,
) -> None:
    try:
        np.save(path, ds._filter_positions(function, opts, step, first, last), allow_pickle=False)
    except BaseException:
        path.with_suffix(".err").write_text(traceback.format_exc())
        os._exit(1)
    os._exit(0)


def map_child(runner: MapRunner, start: int, stop: int, path: Path) -> None:
    try:
        runner.run_to_file(start, stop, path)
    except BaseException:
        path.with_suffix(".err").write_text(traceback.format_exc())
        os._exit(1)
    os._exit(0)


class MapRunner:
    """Runs a map function over a range of rows and writes or collects the output tables."""

    def __init__(
        self,
        dataset: Dataset,
        function: Callable[..., Any],
        opts: dict[str, Any],
        batch_size: int,
        features: Features | None,
    ) -> None:
        self.ds = dataset
        self.function = function
        self.opts = opts
        self.batch_size = batch_size
        self.features = features
        self.in_schema = dataset._data.schema

    def output_features(self, schema: pa.Schema) -> Features:
        if self.features is not None:
            return self.features
        in_features = self.ds._features
        out = Features()
        for f in schema:
            kept = in_features.get(f.name)
            if (
                kept is not None
                and f.name in self.in_schema.names
                and self.in_schema.field(f.name).type == f.type
            ):
                out[f.name] = kept
            else:
                out[f.name] = arrow_type_to_feature(f.type)
        return out

    def _batches(self, start: int, stop: int) -> Iterator[pa.Table]:
        step = self.batch_size
        for b in range(start, stop, step):
            e = min(b + step, stop)
            if self.opts["drop_last_batch"] and self.opts["batched"] and e - b < step:
                return
            table = self.ds._fetch_range(b, e)
            out = self._apply(table, b)
            if out is not None:
                yield out

    def _apply(self, table: pa.Table, offset: int) -> pa.Table | None:
        opts = self.opts
        fn_kwargs = opts["fn_kwargs"]
        cols = opts["input_columns"]
        fmt = {**self.ds._format, "columns": None}
        source = table.select(cols) if cols else table
        lazy = opts["batched"] and fmt["type"] is None
        inputs = LazyBatch(source) if lazy else format_table(source, fmt, "batch")
        n = table.num_rows
        if opts["batched"]:
            args = [inputs[c] for c in cols] if cols else [inputs]
            if opts["with_indices"]:
                args.append(list(range(offset, offset + n)))
            result = self.function(*args, **fn_kwargs)
            if result is None:
                result = {} if cols else inputs
            if not isinstance(result, Mapping):
                raise DatasetError(
                    f"A batched map function must return a dict of columns (or None), got {type(result).__name__}."
                )
            if isinstance(result, LazyBatch):
                produced = {k: result.arrow_or_values(k) for k in result}
            else:
                produced = {k: result[k] for k in result}
        else:
            rows = rows_of(inputs, n)
            produced_rows = []
            for i, row in enumerate(rows):
                args = [row[c] for c in cols] if cols else [row]
                if opts["with_indices"]:
                    args.append(offset + i)
                out = self.function(*args, **fn_kwargs)
                if out is None:
                    out = {} if cols else row
                if not isinstance(out, Mapping):
                    raise DatasetError(
                        f"A map function must return a dict (or None), got {type(out).__name__} for row {offset + i}."
                    )
                produced_rows.append(out)
            keys: dict[str, None] = {}
            for out in produced_rows:
                for k in out:
                    keys.setdefault(k, None)
            produced = {k: [out.get(k) for out in produced_rows] for k in keys}
        return self._merge(table, produced, n)

    def _merge(self, table: pa.Table, produced: dict[str, Any], n: int) -> pa.Table:
        remove = set(self.opts["remove_columns"])
        lengths = {k: len(v) for k, v in produced.items()}
        same_rows = all(length == n for length in lengths.values())
        if len(set(lengths.values())) > 1:
            raise DatasetError(f"The function returned columns of different lengths: {lengths}.")
        passthrough = {
            c: table.column(c) for c in table.column_names if c not in remove and c not in produced
        }
        if not same_rows and passthrough:
            raise DatasetError(
                f"The function returned {next(iter(lengths.values()))} rows for a batch of {n}, but the input "
                f"columns {list(passthrough)} would be kept: pass remove_columns={table.column_names} so the row "
                "count can change."
            )
        arrays: dict[str, Any] = {}
        for c in table.column_names:
            if c in passthrough:
                arrays[c] = passthrough[c]
            elif c in produced and c not in remove:
                arrays[c] = self._column(c, produced[c])
        for c, values in produced.items():
            if c not in arrays:
                arrays[c] = self._column(c, values)
        if not arrays:
            return pa.table({})
        out = pa.table(arrays)
        if self.features is not None:
            out = cast_table(out, self.features)
        return out

    def _column(self, name: str, values: Any) -> pa.Array:
        try_type = self.in_schema.field(name).type if name in self.in_schema.names else None
        if self.features is not None and name in self.features:
            try_type = None
        return infer_array(name, values, try_type)

    def _empty_schema(self) -> pa.Schema:
        remove = set(self.opts["remove_columns"])
        fields = [f for f in self.in_schema if f.name not in remove]
        return self.features.arrow_schema if self.features is not None else pa.schema(fields)

    def run_to_file(self, start: int, stop: int, path: Path) -> pa.Table:
        writer = ArrowWriter(path)
        try:
            for out in self._batches(start, stop):
                if writer.schema is None:
                    writer.schema = self.output_features(out.schema).arrow_schema
                writer.write(out)
            return writer.close(empty_schema=self._empty_schema())
        except BaseException:
            writer.abort()
            raise

    def run_in_memory(self, start: int, stop: int) -> pa.Table:
        tables = list(self._batches(start, stop))
        if not tables:
            return self._empty_schema().empty_table()
        schema = self.output_features(tables[0].schema).arrow_schema
        return pa.concat_tables([t.cast(schema) for t in tables])
