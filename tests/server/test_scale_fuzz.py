"""Bad input, fuzzed: schemathesis against the published OpenAPI schema (bounded), and a corpus of hostile
paths, headers and bodies. No 500, no response outside the schema, and the data stays as it was."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.server.conftest import LiveHub, start_hub

pytestmark = pytest.mark.server


@schemathesis.serializer("application/x-ndjson")
def _ndjson_body(ctx, value):  # type: ignore[no-untyped-def]
    """The commit body is NDJSON: a generated string goes as is, anything else as one JSON line."""
    import json

    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    live, server, thread = start_hub(tmp_path_factory.mktemp("fuzz"), lfs_threshold_bytes=1024)
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:  # the suite is offline; this server is on 127.0.0.1
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        bob = live.api(user="bob")
        bob.create_repo("bob/seed")
        bob.upload_file(path_or_fileobj=b"seed", path_in_repo="seed.txt", repo_id="bob/seed")
        bob.create_repo("bob/hidden", private=True)
    yield live
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=10)


def _state(live: LiveHub) -> str:
    """A digest of everything a request could change: repos, refs, trees, files."""
    api = live.api(user="bob")
    parts = []
    for repo in sorted(m.id for m in api.list_models()):
        refs = api.list_repo_refs(repo)
        parts.append(f"{repo} {sorted((b.name, b.target_commit) for b in refs.branches)} {refs.tags}")
        for f in sorted(api.list_repo_files(repo)):
            parts.append(
                f"{f} {httpx.get(f'{live.url}/{repo}/resolve/main/{f}', headers=_auth(live, 'bob')).content!r}"
            )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _auth(live: LiveHub, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {live.tokens[user]}"}


def test_schemathesis_finds_no_server_error_and_no_off_schema_response(fuzz_hub):
    """Every operation of the published schema, 12 generated cases each (derandomized: reproducible)."""
    from hypothesis import given
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    schema = schemathesis.openapi.from_url(f"{fuzz_hub.url}/api/openapi.json")
    failures: list[str] = []
    operations = 0
    statuses: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            # alice may write her own namespace, not bob's
            response = case.call_and_validate(
                base_url=fuzz_hub.url, headers=_auth(fuzz_hub, "alice"), checks=checks, timeout=30
            )
            statuses.append(response.status_code)

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert failures == [], "\n".join(failures)
    assert operations >= 10 and len(statuses) >= 5 * operations
    print(
        f"schemathesis: {operations} operations, {len(statuses)} requests, statuses {sorted(set(statuses))}"
    )


def test_schemathesis_bodies_that_break_the_schema_get_4xx(fuzz_hub):
    """Negative mode on every operation with a typed body: wrong types, missing fields, extra nesting. Each
    must get a 4xx in the schema (422 naming the field for wrong types), never a 500."""
    from hypothesis import given
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error, response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{fuzz_hub.url}/api/openapi.json")
    failures: list[str] = []
    statuses: list[int] = []
    typed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        spec = operation.definition.raw
        body = spec.get("requestBody", {}).get("content", {})
        if "application/json" not in body and "application/vnd.git-lfs+json" not in body:
            continue
        typed += 1

        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call_and_validate(
                base_url=fuzz_hub.url,
                headers=_auth(fuzz_hub, "alice"),
                checks=[not_a_server_error, response_schema_conformance],
                timeout=30,
            )
            statuses.append(response.status_code)
            assert response.status_code < 500

        try:
            run()
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    assert failures == [], "\n".join(failures)
    assert typed >= 10 and len(statuses) >= 3 * typed
    assert 422 in statuses  # wrong types reach the models and are named, not coerced
    print(
        f"schemathesis negative: {typed} typed bodies, {len(statuses)} requests, statuses {sorted(set(statuses))}"
    )


def test_fuzzing_left_bobs_repos_as_they_were(fuzz_hub):
    # runs after the schemathesis cases in this module (file order): bob's repos were never writable to them
    api = fuzz_hub.api(user="bob")
    assert api.list_repo_files("bob/seed") == [".gitattributes", "seed.txt"]
    assert api.model_info("bob/hidden").private is True


BOMB = "---\na: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n---\n# bomb\n"


def _ndjson(*items: dict) -> bytes:  # type: ignore[type-arg]
    import json

    return b"\n".join(json.dumps(x).encode() for x in items)


def _hostile_requests(live: LiveHub) -> list[tuple[str, str, dict[str, str], bytes]]:
    """(method, path, headers, body): each must get a 4xx."""
    import base64

    alice = _auth(live, "alice")
    bob = _auth(live, "bob")
    ndjson = {**bob, "Content-Type": "application/x-ndjson"}
    commit = "/api/models/bob/seed/commit/main"
    header = {"key": "header", "value": {"summary": "hostile"}}

    def file(path: str, data: bytes = b"x") -> dict:  # type: ignore[type-arg]
        return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode()}}

    out: list[tuple[str, str, dict[str, str], bytes]] = []
    # traversal and odd paths, in downloads, trees, paths-info and commits
    for evil in (
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/etc/passwd",
        "sub/..%2F..%2Fx",
        "%00seed.txt",
        "..%5C..%5Cx",
        "%FF%FE.txt",
        "/etc/passwd",
        "a" * 5000,
    ):
        out.append(("GET", f"/bob/seed/resolve/main/{evil}", {}, b""))
        out.append(("GET", f"/api/models/bob/seed/tree/main/{evil}", {}, b""))
    out.append(("GET", "/bob/seed/resolve/..%2F..%2Fmain/seed.txt", {}, b""))
    out.append(("GET", "/api/models/..%2F..%2Fbob/seed", {}, b""))
    for evil in (
        "../../etc/passwd",
        "/abs.txt",
        "a/../../b",
        "nul\x00.txt",
        "C:/win.txt",
        ".git/config",
        "a\\..\\b",
    ):
        out.append(("POST", commit, ndjson, _ndjson(header, file(evil))))
        if evil == "/abs.txt":
            continue  # paths-info strips leading and trailing slashes, as the Hub does: a lookup, not a write
        out.append(
            (
                "POST",
                "/api/models/bob/seed/paths-info/main",
                {**bob, "Content-Type": "application/json"},
                _ndjson({"paths": [evil]}),
            )
        )
    # headers: huge, and odd tokens
    out.append(("GET", "/api/models/bob/seed", {"Authorization": "Bearer " + "x" * 200_000}, b""))
    latin1_token: dict = {"Authorization": b"Bearer \xff\xfe"}  # type: ignore[type-arg]
    out.append(("GET", "/api/whoami-v2", latin1_token, b""))
    out.append(("POST", commit, {"Authorization": "Basic Ym9iOmJvYg=="}, _ndjson(header, file("basic.txt"))))
    out.append(("GET", "/bob/seed/resolve/main/seed.txt", {"Range": "bytes=999-1000"}, b""))
    # bodies: wrong content types, truncated, invalid UTF-8, nested JSON, YAML bombs
    out.append(
        ("POST", commit, {**bob, "Content-Type": "application/x-www-form-urlencoded"}, b"summary=x&path=y")
    )
    out.append(("POST", commit, ndjson, _ndjson(header, file("cut.txt"))[:-20]))
    out.append(
        (
            "POST",
            commit,
            ndjson,
            b'{"key": "header", "value": {"summary": "\xff\xfe"}}\n' + _ndjson(file("utf8.txt")),
        )
    )
    out.append(("POST", commit, ndjson, b"[" * 100_000))
    out.append(
        (
            "POST",
            commit,
            ndjson,
            _ndjson(header, {"key": "file", "value": {"path": "b64.txt", "content": "!!notbase64"}}),
        )
    )
    out.append(("POST", commit, ndjson, _ndjson(header, file("README.md", BOMB.encode()))))
    out.append(
        ("POST", "/api/validate-yaml", {"Content-Type": "application/json"}, _ndjson({"content": BOMB}))
    )
    out.append(("POST", "/api/repos/create", {**alice, "Content-Type": "application/json"}, b"[" * 100_000))
    out.append(("POST", "/api/repos/create", {**alice, "Content-Type": "application/json"}, b"\xff\xfe{"))
    out.append(("POST", "/api/repos/create", {**alice, "Content-Type": "text/plain"}, b"name=x"))
    out.append(
        (
            "POST",
            "/api/repos/create",
            {**alice, "Content-Type": "application/json"},
            _ndjson({"name": "../../x"}),
        )
    )
    out.append(
        (
            "POST",
            "/api/repos/create",
            {**alice, "Content-Type": "application/json"},
            _ndjson({"name": "x", "organization": "bob"}),
        )
    )
    out.append(
        (
            "POST",
            "/bob/seed.git/info/lfs/objects/batch",
            {**bob, "Content-Type": "application/vnd.git-lfs+json"},
            b"[" * 100_000,
        )
    )
    out.append(("PUT", "/cove-lfs/" + "a" * 64 + "?repo=1&size=1&expires=99999999999&sig=forged", {}, b"x"))
    # typed bodies: wrong types and shapes are 4xx naming the field, never 500 (issue 12)
    json_alice = {**alice, "Content-Type": "application/json"}
    json_bob = {**bob, "Content-Type": "application/json"}
    out.append(("POST", "/api/repos/create", json_alice, _ndjson({"name": "strfalse", "private": "false"})))
    out.append(("POST", "/api/models/bob/seed/branch/dev", json_bob, _ndjson({"startingPoint": 5})))
    out.append(("POST", "/api/models/bob/seed/tag/main", json_bob, _ndjson({"tag": ["x"]})))
    out.append(("PUT", "/api/models/bob/seed/settings", json_bob, _ndjson({"private": "yes"})))
    out.append(("POST", "/api/models/bob/seed/preupload/main", json_bob, _ndjson({"files": [{"path": 1}]})))
    out.append(("POST", "/api/validate-yaml", {"Content-Type": "application/json"}, _ndjson({"content": 5})))
    out.append(
        (
            "POST",
            "/bob/seed.git/info/lfs/objects/batch",
            {**bob, "Content-Type": "application/vnd.git-lfs+json"},
            _ndjson({"operation": "download", "objects": [1, "x", None]}),
        )
    )
    out.append(("POST", commit, ndjson, _ndjson(header, {"key": "copyFile", "value": {"path": "c.txt"}})))
    out.append(("POST", commit, ndjson, _ndjson({"key": "header", "value": {"summary": 5}}, file("n.txt"))))
    out.append(("POST", "/api/repos/create", json_alice, _ndjson({"name": "big", "x": "y" * 2_000_000})))
    out.append(
        (
            "DELETE",
            "/api/repos/delete",
            {**alice, "Content-Type": "application/json"},
            _ndjson({"name": "seed", "organization": "bob"}),
        )
    )
    return out


def test_hostile_corpus_gets_4xx_and_changes_nothing(fuzz_hub):
    before = _state(fuzz_hub)
    bad: list[str] = []
    with httpx.Client(base_url=fuzz_hub.url, timeout=60) as client:
        for method, path, headers, body in _hostile_requests(fuzz_hub):
            try:
                r = client.request(method, path, headers=headers, content=body or None)
            except httpx.HTTPError as exc:
                bad.append(f"{method} {path[:80]}: no response ({exc})")
                continue
            if not 400 <= r.status_code < 500:
                bad.append(f"{method} {path[:80]} {body[:60]!r}: {r.status_code} {r.text[:200]}")
            elif r.headers.get("content-type", "").startswith("application/json") and "error" not in r.json():
                bad.append(f"{method} {path[:80]}: 4xx without an error message")
    assert bad == [], "\n".join(bad)
    assert _state(fuzz_hub) == before
