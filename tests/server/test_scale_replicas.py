"""Two `cove serve` replicas on one PostgreSQL and one S3 store: commits through one are visible through the
other at once, and concurrent commits to one branch through both serialize with no lost update."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.services import ServeProcess, cove_cli, start_serve

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def replicas(postgres, seaweed, tmp_path_factory) -> Iterator[tuple[list[ServeProcess], str]]:
    shared = {
        "database_url": postgres.new_database(),
        **seaweed.new_bucket_settings(),
        "secret": secrets.token_hex(32),
    }
    root = tmp_path_factory.mktemp("replicas")
    admin = {**shared, "data_dir": root / "admin"}
    cove_cli(["db", "upgrade"], admin)  # the operator migrates once; the servers only check
    token = cove_cli(["user", "add", "alice"], admin).strip().splitlines()[-1]
    servers: list[ServeProcess] = []
    try:
        for i in range(2):  # separate data dirs: nothing is shared but the database and the store
            servers.append(start_serve({**shared, "data_dir": root / f"replica{i}"}, root))
        yield servers, token
    finally:
        for server in servers:
            server.stop()


def test_a_commit_through_one_replica_is_visible_through_the_other(replicas, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    (a, b), token = replicas
    api_a, api_b = HfApi(endpoint=a.url, token=token), HfApi(endpoint=b.url, token=token)
    api_a.create_repo("alice/shared")
    commit = api_a.upload_file(path_or_fileobj=b"via A", path_in_repo="a.txt", repo_id="alice/shared")
    info = api_b.model_info("alice/shared")
    assert info.sha == commit.oid
    path = hf_hub_download("alice/shared", "a.txt", endpoint=b.url, token=token, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"via A"
    api_b.create_branch("alice/shared", branch="dev")
    assert "dev" in {br.name for br in api_a.list_repo_refs("alice/shared").branches}


def test_concurrent_commits_through_both_replicas_lose_nothing(replicas):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    (a, b), token = replicas
    HfApi(endpoint=a.url, token=token).create_repo("alice/race")
    writers, per_writer = 6, 4  # three threads per replica
    landed: list[str] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    start = threading.Barrier(writers)

    def write(i: int) -> None:
        api = HfApi(endpoint=(a, b)[i % 2].url, token=token)
        try:
            start.wait()
            for j in range(per_writer):
                info = api.upload_file(
                    path_or_fileobj=f"writer {i} commit {j}".encode(),
                    path_in_repo=f"w{i}/c{j}.txt",
                    repo_id="alice/race",
                    commit_message=f"w{i} c{j}",
                )
                with guard:
                    landed.append(info.oid)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert len(set(landed)) == writers * per_writer
    for server in (a, b):  # both replicas see every file and one linear history holding every commit
        api = HfApi(endpoint=server.url, token=token)
        files = set(api.list_repo_files("alice/race"))
        assert {f"w{i}/c{j}.txt" for i in range(writers) for j in range(per_writer)} <= files
        history = api.list_repo_commits("alice/race")
        assert set(landed) <= {c.commit_id for c in history}
        assert len(history) == writers * per_writer + 1  # + the initial commit
    # a writer that names a stale parentCommit is refused, whichever replica it talks to
    stale = history[1].commit_id
    for server in (a, b):
        with pytest.raises(HfHubHTTPError) as err:
            HfApi(endpoint=server.url, token=token).upload_file(
                path_or_fileobj=b"late", path_in_repo="late.txt", repo_id="alice/race", parent_commit=stale
            )
        assert err.value.response.status_code == 412
    r = httpx.get(f"{a.url}/api/models/alice/race/revision/main")
    assert r.json()["sha"] == history[0].commit_id
