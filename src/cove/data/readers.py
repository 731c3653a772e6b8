"""File readers: each yields Arrow tables of bounded size, so neither loading nor streaming holds a whole
file in memory. Parsing follows `datasets`' packaged builders (csv through pandas, json lines through
pyarrow, text line by line), so column types come out the same.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from cove.errors import DatasetError

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".txt": "text",
    ".text": "text",
    ".arrow": "arrow",
}
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")


def builder_for_file(path: str) -> str | None:
    name = path.lower()
    for ext in _COMPRESSED:
        if name.endswith(ext):
            name = name[: -len(ext)]
    return EXTENSIONS.get(os.path.splitext(name)[1])


def _open_text(path: str, encoding: str = "utf-8", errors: str | None = None) -> Any:
    import pyarrow as pa

    if path.lower().endswith(_COMPRESSED):
        return io.TextIOWrapper(pa.input_stream(path, compression="detect"), encoding=encoding, errors=errors)
    return open(path, encoding=encoding, errors=errors)


def _refuse(builder: str, name: str, value: Any, why: str) -> None:
    raise DatasetError(f"The {builder} reader's {name}={value!r} is not supported: {why}.")


def _open_binary(path: str) -> Any:
    if path.lower().endswith(_COMPRESSED):
        return pa.input_stream(path, compression="detect")
    return open(path, "rb")


def read_csv(path: str, chunksize: int = 10_000, **kwargs: Any) -> Iterator[pa.Table]:
    import pandas as pd

    if "delimiter" in kwargs:
        kwargs["sep"] = kwargs.pop("delimiter")
    if "column_names" in kwargs:
        kwargs["names"] = kwargs.pop("column_names")
    if path.lower().endswith(".tsv") and "sep" not in kwargs:
        kwargs["sep"] = "\t"
    try:
        reader = pd.read_csv(path, iterator=True, chunksize=chunksize, **kwargs)
    except TypeError as exc:
        raise DatasetError(f"Bad csv option for {path!r}: {exc}. Options go to pandas.read_csv.") from None
    with reader:
        for df in reader:
            yield pa.Table.from_pandas(df)


def read_json(
    path: str,
    field: str | None = None,
    chunksize: int = 10 << 20,
    encoding: str = "utf-8",
    encoding_errors: str | None = None,
    use_threads: bool = True,  # deprecated in datasets; changes nothing
    block_size: int | None = None,  # deprecated in datasets; changes nothing
    newlines_in_values: bool | None = None,
    on_mixed_types: str | None = "use_json",
    parse_agent_traces: bool = True,  # Cove has no agent-trace features for it to apply to
) -> Iterator[pa.Table]:
    """Rows of a JSON Lines file, a JSON array of rows, or (field=) the rows under one key; the keywords
    are datasets' JsonConfig fields (an unknown one raises a TypeError naming it)."""
    import pyarrow.json as paj

    if encoding.replace("-", "").replace("_", "").lower() != "utf8":
        _refuse("json", "encoding", encoding, "Cove reads JSON as UTF-8 only")
    if encoding_errors not in (None, "strict"):
        _refuse("json", "encoding_errors", encoding_errors, "JSON is decoded strictly")
    if newlines_in_values is not None:  # datasets raises for it too
        _refuse("json", "newlines_in_values", newlines_in_values, "it is no longer a JSON loader option")
    if on_mixed_types not in (None, "use_json"):
        _refuse("json", "on_mixed_types", on_mixed_types, "a column of mixed types raises in Cove")

    if field is not None:
        with _open_text(path) as f:
            data = json.load(f)
        if not isinstance(data, dict) or field not in data:
            raise DatasetError(f"{path!r} has no top-level field {field!r}; fields: {list(data)[:20]}.")
        yield _rows_to_table(data[field], path)
        return
    with _open_binary(path) as f:
        stripped = f.read(1 << 16).lstrip()
    if stripped.startswith(b"["):  # one JSON array of rows, not JSON lines
        with _open_binary(path) as f:
            yield _rows_to_table(json.loads(f.read()), path)
        return
    block_size = max(chunksize // 32, 16 << 10)
    with _open_binary(path) as f:
        while True:
            chunk = f.read(chunksize)
            if not chunk:
                break
            chunk += f.readline()  # finish the current line
            if not chunk.strip():
                continue
            while True:
                try:
                    table = paj.read_json(
                        io.BytesIO(chunk), read_options=paj.ReadOptions(block_size=block_size)
                    )
                    break
                except pa.ArrowInvalid as exc:
                    if "straddling" in str(exc) and block_size < len(chunk):
                        block_size *= 2
                        continue
                    if stripped.startswith(b"{") and b"\n" not in chunk.strip():
                        raise DatasetError(
                            f"{path!r} holds one JSON object, not rows: pass field='<key holding the rows>'."
                        ) from None
                    raise DatasetError(f"Cannot parse JSON lines in {path!r}: {exc}.") from None
            yield table


def _rows_to_table(rows: Any, path: str) -> pa.Table:
    if isinstance(rows, dict):
        return pa.Table.from_pydict(rows)
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], dict)):
        raise DatasetError(f"{path!r}: expected a list of objects (rows), got {type(rows).__name__}.")
    return pa.Table.from_pylist(rows)


def read_text(
    path: str,
    encoding: str = "utf-8",
    keep_linebreaks: bool = False,
    chunksize: int = 10 << 20,
    encoding_errors: str | None = None,
    sample_by: str = "line",
) -> Iterator[pa.Table]:
    if sample_by != "line":
        _refuse("text", "sample_by", sample_by, "Cove's text reader gives one row per line")
    # Universal newlines, split on "\n" only (StringIO.readlines), as datasets' text builder does.
    with _open_text(path, encoding=encoding, errors=encoding_errors) as f:
        while True:
            batch = f.read(chunksize)
            if not batch:
                break
            batch += f.readline()
            lines = io.StringIO(batch).readlines()
            if not keep_linebreaks:
                lines = [line.rstrip("\n") for line in lines]
            yield pa.table({"text": pa.array(lines, type=pa.string())})


def read_parquet(
    path: str,
    batch_size: int | None = None,
    columns: list[str] | None = None,
    filters: Any = None,
    fragment_scan_options: Any = None,
    on_bad_files: str = "error",
) -> Iterator[pa.Table]:
    import pyarrow.parquet as pq

    if filters is not None:
        _refuse("parquet", "filters", filters, "filter the rows with Dataset.filter after loading")
    if fragment_scan_options is not None:
        _refuse("parquet", "fragment_scan_options", fragment_scan_options, "Cove reads whole row groups")
    if on_bad_files != "error":
        _refuse("parquet", "on_bad_files", on_bad_files, "an unreadable file always raises")
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_size or 10_000, columns=columns):
        yield pa.Table.from_batches([batch])


def read_arrow_file(path: str) -> Iterator[pa.Table]:
    from cove.data.table import read_arrow

    table = read_arrow(path)
    for batch in table.to_batches(max_chunksize=10_000):
        yield pa.Table.from_batches([batch])


READERS: dict[str, Callable[..., Iterator[pa.Table]]] = {
    "csv": read_csv,
    "json": read_json,
    "text": read_text,
    "parquet": read_parquet,
    "arrow": read_arrow_file,
}


def iter_tables(builder: str, path: str, **kwargs: Any) -> Iterator[pa.Table]:
    try:
        reader = READERS[builder]
    except KeyError:
        raise DatasetError(f"Unknown file format {builder!r}: use one of {sorted(READERS)}.") from None
    if not os.path.exists(path):
        raise DatasetError(f"Data file {path!r} does not exist.")
    # BuilderConfig's own descriptive fields, which no reader uses
    options = {k: v for k, v in kwargs.items() if k not in ("description", "version")}
    try:
        return reader(path, **options)
    except TypeError as exc:
        if "unexpected keyword" not in str(exc):
            raise
        raise TypeError(
            f"load_dataset({builder!r}) got an option its reader does not take ({exc}); the {builder} "
            f"reader takes {_option_names(reader)}."
        ) from None


def _option_names(reader: Callable[..., Any]) -> list[str]:
    import inspect

    return [p for p in inspect.signature(reader).parameters if p != "path"]
