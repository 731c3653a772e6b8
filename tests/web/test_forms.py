"""Changing repos from the browser: /new, uploads, the card editor and repo settings. Each form's happy
path, then what is refused (another user, a read token, anonymous callers, a missing or wrong CSRF token,
bad input), always with the repo unchanged."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.web.conftest import HTML


def _exists(web, repo_id, repo_type="model"):  # type: ignore[no-untyped-def]
    with web.store.session() as s:
        return web.store.exists(s, repo_type, repo_id)


def _row(web, repo_id, repo_type="model"):  # type: ignore[no-untyped-def]
    with web.store.session() as s:
        return web.store.get_repo(s, repo_type, repo_id)


def _head(web, repo_id, repo_type="model", branch="main"):  # type: ignore[no-untyped-def]
    with web.store.session() as s:
        return web.store.resolve(s, web.store.get_repo(s, repo_type, repo_id), branch)


def _tree(web, repo_id, repo_type="model"):  # type: ignore[no-untyped-def]
    with web.store.session() as s:
        return web.store.tree(s, _head(web, repo_id, repo_type))


def _read(web, repo_id, path):  # type: ignore[no-untyped-def]
    return web.store.blobs.read(_tree(web, repo_id)[path].sha256)


@pytest.fixture
def alice(web):  # type: ignore[no-untyped-def]
    """alice signed in (a browser session), member of acme (write) and of readers (read); bob exists."""
    web.password("alice")
    web.user("alice", org="acme", role="write")
    web.user("alice", org="readers", role="read")
    web.user("bob")
    assert web.sign_in("alice").status_code == 303
    return web


# --- /new -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "repo_type", "repo_id", "private", "location"),
    [
        ({"type": "model", "owner": "alice", "name": "m1"}, "model", "alice/m1", False, "/alice/m1"),
        (
            {"type": "dataset", "owner": "acme", "name": "d1", "visibility": "private"},
            "dataset",
            "acme/d1",
            True,
            "/datasets/acme/d1",
        ),
        (
            {"type": "space", "owner": "alice", "name": "s1", "sdk": "gradio"},
            "space",
            "alice/s1",
            False,
            "/spaces/alice/s1",
        ),
    ],
)
def test_new_creates_the_repo_through_the_api_service(alice, fields, repo_type, repo_id, private, location):
    web = alice
    page = web.get("/new")
    assert '<option value="acme"' in page.text and '<option value="readers"' not in page.text
    token = web.csrf("/new")
    r = web.post("/new", {"csrf_token": token, "visibility": "public", **fields})
    assert r.status_code == 303 and r.headers["location"] == location
    row = _row(web, repo_id, repo_type)
    assert row.private is private
    if repo_type == "space":
        assert row.sdk == "gradio"
    assert ".gitattributes" in _tree(web, repo_id, repo_type)  # the same initial commit as the API's


def test_new_keeps_the_form_and_says_what_is_wrong(alice):
    web = alice
    token = web.csrf("/new")
    web.repo("alice/taken")
    cases = [
        ({"name": "bad name!"}, 400, "Invalid repo name"),
        ({"name": ""}, 400, "Give the repo a name"),
        ({"name": "taken"}, 409, "already created"),
        ({"name": "x", "owner": "readers"}, 403, "may not create repos under"),
        ({"name": "x", "owner": "bob"}, 403, "may not create repos under"),
        ({"name": "x", "visibility": "secret"}, 400, "Unknown visibility"),
        ({"name": "x", "type": "space", "sdk": "php"}, 400, "Unknown Space SDK"),
        ({"name": "x", "type": "notebook"}, 400, "Unknown repo type"),
    ]
    for fields, status, message in cases:
        data = {"csrf_token": token, "type": "model", "owner": "alice", "visibility": "public", **fields}
        r = web.post("/new", data)
        assert r.status_code == status, (fields, r.text[-600:])
        assert message in r.text
        if fields.get("name"):
            assert f'value="{fields["name"]}"' in r.text.replace("&#34;", '"')  # the name typed is kept
    for repo_type in ("model", "space"):
        assert (
            not _exists(web, "alice/x", repo_type)
            and not _exists(web, "readers/x")
            and not _exists(web, "bob/x")
        )


def test_new_refuses_forged_anonymous_and_read_token_posts(web):
    web.password("alice")
    web.user("alice")
    from cove.server.auth.service import create_token

    with web.store.session() as s:
        web.tokens["alice-read"] = create_token(s, "alice", name="ro", role="read")
    fields = {"type": "model", "owner": "alice", "name": "m"}
    # anonymous: sign in first (a GET is sent there, a post is refused)
    assert web.get("/new", follow_redirects=False).headers["location"] == "/login?next=/new"
    r = web.post("/new", fields)
    assert r.status_code == 401 and "Sign in" in r.text
    # a read token may not create repos (a token caller needs no CSRF token: no browser sends one)
    r = web.post("/new", fields, user="alice-read")
    assert r.status_code == 403 and "may not create repos" in r.text
    assert web.post("/new", fields, user="alice").status_code == 303  # a write token may
    # a signed-in browser without the token, or with another's, changes nothing
    web.sign_in("alice")
    for token in (None, "", "a" * 64):
        data = dict(fields, name="forged") if token is None else dict(fields, name="forged", csrf_token=token)
        r = web.post("/new", data)
        assert r.status_code == 403 and r.headers["x-error-code"] == "CsrfTokenInvalid"
    assert not _exists(web, "alice/forged")


# --- uploads --------------------------------------------------------------------------------------


def _upload(web, url, files, *, token, summary="", folder="", user=None, extra=None):  # type: ignore[no-untyped-def]
    data = {"summary": summary, "folder": folder, "description": ""}
    if token is not None:
        data = {"csrf_token": token, **data}
    data.update(extra or {})
    return web.post(url, data, files=[("files", f) for f in files], user=user)


def test_upload_commits_the_files_streamed_into_the_store(alice):
    web = alice
    web.repo("alice/m")
    before = _head(web, "alice/m")
    token = web.csrf("/alice/m/upload/main")
    big = bytes(range(256)) * 4096  # 1 MiB
    r = _upload(
        web,
        "/alice/m/upload/main",
        [("config.json", b'{"a": 1}'), ("weights.bin", big)],
        token=token,
        summary="Add weights",
        folder="sub/dir",
    )
    assert r.status_code == 303 and r.headers["location"] == "/alice/m/tree/main"
    tree = _tree(web, "alice/m")
    assert set(tree) == {".gitattributes", "sub/dir/config.json", "sub/dir/weights.bin"}
    assert _read(web, "alice/m", "sub/dir/weights.bin") == big
    entry = tree["sub/dir/config.json"]
    assert entry.oid == hashlib.sha1(b"blob 8\0" + b'{"a": 1}').hexdigest()  # git's blob id, as the API's
    with web.store.session() as s:
        (commit, parent) = web.store.history(s, _row(web, "alice/m"), "main")[:2]
    assert commit.title == "Add weights" and commit.author == "alice" and parent.id == before
    # the same files through the API's download route
    assert web.client.get("/alice/m/resolve/main/sub/dir/weights.bin").content == big


def test_upload_stores_large_files_as_lfs_and_names_the_commit(make_web):
    web = make_web(lfs_threshold_bytes=100)
    web.password("alice")
    web.sign_in("alice")
    web.repo("alice/m")
    token = web.csrf("/alice/m/upload/main")
    r = _upload(web, "/alice/m/upload/main", [("big.bin", b"x" * 500)], token=token)
    assert r.status_code == 303
    entry = _tree(web, "alice/m")["big.bin"]
    assert entry.lfs and entry.sha256 == hashlib.sha256(b"x" * 500).hexdigest()
    with web.store.session() as s:
        assert web.store.has_lfs(s, _row(web, "alice/m").id, entry.sha256)
        assert web.store.history(s, _row(web, "alice/m"), "main")[0].title == "Upload big.bin"
    r = web.client.get("/api/models/alice/m", params={"blobs": "true"})
    (sibling,) = [x for x in r.json()["siblings"] if x["rfilename"] == "big.bin"]
    assert sibling["lfs"]["size"] == 500


def test_upload_to_a_dataset_on_a_branch_with_a_slash(alice):
    web = alice
    web.repo("alice/d", repo_type="dataset")
    with web.store.session() as s:
        web.store.create_ref(s, _row(web, "alice/d", "dataset"), "branch", "feature/x", "main")
    url = "/datasets/alice/d/upload/feature%2Fx"
    page = web.get(url)
    assert page.status_code == 200 and 'action="/datasets/alice/d/upload/feature%2Fx"' in page.text
    r = _upload(web, url, [("train.csv", b"a,b\n1,2\n")], token=web.csrf(url))
    assert r.status_code == 303 and r.headers["location"] == "/datasets/alice/d/tree/feature%2Fx"
    with web.store.session() as s:
        row = _row(web, "alice/d", "dataset")
        assert "train.csv" in web.store.tree(s, web.store.resolve(s, row, "feature/x"))
        assert "train.csv" not in web.store.tree(s, web.store.resolve(s, row, "main"))


def test_an_upload_over_the_cap_is_refused_and_commits_nothing(make_web):
    web = make_web(max_upload_bytes=2000)
    web.password("alice")
    web.sign_in("alice")
    web.repo("alice/m")
    before = _head(web, "alice/m")
    token = web.csrf("/alice/m/upload/main")
    r = _upload(web, "/alice/m/upload/main", [("big.bin", b"x" * 5000)], token=token)
    assert r.status_code == 413 and r.headers["x-error-code"] == "PayloadTooLarge"
    assert "upload limit" in r.text and "COVE_MAX_UPLOAD_BYTES" in r.text
    # a chunked body (no Content-Length) is stopped as it crosses the cap
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n'
    ).encode()

    def chunks():  # type: ignore[no-untyped-def]
        yield head
        for _ in range(10):
            yield b"y" * 1000
        yield f"\r\n--{boundary}--\r\n".encode()

    r = web.client.post(
        "/alice/m/upload/main",
        content=chunks(),
        headers={**HTML, "content-type": f"multipart/form-data; boundary={boundary}"},
        follow_redirects=False,
    )
    assert r.status_code == 413
    assert _head(web, "alice/m") == before
    assert not web.store.blobs.exists(hashlib.sha256(b"y" * 10000).hexdigest())


@pytest.mark.parametrize(
    ("name", "folder", "message"),
    [
        ("../escape.txt", "", "Invalid path"),
        ("ok.txt", "../up", "Invalid path"),
        (".git/config", "", "'.git' folder"),
        ("ok.txt", "x/.GIT", "'.git' folder"),
        ("a\\b.txt", "", "Invalid path"),
    ],
)
def test_upload_paths_are_checked_as_everywhere(alice, name, folder, message):
    web = alice
    web.repo("alice/m")
    before = _head(web, "alice/m")
    r = _upload(
        web, "/alice/m/upload/main", [(name, b"data")], token=web.csrf("/alice/m/upload/main"), folder=folder
    )
    assert r.status_code == 400 and message in r.text.replace("&#39;", "'")
    assert _head(web, "alice/m") == before


def test_upload_refuses_bad_forms_and_other_callers(alice):
    web = alice
    from cove.server.auth.service import create_token

    with web.store.session() as s:
        web.tokens["alice-read"] = create_token(s, "alice", name="ro", role="read")
    web.repo("alice/m")
    web.repo("bob/public", {"a.txt": "a"})
    web.repo("bob/secret", {"a.txt": "a"}, private=True)
    token = web.csrf("/alice/m/upload/main")
    url = "/alice/m/upload/main"
    before = _head(web, "alice/m")
    payload = b"never stored " * 10
    # no CSRF token, a wrong one, or one sent after the file: refused before a byte is stored
    for files, tok in (([("a.txt", payload)], None), ([("a.txt", payload)], "0" * 64)):
        r = _upload(web, url, files, token=tok)
        assert r.status_code == 403 and r.headers["x-error-code"] == "CsrfTokenInvalid"
    boundary = "xyz"
    late = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        f'{payload.decode()}\r\n--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
        f"{token}\r\n--{boundary}--\r\n"
    ).encode()
    r = web.client.post(
        url, content=late, headers={**HTML, "content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert r.status_code == 403
    assert not web.store.blobs.exists(hashlib.sha256(payload).hexdigest())
    # nothing chosen, not multipart, an unknown branch
    r = _upload(web, url, [("", b"")], token=token)
    assert r.status_code == 400 and "Choose at least one file" in r.text
    r = web.post(url, {"csrf_token": token})
    assert r.status_code == 400 and "multipart/form-data" in r.text
    r = _upload(web, "/alice/m/upload/nope", [("a.txt", b"a")], token=token)
    assert r.status_code == 404
    assert _head(web, "alice/m") == before
    # another user's repos: public ones are forbidden, private ones do not exist
    assert _upload(web, "/bob/public/upload/main", [("a.txt", b"b")], token=token).status_code == 403
    assert _upload(web, "/bob/secret/upload/main", [("a.txt", b"b")], token=token).status_code == 404
    assert web.get("/bob/public/upload/main").status_code == 403
    assert web.get("/bob/secret/upload/main").status_code == 404
    # a read token, and nobody at all
    r = _upload(web, url, [("a.txt", b"b")], token=None, user="alice-read")
    assert r.status_code == 403 and "read token" in r.text
    web.client.cookies.clear()
    r = _upload(web, url, [("a.txt", b"b")], token=token)
    assert r.status_code == 401
    assert web.get(url, follow_redirects=False).headers["location"] == "/login?next=/alice/m/upload/main"
    assert _head(web, "alice/m") == before
    with web.store.session() as s:
        assert web.store.resolve(s, _row(web, "bob/public"), "main") == _head(web, "bob/public")
        assert web.store.history(s, _row(web, "bob/public"), "main")[0].title == "Add files"


def test_the_multipart_reader_streams_parts_across_any_chunking():
    from cove.server.web.forms import MultipartReader

    boundary = "----b"
    tricky = b"\r\n------" + b"\r\n--" + b"----" + b"z" * 3000 + b"\r\n----b-not-quite"
    body = (
        (
            f'preamble\r\n--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\ntok\r\n'
            f'--{boundary}  \r\nContent-Disposition: form-data; name="files"; filename="d/\u00e9.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + tricky
        + f"\r\n--{boundary}--\r\nepilogue".encode()
    )
    for size in (1, 2, 7, 64, 1000, len(body)):
        chunks = iter([body[i : i + size] for i in range(0, len(body), size)])
        reader = MultipartReader(chunks, f"multipart/form-data; boundary={boundary}")
        got = []
        for part in reader.parts():
            data = b""
            while chunk := part.read(5 if size == 1 else 1 << 20):
                data += chunk
            got.append((part.name, part.filename, data))
        assert got == [("csrf_token", None, b"tok"), ("files", "d/\u00e9.bin", tricky)], size
    # parts not read are skipped; a truncated body is an error
    reader = MultipartReader(iter([body]), f"multipart/form-data; boundary={boundary}")
    assert [p.name for p in reader.parts()] == ["csrf_token", "files"]
    reader = MultipartReader(iter([body[:200]]), f"multipart/form-data; boundary={boundary}")
    with pytest.raises(Exception, match="ended inside a part"):
        for part in reader.parts():
            part.read_all(10_000)


# --- the card editor ------------------------------------------------------------------------------

CARD = "---\nlicense: mit\npipeline_tag: text-classification\n---\n\n# My model\n\n<b>bold</b> & more\n"


def test_the_card_editor_commits_a_valid_card(alice):
    web = alice
    web.repo("alice/m", {"README.md": CARD})
    page = web.get("/alice/m/edit/main/README.md")
    assert page.status_code == 200
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page.text  # the text, escaped, inside the textarea
    token = web.csrf("/alice/m/edit/main/README.md")
    parent = re.search(r'name="parent" value="([0-9a-f]{40})"', page.text).group(1)
    new = CARD.replace("mit", "apache-2.0").replace("\n", "\r\n")  # as a browser sends a textarea
    r = web.post(
        "/alice/m/edit/main/README.md",
        {"csrf_token": token, "parent": parent, "content": new, "summary": "License change"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/alice/m"
    assert _read(web, "alice/m", "README.md") == CARD.replace("mit", "apache-2.0").encode()
    row = _row(web, "alice/m")
    assert '"license": "apache-2.0"' in row.card_json
    with web.store.session() as s:
        assert web.store.history(s, row, "main")[0].title == "License change"


def test_a_card_without_readme_gets_a_starting_text(alice):
    web = alice
    web.repo("alice/empty")
    page = web.get("/alice/empty/edit/main/README.md")
    assert page.status_code == 200 and "# empty" in page.text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("---\nlicense: [mit\n---\n# x\n", "Invalid YAML in the card metadata at line"),
        ("---\n- a\n- b\n---\n", "must be a YAML mapping"),
        ("---\nlicense: mit\n# never closed\n", "never closed"),
        (
            "---\na: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e]\n---\n",
            "too large",
        ),
    ],
)
def test_a_bad_card_is_refused_with_the_error_and_the_text_kept(alice, content, message):
    web = alice
    web.repo("alice/m", {"README.md": CARD})
    before = _head(web, "alice/m")
    token = web.csrf("/alice/m/edit/main/README.md")
    r = web.post("/alice/m/edit/main/README.md", {"csrf_token": token, "content": content})
    assert r.status_code == 400 and "The card was not saved" in r.text and message in r.text
    textarea = re.search(r'<textarea name="content"[^>]*>(.*?)</textarea>', r.text, re.S).group(1)
    assert textarea.replace("&#39;", "'").replace("&amp;", "&") == content
    assert _head(web, "alice/m") == before


def test_a_stale_edit_keeps_the_text_and_commits_nothing(alice):
    web = alice
    web.repo("alice/m", {"README.md": CARD})
    page = web.get("/alice/m/edit/main/README.md")
    parent = re.search(r'name="parent" value="([0-9a-f]{40})"', page.text).group(1)
    web.repo("alice/m", {"other.txt": "landed meanwhile"})
    head = _head(web, "alice/m")
    mine = CARD + "\nmy addition\n"
    r = web.post(
        "/alice/m/edit/main/README.md",
        {"csrf_token": web.csrf("/alice/m/edit/main/README.md"), "parent": parent, "content": mine},
    )
    assert r.status_code == 412 and "changed since you opened the editor" in r.text
    assert "my addition" in r.text
    assert _head(web, "alice/m") == head


def test_the_card_editor_refuses_other_callers_tags_and_forged_posts(alice):
    web = alice
    web.repo("alice/m", {"README.md": CARD})
    web.repo("bob/public", {"README.md": CARD})
    web.repo("bob/secret", {"README.md": CARD}, private=True)
    with web.store.session() as s:
        web.store.create_ref(s, _row(web, "alice/m"), "tag", "v1", "main")
    before = _head(web, "alice/m")
    token = web.csrf("/alice/m/edit/main/README.md")
    ok = {"csrf_token": token, "content": CARD + "x"}
    assert web.get("/bob/public/edit/main/README.md").status_code == 403
    assert web.get("/bob/secret/edit/main/README.md").status_code == 404
    assert web.post("/bob/public/edit/main/README.md", ok).status_code == 403
    r = web.get("/alice/m/edit/v1/README.md")
    assert r.status_code == 400 and "is not a branch" in r.text
    assert web.post("/alice/m/edit/v1/README.md", ok).status_code == 400
    assert web.post("/alice/m/edit/main/README.md", {"content": CARD + "x"}).status_code == 403
    assert _head(web, "alice/m") == before
    web.client.cookies.clear()
    assert web.post("/alice/m/edit/main/README.md", ok).status_code == 401
    assert _head(web, "alice/m") == before


# --- repo settings --------------------------------------------------------------------------------


def test_settings_change_visibility_move_and_delete(alice):
    web = alice
    web.repo("alice/m", {"a.txt": "a"})
    page = web.get("/alice/m/settings")
    assert page.status_code == 200 and "Type <code>alice/m</code> to confirm" in page.text
    token = web.csrf("/alice/m/settings")
    r = web.post("/alice/m/settings/visibility", {"csrf_token": token, "visibility": "private"})
    assert r.status_code == 303 and r.headers["location"] == "/alice/m/settings?saved=visibility"
    assert _row(web, "alice/m").private is True
    assert web.client.get("/api/models/alice/m").status_code == 404  # gone for anonymous API callers
    assert "the repo is private" in web.get(r.headers["location"]).text
    r = web.post("/alice/m/settings/move", {"csrf_token": token, "owner": "alice", "name": "renamed"})
    assert r.status_code == 303 and r.headers["location"] == "/alice/renamed/settings?saved=moved"
    assert not _exists(web, "alice/m") and _exists(web, "alice/renamed")
    assert "the repo is now alice/renamed" in web.get(r.headers["location"]).text
    r = web.post("/alice/renamed/settings/delete", {"csrf_token": token, "confirm": "alice/renamed "})
    assert r.status_code == 303 and r.headers["location"] == "/alice"
    assert not _exists(web, "alice/renamed")
    # moving into an org the caller writes to is allowed (its admins then manage the repo)
    web.repo("alice/m2")
    r = web.post("/alice/m2/settings/move", {"csrf_token": token, "owner": "acme", "name": "m2"})
    assert r.status_code == 303 and _exists(web, "acme/m2")


def test_settings_refuse_mismatched_confirmations_bad_moves_and_other_callers(alice):
    web = alice
    web.repo("alice/m", {"a.txt": "a"})
    web.repo("alice/other")
    web.repo("acme/shared")  # alice writes to acme but is not its admin
    web.repo("bob/public")
    web.repo("bob/secret", private=True)
    token = web.csrf("/alice/m/settings")
    r = web.post("/alice/m/settings/delete", {"csrf_token": token, "confirm": "alice/M"})
    assert r.status_code == 400 and "Nothing was deleted" in r.text
    assert web.post("/alice/m/settings/delete", {"csrf_token": token, "confirm": ""}).status_code == 400
    assert web.post("/alice/m/settings/delete", {"confirm": "alice/m"}).status_code == 403  # no CSRF token
    assert _exists(web, "alice/m")
    cases = [
        ({"owner": "alice", "name": "other"}, 409, "exists"),
        ({"owner": "bob", "name": "mine"}, 403, "may not move repos into"),
        ({"owner": "alice", "name": "bad/name"}, 400, "Invalid repo id"),
        ({"owner": "alice", "name": "m"}, 400, "already this repo"),
    ]
    for fields, status, message in cases:
        r = web.post("/alice/m/settings/move", {"csrf_token": token, **fields})
        assert r.status_code == status and message in r.text, (fields, r.text[-500:])
    assert (
        web.post("/alice/m/settings/visibility", {"csrf_token": token, "visibility": "hidden"}).status_code
        == 400
    )
    assert _exists(web, "alice/m") and _row(web, "alice/m").private is False
    # an org member with the write role, another user, nobody
    assert web.get("/acme/shared/settings").status_code == 403
    r = web.post("/acme/shared/settings/delete", {"csrf_token": token, "confirm": "acme/shared"})
    assert r.status_code == 403 and "Only admins" in r.text
    assert (
        web.post(
            "/bob/public/settings/visibility", {"csrf_token": token, "visibility": "private"}
        ).status_code
        == 403
    )
    assert (
        web.post("/bob/secret/settings/delete", {"csrf_token": token, "confirm": "bob/secret"}).status_code
        == 404
    )
    assert (
        _exists(web, "acme/shared")
        and _exists(web, "bob/secret")
        and _row(web, "bob/public").private is False
    )
    web.client.cookies.clear()
    assert (
        web.get("/alice/m/settings", follow_redirects=False).headers["location"]
        == "/login?next=/alice/m/settings"
    )
    assert (
        web.post("/alice/m/settings/delete", {"csrf_token": token, "confirm": "alice/m"}).status_code == 401
    )
    assert _exists(web, "alice/m")


def test_settings_of_a_space_use_its_prefix(alice):
    web = alice
    web.repo("alice/s", repo_type="space")
    token = web.csrf("/spaces/alice/s/settings")
    r = web.post("/spaces/alice/s/settings/delete", {"csrf_token": token, "confirm": "alice/s"})
    assert r.status_code == 303 and not _exists(web, "alice/s", "space")
