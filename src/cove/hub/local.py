"""The embedded hub: a data dir's repos read directly, with no server running.

Files are exposed as a snapshot folder of symlinks into the data dir's blob store, under
<data_dir>/snapshots/<type>s--<ns>--<name>/<commit>/, so loaders see an ordinary model folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.errors import RepoNotFoundError


def data_dir() -> Path:
    return Path(os.environ.get("COVE_DATA_DIR") or "~/.cove").expanduser()


def local_snapshot(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: str = "model",
    root: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The repo's files at revision as a local folder, or None when this data dir has no such repo.

    A missing revision of an existing repo raises RevisionNotFoundError.
    """
    base = Path(root).expanduser() if root else data_dir()
    if not (base / "hub.sqlite").is_file():
        return None
    from cove.store import DiskBlobStore, RepoStore

    store = RepoStore(base)
    try:
        with store.session() as s:
            try:
                repo = store.get_repo(s, repo_type, repo_id)
            except RepoNotFoundError:
                return None
            commit = store.resolve(s, repo, revision)
            tree = store.tree(s, commit)
    finally:
        store.engine.dispose()
    snap = base / "snapshots" / f"{repo_type}s--{repo_id.replace('/', '--')}" / commit
    blobs = store.blobs
    assert isinstance(blobs, DiskBlobStore)  # a data dir read directly keeps its blobs on disk
    for path, entry in tree.items():
        link = snap / path
        if link.is_symlink() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        try:
            link.symlink_to(blobs.path(entry.sha256))
        except OSError:
            import shutil

            shutil.copyfile(blobs.path(entry.sha256), link)
    snap.mkdir(parents=True, exist_ok=True)
    return snap


def local_create_repo(
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool = False,
    exist_ok: bool = True,
    root: str | os.PathLike[str] | None = None,
) -> None:
    from cove.errors import RepoExistsError
    from cove.store import RepoStore

    store = RepoStore(Path(root).expanduser() if root else data_dir())
    store.create_tables()
    try:
        with store.session() as s:
            store.create_repo(s, repo_type, repo_id, private=private, author=os.environ.get("USER") or "cove")
    except RepoExistsError:
        if not exist_ok:
            raise
    finally:
        store.engine.dispose()


def local_upload(
    repo_id: str,
    files: list[tuple[str, Path | bytes]],
    *,
    repo_type: str = "model",
    commit_message: str,
    create_repo: bool = True,
    private: bool = False,
    revision: str | None = None,
    author: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> str:
    """Commit files straight into the data dir's store (no server); returns the commit id.

    This is push_to_hub when no hub endpoint is configured: `cove serve` on the same data dir then
    serves the repo.
    """
    from cove.store import CommitOp, RepoStore

    base = Path(root).expanduser() if root else data_dir()
    store = RepoStore(base)
    store.create_tables()
    author = author or os.environ.get("USER") or "cove"
    try:
        with store.session() as s:
            try:
                repo = store.get_repo(s, repo_type, repo_id)
            except RepoNotFoundError:
                if not create_repo:
                    raise
                repo = store.create_repo(s, repo_type, repo_id, private=private, author=author)
            ops = []
            for path, src in files:
                if isinstance(src, bytes | bytearray):
                    entry = store.store_regular(bytes(src), path)
                elif Path(src).stat().st_size > 10 * 1024**2:
                    with Path(src).open("rb") as f:
                        sha, size = store.blobs.put_stream(f)
                    store.link_lfs(s, repo.id, sha)
                    entry = store.lfs_entry(path, sha, size)
                else:
                    entry = store.store_regular(Path(src).read_bytes(), path)
                ops.append(CommitOp("add", path, entry))
            return store.commit(s, repo, ops, title=commit_message, author=author, branch=revision)
    finally:
        store.engine.dispose()
