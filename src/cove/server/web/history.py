"""History: /{repo}/commits/{rev}[/{path}] (newest first, a page at a time, per path too) and
/{repo}/commit/{sha} (what the commit changed: a unified diff of text files, key-by-key diffs of JSON
files and of the card's YAML, tensor diffs of safetensors and GGUF files, from their headers only).

Pages walk history from a start commit (the ?start= cursor), never the whole chain; a per-path page
compares at most PATH_SCAN_LIMIT commits' trees before it offers to go on."""

# no `from __future__ import annotations`: see repo.py
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from cove.errors import HubRequestError
from cove.server.deps import Db, HubDep, check_segment
from cove.server.web.cache import LRU
from cove.server.web.diffs import (
    KeyChange,
    TensorDiff,
    TextDiff,
    key_diff,
    show_value,
    tensor_diff,
    text_diff,
)
from cove.server.web.files import clean_path, decode_text, ref_choices, rev_label
from cove.server.web.markdown import split_card
from cove.server.web.render import page
from cove.server.web.repo import add_repo_route, open_repo, read_head, repo_nav
from cove.server.web.session import WebCaller
from cove.server.web.weights import format_params, header_of, weights_format
from cove.store import CommitInfo, FileEntry, RepoStore, parse_yaml_bounded

router = APIRouter(include_in_schema=False)

COMMITS_PER_PAGE = 30
PATH_SCAN_LIMIT = 500  # commits one per-path page compares before it stops and links on
MAX_CHANGED_FILES = 300  # files of a commit shown with their diffs; the rest are listed
MAX_LISTED_FILES = 1000  # files of a commit listed at all
DIFF_SIDE_BYTES = 256 * 1024  # a text file larger than this (either version) is not diffed
TOTAL_DIFF_LINES = 10_000  # diff lines one commit page shows across its files
_HEX40 = re.compile(r"^[0-9a-f]{40}$")


# --- the commit list ----------------------------------------------------------------------------------------


def _subtree(tree: dict[str, FileEntry], path: str) -> dict[str, str]:
    prefix = path + "/"
    return {p: e.oid for p, e in tree.items() if p == path or p.startswith(prefix)}


@dataclass(frozen=True)
class CommitPage:
    commits: list[CommitInfo]
    next_start: str | None  # the commit the next (older) page starts at
    scanned: int  # commits compared (per-path pages)
    stopped: bool  # a per-path page stopped at its scan limit before filling up


def walk_history(
    store: RepoStore,
    s: Session,
    start: str,
    *,
    path: str = "",
    count: int | None = None,
    scan_limit: int | None = None,
) -> CommitPage:
    """Up to count (COMMITS_PER_PAGE) commits from start back; with path, only those that changed it,
    comparing at most scan_limit (PATH_SCAN_LIMIT) commits."""
    count = COMMITS_PER_PAGE if count is None else count
    scan_limit = PATH_SCAN_LIMIT if scan_limit is None else scan_limit
    out: list[CommitInfo] = []
    commit_id: str | None = start
    scanned = 0
    while commit_id is not None and len(out) < count:
        if path and scanned >= scan_limit:
            return CommitPage(out, commit_id, scanned, True)
        info = store.get_commit(s, commit_id)
        scanned += 1
        if path:
            here = _subtree(store.tree(s, info.id), path)
            before = _subtree(store.tree(s, info.parent_id), path) if info.parent_id else {}
            if here != before:
                out.append(info)
        else:
            out.append(info)
        commit_id = info.parent_id
    return CommitPage(out, commit_id, scanned, False)


def _commits_page(repo_type: str) -> Callable[..., Any]:
    def commits_page(
        namespace: str,
        name: str,
        revision: str,
        request: Request,
        hub: HubDep,
        s: Db,
        caller: WebCaller,
        path: str = "",
        start: str | None = None,
    ) -> Any:
        store = hub.store
        repo = open_repo(repo_type, namespace, name, hub, s, caller)
        check_segment(revision, "revision")
        path = clean_path(path)
        head = store.resolve(s, repo, revision)
        if start is not None:
            if not _HEX40.match(start):
                raise HubRequestError(f"Invalid start {start!r}: pass a full commit id (the Older link's).")
            start = store.resolve(s, repo, start)  # a commit of this repo, else 404
        nav = repo_nav(s, caller, repo, "history", revision)
        found = walk_history(store, s, start or head, path=path)
        base = nav.link("commits", revision, path)
        return page(
            request,
            "repo/commits.html",
            nav=nav,
            revision=revision,
            revision_label=rev_label(revision),
            path=path,
            refs=ref_choices(store, s, nav, revision, "commits", path),
            commits=found.commits,
            older=f"{base}?start={found.next_start}" if found.next_start else None,
            newest=base if start is not None else None,
            stopped=found.stopped,
            scanned=found.scanned,
        )

    return commits_page


add_repo_route(router, "/commits/{revision:seg}", _commits_page, "commits")
add_repo_route(router, "/commits/{revision:seg}/{path:rpath}", _commits_page, "commits_path")


# --- one commit ---------------------------------------------------------------------------------------------


@dataclass
class FileChange:
    path: str
    status: str  # added | removed | modified
    old: FileEntry | None
    new: FileEntry | None
    text: TextDiff | None = None
    keys: list[KeyChange] | None = None
    keys_of: str = ""  # what the key diff compares: "JSON" or "card metadata (YAML)"
    tensors: TensorDiff | None = None
    notes: list[str] = field(default_factory=list)
    detailed: bool = True

    @property
    def anchor(self) -> str:
        return "diff-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.path)


def changed_paths(old: dict[str, FileEntry], new: dict[str, FileEntry]) -> list[tuple[str, str]]:
    out = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a is None:
            out.append((path, "added"))
        elif b is None:
            out.append((path, "removed"))
        elif (a.oid, a.sha256) != (b.oid, b.sha256):
            out.append((path, "modified"))
    return out


def _text_of(store: RepoStore, entry: FileEntry | None) -> tuple[str | None, str | None]:
    """(the file's text, or None with why not): None for a missing side is the empty text."""
    if entry is None:
        return "", None
    if entry.size > DIFF_SIDE_BYTES:
        return (
            None,
            f"too large to diff ({entry.size:,} bytes; the page diffs files up to {DIFF_SIDE_BYTES:,})",
        )
    text = decode_text(read_head(store, entry, entry.size), True)
    if text is None:
        return None, "binary file"
    return text, None


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _card_yaml(text: str, timeout: float) -> tuple[dict[str, Any] | None, str | None]:
    yaml_text, _ = split_card(text)
    if yaml_text is None:
        return {}, None
    try:
        return parse_yaml_bounded(yaml_text, timeout=timeout), None
    except HubRequestError as exc:
        return None, str(exc)


def describe_change(store: RepoStore, change: FileChange, line_budget: int) -> int:
    """Fill in change's diffs; returns the diff lines it used."""
    old, new = change.old, change.new
    kind = weights_format(change.path)
    if kind is not None:
        a = header_of(store, old) if old else None
        b = header_of(store, new) if new else None
        for side, result in (("old", a), ("new", b)):
            if result is not None and result.error:
                change.notes.append(f"The {side} header could not be read: {result.error}")
        if not any(r is not None and r.error for r in (a, b)):
            change.tensors = tensor_diff(a.header if a else None, b.header if b else None)
        return 0
    old_text, why_old = _text_of(store, old)
    new_text, why_new = _text_of(store, new)
    if old_text is None or new_text is None:
        change.notes.append(f"Not diffed: {why_new or why_old}.")
        return 0
    if change.status == "modified" and change.path.lower().endswith(".json"):
        a_obj, b_obj = _json_object(old_text), _json_object(new_text)
        if a_obj is not None and b_obj is not None:
            change.keys, change.keys_of = key_diff(a_obj, b_obj), "JSON"
    if change.path == "README.md":
        a_card, err_a = _card_yaml(old_text, store.card_timeout)
        b_card, err_b = _card_yaml(new_text, store.card_timeout)
        if a_card is not None and b_card is not None:
            change.keys, change.keys_of = key_diff(a_card, b_card), "card metadata (YAML)"
        else:
            change.notes.append(f"The card metadata could not be compared: {err_a or err_b}")
    change.text = text_diff(old_text, new_text, max_lines=max(1, line_budget))
    return len(change.text.lines)


@dataclass(frozen=True)
class CommitDiff:
    changes: list[FileChange]
    hidden: int  # changed files past MAX_CHANGED_FILES (listed without diffs)
    truncated: bool  # the diff line budget ran out


_diffs: LRU[CommitDiff] = LRU(max_items=64)


def commit_diff(store: RepoStore, s: Session, info: CommitInfo) -> CommitDiff:
    """What a commit changed against its parent (the root commit: against nothing); cached by commit id."""
    hit = _diffs.get(info.id)
    if hit is not None:
        return hit
    new = store.tree(s, info.id)
    old = store.tree(s, info.parent_id) if info.parent_id else {}
    paths = changed_paths(old, new)
    changes: list[FileChange] = []
    budget = TOTAL_DIFF_LINES
    for i, (path, status) in enumerate(paths):
        change = FileChange(path, status, old.get(path), new.get(path))
        if i >= MAX_CHANGED_FILES:
            change.detailed = False
        elif budget > 0:
            budget -= describe_change(store, change, budget)
        else:
            change.detailed = False
            change.notes.append("Not shown: the page's diff budget is spent; open the file's versions.")
        changes.append(change)
    return _diffs.put(info.id, CommitDiff(changes, max(0, len(paths) - MAX_CHANGED_FILES), budget <= 0))


def _commit_page(repo_type: str) -> Callable[..., Any]:
    def commit_page(
        namespace: str, name: str, sha: str, request: Request, hub: HubDep, s: Db, caller: WebCaller
    ) -> Any:
        store = hub.store
        repo = open_repo(repo_type, namespace, name, hub, s, caller)
        check_segment(sha, "commit id")
        commit_id = store.resolve(s, repo, sha)
        info = store.get_commit(s, commit_id)
        nav = repo_nav(s, caller, repo, "history")
        diff = commit_diff(store, s, info)
        return page(
            request,
            "repo/commit.html",
            nav=nav,
            commit=info,
            diff=diff,
            show=show_value,
            params=format_params,
            listed=MAX_LISTED_FILES,
            basename=posixpath.basename,
            tree_url=nav.link("tree", info.id),
            parent_url=f"{nav.prefix}/commit/{info.parent_id}" if info.parent_id else None,
        )

    return commit_page


add_repo_route(router, "/commit/{sha:seg}", _commit_page, "commit")
