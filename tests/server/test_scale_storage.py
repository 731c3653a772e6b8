"""The hub at scale, storage side: Alembic migrations on SQLite and PostgreSQL, the S3 blob store on a
real SeaweedFS, presigned downloads, and `cove gc`."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from cove.errors import BlobMismatchError, SchemaOutOfDateError
from tests.server.conftest import start_hub

pytestmark = pytest.mark.server


def _schema_diff(engine) -> list:  # type: ignore[no-untyped-def]
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from cove.store.db import Base

    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrations_build_exactly_the_models_schema(backend, tmp_path, request):
    from cove.store import make_engine, schema

    url = (
        f"sqlite:///{tmp_path / 'hub.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres").new_database()
    )
    engine = make_engine(url)
    assert schema.current_revision(engine) is None
    before, after = schema.upgrade(engine)
    assert (before, after) == (None, schema.head_revision())
    assert _schema_diff(engine) == []
    assert schema.upgrade(engine) == (after, after)  # idempotent
    engine.dispose()


def test_server_on_postgres_refuses_a_schema_that_is_behind(postgres, tmp_path):
    from cove.cli.main import main
    from cove.server.app import create_app
    from cove.server.settings import Settings

    url = postgres.new_database()
    settings = Settings(data_dir=tmp_path, database_url=url, import_bundled=False)
    with pytest.raises(SchemaOutOfDateError) as err:
        create_app(settings)
    assert "cove db upgrade" in str(err.value) and "no Cove schema" in str(err.value)
    assert main(["db", "current", "--database-url", url, "--data-dir", str(tmp_path)]) == 1
    assert main(["db", "upgrade", "--database-url", url, "--data-dir", str(tmp_path)]) == 0
    assert main(["db", "current", "--database-url", url, "--data-dir", str(tmp_path)]) == 0
    app = create_app(settings)
    with app.state.hub.store.engine.connect() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        conn.commit()
    with pytest.raises(SchemaOutOfDateError, match="revision 0000"):
        create_app(settings)


def test_sqlite_data_dir_from_before_migrations_is_adopted(tmp_path):
    """A data dir whose tables create_all made (before Alembic) is stamped at the baseline, not rebuilt."""
    from cove.store import make_engine, schema
    from cove.store.db import Base

    engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (name, kind, fullname, is_admin, created_at) "
                "VALUES ('old', 'user', '', 0, '2020-01-01')"
            )
        )
    engine.dispose()
    _live, server, thread = start_hub(tmp_path)
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'hub.sqlite'}")
        assert schema.current_revision(engine) == schema.head_revision()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM accounts WHERE name = 'old'")).scalar() == 1
        engine.dispose()
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)


@pytest.fixture
def s3_store(seaweed, tmp_path):  # type: ignore[no-untyped-def]
    from cove.store import S3BlobStore

    cfg = seaweed.new_bucket_settings()
    return S3BlobStore(
        bucket=cfg["s3_bucket"],
        prefix=cfg["s3_prefix"],
        endpoint_url=cfg["s3_endpoint_url"],
        access_key=cfg["s3_access_key"],
        secret_key=cfg["s3_secret_key"],
        spool_dir=tmp_path,
    )


def test_s3_store_streams_verifies_and_ranges(s3_store):
    big = os.urandom(19 * 1024**2 + 123)  # three multipart parts
    sha = hashlib.sha256(big).hexdigest()
    assert s3_store.put_stream(io.BytesIO(big), expected_sha256=sha) == (sha, len(big))
    assert s3_store.exists(sha) and s3_store.size(sha) == len(big)
    assert b"".join(s3_store.iter_range(sha)) == big
    assert b"".join(s3_store.iter_range(sha, 5, 9 * 1024**2)) == big[5 : 9 * 1024**2]
    assert b"".join(s3_store.iter_range(sha, len(big) - 1)) == big[-1:]
    # a wrong announced hash stores nothing, for one-part and multipart bodies alike
    for body in (b"tiny", big[:-1]):
        with pytest.raises(BlobMismatchError):
            s3_store.put_stream(io.BytesIO(body), expected_sha256="0" * 64)
        assert not s3_store.exists("0" * 64)
    assert s3_store.sweep_incoming(time.time() + 60) == 0  # aborted uploads left nothing behind
    empty = s3_store.put_bytes(b"")
    assert s3_store.size(empty) == 0 and b"".join(s3_store.iter_range(empty)) == b""
    small_sha, size = s3_store.put_stream(io.BytesIO(b"hello"))
    assert (small_sha, size) == (hashlib.sha256(b"hello").hexdigest(), 5)
    assert {small_sha, sha, empty} <= {b for b, _ in s3_store.iter_blobs()}
    s3_store.delete(small_sha)
    assert not s3_store.exists(small_sha)


def test_s3_unfinished_multipart_upload_is_invisible_and_swept(s3_store):
    sha = hashlib.sha256(b"never finished").hexdigest()
    key = s3_store.key(sha)
    upload = s3_store.client.create_multipart_upload(Bucket=s3_store.bucket, Key=key)
    s3_store.client.upload_part(
        Bucket=s3_store.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
    )
    assert not s3_store.exists(sha)  # a crashed writer's part is never served
    assert s3_store.sweep_incoming(time.time() - 3600) == 0  # too young
    assert s3_store.sweep_incoming(time.time() + 60) == 1
    left = s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket, Prefix=s3_store.prefix)
    assert left.get("Uploads", []) == []


def test_presigned_download_redirects_lfs_files_to_the_store(
    seaweed, postgres, tmp_path, request, monkeypatch
):
    import huggingface_hub.constants
    from huggingface_hub import hf_hub_download

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)

    from tests.server.conftest import backend_settings

    settings = backend_settings(request, "postgres")
    live, server, thread = start_hub(
        tmp_path / "hub", lfs_threshold_bytes=1024, s3_presign_downloads=True, **settings
    )
    try:
        api = live.api(headers={"X-Cove-Upload-Mode": "lfs", "X-Cove-Client-Xet": "off"})
        api.create_repo("alice/presigned")
        payload = os.urandom(300_000)
        api.upload_file(path_or_fileobj=payload, path_in_repo="w.bin", repo_id="alice/presigned")
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="alice/presigned")
        r = httpx.get(f"{live.url}/alice/presigned/resolve/main/w.bin")
        assert r.status_code == 302 and r.headers["location"].startswith(seaweed.endpoint)
        assert r.headers["X-Linked-Size"] == str(len(payload))
        # small regular files still come from the server itself
        assert httpx.get(f"{live.url}/alice/presigned/resolve/main/config.json").content == b"{}"
        got = hf_hub_download(
            "alice/presigned", "w.bin", endpoint=live.url, token=False, cache_dir=tmp_path / "cache"
        )
        assert Path(got).read_bytes() == payload
        ranged = httpx.get(
            f"{live.url}/alice/presigned/resolve/main/w.bin",
            headers={"Range": "bytes=10-19"},
            follow_redirects=True,
        )
        assert ranged.status_code == 206 and ranged.content == payload[10:20]
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)
