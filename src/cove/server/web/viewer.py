"""The dataset viewer: per config and split, the first rows as a table with column types and the row count,
read through cove.data streaming (`load_dataset(folder, name=config, streaming=True)`).

The folder is materialized from the repo's tree once per set of data files (content-addressed, reused):
Parquet, Arrow and compressed files are links to their blobs (the readers seek what they need), line-based
files (CSV, JSON Lines, text) over HEAD_BYTES become a copy of their first bytes cut at a line end, and
the card's `configs:` is written from the store's bounded parse, so the viewer never parses a card itself.
Reading stops at VIEW_ROWS rows and, counting on, at COUNT_SECONDS; the whole read runs in one worker
thread and a page waits at most TIME_LIMIT for it. Whatever the files' size, a page costs bounded bytes,
memory and time. The row count says where it comes from: the card's dataset_info, an exact count (every
row read), an estimate (from the sampled bytes), or a lower bound."""

# no `from __future__ import annotations`: see repo.py
import concurrent.futures
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cove.errors import DatasetError, EntryNotFoundError
from cove.server.deps import Db, HubDep
from cove.server.web.cache import LRU
from cove.server.web.render import page
from cove.server.web.repo import open_repo, repo_nav
from cove.server.web.session import WebCaller
from cove.store import DEFAULT_BRANCH, FileEntry, RepoStore

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

VIEW_ROWS = 100  # rows the viewer shows (the card page shows the first CARD_ROWS of them)
CARD_ROWS = 10
MAX_COLUMNS = 100
MAX_CELL_CHARS = 300
HEAD_BYTES = 1024**2  # of a large line-based file, sampled
COPY_BUDGET = 64 * 1024**2  # bytes copied into one materialized folder
MAX_COPY_BYTES = 64 * 1024**2  # a Parquet/Arrow file copied whole from a store that is not a disk
MAX_DATA_FILES = 2000
TIME_LIMIT = 5.0  # seconds a page waits for its preview
READ_SECONDS = 3.0  # seconds the reader reads rows (and counts) before it stops
COUNT_SECONDS = 1.0  # seconds spent counting on past the shown rows
KEEP_FOLDERS = 16  # materialized folders kept on disk

_LINE_FORMATS = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".txt", ".text")
_BINARY_FORMATS = (".parquet", ".arrow")
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst")


def data_format(path: str) -> str | None:
    """'line' (CSV, JSON, text), 'binary' (Parquet, Arrow, compressed) or None for files no reader takes."""
    name = path.lower()
    for ext in _COMPRESSED:
        if name.endswith(ext):
            return "binary" if name[: -len(ext)].endswith(_LINE_FORMATS) else None
    if name.endswith(_LINE_FORMATS):
        return "line"
    if name.endswith(_BINARY_FORMATS):
        return "binary"
    return None


def has_data(repo_type: str, tree: dict[str, FileEntry]) -> bool:
    """Whether a repo's page shows the viewer: a dataset with files a reader takes."""
    return repo_type == "dataset" and any(data_format(p) is not None for p in tree)


# --- what the page shows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str


@dataclass(frozen=True)
class Cell:
    text: str
    kind: str  # "value" | "null" | "cut" (shortened) | "binary"


@dataclass
class SplitPreview:
    config: str
    split: str
    columns: list[Column] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)
    num_rows: int | None = None
    count_kind: str = "unknown"  # card | exact | estimated | at least | unknown
    types_inferred: bool = False
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class ViewerState:
    configs: list[str]
    config: str
    splits: list[str] = field(default_factory=list)
    split: str | None = None
    preview: SplitPreview | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


# --- the materialized folder --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Materialized:
    folder: Path
    sampled: frozenset[str]  # paths of files cut to their head
    skipped: tuple[str, ...]  # why some files were left out
    data_bytes: int  # bytes of every data file in the repo
    kept_bytes: int  # bytes of them the folder holds


def _card_configs(card: dict[str, Any]) -> list[dict[str, Any]]:
    configs = card.get("configs")
    return [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []


def _viewer_root(store: RepoStore) -> Path:
    return store.data_dir / "web-viewer"


def _blob_path(store: RepoStore, sha256: str) -> Path | None:
    path_of = getattr(store.blobs, "path", None)  # a DiskBlobStore: blobs are files to link to
    return Path(path_of(sha256)) if path_of is not None else None


def _write_head(store: RepoStore, entry: FileEntry, dest: Path, limit: int) -> int:
    """The file's first bytes up to limit, cut after the last line end; returns the bytes written."""
    head = b"".join(store.blobs.iter_range(entry.sha256, 0, min(entry.size, limit)))
    if entry.size > limit:
        cut = head.rfind(b"\n")
        head = head[: cut + 1] if cut >= 0 else b""
    dest.write_bytes(head)
    return len(head)


def _place(store: RepoStore, entry: FileEntry, dest: Path, budget: list[int]) -> tuple[int, bool, str | None]:
    """Put one data file into the folder: (bytes kept, sampled, why skipped)."""
    kind = data_format(entry.path)
    blob = _blob_path(store, entry.sha256)
    if kind == "line" and entry.size > HEAD_BYTES:
        if entry.path.lower().endswith(".json"):
            first = b"".join(store.blobs.iter_range(entry.sha256, 0, min(entry.size, 4096))).lstrip()
            if first.startswith(b"["):
                return 0, False, f"{entry.path}: a JSON array over {HEAD_BYTES:,} bytes cannot be sampled"
        if budget[0] < HEAD_BYTES:
            return 0, False, f"{entry.path}: over the viewer's sampling budget"
        kept = _write_head(store, entry, dest, HEAD_BYTES)
        budget[0] -= kept
        return kept, True, None
    if blob is not None:
        os.symlink(blob, dest)
        return entry.size, False, None
    if entry.size > MAX_COPY_BYTES or entry.size > budget[0]:
        return 0, False, f"{entry.path}: {entry.size:,} bytes, too large to fetch for a preview"
    budget[0] -= _write_head(store, entry, dest, entry.size)
    return entry.size, False, None


def materialize(store: RepoStore, tree: dict[str, FileEntry], card: dict[str, Any]) -> Materialized:
    """The dataset's data files (and configs) as a folder cove.data reads; made once per content."""
    files = sorted(p for p in tree if data_format(p) is not None)
    configs = _card_configs(card)
    if len(files) > MAX_DATA_FILES:
        raise DatasetError(
            f"The dataset has {len(files):,} data files, more than the viewer's {MAX_DATA_FILES:,}: "
            "load it with cove.load_dataset to look at it."
        )
    digest = hashlib.sha256(json.dumps([configs, [(p, tree[p].sha256) for p in files]]).encode())
    folder = _viewer_root(store) / digest.hexdigest()[:40]
    manifest = folder / ".viewer.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        os.utime(folder)
        return Materialized(
            folder, frozenset(data["sampled"]), tuple(data["skipped"]), data["bytes"], data["kept"]
        )
    root = _viewer_root(store)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=".building-"))
    sampled: list[str] = []
    skipped: list[str] = []
    budget = [COPY_BUDGET]
    kept_total = 0
    try:
        if configs:
            # JSON is YAML: the configs as the store parsed them (bounded), never the README's own YAML
            (work / "README.md").write_text("---\n" + json.dumps({"configs": configs}) + "\n---\n")
        for path in files:
            dest = work / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            kept, cut, why = _place(store, tree[path], dest, budget)
            kept_total += kept
            if cut:
                sampled.append(path)
            if why:
                skipped.append(why)
        data_bytes = sum(tree[p].size for p in files)
        info = {"sampled": sampled, "skipped": skipped, "bytes": data_bytes, "kept": kept_total}
        (work / ".viewer.json").write_text(json.dumps(info))
        try:
            os.rename(work, folder)
        except OSError:  # another request built it first: use theirs
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _evict(root, keep=folder)
    return Materialized(folder, frozenset(sampled), tuple(skipped), data_bytes, kept_total)


def _evict(root: Path, keep: Path) -> None:
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p != keep]
    folders.sort(key=lambda p: p.stat().st_mtime)
    for old in folders[: max(0, len(folders) - (KEEP_FOLDERS - 1))]:
        shutil.rmtree(old, ignore_errors=True)


# --- reading ------------------------------------------------------------------------------------------------


def feature_type(feature: Any) -> str:
    from cove.data import ClassLabel, LargeList, List, Value

    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, ClassLabel):
        return f"class label ({len(feature.names or [])})"
    if isinstance(feature, (List, LargeList)):
        return f"list<{feature_type(feature.feature)}>"
    if isinstance(feature, dict):
        return "struct"
    return type(feature).__name__


def value_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    if isinstance(value, list):
        inner = next((value_type(v) for v in value if v is not None), "null")
        return f"list<{inner}>"
    if isinstance(value, dict):
        return "struct"
    return type(value).__name__


def cell(value: Any) -> Cell:
    if value is None or (isinstance(value, float) and value != value):
        return Cell("null", "null")
    if isinstance(value, (bytes, bytearray)):
        return Cell(f"{len(value):,} bytes", "binary")
    if isinstance(value, dict) and "bytes" in value and isinstance(value.get("bytes"), (bytes, bytearray)):
        return Cell(f"{len(value['bytes']):,} bytes of media", "binary")
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, bool):
        text = "true" if value else "false"
    if len(text) > MAX_CELL_CHARS:
        return Cell(text[:MAX_CELL_CHARS] + "…", "cut")
    return Cell(text, "value")


def _card_count(card: dict[str, Any], config: str, split: str) -> int | None:
    """num_examples of config/split from the card's dataset_info (a mapping, or a list per config)."""
    info = card.get("dataset_info")
    entries = info if isinstance(info, list) else [info]
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("config_name", "default") != config:
            continue
        for item in entry.get("splits") or []:
            if (
                isinstance(item, dict)
                and item.get("name") == split
                and isinstance(item.get("num_examples"), int)
            ):
                return int(item["num_examples"])
    return None


def _parquet_rows(folder: Path) -> int | None:
    import pyarrow.parquet as pq

    total = 0
    for path in sorted(folder.rglob("*.parquet")):
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError):
            return None
    return total


def read_split(
    made: Materialized, card: dict[str, Any], config: str, split: str, splits: list[str], stream: Any
) -> SplitPreview:
    """The first rows of one split and what is known of its row count."""
    preview = SplitPreview(config, split)
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    count, ended = 0, False
    count_until: float | None = None  # once the shown rows are in, counting on has its own budget
    iterator = iter(stream)
    while True:
        now = time.monotonic()
        if now - started > READ_SECONDS or (count_until is not None and now > count_until):
            break
        try:
            row = next(iterator)
        except StopIteration:
            ended = True
            break
        count += 1
        if len(rows) < VIEW_ROWS:
            rows.append(row)
            if len(rows) == VIEW_ROWS:
                count_until = time.monotonic() + COUNT_SECONDS
    if count < VIEW_ROWS and not ended:
        preview.notes.append(f"Reading stopped after {READ_SECONDS:g} s: these are the rows read by then.")
    features = stream.features
    names: list[str] = list(features) if features else list(stream.column_names or [])
    for row in rows:
        names += [k for k in row if k not in names]
    if len(names) > MAX_COLUMNS:
        preview.notes.append(f"Showing {MAX_COLUMNS} of {len(names)} columns.")
        names = names[:MAX_COLUMNS]
    for name in names:
        if features and name in features:
            preview.columns.append(Column(name, feature_type(features[name])))
        else:
            preview.types_inferred = True
            first = next((r.get(name) for r in rows if r.get(name) is not None), None)
            preview.columns.append(Column(name, value_type(first)))
    preview.rows = [[cell(row.get(name)) for name in names] for row in rows]
    complete = not made.sampled and not made.skipped
    from_card = _card_count(card, config, split)
    if from_card is not None:
        preview.num_rows, preview.count_kind = from_card, "card"
    elif ended and complete:
        preview.num_rows, preview.count_kind = count, "exact"
    elif len(splits) == 1 and all(p.endswith(".parquet") for p in _data_paths(made.folder)):
        total = _parquet_rows(made.folder)
        preview.num_rows, preview.count_kind = (total, "exact") if total is not None else (count, "at least")
    elif ended and len(splits) == 1 and made.kept_bytes:
        preview.num_rows, preview.count_kind = round(count * made.data_bytes / made.kept_bytes), "estimated"
    else:
        preview.num_rows, preview.count_kind = count, "at least"
    if made.sampled:
        preview.notes.append(
            f"{len(made.sampled)} large file(s) sampled: the viewer reads the first {HEAD_BYTES // 1024**2} MB of each."
        )
    return preview


def _data_paths(folder: Path) -> list[str]:
    return [
        str(p)
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name != "README.md"
    ]


def _compute(
    store: RepoStore, tree: dict[str, FileEntry], card: dict[str, Any], config: str, split: str | None
) -> ViewerState:
    from cove.data import load_dataset

    configs = [str(c.get("config_name", "default")) for c in _card_configs(card)] or ["default"]
    state = ViewerState(configs=configs, config=config if config in configs else configs[0])
    try:
        made = materialize(store, tree, card)
        state.notes += list(made.skipped)
        name = state.config if _card_configs(card) else None
        streams = load_dataset(str(made.folder), name=name, streaming=True)
        state.splits = list(streams)
        if not state.splits:
            state.error = "The dataset has no splits to show."
            return state
        state.split = split if split in state.splits else state.splits[0]
        state.preview = read_split(made, card, state.config, state.split, state.splits, streams[state.split])
    except Exception as exc:  # untrusted files: any reader error is the page's message, never a 500
        log.info("dataset viewer: %s: %s", type(exc).__name__, exc)
        state.error = f"The viewer could not read this dataset: {exc}"
    return state


_previews: LRU[ViewerState] = LRU(max_items=128)
_worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="cove-viewer")
_pending: dict[Any, concurrent.futures.Future[ViewerState]] = {}  # reads in flight, shared by their pages
_pending_guard = threading.RLock()  # a finished future runs its callback at once, in this thread


def _finished(key: Any, future: "concurrent.futures.Future[ViewerState]") -> None:
    with _pending_guard:
        _pending.pop(key, None)
    if future.exception() is None:
        _previews.put(key, future.result())


def preview(
    store: RepoStore, tree: dict[str, FileEntry], card: dict[str, Any], config: str | None, split: str | None
) -> ViewerState:
    """The viewer's state for config/split (None: the first), from the cache, else read within TIME_LIMIT."""
    files = sorted((p, tree[p].sha256) for p in tree if data_format(p) is not None)
    if not files:
        return ViewerState(
            configs=[],
            config="",
            error="No data files the viewer can read (CSV, JSON Lines, Parquet, text, Arrow).",
        )
    key = (
        hashlib.sha256(
            json.dumps([files, _card_configs(card), card.get("dataset_info")], default=str).encode()
        ).hexdigest(),
        config,
        split,
    )
    hit = _previews.get(key)
    if hit is not None:
        return hit
    with _pending_guard:
        future = _pending.get(key)
        if future is None:
            future = _worker.submit(_compute, store, tree, card, config or "default", split)
            _pending[key] = future
            future.add_done_callback(lambda f: _finished(key, f))
    try:
        return future.result(timeout=TIME_LIMIT)
    except concurrent.futures.TimeoutError:
        return ViewerState(
            configs=[],
            config=config or "",
            error=f"The preview is still being read (over {TIME_LIMIT:g} s): reload the page in a moment.",
        )


def _viewer_page(
    namespace: str,
    name: str,
    request: Request,
    hub: HubDep,
    s: Db,
    caller: WebCaller,
    config: str | None = None,
    split: str | None = None,
) -> Any:
    store = hub.store
    repo = open_repo("dataset", namespace, name, hub, s, caller)
    nav = repo_nav(s, caller, repo, "viewer")
    tree = store.tree(s, store.resolve(s, repo, DEFAULT_BRANCH))
    state = preview(store, tree, nav.card, config, split)
    if config is not None and state.configs and config not in state.configs:
        raise EntryNotFoundError(f"Config {config!r} not found in {repo.repo_id!r}: it has {state.configs}.")
    if split is not None and state.splits and split not in state.splits:
        raise EntryNotFoundError(
            f"Split {split!r} not found in config {state.config!r}: it has {state.splits}."
        )
    return page(request, "repo/viewer.html", nav=nav, viewer=state, full=True)


def viewer_default(
    namespace: str,
    name: str,
    request: Request,
    hub: HubDep,
    s: Db,
    caller: WebCaller,
    config: str | None = None,
) -> Any:
    """The first split of config (?config=; default: the first config)."""
    return _viewer_page(namespace, name, request, hub, s, caller, config)


def viewer_split(
    namespace: str,
    name: str,
    config: str,
    split: str,
    request: Request,
    hub: HubDep,
    s: Db,
    caller: WebCaller,
) -> Any:
    return _viewer_page(namespace, name, request, hub, s, caller, config, split)


router.add_api_route(
    "/datasets/{namespace:seg}/{name:seg}/viewer",
    viewer_default,
    methods=["GET"],
    response_class=HTMLResponse,
)
router.add_api_route(
    "/datasets/{namespace:seg}/{name:seg}/viewer/{config:seg}/{split:seg}",
    viewer_split,
    methods=["GET"],
    response_class=HTMLResponse,
)
