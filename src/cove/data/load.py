"""``load_dataset``: files, globs, folders and dataset repos -> memory-mapped ``Dataset``/``DatasetDict``.

A dataset repo is a local folder (the hub client hands one over): its README.md ``configs:`` block lists
data files per split, else files are split by name (train/validation/test), as on the Hugging Face Hub.
Each split is converted once into an Arrow file in the cache, keyed by the files' paths, sizes and
modification times and the reader options; later loads memory-map that file.
"""

from __future__ import annotations

import glob
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from cove.data.arrow_dataset import Dataset, concatenate_datasets
from cove.data.dataset_dict import DatasetDict, IterableDatasetDict
from cove.data.features import Features, cast_table
from cove.data.fingerprint import cache_root, hash_object
from cove.data.readers import READERS, builder_for_file, iter_tables
from cove.data.table import ArrowWriter, read_arrow
from cove.errors import DatasetError, DatasetNotFoundError

SPLIT_KEYWORDS = {
    "train": ["train", "training"],
    "validation": ["validation", "valid", "dev", "val"],
    "test": ["test", "testing", "eval", "evaluation"],
}
_SEP = r"[-._ 0-9]"
_SHARDED = re.compile(r"^data/(?P<split>\w+)-\d{5}-of-\d{5}[^/]*$")
_IGNORED = {
    "README.md",
    "config.json",
    "dataset_info.json",
    "dataset_infos.json",
    "dataset_dict.json",
    "state.json",
}
_SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
_SUB_SPEC = re.compile(
    r"^(?P<split>\w+(\.\w+)*)(\[((?P<from>-?[\d_]+)(?P<from_pct>%)?)?:((?P<to>-?[\d_]+)(?P<to_pct>%)?)?\])?"
    r"(\((?P<rounding>[^\)]*)\))?$"
)


# --- data files ---------------------------------------------------------------------------


def _expand(pattern: str, base: Path) -> list[str]:
    path = Path(pattern).expanduser()
    if not path.is_absolute():
        path = base / path
    text = str(path)
    if path.is_dir():
        return _files_in_dir(path)
    if any(ch in pattern for ch in "*?["):
        found = sorted(p for p in glob.glob(text, recursive=True) if os.path.isfile(p))
        root = text[: min(text.find(ch) for ch in "*?[" if ch in text)].rsplit(os.sep, 1)[0] or os.sep
        return [p for p in found if not _hidden(os.path.relpath(p, root))]
    return [text] if path.is_file() else []


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "__")) for part in Path(rel).parts)


def _files_in_dir(folder: Path) -> list[str]:
    out = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(files):
            if name.startswith((".", "__")) or name in _IGNORED:
                continue
            out.append(os.path.join(root, name))
    return out


def resolve_data_files(data_files: Any, base: Path) -> dict[str, list[str]]:
    """{split: [absolute file paths]}; a str or list without splits means the train split."""
    if isinstance(data_files, (str, os.PathLike)):
        data_files = {"train": [str(data_files)]}
    elif isinstance(data_files, (list, tuple)):
        if data_files and isinstance(
            data_files[0], dict
        ):  # [{"split": ..., "path": ...}] as in README configs
            grouped: dict[str, list[str]] = {}
            for entry in data_files:
                paths = entry["path"]
                grouped.setdefault(entry.get("split", "train"), []).extend(
                    [paths] if isinstance(paths, str) else list(paths)
                )
            data_files = grouped
        else:
            data_files = {"train": [str(p) for p in data_files]}
    elif not isinstance(data_files, dict):
        raise DatasetError(
            f"data_files must be a path, a list of paths or a dict split -> paths; got {data_files!r}."
        )
    out: dict[str, list[str]] = {}
    for split, patterns in data_files.items():
        if not _SPLIT_NAME.match(str(split)):
            raise DatasetError(f"Split name {split!r} must be made of letters, digits and underscores.")
        patterns = [patterns] if isinstance(patterns, (str, os.PathLike)) else list(patterns)
        files: list[str] = []
        for pattern in patterns:
            found = _expand(str(pattern), base)
            if not found:
                raise DatasetNotFoundError(
                    f"No data file matches {str(pattern)!r} (split {split!r}, looked in {str(base)!r}). "
                    "Check the path or glob."
                )
            files.extend(f for f in found if f not in files)
        out[str(split)] = files
    return out


def split_by_convention(files: list[str], base: Path) -> dict[str, list[str]]:
    """Assign files to splits by their paths, the way the Hub does without a configs block."""
    rels = {f: Path(os.path.relpath(f, base)).as_posix() for f in files}
    sharded: dict[str, list[str]] = {}
    for f, rel in rels.items():
        m = _SHARDED.match(rel)
        if m:
            sharded.setdefault(m.group("split"), []).append(f)
    if sharded:
        return sharded

    def matches(rel: str, keyword: str, in_dir: bool) -> bool:
        parts = rel.split("/")
        names = parts[:-1] if in_dir else parts[-1:]
        for name in names:
            if re.fullmatch(rf"{keyword}({_SEP}.*)?", name) or re.fullmatch(
                rf".*{_SEP}{keyword}({_SEP}.*)?", name
            ):
                return True
        return False

    for in_dir in (True, False):
        found: dict[str, list[str]] = {}
        for split, keywords in SPLIT_KEYWORDS.items():
            chosen = [f for f, rel in rels.items() if any(matches(rel, k, in_dir) for k in keywords)]
            if chosen:
                found[split] = chosen
        if found:
            return found
    return {"train": list(files)}


def _guess_builder(files: list[str]) -> str:
    kinds = Counter(b for b in (builder_for_file(f) for f in files) if b)
    if not kinds:
        raise DatasetError(
            f"No readable data files among {files[:5]}: Cove reads {sorted(set(READERS))} files "
            "(.csv, .tsv, .json, .jsonl, .parquet, .txt, .arrow)."
        )
    return kinds.most_common(1)[0][0]


# --- repo folders ---------------------------------------------------------------------------


def read_card_configs(folder: Path) -> list[dict[str, Any]]:
    """The ``configs:`` list from a dataset card's YAML front matter (empty when there is none)."""
    readme = folder / "README.md"
    if not readme.is_file():
        return []
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return []
    end = text.find("\n---", 3)
    if end < 0:
        return []
    import yaml

    try:
        meta = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(f"The YAML header of {str(readme)!r} does not parse: {exc}.") from None
    configs = meta.get("configs") or []
    if not isinstance(configs, list):
        raise DatasetError(f"'configs' in {str(readme)!r} must be a list, got {type(configs).__name__}.")
    return [c for c in configs if isinstance(c, dict)]


def _pick_config(configs: list[dict[str, Any]], name: str | None, folder: Path) -> dict[str, Any] | None:
    if not configs:
        if name not in (None, "default"):
            raise DatasetError(f"Config {name!r} not found: {str(folder)!r} defines no configs in README.md.")
        return None
    names = [c.get("config_name", "default") for c in configs]
    if name is None:
        defaults = [c for c in configs if c.get("default")]
        if defaults:
            return defaults[0]
        if len(configs) == 1 or "default" in names:
            return configs[names.index("default")] if "default" in names else configs[0]
        raise DatasetError(f"{str(folder)!r} has several configs {names}: pick one with name=...")
    if name not in names:
        raise DatasetError(f"Config {name!r} not found in {str(folder)!r}; available configs: {names}.")
    return configs[names.index(name)]


def _folder_data_files(
    folder: Path, name: str | None, data_dir: str | None, data_files: Any
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """Data files per split and reader options for a dataset repo folder (never a file outside it)."""
    split_files, options = _folder_data_files_unchecked(folder, name, data_dir, data_files)
    # Lexical containment: catches "../" in a card's paths. Symlinks are followed on purpose: hub snapshots
    # are folders of symlinks into the blob store, made by the hub client, not by the repo's author.
    root = os.path.abspath(folder)
    for files in split_files.values():
        for f in files:
            if os.path.commonpath([root, os.path.abspath(f)]) != root:
                raise DatasetError(
                    f"Data file {f!r} is outside the dataset folder {str(folder)!r}: a repo may only name its own files."
                )
    return split_files, options


def _folder_data_files_unchecked(
    folder: Path, name: str | None, data_dir: str | None, data_files: Any
) -> tuple[dict[str, list[str]], dict[str, Any]]:
    base = folder / data_dir if data_dir else folder
    if data_files is not None:
        return resolve_data_files(data_files, base), {}
    config = _pick_config(read_card_configs(folder), name, folder)
    if config is not None and config.get("data_files") is not None:
        cfg_base = folder / config["data_dir"] if config.get("data_dir") else base
        options = {
            k: v for k, v in config.items() if k not in ("config_name", "data_files", "data_dir", "default")
        }
        return resolve_data_files(config["data_files"], cfg_base), options
    if config is not None and config.get("data_dir"):
        base = folder / config["data_dir"]
    files = [f for f in _files_in_dir(base) if builder_for_file(f)]
    if not files:
        raise DatasetNotFoundError(
            f"No data files in {str(base)!r}: add .csv/.json/.jsonl/.parquet/.txt files or a configs: block "
            "in README.md."
        )
    return split_by_convention(files, base), {}


# --- building and caching -------------------------------------------------------------------


def _build_split(
    builder: str,
    files: list[str],
    split: str,
    options: dict[str, Any],
    features: Features | None,
    cache_dir: Path,
) -> Dataset:
    stats = [(os.path.abspath(f), os.path.getsize(f), os.stat(f).st_mtime_ns) for f in files]
    fp = hash_object(("load", builder, stats, options, features.to_dict() if features else None))
    path = cache_dir / builder / fp[:16] / f"{split}.arrow"
    if path.exists():
        table = read_arrow(path)
    else:
        writer = ArrowWriter(path, schema=features.arrow_schema if features is not None else None)
        try:
            for f in files:
                for table in iter_tables(builder, f, **options):
                    if table.num_rows == 0 and writer.schema is not None:
                        continue
                    if features is not None:
                        table = cast_table(table, features)
                    elif writer.schema is None:
                        writer.schema = Features.from_arrow_schema(table.schema).arrow_schema
                    writer.write(table)
            table = writer.close()
        except BaseException:
            writer.abort()
            raise
    out_features = features if features is not None else Features.from_arrow_schema(table.schema)
    return Dataset(table, features=out_features, fingerprint=fp, cache_files=[str(path)], split=split)


def _parse_split(spec: str) -> list[tuple[str, int | None, int | None, bool, str]]:
    subs = [s for s in re.split(r"\s*\+\s*", spec.strip())]
    out = []
    for sub in subs:
        m = _SUB_SPEC.match(sub)
        if not m:
            raise DatasetError(
                f"Bad split {spec!r}: use a split name, optionally sliced like 'train[:10%]', 'train[10:20]', "
                "and joined with '+' like 'train+test'."
            )
        pct = bool(m.group("from_pct") or m.group("to_pct"))
        frm = int(m.group("from")) if m.group("from") else None
        to = int(m.group("to")) if m.group("to") else None
        rounding = m.group("rounding") or "closest"
        if rounding not in ("closest", "pct1_dropremainder"):
            raise DatasetError(
                f"Unknown rounding {rounding!r} in split {spec!r}: use closest or pct1_dropremainder."
            )
        out.append((m.group("split"), frm, to, pct, rounding))
    return out


def _slice_bounds(frm: int | None, to: int | None, pct: bool, rounding: str, n: int) -> tuple[int, int]:
    def pct_to_abs(boundary: int) -> int:
        if rounding == "closest":
            return round(boundary * n / 100.0)
        if n < 100:
            raise DatasetError(
                "pct1_dropremainder rounding on a split of fewer than 100 rows always gives nothing."
            )
        return boundary * (n // 100)

    if pct:
        start = 0 if frm is None else pct_to_abs(frm)
        stop = n if to is None else pct_to_abs(to)
    else:
        start = 0 if frm is None else frm
        stop = n if to is None else to
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = max(n + stop, 0)
    return min(start, n), min(stop, n)


def select_split(splits: dict[str, Dataset], spec: str) -> Dataset:
    parts = []
    for name, frm, to, pct, rounding in _parse_split(spec):
        if name not in splits:
            raise DatasetError(f"Unknown split {name!r}; available splits: {sorted(splits)}.")
        ds = splits[name]
        if frm is None and to is None:
            parts.append(ds)
            continue
        start, stop = _slice_bounds(frm, to, pct, rounding, len(ds))
        if stop <= start:
            raise DatasetError(
                f"Split {spec!r} selects no rows ({name!r} has {len(ds)} rows, the slice gives [{start}:{stop}]): "
                "widen the slice."
            )
        part = ds.select(range(start, max(start, stop)))
        part._split = name
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    out = concatenate_datasets(parts)
    out._split = spec
    return out


# --- public entry points -----------------------------------------------------------------------


def load_dataset(
    path: str | os.PathLike[str],
    name: str | None = None,
    data_dir: str | None = None,
    data_files: Any = None,
    split: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    features: Features | None = None,
    *,  # datasets has other parameters in the next places: the rest port by keyword only
    streaming: bool = False,
    revision: str | None = None,
    token: str | None = None,
    num_proc: int | None = None,
    **config_kwargs: Any,
) -> Any:
    """Load a dataset from a format name + ``data_files``, a file, a folder, or a dataset repo name.

    ``split=None`` gives a ``DatasetDict``; a split spec ("train", "train[:10%]", "train+test") a ``Dataset``.
    ``streaming=True`` gives ``IterableDataset``(s) that read the files lazily.
    """
    builder_or_path = str(path)
    options = dict(config_kwargs)
    features = Features(features) if features is not None else None
    if builder_or_path in READERS:
        if data_files is None:
            if data_dir is None:
                raise DatasetError(
                    f"load_dataset({builder_or_path!r}) needs data_files=... (a path, glob, list or split dict) "
                    "or data_dir=..."
                )
            folder = Path(data_dir)
            files = [f for f in _files_in_dir(folder) if builder_for_file(f) == builder_or_path]
            if not files:
                raise DatasetNotFoundError(f"No {builder_or_path} files in {data_dir!r}.")
            split_files = split_by_convention(files, folder)
        else:
            split_files = resolve_data_files(data_files, Path(data_dir) if data_dir else Path.cwd())
        builder = builder_or_path
    else:
        local = Path(builder_or_path).expanduser()
        if local.is_file():
            split_files = {"train": [str(local.resolve())]}
            builder = _guess_builder(split_files["train"])
        else:
            folder = local if local.is_dir() else _resolve_repo_folder(builder_or_path, revision, token)
            split_files, card_options = _folder_data_files(folder, name, data_dir, data_files)
            options = {**card_options, **options}
            builder = _guess_builder([f for files in split_files.values() for f in files])
    for files in split_files.values():
        for f in files:
            if not builder_for_file(f) and builder not in ("csv", "text", "json"):
                raise DatasetError(f"File {f!r} is not a {builder} file.")
    if streaming:
        from cove.data.iterable_dataset import IterableDataset

        streams = {
            s: IterableDataset.from_files(builder, files, options=options, features=features, split=s)
            for s, files in split_files.items()
        }
        if split is None:
            return IterableDatasetDict(streams)
        if split not in streams:
            if "[" in split or "+" in split:
                raise DatasetError(
                    f"split={split!r}: slicing and '+' are not supported when streaming; "
                    "use .take()/.skip() on the split instead."
                )
            raise DatasetError(f"Unknown split {split!r}; available splits: {sorted(streams)}.")
        return streams[split]
    root = Path(cache_dir) if cache_dir else cache_root()
    if split is not None:
        wanted = {part[0] for part in _parse_split(split)}
        for w in wanted:
            if w not in split_files:
                raise DatasetError(f"Unknown split {w!r}; available splits: {sorted(split_files)}.")
    else:
        wanted = set(split_files)
    splits = {
        s: _build_split(builder, files, s, options, features, root)
        for s, files in split_files.items()
        if s in wanted
    }
    if split is None:
        return DatasetDict(splits)
    return select_split(splits, split)


def load_dataset_from_folder(folder: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load a dataset repo that is already a local folder (what the hub client hands over)."""
    path = Path(folder)
    if not path.is_dir():
        raise DatasetNotFoundError(f"Dataset folder {str(folder)!r} does not exist.")
    return load_dataset(str(path), **kwargs)


def _resolve_repo_folder(name: str, revision: str | None, token: str | None) -> Path:
    """A dataset repo name -> a local folder, through the hub client's resolver.

    Uses ``cove.hub.resolve.resolve_dataset_dir(name, revision=, token=)`` when the hub client has it, else its
    ``resolve_model_dir(..., repo_type="dataset")`` (remote hub, embedded hub, cache), so the hub only ever
    hands this module a folder.
    """
    import functools
    import inspect

    try:
        from cove.hub import resolve as hub_resolve
    except ImportError:
        hub_resolve = None  # type: ignore[assignment]
    resolver = getattr(hub_resolve, "resolve_dataset_dir", None)
    if resolver is None:
        by_type = getattr(hub_resolve, "resolve_model_dir", None)
        if by_type is not None and "repo_type" in inspect.signature(by_type).parameters:
            resolver = functools.partial(by_type, repo_type="dataset")
    if resolver is not None:
        try:
            return Path(resolver(name, revision=revision, token=token))
        except FileNotFoundError as exc:
            raise DatasetNotFoundError(
                f"Dataset {name!r} not found ({exc}). Pass a format name with data_files=..., a local folder, "
                "or push the dataset to the hub (private repos need token=)."
            ) from exc
    raise DatasetNotFoundError(
        f"Dataset {name!r} not found: it is neither a format name ({sorted(READERS)}), a local file or folder, "
        "nor a repo the hub client could resolve. Pass data_files=..., a folder, or push the dataset to the hub."
    )


def load_from_disk(
    dataset_path: str | os.PathLike[str],
    keep_in_memory: bool | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """A ``Dataset`` or ``DatasetDict`` written by ``save_to_disk`` (Cove's or `datasets`')."""
    from cove.data.arrow_dataset import _only

    _only("load_from_disk", "storage_options", storage_options, None)
    path = Path(dataset_path)
    if (path / "dataset_dict.json").exists():
        return DatasetDict.load_from_disk(path, keep_in_memory=keep_in_memory)
    if (path / "state.json").exists():
        return Dataset.load_from_disk(path, keep_in_memory=keep_in_memory)
    raise DatasetNotFoundError(
        f"{str(path)!r} holds no dataset saved with save_to_disk (no state.json or dataset_dict.json)."
    )


__all__ = ["load_dataset", "load_dataset_from_folder", "load_from_disk"]
