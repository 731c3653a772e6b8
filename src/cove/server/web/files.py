"""Files and versions: /{repo}/tree/{rev}/{path} (a folder: branch and tag switcher, sizes, LFS badges,
the last commit of each entry) and /{repo}/blob/{rev}/{path} (a file: text highlighted, images shown,
Markdown rendered, safetensors and GGUF headers, binary files described, large files capped).

A page reads at most a file's head through ranged reads of the blob store: a 5 GB file costs its page
what a 5 kB one does. The last commit per entry comes from a bounded walk of history (LAST_COMMIT_WALK
commits); entries older than that say so."""

# no `from __future__ import annotations`: see repo.py
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from cove.errors import EntryNotFoundError
from cove.server.deps import Db, HubDep, check_segment
from cove.server.repos.service import tree_listing
from cove.server.web.cache import LRU
from cove.server.web.markdown import RepoLinks, highlight_file, render_markdown, split_card
from cove.server.web.render import page
from cove.server.web.repo import RepoNav, add_repo_route, open_repo, read_head, repo_nav, rev_quote
from cove.server.web.session import WebCaller
from cove.server.web.weights import WeightsHeader, format_params, header_of, weights_format
from cove.store import CommitInfo, FileEntry, RefRow, RepoRow, RepoStore, check_path

router = APIRouter(include_in_schema=False)

MAX_TREE_ENTRIES = 1000  # entries a folder page lists
LAST_COMMIT_WALK = 200  # commits walked back to find each entry's last change
BLOB_VIEW_BYTES = 512 * 1024  # of a text file shown; larger files show this head and a download link
HIGHLIGHT_BYTES = 256 * 1024  # text up to this size is highlighted; longer text is shown plain
MAX_TENSOR_ROWS = 2000
MAX_META_VALUE_CHARS = 20_000
SNIFF_BYTES = 8192
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".ico", ".avif")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


# --- revisions, paths, breadcrumbs --------------------------------------------------------------------------


@dataclass(frozen=True)
class RefChoice:
    kind: str  # branch | tag
    name: str
    href: str
    current: bool


def rev_label(revision: str) -> str:
    return revision[:12] if _HEX40.match(revision) else revision


def ref_choices(
    store: RepoStore, s: Session, nav: RepoNav, revision: str, kind: str, path: str
) -> list[RefChoice]:
    """Every branch and tag, each linking to the same page (tree, blob, commits) at that ref."""
    refs: list[RefRow] = store.refs(s, nav.repo)
    return [RefChoice(r.kind, r.name, nav.link(kind, r.name, path), r.name == revision) for r in refs]


def breadcrumbs(nav: RepoNav, revision: str, path: str) -> list[tuple[str, str]]:
    """(name, tree URL) for the repo root and each folder above path (the last part is the page's own)."""
    crumbs = [(nav.repo.name, nav.link("tree", revision))]
    parts = path.split("/") if path else []
    for i in range(len(parts)):
        crumbs.append((parts[i], nav.link("tree", revision, "/".join(parts[: i + 1]))))
    return crumbs


def clean_path(path: str) -> str:
    """A path of a page URL: refused (400) when it could leave the repo, as in the API."""
    path = path.strip("/")
    if path:
        check_path(path)
    return path


# --- last commit per entry ----------------------------------------------------------------------------------


def _signatures(tree: dict[str, FileEntry], folder: str) -> dict[str, tuple[str, ...]]:
    """What each child of folder is made of (its files' oids), to tell when a child changed."""
    prefix = folder + "/" if folder else ""
    out: dict[str, list[str]] = {}
    for p, e in tree.items():
        if p.startswith(prefix):
            rest = p[len(prefix) :]
            out.setdefault(rest.split("/", 1)[0], []).append(f"{rest}\0{e.oid}")
    return {k: tuple(v) for k, v in out.items()}


@dataclass(frozen=True)
class LastCommits:
    by_name: dict[str, CommitInfo]
    complete: bool  # False: the walk stopped at its bound; entries missing from by_name are older


_last: LRU[LastCommits] = LRU(max_items=512)


def last_commits(
    store: RepoStore, s: Session, head: str, folder: str, names: set[str], *, limit: int | None = None
) -> LastCommits:
    """The newest commit that changed each of names (children of folder), walking at most limit
    (LAST_COMMIT_WALK) commits back from head. Commits are immutable: cached by (head, folder, names)."""
    limit = LAST_COMMIT_WALK if limit is None else limit
    key = (head, folder, frozenset(names), limit)
    hit = _last.get(key)
    if hit is not None:
        return hit
    found: dict[str, CommitInfo] = {}
    commit_id: str | None = head
    current = _signatures(store.tree(s, head), folder)
    steps = 0
    while commit_id is not None and len(found) < len(names) and steps < limit:
        info = store.get_commit(s, commit_id)
        before = _signatures(store.tree(s, info.parent_id), folder) if info.parent_id else {}
        for name in names - found.keys():
            if current.get(name) != before.get(name):
                found[name] = info
        current, commit_id, steps = before, info.parent_id, steps + 1
    return _last.put(key, LastCommits(found, commit_id is None or len(found) == len(names)))


# --- the folder page ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeRow:
    name: str
    href: str
    is_dir: bool
    size: int
    lfs: bool
    download: str | None
    last: CommitInfo | None


def _tree_page(repo_type: str) -> Callable[..., Any]:
    def tree_page(
        namespace: str,
        name: str,
        revision: str,
        request: Request,
        hub: HubDep,
        s: Db,
        caller: WebCaller,
        path: str = "",
    ) -> Any:
        store = hub.store
        repo = open_repo(repo_type, namespace, name, hub, s, caller)
        check_segment(revision, "revision")
        path = clean_path(path)
        commit_id = store.resolve(s, repo, revision)
        tree = store.tree(s, commit_id)
        listing = tree_listing(tree, path, recursive=False)
        if listing is None:
            if path in tree:  # a file: its page is the blob page
                from fastapi.responses import RedirectResponse

                nav = repo_nav(s, caller, repo, "files", revision)
                return RedirectResponse(nav.link("blob", revision, path), status_code=302)
            raise EntryNotFoundError(
                f"Folder {path!r} not found in {repo.repo_id!r} at {rev_label(revision)}."
            )
        nav = repo_nav(s, caller, repo, "files", revision)
        shown = listing[:MAX_TREE_ENTRIES]
        names = {posixpath.basename(item["path"]) for item in shown}
        last = last_commits(store, s, commit_id, path, names)
        rows = []
        for item in shown:
            child = item["path"]
            base = posixpath.basename(child)
            is_dir = item["type"] == "directory"
            rows.append(
                TreeRow(
                    name=base,
                    href=nav.link("tree" if is_dir else "blob", revision, child),
                    is_dir=is_dir,
                    size=item["size"],
                    lfs="lfs" in item,
                    download=None if is_dir else nav.link("resolve", revision, child) + "?download=true",
                    last=last.by_name.get(base),
                )
            )
        head = store.get_commit(s, commit_id)
        return page(
            request,
            "repo/tree.html",
            nav=nav,
            revision=revision,
            revision_label=rev_label(revision),
            commit=head,
            path=path,
            crumbs=breadcrumbs(nav, revision, path),
            refs=ref_choices(store, s, nav, revision, "tree", path),
            rows=rows,
            hidden=len(listing) - len(shown),
            walk_complete=last.complete,
            walk_limit=LAST_COMMIT_WALK,
            history_url=nav.link("commits", revision, path),
        )

    return tree_page


add_repo_route(router, "/tree/{revision:seg}", _tree_page, "tree_root")
add_repo_route(router, "/tree/{revision:seg}/{path:rpath}", _tree_page, "tree_path")


# --- the file page ------------------------------------------------------------------------------------------


def decode_text(head: bytes, complete: bool) -> str | None:
    """UTF-8 text, or None for a binary file (NUL bytes, or bytes that are not UTF-8). A head cut inside
    a character loses that character only."""
    if b"\x00" in head[:SNIFF_BYTES]:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not complete and exc.start >= len(head) - 3:
            return head[: exc.start].decode("utf-8", "replace")
        return None


def plain_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_highlighted: LRU[Any] = LRU(max_items=128, max_weight=64 * 1024**2, weigh=lambda h: len(h) + 100)


def highlighted(entry: FileEntry, text: str) -> Any:
    key = (entry.sha256, posixpath.splitext(entry.path)[1].lower(), posixpath.basename(entry.path))
    hit = _highlighted.get(key)
    if hit is None:
        hit = highlight_file(text, posixpath.basename(entry.path)) or ""
        _highlighted.put(key, hit)
    return hit or None


@dataclass
class MetaRow:
    key: str
    value: str
    long: bool  # shown folded


def weights_context(header: WeightsHeader) -> dict[str, Any]:
    meta = []
    for key, value in header.metadata.items():
        text = str(value)
        if len(text) > MAX_META_VALUE_CHARS:
            text = text[:MAX_META_VALUE_CHARS] + "…"
        meta.append(MetaRow(key, text, len(text) > 200 or "\n" in text))
    return {
        "header": header,
        "tensors": header.tensors[:MAX_TENSOR_ROWS],
        "hidden_tensors": max(0, len(header.tensors) - MAX_TENSOR_ROWS),
        "params_label": format_params(header.total_params),
        "by_dtype": [(d, n, format_params(n)) for d, n in header.params_by_dtype().items()],
        "meta": meta,
    }


def file_view(store: RepoStore, nav: RepoNav, revision: str, entry: FileEntry, plain: bool) -> dict[str, Any]:
    """What the blob page shows for a file: kind + the context its template part needs."""
    path = entry.path
    if weights_format(path) is not None:
        result = header_of(store, entry)
        view: dict[str, Any] = {"kind": "weights", "format": weights_format(path), "error": result.error}
        if result.header is not None:
            view.update(weights_context(result.header))
        return view
    if path.lower().endswith(IMAGE_EXTENSIONS):
        return {"kind": "image", "src": nav.link("resolve", revision, path)}
    if entry.size == 0:
        return {"kind": "empty"}
    sniff = read_head(store, entry, min(SNIFF_BYTES, BLOB_VIEW_BYTES))
    if decode_text(sniff, entry.size <= len(sniff)) is None:
        return {"kind": "binary"}
    head = sniff if entry.size <= len(sniff) else read_head(store, entry, BLOB_VIEW_BYTES)
    complete = entry.size <= len(head)
    text = decode_text(head, complete)
    if text is None:
        return {"kind": "binary"}
    view = {"kind": "text", "complete": complete, "shown_bytes": len(head), "lines": None, "code": None}
    if path.lower().endswith((".md", ".markdown")) and not plain:
        yaml_text, body = split_card(text)
        links = RepoLinks(nav.prefix, revision, posixpath.dirname(path))
        rendered = render_markdown(body, links)
        view.update(kind="markdown", rendered=rendered, front_matter=yaml_text)
        return view
    if len(head) <= HIGHLIGHT_BYTES:
        view["code"] = highlighted(entry, text)
    if view["code"] is None:
        view["lines"] = plain_lines(text)
    return view


def _blob_page(repo_type: str) -> Callable[..., Any]:
    def blob_page(
        namespace: str,
        name: str,
        revision: str,
        path: str,
        request: Request,
        hub: HubDep,
        s: Db,
        caller: WebCaller,
        plain: str | None = None,
    ) -> Any:
        store = hub.store
        repo: RepoRow = open_repo(repo_type, namespace, name, hub, s, caller)
        check_segment(revision, "revision")
        path = clean_path(path)
        if not path:
            raise EntryNotFoundError(f"Name a file of {repo.repo_id!r} to show, e.g. README.md.")
        commit_id = store.resolve(s, repo, revision)
        nav = repo_nav(s, caller, repo, "files", revision)
        entry = store.file(s, repo, commit_id, path)
        base = posixpath.basename(path)
        last = last_commits(store, s, commit_id, posixpath.dirname(path), {base})
        source = (plain or "").lower() in ("1", "true")  # ?plain=1: a Markdown file's source
        view = file_view(store, nav, revision, entry, source)
        return page(
            request,
            "repo/blob.html",
            nav=nav,
            revision=revision,
            revision_label=rev_label(revision),
            path=path,
            entry=entry,
            crumbs=[*breadcrumbs(nav, revision, posixpath.dirname(path)), (base, "")],
            refs=ref_choices(store, s, nav, revision, "blob", path),
            last=last.by_name.get(base),
            walk_complete=last.complete,
            walk_limit=LAST_COMMIT_WALK,
            view=view,
            raw_url=nav.link("resolve", revision, path),
            download_url=nav.link("resolve", revision, path) + "?download=true",
            history_url=nav.link("commits", revision, path),
            plain=source,
            # the card editor (the accounts work) edits README.md on a branch
            can_edit=nav.can_write and path == "README.md" and not _HEX40.match(revision),
            edit_url=f"{nav.prefix}/edit/{rev_quote(revision)}/README.md",
        )

    return blob_page


add_repo_route(router, "/blob/{revision:seg}/{path:rpath}", _blob_page, "blob")
