"""Garbage collection of the blob store: blobs no commit, tree or pending LFS upload refers to.

Blobs are written before the database commit that refers to them, so a crash (or a refused commit)
leaves blobs nothing points at; unfinished uploads leave temp files (disk) or multipart uploads (S3).
Only those older than a grace period are removed, so a commit in flight keeps the blobs it just wrote.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import select

from cove.store.db import CommitRow, LfsLinkRow
from cove.store.repos import RepoStore, _load_tree


@dataclass
class GcReport:
    live: int  # blobs referenced
    deleted: int  # unreferenced blobs removed (or that would be, with dry_run)
    kept_recent: int  # unreferenced but younger than the grace period
    incoming: int  # unfinished uploads dropped


def collect_garbage(store: RepoStore, *, grace_seconds: float = 3600, dry_run: bool = False) -> GcReport:
    cutoff = time.time() - grace_seconds
    live: set[str] = set()
    with store.session() as s:
        for tree_sha in set(s.scalars(select(CommitRow.tree_sha256))):
            live.add(tree_sha)
            live.update(entry.sha256 for _, entry in _load_tree(store.blobs, tree_sha))
        # uploaded to a repo but not committed yet: the client commits right after the upload
        live.update(s.scalars(select(LfsLinkRow.oid)))
    deleted = kept = 0
    for sha, mtime in list(store.blobs.iter_blobs()):
        if sha in live:
            continue
        if mtime >= cutoff:
            kept += 1
            continue
        if not dry_run:
            store.blobs.delete(sha)
        deleted += 1
    incoming = 0 if dry_run else store.blobs.sweep_incoming(cutoff)
    return GcReport(live=len(live), deleted=deleted, kept_recent=kept, incoming=incoming)
