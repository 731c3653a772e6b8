"""Content-addressed blob storage: put/get/exists by sha256, so a disk store and an object store are
interchangeable behind one small interface."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from cove.errors import BlobMismatchError

_CHUNK = 1 << 20


class BlobStore(Protocol):
    def put_stream(self, stream: BinaryIO, *, expected_sha256: str | None = None) -> tuple[str, int]:
        """Store the stream's bytes; returns (sha256, size). Raises when expected_sha256 does not match."""
        ...

    def put_bytes(self, data: bytes) -> str: ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def read(self, sha256: str) -> bytes: ...

    # garbage collection (cove gc)
    def iter_blobs(self) -> Iterator[tuple[str, float]]:
        """(sha256, last-modified unix time) of every stored blob."""
        ...

    def delete(self, sha256: str) -> None: ...

    def sweep_incoming(self, older_than: float) -> int:
        """Drop unfinished uploads (a crashed writer's leftovers) started before older_than; returns how many."""
        ...


def _check_sha(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise BlobMismatchError(f"{sha256!r} is not a sha256 hex digest (64 lowercase hex characters).")
    return sha256


class DiskBlobStore:
    """Blobs as files under root/ab/cd/<sha256>, written to a temp file then renamed (atomic)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        _check_sha(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put_stream(self, stream: BinaryIO, *, expected_sha256: str | None = None) -> tuple[str, int]:
        if expected_sha256 is not None:
            _check_sha(expected_sha256)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha = digest.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise BlobMismatchError(
                    f"Uploaded bytes hash to sha256 {sha}, not the announced {expected_sha256}: "
                    "the upload is corrupt or the oid is wrong; nothing was stored."
                )
            dest = self.path(sha)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, dest)
            os.utime(dest)  # a re-upload of a known blob refreshes it, so gc's grace period counts from now
            return sha, size
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def put_bytes(self, data: bytes) -> str:
        import io

        return self.put_stream(io.BytesIO(data))[0]

    def exists(self, sha256: str) -> bool:
        try:
            return self.path(sha256).is_file()
        except BlobMismatchError:
            return False

    def size(self, sha256: str) -> int:
        return self.path(sha256).stat().st_size

    def open(self, sha256: str) -> BinaryIO:
        return self.path(sha256).open("rb")

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def iter_blobs(self) -> Iterator[tuple[str, float]]:
        for path in self.root.glob("??/??/*"):
            name = path.name
            if len(name) == 64 and path.parent.name == name[2:4] and path.parent.parent.name == name[:2]:
                try:
                    yield name, path.stat().st_mtime
                except FileNotFoundError:  # deleted meanwhile
                    continue

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def sweep_incoming(self, older_than: float) -> int:
        count = 0
        for path in self.root.glob(".incoming-*"):
            try:
                if path.stat().st_mtime < older_than:
                    path.unlink()
                    count += 1
            except FileNotFoundError:
                continue
        return count

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes start..end (end exclusive, None = to the end)."""
        with self.open(sha256) as f:
            f.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = f.read(_CHUNK if remaining is None else min(_CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
