"""Versioned repos: immutable commits of content-addressed trees, branches, tags and history.

A commit's tree is a JSON manifest (path -> git oid, size, sha256, lfs) stored in the blob store, so an
unchanged tree costs nothing. Branch heads move by compare-and-swap in the database, so two writers
racing on a branch (threads or processes) never lose a commit: a writer that named a parentCommit and
lost the race is refused with CommitConflictError; one that did not is re-applied on the new head.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cove.errors import (
    CardTooLargeError,
    CommitConflictError,
    EntryNotFoundError,
    HubRequestError,
    InvalidCardError,
    RepoExistsError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from cove.store.blobs import BlobStore, DiskBlobStore
from cove.store.cards import (
    CARD_PARSE_TIMEOUT_SECONDS,
    MAX_CARD_YAML_BYTES,
    card_from_readme_bounded,
    split_front_matter,
)
from cove.store.db import (
    CommitRow,
    LfsLinkRow,
    RefRow,
    RepoRow,
    RepoTagRow,
    RepoTermRow,
    SpaceSettingRow,
    make_engine,
    utcnow,
)
from cove.store.search import id_terms, readme_terms, readme_text, sync_tags, sync_terms
from cove.store.text import check_text

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REF_NAME = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

GITATTRIBUTES = b"""*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.gguf filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
"""


def _notify(listeners: list[Callable[..., None]], *args: Any) -> None:
    for listener in listeners:
        try:
            listener(*args)
        except Exception:  # a hook's failure must not fail the change that landed
            logging.getLogger("cove.store").exception("store listener %r failed", listener)


def git_blob_oid(data: bytes) -> str:
    """The git sha1 of a blob, as the Hub reports for regular files."""
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)  # no copy of a possibly large buffer
    return digest.hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def check_repo_type(repo_type: str | None) -> str:
    repo_type = repo_type or "model"
    if repo_type not in REPO_TYPES:
        raise HubRequestError(f"Unknown repo type {repo_type!r}: use one of {', '.join(REPO_TYPES)}.")
    return repo_type


def check_name(name: str, what: str = "name") -> str:
    if not _NAME.match(name) or name.endswith(".git") or ".." in name:
        raise HubRequestError(
            f"Invalid {what} {name!r}: use letters, digits, '-', '_' and '.', at most 96 characters, "
            "not starting with '-' or '.' and without '..'."
        )
    return name


def split_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise HubRequestError(f"Invalid repo id {repo_id!r}: expected 'namespace/name'.")
    return check_name(parts[0], "namespace"), check_name(parts[1], "repo name")


def check_ref_name(name: str) -> str:
    bad = (
        not _REF_NAME.match(name)
        or name.startswith(("/", "-", "refs/"))
        or name.endswith(("/", ".lock", "."))
        or ".." in name
        or "//" in name
        or _HEX40.match(name)
    )
    if bad:
        raise HubRequestError(
            f"Invalid branch or tag name {name!r}: use letters, digits, '.', '_', '-' and '/', "
            "without '..', not starting with 'refs/' and not a 40-hex commit id."
        )
    return name


def _is_git_dir(part: str) -> bool:
    # case-insensitive filesystems (macOS, Windows) see .GIT as .git; Windows also drops trailing dots and
    # spaces and knows the 8.3 name GIT~1
    name = part.lower().rstrip(". ")
    return name == ".git" or name == "git~1"


def check_path(path: str) -> str:
    """A repo-relative file path, refused when it could escape the repo or reach a git folder."""
    if not isinstance(path, str) or not path:
        raise HubRequestError("Empty file path: name the file inside the repo, e.g. 'config.json'.")
    if "\0" in path or "\\" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise HubRequestError(f"Invalid path {path!r}: paths are relative, with '/' separators and no NUL.")
    check_text(path, "path")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or len(path) > 1000:
        raise HubRequestError(f"Invalid path {path!r}: '..', '.' and empty segments are not allowed.")
    if any(_is_git_dir(p) for p in parts):
        raise HubRequestError(
            f"Invalid path {path!r}: no file may live in a '.git' folder (at any depth, in any case): "
            "git would run what it finds there."
        )
    return path


@dataclass(frozen=True)
class FileEntry:
    path: str
    oid: str  # git sha1 of the file (of its LFS pointer for LFS files)
    size: int
    sha256: str
    lfs: bool

    def to_json(self) -> list[Any]:
        return [self.oid, self.size, self.sha256, self.lfs]


@dataclass(frozen=True)
class CommitOp:
    kind: str  # add | delete | delete_folder | copy
    path: str
    entry: FileEntry | None = None  # for add
    src_path: str | None = None  # for copy
    src_revision: str | None = None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parent_id: str | None
    title: str
    message: str
    author: str
    created_at: dt.datetime


_locks: dict[tuple[str, int], threading.Lock] = {}
_locks_guard = threading.Lock()


def _repo_lock(key: tuple[str, int]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class RepoStore:
    """All repo operations of one data dir."""

    def __init__(
        self,
        data_dir: str | Path,
        *,
        database_url: str | None = None,
        blobs: BlobStore | None = None,
        card_timeout: float = CARD_PARSE_TIMEOUT_SECONDS,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser()
        self.card_timeout = card_timeout  # seconds a large card's parse may take (in a child process)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.blobs: BlobStore = blobs if blobs is not None else DiskBlobStore(self.data_dir / "blobs")
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'hub.sqlite'}"
        self.engine = make_engine(self.database_url)
        self.Session = sessionmaker(self.engine, expire_on_commit=False)
        # called with (repo, branch, new commit id) after a commit moved a branch (the space runtime's
        # push hook); a listener must return quickly and never raise
        self.branch_listeners: list[Callable[[RepoRow, str, str], None]] = []
        # called with (repo type, repo id) after a repo was deleted or moved away from that id
        self.gone_listeners: list[Callable[[str, str], None]] = []

    @property
    def tmp_dir(self) -> str:
        """Where request bodies are spooled: beside the disk blobs (same filesystem), else the data dir."""
        root = getattr(self.blobs, "root", None)
        path = Path(root) if root is not None else self.data_dir / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def create_tables(self) -> None:
        """Bring the schema to this Cove's revision (Alembic migrations; see cove.store.schema)."""
        from cove.store import schema

        schema.upgrade(self.engine, blobs=self.blobs)

    def check_schema(self) -> None:
        from cove.store import schema

        schema.check(self.engine, self.engine.url.render_as_string(hide_password=True))

    def session(self) -> Session:
        return self.Session()

    # --- repos --------------------------------------------------------------------------------

    def get_repo(self, s: Session, repo_type: str, repo_id: str) -> RepoRow:
        parts = repo_id.split("/")
        row = None
        if len(parts) == 2:
            row = s.scalar(
                select(RepoRow).where(
                    RepoRow.type == repo_type, RepoRow.namespace == parts[0], RepoRow.name == parts[1]
                )
            )
        if row is None:
            raise RepoNotFoundError(
                f"{repo_type.capitalize()} repo {repo_id!r} not found: check the name and type, "
                "and pass a token if it is private."
            )
        return row

    def exists(self, s: Session, repo_type: str, repo_id: str) -> bool:
        try:
            self.get_repo(s, repo_type, repo_id)
        except RepoNotFoundError:
            return False
        return True

    def create_repo(
        self,
        s: Session,
        repo_type: str,
        repo_id: str,
        *,
        private: bool = False,
        author: str,
        sdk: str | None = None,
    ) -> RepoRow:
        repo_type = check_repo_type(repo_type)
        namespace, name = split_repo_id(repo_id)
        exists = s.scalar(
            select(RepoRow).where(
                RepoRow.type == repo_type, RepoRow.namespace == namespace, RepoRow.name == name
            )
        )
        if exists is not None:
            raise RepoExistsError(f"{repo_type.capitalize()} repo {repo_id!r} already exists.")
        row = RepoRow(type=repo_type, namespace=namespace, name=name, private=private, sdk=sdk)
        s.add(row)
        s.flush()
        sync_terms(s, row.id, "id", id_terms(row.repo_id))  # what the search box finds it by
        entry = self.store_regular(GITATTRIBUTES, ".gitattributes")
        tree_sha = self._put_tree({entry.path: entry})
        commit_id = self._commit_id(row.id, tree_sha, None, author, "initial commit", "")
        s.add(
            CommitRow(
                id=commit_id,
                repo_id=row.id,
                parent_id=None,
                tree_sha256=tree_sha,
                title="initial commit",
                author=author,
            )
        )
        s.add(RefRow(repo_id=row.id, kind="branch", name=DEFAULT_BRANCH, commit_id=commit_id))
        s.commit()
        return row

    def delete_repo(self, s: Session, repo: RepoRow) -> None:
        repo_type, repo_id = repo.type, repo.repo_id
        for model in (RepoTagRow, RepoTermRow, RefRow, CommitRow, LfsLinkRow, SpaceSettingRow):
            s.query(model).filter(model.repo_id == repo.id).delete()
        s.delete(repo)
        s.commit()
        _notify(self.gone_listeners, repo_type, repo_id)

    def move_repo(self, s: Session, repo: RepoRow, to_repo_id: str) -> RepoRow:
        namespace, name = split_repo_id(to_repo_id)
        clash = s.scalar(
            select(RepoRow).where(
                RepoRow.type == repo.type, RepoRow.namespace == namespace, RepoRow.name == name
            )
        )
        if clash is not None:
            raise RepoExistsError(f"Cannot move to {to_repo_id!r}: a {repo.type} repo with that name exists.")
        old_id = repo.repo_id
        repo.namespace, repo.name = namespace, name
        repo.lower_id = f"{namespace}/{name}".lower()  # the list API's id order
        sync_terms(s, repo.id, "id", id_terms(repo.repo_id))  # and the search box's
        s.commit()
        _notify(self.gone_listeners, repo.type, old_id)
        return repo

    def repo_by_pk(self, s: Session, repo_pk: int) -> RepoRow | None:
        """The repo with this primary key, or None once deleted (signed LFS links carry the key)."""
        return s.get(RepoRow, repo_pk)

    def set_private(self, s: Session, repo: RepoRow, private: bool) -> None:
        repo.private = private
        s.commit()

    def count_download(self, s: Session, repo_pk: int) -> None:
        """Best effort: a busy database must not fail a download."""
        s.rollback()  # end the read transaction, so the write below waits for the lock instead of failing
        try:
            s.execute(update(RepoRow).where(RepoRow.id == repo_pk).values(downloads=RepoRow.downloads + 1))
            s.commit()
        except OperationalError:
            s.rollback()

    # --- blobs and trees ----------------------------------------------------------------------

    def store_regular(self, data: bytes, path: str) -> FileEntry:
        sha = self.blobs.put_bytes(data)
        return FileEntry(path=path, oid=git_blob_oid(data), size=len(data), sha256=sha, lfs=False)

    def lfs_entry(self, path: str, sha256: str, size: int) -> FileEntry:
        if not self.blobs.exists(sha256):
            raise HubRequestError(
                f"LFS object {sha256} for {path!r} was never uploaded: upload it through the LFS batch "
                "API before committing. The repo is unchanged."
            )
        real = self.blobs.size(sha256)
        if real != size:
            raise HubRequestError(
                f"LFS object {sha256} for {path!r} is {real} bytes, not the announced {size}."
            )
        return FileEntry(
            path=path, oid=git_blob_oid(lfs_pointer(sha256, size)), size=size, sha256=sha256, lfs=True
        )

    def link_lfs(self, s: Session, repo_pk: int, oid: str) -> None:
        if not self.has_lfs(s, repo_pk, oid):
            s.add(LfsLinkRow(repo_id=repo_pk, oid=oid))
            s.commit()

    def has_lfs(self, s: Session, repo_pk: int, oid: str) -> bool:
        found = s.scalar(select(LfsLinkRow).where(LfsLinkRow.repo_id == repo_pk, LfsLinkRow.oid == oid))
        return found is not None and self.blobs.exists(oid)

    def _put_tree(self, tree: dict[str, FileEntry]) -> str:
        payload = json.dumps({p: e.to_json() for p, e in sorted(tree.items())}, separators=(",", ":"))
        return self.blobs.put_bytes(payload.encode())

    def tree(self, s: Session, commit_id: str) -> dict[str, FileEntry]:
        row = s.get(CommitRow, commit_id)
        assert row is not None, commit_id
        return dict(_load_tree(self.blobs, row.tree_sha256))

    @staticmethod
    def _commit_id(
        repo_pk: int, tree_sha: str, parent: str | None, author: str, title: str, message: str
    ) -> str:
        # commit ids are global keys: the repo and a nonce keep two identical commits (same tree, author and
        # clock tick, e.g. two new repos' initial commits) apart
        stamp = f"{utcnow().isoformat()} {secrets.token_hex(8)}"
        header = f"repo {repo_pk}\ntree {tree_sha}\nparent {parent or ''}\nauthor {author} {stamp}\n\n{title}\n\n{message}"
        return hashlib.sha1(header.encode()).hexdigest()

    # --- revisions and refs -------------------------------------------------------------------

    def resolve(self, s: Session, repo: RepoRow, revision: str | None) -> str:
        """Branch, tag, refs/heads/x, refs/tags/x or a full commit id -> commit id."""
        rev = revision or DEFAULT_BRANCH
        kinds: tuple[str, ...] = ("branch", "tag")
        if rev.startswith("refs/heads/"):
            rev, kinds = rev[len("refs/heads/") :], ("branch",)
        elif rev.startswith("refs/tags/"):
            rev, kinds = rev[len("refs/tags/") :], ("tag",)
        for kind in kinds:
            ref = s.scalar(
                select(RefRow).where(RefRow.repo_id == repo.id, RefRow.kind == kind, RefRow.name == rev)
            )
            if ref is not None:
                return ref.commit_id
        if _HEX40.match(rev):
            row = s.get(CommitRow, rev)
            if row is not None and row.repo_id == repo.id:
                return row.id
        raise RevisionNotFoundError(
            f"Revision {revision!r} not found in {repo.type} repo {repo.repo_id!r}: "
            "use a branch, a tag or a full commit id (list them with list_repo_refs)."
        )

    def refs(self, s: Session, repo: RepoRow) -> list[RefRow]:
        return list(
            s.scalars(select(RefRow).where(RefRow.repo_id == repo.id).order_by(RefRow.kind, RefRow.name))
        )

    def create_ref(
        self,
        s: Session,
        repo: RepoRow,
        kind: str,
        name: str,
        revision: str | None,
        message: str = "",
        exist_ok: bool = False,
    ) -> None:
        check_ref_name(name)
        commit_id = self.resolve(s, repo, revision)
        existing = s.scalar(
            select(RefRow).where(RefRow.repo_id == repo.id, RefRow.kind == kind, RefRow.name == name)
        )
        if existing is not None:
            if exist_ok:
                return
            raise RepoExistsError(f"{kind.capitalize()} {name!r} already exists in {repo.repo_id!r}.")
        s.add(RefRow(repo_id=repo.id, kind=kind, name=name, commit_id=commit_id, message=message))
        s.commit()

    def delete_ref(self, s: Session, repo: RepoRow, kind: str, name: str) -> None:
        ref = s.scalar(
            select(RefRow).where(RefRow.repo_id == repo.id, RefRow.kind == kind, RefRow.name == name)
        )
        if ref is None:
            raise RevisionNotFoundError(f"{kind.capitalize()} {name!r} not found in {repo.repo_id!r}.")
        if kind == "branch" and name == DEFAULT_BRANCH:
            raise HubRequestError(f"The default branch {DEFAULT_BRANCH!r} cannot be deleted.")
        s.delete(ref)
        s.commit()

    def history(
        self, s: Session, repo: RepoRow, revision: str | None, path: str | None = None
    ) -> list[CommitInfo]:
        """Commits reachable from revision, newest first; with path, only those that changed it."""
        commit_id: str | None = self.resolve(s, repo, revision)
        out: list[CommitInfo] = []
        while commit_id is not None:
            row = s.get(CommitRow, commit_id)
            if row is None:
                break
            info = CommitInfo(row.id, row.parent_id, row.title, row.message, row.author, row.created_at)
            if path is None:
                out.append(info)
            else:
                here = self.tree(s, row.id)
                before = self.tree(s, row.parent_id) if row.parent_id else {}
                if _subtree(here, path) != _subtree(before, path):
                    out.append(info)
            commit_id = row.parent_id
        return out

    def get_commit(self, s: Session, commit_id: str) -> CommitInfo:
        row = s.get(CommitRow, commit_id)
        assert row is not None
        return CommitInfo(row.id, row.parent_id, row.title, row.message, row.author, row.created_at)

    # --- files --------------------------------------------------------------------------------

    def file(self, s: Session, repo: RepoRow, commit_id: str, path: str) -> FileEntry:
        check_path(path)
        entry = self.tree(s, commit_id).get(path)
        if entry is None:
            raise EntryNotFoundError(
                f"File {path!r} not found in {repo.type} repo {repo.repo_id!r} at {commit_id[:12]}."
            )
        return entry

    # --- commits ------------------------------------------------------------------------------

    def commit(
        self,
        s: Session,
        repo: RepoRow,
        ops: Iterable[CommitOp],
        *,
        title: str,
        message: str = "",
        author: str,
        branch: str | None = None,
        parent_commit: str | None = None,
    ) -> str:
        """Apply ops on the branch head and move the branch; returns the new commit id."""
        ops = list(ops)
        branch = branch or DEFAULT_BRANCH
        if branch.startswith("refs/heads/"):
            branch = branch[len("refs/heads/") :]
        if not title.strip():
            raise HubRequestError("Empty commit message: give the commit a summary.")
        for op in ops:  # parse a new card before any lock is taken (the parse is cached by content)
            if op.kind == "add" and op.path == "README.md" and op.entry is not None:
                self.card_of(op.entry)
        with _repo_lock((self.database_url, repo.id)):
            for attempt in range(50):
                if attempt:
                    s.rollback()  # a fresh snapshot of the branch head
                    time.sleep(min(0.5, 0.01 * attempt))
                try:
                    commit_id = self._commit_once(
                        s, repo, ops, branch, parent_commit, title=title, message=message, author=author
                    )
                except OperationalError:  # SQLite busy / stale snapshot: another writer got there first
                    continue
                if commit_id is not None:
                    break
            else:
                raise CommitConflictError(
                    f"Branch {branch!r} of {repo.repo_id!r} is too busy; retry the commit."
                )
        _notify(self.branch_listeners, repo, branch, commit_id)
        return commit_id

    def _commit_once(
        self,
        s: Session,
        repo: RepoRow,
        ops: list[CommitOp],
        branch: str,
        parent_commit: str | None,
        *,
        title: str,
        message: str,
        author: str,
    ) -> str | None:
        """One compare-and-swap attempt; None when the branch moved under us and a retry may succeed."""
        # FOR UPDATE (PostgreSQL; SQLite ignores it and serializes writers itself): a writer on another
        # replica waits here for the branch head instead of building a commit on a stale one; the
        # compare-and-swap below stays as the guarantee
        ref = s.scalar(
            select(RefRow)
            .where(RefRow.repo_id == repo.id, RefRow.kind == "branch", RefRow.name == branch)
            .with_for_update()
        )
        if ref is None:
            raise RevisionNotFoundError(
                f"Branch {branch!r} not found in {repo.repo_id!r}: create it first (create_branch)."
            )
        head = ref.commit_id
        if parent_commit is not None and parent_commit != head:
            raise CommitConflictError(
                f"parentCommit {parent_commit} is not the head of {branch!r} ({head}): another commit "
                "landed first. Fetch the new head and retry."
            )
        before = self.tree(s, head)
        tree = self._apply(s, repo, before, ops)
        # the card and the search terms are read before the first write below, which takes SQLite's write
        # lock: nothing slow happens while other writers wait
        readme = tree.get("README.md")
        card = self.card_of(readme) if branch == DEFAULT_BRANCH else None
        changed = branch == DEFAULT_BRANCH and readme != before.get("README.md")
        terms = self.readme_terms(readme) if changed else None
        tree_sha = self._put_tree(tree)
        commit_id = self._commit_id(repo.id, tree_sha, head, author, title, message)
        s.add(
            CommitRow(
                id=commit_id,
                repo_id=repo.id,
                parent_id=head,
                tree_sha256=tree_sha,
                title=title,
                message=message,
                author=author,
            )
        )
        result: Any = s.execute(
            update(RefRow).where(RefRow.id == ref.id, RefRow.commit_id == head).values(commit_id=commit_id)
        )
        if result.rowcount != 1:  # another process moved the branch between our read and our write
            return None
        repo.updated_at = utcnow()
        if card is not None:
            repo.card_json = json.dumps(card)
            sync_tags(s, repo.id, repo.type, card)  # the list API's filters follow the card, atomically
        if terms is not None:
            sync_terms(s, repo.id, "readme", terms)  # and the search box its README
        s.commit()
        return commit_id

    def _apply(
        self, s: Session, repo: RepoRow, tree: dict[str, FileEntry], ops: list[CommitOp]
    ) -> dict[str, FileEntry]:
        tree = dict(tree)
        for op in ops:
            check_path(op.path)
            if op.kind == "add":
                assert op.entry is not None
                _check_file_slot(tree, op.path)
                tree[op.path] = op.entry
            elif op.kind == "delete":
                if tree.pop(op.path, None) is None:
                    raise EntryNotFoundError(f"Cannot delete {op.path!r}: no such file in {repo.repo_id!r}.")
            elif op.kind == "delete_folder":
                prefix = op.path.rstrip("/") + "/"
                doomed = [p for p in tree if p.startswith(prefix)]
                if not doomed:
                    raise EntryNotFoundError(
                        f"Cannot delete folder {op.path!r}: no such folder in {repo.repo_id!r}."
                    )
                for p in doomed:
                    del tree[p]
            elif op.kind == "copy":
                if not op.src_path:
                    raise HubRequestError(f"Copying to {op.path!r} needs 'srcPath': the file to copy.")
                src_tree = (
                    tree if op.src_revision is None else self.tree(s, self.resolve(s, repo, op.src_revision))
                )
                src = src_tree.get(check_path(op.src_path))
                if src is None:
                    raise EntryNotFoundError(
                        f"Cannot copy {op.src_path!r}: no such file in {repo.repo_id!r}."
                    )
                _check_file_slot(tree, op.path)
                tree[op.path] = FileEntry(op.path, src.oid, src.size, src.sha256, src.lfs)
            else:  # pragma: no cover - the parsers only build the kinds above
                raise HubRequestError(f"Unknown commit operation {op.kind!r}.")
        return tree

    def readme_terms(self, readme: FileEntry | None) -> set[str]:
        """The words the search box finds a repo by with this README on its default branch."""
        return readme_terms(readme_text(self.blobs, readme.sha256, readme.size) if readme else "")

    def card_of(self, readme: FileEntry | None) -> dict[str, Any]:
        """The card metadata of a README (empty without one). A README whose YAML does not parse is kept
        as a file with an empty card (validate-yaml names the line); one the hub refuses to store (over
        the size cap, a YAML bomb, text that is not clean UTF-8) raises InvalidCardError, so the commit
        that brings it leaves the repo unchanged."""
        if readme is None:
            return {}
        cached = _cards.get(readme.sha256)
        if cached is None:
            # the front matter leads the file: read no more than the largest card could span
            limit = MAX_CARD_YAML_BYTES + 4096
            head = b"".join(self.blobs.iter_range(readme.sha256, 0, min(readme.size, limit)))
            text = head.decode("utf-8", "ignore" if readme.size > limit else "replace")
            try:
                unclosed = text.lstrip("\ufeff").startswith("---") and split_front_matter(text) is None
                if readme.size > limit and unclosed:
                    raise CardTooLargeError(
                        f"The README.md front matter does not end within {MAX_CARD_YAML_BYTES:,} bytes: "
                        "shorten the metadata (the card cap) or close it with a '---' line."
                    )
                cached = card_from_readme_bounded(text, timeout=self.card_timeout)
            except InvalidCardError:
                raise
            except HubRequestError:
                cached = {}
            _cards.put(readme.sha256, cached)
        return json.loads(json.dumps(cached))  # a private copy: callers may change it


def _check_file_slot(tree: dict[str, FileEntry], path: str) -> None:
    """A file may not sit where a folder is, nor under a path that is a file: such a tree could never be
    written to a disk (snapshot_download, a git checkout)."""
    if any(p.startswith(path + "/") for p in tree):
        raise HubRequestError(f"Cannot write file {path!r}: a folder with that path exists in the repo.")
    parts = path.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent in tree:
            raise HubRequestError(
                f"Cannot write file {path!r}: {parent!r} is a file in the repo, so it cannot be a folder."
            )


class _CardCache:
    """Parsed cards by README sha256 (content-addressed, so one cache serves every store)."""

    def __init__(self, size: int = 256) -> None:
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._size = size
        self._guard = threading.Lock()

    def get(self, sha: str) -> dict[str, Any] | None:
        with self._guard:
            hit = self._items.get(sha)
            if hit is not None:
                self._items.move_to_end(sha)
            return hit

    def put(self, sha: str, card: dict[str, Any]) -> None:
        with self._guard:
            self._items[sha] = card
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_cards = _CardCache()


def _subtree(tree: dict[str, FileEntry], path: str) -> dict[str, str]:
    prefix = path.rstrip("/") + "/"
    return {p: e.oid for p, e in tree.items() if p == path or p.startswith(prefix)}


_trees: OrderedDict[str, tuple[tuple[str, FileEntry], ...]] = OrderedDict()
_trees_guard = threading.Lock()


def _load_tree(blobs: BlobStore, tree_sha: str) -> tuple[tuple[str, FileEntry], ...]:
    """A tree manifest, cached by its sha256: content-addressed, so one cache serves every store."""
    with _trees_guard:
        hit = _trees.get(tree_sha)
        if hit is not None:
            _trees.move_to_end(tree_sha)
            return hit
    raw = json.loads(blobs.read(tree_sha))
    tree = tuple((p, FileEntry(p, v[0], v[1], v[2], v[3])) for p, v in raw.items())
    with _trees_guard:
        _trees[tree_sha] = tree
        while len(_trees) > 256:
            _trees.popitem(last=False)
    return tree
