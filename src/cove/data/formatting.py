"""Turn Arrow tables into what ``ds[...]`` returns for each output format (python, numpy, torch, pandas, arrow).

The numpy and torch formats follow `datasets`: integers become int64, floats float32, equal-shaped nested
lists are stacked, ragged ones stay lists (torch) or object arrays (numpy), strings stay strings.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import numpy as np
import pyarrow as pa

from cove.errors import DatasetError

FORMAT_TYPES = (None, "python", "numpy", "np", "torch", "pt", "pandas", "pd", "arrow", "pa")
_CANONICAL = {"python": None, "np": "numpy", "pt": "torch", "pd": "pandas", "pa": "arrow"}


def canonical_format(type: str | None) -> str | None:
    if type not in FORMAT_TYPES:
        raise DatasetError(
            f"Unknown format type {type!r}: use one of None, 'numpy', 'torch', 'pandas', 'arrow'."
        )
    return _CANONICAL.get(type, type)  # type: ignore[arg-type]


def _to_numpy(value: Any) -> Any:
    if value is None or isinstance(value, (str, bytes)):
        return value
    if isinstance(value, dict):
        return {k: _to_numpy(v) for k, v in value.items()}
    if isinstance(value, list):
        return _consolidate([_to_numpy(v) for v in value])
    if isinstance(value, bool):
        return np.asarray(value)
    if isinstance(value, int):
        return np.asarray(value, dtype=np.int64)
    if isinstance(value, float):
        return np.asarray(value, dtype=np.float32)
    return value


def _consolidate(items: list[Any]) -> Any:
    if items and all(
        isinstance(x, (np.ndarray, np.number, np.bool_))
        and x.shape == items[0].shape
        and x.dtype == items[0].dtype
        for x in items
    ):
        return np.stack(items)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _numpy_column(values: list[Any]) -> Any:
    if values and all(isinstance(v, str) for v in values):
        return np.array(values)
    return _consolidate([_to_numpy(v) for v in values])


def _to_torch(value: Any) -> Any:
    import torch

    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_to_torch(v) for v in value]
        if value.dtype.kind in "US":
            return value.tolist()
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return {k: _to_torch(v) for k, v in value.items()}
    return value


def _torch_column(values: list[Any]) -> Any:
    if values and all(isinstance(v, str) for v in values):
        return list(values)
    return _to_torch(_numpy_column(values))


def _is_scalar(pa_type: pa.DataType) -> bool:
    return pa.types.is_integer(pa_type) or pa.types.is_floating(pa_type) or pa.types.is_boolean(pa_type)


def _numpy_scalar(column: pa.ChunkedArray) -> Any:
    if column.null_count:
        return None
    return column.to_numpy(zero_copy_only=False)[0]


def format_table(table: pa.Table, fmt: dict[str, Any], kind: str) -> Any:
    """kind: 'row' (one-row table), 'batch' or 'column' (one-column table)."""
    ftype = fmt.get("type")
    columns = fmt.get("columns")
    if kind != "column" and columns is not None:
        formatted = table.select([c for c in table.column_names if c in columns])
        rest = table.select([c for c in table.column_names if c not in columns])
    else:
        formatted, rest = table, None
    out = _format(formatted, ftype, kind, fmt.get("kwargs") or {})
    if rest is not None and fmt.get("output_all_columns") and rest.num_columns:
        extra = _format(rest, None, kind, {})
        if isinstance(out, dict):
            out = {**out, **extra}
    return out


def _format(table: pa.Table, ftype: str | None, kind: str, kwargs: dict[str, Any]) -> Any:
    if ftype == "arrow":
        return table
    if ftype == "pandas":
        df = table.to_pandas(**kwargs)
        if kind == "column":
            return df[table.column_names[0]]
        return df
    pydict = table.to_pydict()
    if ftype is None:
        if kind == "row":
            return {k: v[0] for k, v in pydict.items()}
        if kind == "column":
            return pydict[table.column_names[0]]
        return pydict
    convert = _numpy_column if ftype == "numpy" else _torch_column
    if kind == "row":
        if ftype == "numpy":  # scalars keep their Arrow dtype (np.int32, np.float64, ...), as in datasets
            return {
                k: _numpy_scalar(table.column(k)) if _is_scalar(table.column(k).type) else _to_numpy(v[0])
                for k, v in pydict.items()
            }
        return {k: _to_torch(_to_numpy(v[0])) for k, v in pydict.items()}
    if kind == "column":
        return convert(pydict[table.column_names[0]])
    return {k: convert(v) for k, v in pydict.items()}


class LazyBatch(MutableMapping):
    """A python-format batch that converts a column from Arrow only when the function reads it.

    Map functions often read one column (the text) of many; the others pass through as Arrow arrays.
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self._values: dict[str, Any] = {}
        self._keys = list(table.column_names)

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        if key not in self._keys:
            raise KeyError(key)
        values = self._table.column(key).to_pylist()
        self._values[key] = values
        return values

    def __setitem__(self, key: str, value: Any) -> None:
        self._values[key] = value
        if key not in self._keys:
            self._keys.append(key)

    def __delitem__(self, key: str) -> None:
        self._keys.remove(key)
        self._values.pop(key, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._keys))

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return repr(dict(self.items()))

    def arrow_or_values(self, key: str) -> Any:
        """The column as Arrow when the function never touched it, else its (possibly new) values."""
        if key not in self._values and key in self._table.column_names:
            return self._table.column(key)
        return self[key]
