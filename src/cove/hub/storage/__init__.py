"""The embedded hub: versioned repos in SQLite (through SQLAlchemy) over a content-addressed blob store.

The server (cove.server) puts HTTP and auth in front of it; Cove's client reads the same data dir
directly when no server is configured, so a data dir is a hub with or without a process serving it.
"""

from cove.hub.storage.blobs import BlobStore, DiskBlobStore
from cove.hub.storage.repos import CommitOp, FileEntry, RepoStore, git_blob_oid, lfs_pointer

__all__ = ["BlobStore", "CommitOp", "DiskBlobStore", "FileEntry", "RepoStore", "git_blob_oid", "lfs_pointer"]
