"""An S3-compatible blob store (AWS S3, SeaweedFS, MinIO, Ceph...) behind the same put/get/exists interface
as the disk store, so replicas of the server share one store.

Keys are <prefix>blobs/ab/cd/<sha256>. A blob only appears once complete: small blobs are one PUT, large
ones a multipart upload that is completed only after the bytes hashed to the announced sha256, so a
crashed writer leaves an unfinished multipart upload (never a partial object), which `cove gc` aborts.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cove.errors import BlobMismatchError, BlobStoreConfigError
from cove.store.blobs import _check_sha

_PART = 8 * 1024**2  # multipart part size (S3 needs at least 5 MiB for all parts but the last)
_CHUNK = 1 << 20


def _read_full(stream: BinaryIO, n: int) -> bytes:
    """Up to n bytes: a socket-backed stream may return fewer per read."""
    parts, got = [], 0
    while got < n:
        chunk = stream.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


class S3BlobStore:
    def __init__(
        self,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "",
        spool_dir: str | Path | None = None,
        create_bucket: bool = True,
    ) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise BlobStoreConfigError("The S3 blob store needs a bucket: set COVE_S3_BUCKET.")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.spool_dir = str(spool_dir) if spool_dir else None
        self.endpoint_url = endpoint_url
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or "us-east-1",
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=64,
                connect_timeout=10,
                read_timeout=120,
            ),
        )
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            if code not in ("404", "NoSuchBucket", "NotFound") or not create_bucket:
                raise BlobStoreConfigError(
                    f"S3 bucket {bucket!r} at {endpoint_url or 'AWS'} is not usable ({code}): check "
                    "COVE_S3_BUCKET and the credentials (COVE_S3_ACCESS_KEY/COVE_S3_SECRET_KEY)."
                ) from exc
            self.client.create_bucket(Bucket=bucket)
        except BotoCoreError as exc:
            raise BlobStoreConfigError(
                f"Cannot reach the S3 endpoint {endpoint_url or 'AWS'}: {exc}. Check COVE_S3_ENDPOINT_URL."
            ) from exc

    def key(self, sha256: str) -> str:
        _check_sha(sha256)
        return f"{self.prefix}blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    # --- writes -------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        # written even when present: the fresh LastModified keeps a blob that a commit in flight is about to
        # reference out of reach of `cove gc`'s grace period
        self.client.put_object(Bucket=self.bucket, Key=self.key(sha), Body=data)
        return sha

    def put_stream(self, stream: BinaryIO, *, expected_sha256: str | None = None) -> tuple[str, int]:
        if expected_sha256 is None:
            return self._put_unknown(stream)
        key = self.key(expected_sha256)
        digest, size = hashlib.sha256(), 0
        chunk = _read_full(stream, _PART)
        if len(chunk) < _PART:  # one part: verify, then a single PUT
            digest.update(chunk)
            self._verify(digest.hexdigest(), expected_sha256)
            self.client.put_object(Bucket=self.bucket, Key=key, Body=chunk)
            return expected_sha256, len(chunk)
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            while chunk:
                digest.update(chunk)
                size += len(chunk)
                number = len(parts) + 1
                etag = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
                )["ETag"]
                parts.append({"ETag": etag, "PartNumber": number})
                chunk = _read_full(stream, _PART)
            self._verify(digest.hexdigest(), expected_sha256)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return expected_sha256, size

    def _put_unknown(self, stream: BinaryIO) -> tuple[str, int]:
        """The key is the hash, so bytes of unknown hash are spooled locally (memory, then disk) first."""
        digest, size = hashlib.sha256(), 0
        with tempfile.SpooledTemporaryFile(max_size=_PART, dir=self.spool_dir) as spool:
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            sha = digest.hexdigest()
            spool.seek(0)
            self.put_stream(spool, expected_sha256=sha)  # type: ignore[arg-type]
        return sha, size

    @staticmethod
    def _verify(got: str, expected: str) -> None:
        if got != expected:
            raise BlobMismatchError(
                f"Uploaded bytes hash to sha256 {got}, not the announced {expected}: "
                "the upload is corrupt or the oid is wrong; nothing was stored."
            )

    # --- reads --------------------------------------------------------------------------------

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def exists(self, sha256: str) -> bool:
        try:
            return self._head(sha256) is not None
        except BlobMismatchError:
            return False

    def size(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise FileNotFoundError(f"Blob {sha256} is not in bucket {self.bucket!r}.")
        return int(head["ContentLength"])

    def read(self, sha256: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"].read()

    def open(self, sha256: str) -> BinaryIO:
        return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes start..end (end exclusive), streamed from the store in 1 MiB chunks."""
        if end is not None and end <= start:
            return
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(sha256)}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        body = self.client.get_object(**args)["Body"]
        try:
            yield from body.iter_chunks(_CHUNK)
        finally:
            body.close()

    def presigned_url(self, sha256: str, expires: int = 3600) -> str:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(sha256)}, ExpiresIn=expires
        )

    # --- garbage collection ---------------------------------------------------------------------

    def iter_blobs(self) -> Iterator[tuple[str, float]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}blobs/"):
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if len(name) == 64:
                    yield name, obj["LastModified"].timestamp()

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))

    def sweep_incoming(self, older_than: float) -> int:
        count = 0
        resp = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}blobs/")
        for upload in resp.get("Uploads", []):
            if upload["Initiated"].timestamp() < older_than:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                count += 1
        return count
