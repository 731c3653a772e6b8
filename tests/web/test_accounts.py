"""Accounts: passwords (the CLI, the KDF), signing in and out, the session cookie, CSRF on the account forms,
the sign-in rate limit, access tokens and the profile from the browser, and API routes and the cookie."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest

from tests.web.conftest import HTML, PASSWORD


def _sessions(web):  # type: ignore[no-untyped-def]
    from cove.store import WebSession

    with web.store.session() as s:
        return list(s.query(WebSession))


def _account(web, name):  # type: ignore[no-untyped-def]
    from cove.server.auth.service import get_account

    with web.store.session() as s:
        return get_account(s, name)


# --- passwords ------------------------------------------------------------------------------------


def test_user_add_and_passwd_read_the_password_from_stdin(tmp_path, monkeypatch, capsys):
    from cove.cli.main import main
    from cove.server.app import open_hub
    from cove.server.auth.service import check_password, create_session, get_account
    from cove.server.settings import Settings
    from cove.store import WebSession

    data = str(tmp_path / "hub")
    monkeypatch.setattr("sys.stdin", io.StringIO("first password\n"))
    assert main(["user", "add", "carol", "--password-stdin", "--data-dir", data]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("cove_")  # the token stays the last line
    store = open_hub(Settings(data_dir=tmp_path / "hub")).store
    with store.session() as s:
        stored = get_account(s, "carol").password_hash
        assert stored.startswith("scrypt$32768$8$1$") and "first password" not in stored
        assert check_password(s, "carol", "first password") is not None
        assert check_password(s, "carol", "first passwor") is None
        create_session(s, get_account(s, "carol"), days=1)
    monkeypatch.setattr("sys.stdin", io.StringIO("second password\r\n"))
    assert main(["user", "passwd", "carol", "--password-stdin", "--data-dir", data]) == 0
    with store.session() as s:
        assert check_password(s, "carol", "second password") is not None
        assert check_password(s, "carol", "first password") is None
        assert s.query(WebSession).count() == 0  # a new password signs every browser out


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["user", "add", "dave", "--password-stdin"], "short\n", "too short"),
        (["user", "add", "dave", "--password-stdin"], "\n", "No password given"),
        (["user", "passwd", "nobody", "--password-stdin"], "long enough pw\n", "No user named 'nobody'"),
        (["user", "add", "settings"], "", "reserved"),
        (["user", "add", "Login"], "", "reserved"),
        (["org", "add", "api"], "", "reserved"),
    ],
)
def test_bad_passwords_and_reserved_names_are_refused(tmp_path, monkeypatch, capsys, argv, stdin, message):
    from cove.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main([*argv, "--data-dir", str(tmp_path / "hub")]) == 1
    assert message in capsys.readouterr().err


def test_password_hashes_are_salted_and_rehashed_when_the_cost_changes(monkeypatch, tmp_path):
    from cove.server.app import open_hub
    from cove.server.auth import service
    from cove.server.settings import Settings

    assert service.hash_password(PASSWORD) != service.hash_password(PASSWORD)
    store = open_hub(Settings(data_dir=tmp_path)).store
    monkeypatch.setattr(service, "SCRYPT_N", 2**12)  # an older, cheaper cost
    with store.session() as s:
        service.create_account(s, "erin", "user", password=PASSWORD)
        assert service.get_account(s, "erin").password_hash.startswith("scrypt$4096$")
    monkeypatch.setattr(service, "SCRYPT_N", 2**15)
    with store.session() as s:
        assert service.check_password(s, "erin", PASSWORD) is not None
        assert service.get_account(s, "erin").password_hash.startswith("scrypt$32768$")
        assert service.check_password(s, "erin", PASSWORD) is not None
        with pytest.raises(service.HubRequestError, match="Only users have passwords"):
            service.create_account(s, "orgx", "org", password=PASSWORD)


# --- signing in and out ---------------------------------------------------------------------------


def test_sign_in_sets_a_hardened_session_cookie_and_the_page_knows_the_user(web):
    from cove.server.auth.service import hash_token

    web.password("alice")
    assert "Sign in" in web.get("/login").text
    r = web.sign_in("alice", next="/settings/tokens")
    assert r.status_code == 303 and r.headers["location"] == "/settings/tokens"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("cove_session="))
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=lax" and flags["path"] == "Path=/"
    assert flags["max-age"] == f"Max-Age={14 * 86400}"
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    value = cookie.split(";")[0].split("=", 1)[1]
    rows = _sessions(web)
    assert [row.id_hash for row in rows] == [hash_token(value)]  # the table holds the hash, not the token
    page = web.get("/settings/tokens")
    assert page.status_code == 200 and 'class="me">alice</a>' in page.text and "Sign out" in page.text
    # signed in already: the sign-in page sends the browser on
    again = web.get("/login?next=/new", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/new"


def test_the_cookie_is_secure_over_https_and_lives_session_days(make_web):
    web = make_web(https=True, session_days=2)
    web.password("alice")
    csrf = next(c for c in web.client.get("/login").headers.get_list("set-cookie") if "cove_csrf" in c)
    assert "Secure" in csrf and "HttpOnly" in csrf and "Max-Age" not in csrf  # gone with the browser
    r = web.sign_in("alice")
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("cove_session="))
    assert "Secure" in cookie and "Max-Age=172800" in cookie
    (row,) = _sessions(web)
    assert abs((row.expires_at - row.created_at) - dt.timedelta(days=2)) < dt.timedelta(seconds=1)


@pytest.mark.parametrize("who", ["alice", "nobody", "acme"])
def test_a_wrong_password_or_unknown_user_gets_one_clear_answer_and_no_session(web, who):
    web.password("alice")
    web.user("bob", org="acme")
    r = web.sign_in(who, "not the password")
    assert r.status_code == 401 and r.headers["x-error-code"] == "InvalidCredentials"
    assert "Wrong user name or password." in r.text
    assert f'value="{who}"' in r.text  # the name is kept in the form
    assert not any(c.startswith("cove_session=") for c in r.headers.get_list("set-cookie"))
    assert _sessions(web) == []


@pytest.mark.parametrize(
    ("asked", "landed"),
    [
        ("/alice/model?tab=files", "/alice/model?tab=files"),
        ("//evil.example/path", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
        ("", "/"),
    ],
)
def test_sign_in_goes_only_to_same_origin_paths(web, asked, landed):
    web.password("alice")
    r = web.sign_in("alice", next=asked)
    assert r.status_code == 303 and r.headers["location"] == landed


def test_the_sign_in_form_needs_its_csrf_token_and_cookie(web):
    web.password("alice")
    token = web.csrf("/login")
    fields = {"username": "alice", "password": PASSWORD}
    for data in (
        {**fields},
        {**fields, "csrf_token": "0" * 64},
        {**fields, "csrf_token": token[:-1] + ("1" if token.endswith("0") else "0")},
    ):
        r = web.post("/login", data)
        assert r.status_code == 403 and r.headers["x-error-code"] == "CsrfTokenInvalid"
        assert "security token" in r.text
    web.client.cookies.delete("cove_csrf")  # the token without its cookie proves nothing
    assert web.post("/login", {**fields, "csrf_token": token}).status_code == 403
    assert _sessions(web) == []


def test_sign_out_ends_the_session_everywhere_and_needs_the_token(web):
    web.password("alice")
    web.sign_in("alice")
    cookie = web.client.cookies["cove_session"]
    assert web.post("/logout", {}).status_code == 403  # a forged sign-out link does nothing
    assert len(_sessions(web)) == 1
    token = web.csrf("/settings/tokens")
    r = web.post("/logout", {"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert any(c.startswith("cove_session=") and "Max-Age=0" in c for c in r.headers.get_list("set-cookie"))
    assert _sessions(web) == []
    web.client.cookies.set(
        "cove_session", cookie, domain="testserver.local"
    )  # a copy of the old cookie is worth nothing now
    assert web.get("/settings/tokens", follow_redirects=False).status_code == 303


@pytest.mark.parametrize("how", ["expired", "unknown"])
def test_an_expired_or_unknown_session_is_anonymous_and_a_post_says_so(web, how):
    from cove.store import WebSession

    web.password("alice")
    web.sign_in("alice")
    token = web.csrf("/new")
    if how == "expired":
        with web.store.session() as s:
            for row in s.query(WebSession):
                row.expires_at = dt.datetime(2000, 1, 1)
            s.commit()
    else:
        web.client.cookies.set("cove_session", "made-up-value", domain="testserver.local")
    home = web.get("/login")
    assert home.status_code == 200 and 'class="me"' not in home.text
    assert ("Your session has expired" in home.text) is False  # only when sent here with expired=1
    gone = web.get("/new", follow_redirects=False)
    assert gone.status_code == 303 and gone.headers["location"] == "/login?next=/new&expired=1"
    assert "Your session has expired" in web.get(gone.headers["location"]).text
    r = web.post(
        "/new",
        {"csrf_token": token, "name": "m", "owner": "alice"},
        headers={"referer": "http://testserver/new"},
    )
    assert r.status_code == 401 and r.headers["x-error-code"] == "SessionExpired"
    assert "Session expired" in r.text and 'href="/login?next=/new&amp;expired=1"' in r.text
    with web.store.session() as s:
        assert not web.store.exists(s, "model", "alice/m")
    # an API client posting the same gets JSON, not a page
    api = web.client.post("/new", data={"csrf_token": token, "name": "m"})
    assert api.status_code == 401 and api.json()["error"].startswith("Your session has expired")


def test_sessions_of_two_browsers_are_separate(web):
    from fastapi.testclient import TestClient

    web.password("alice")
    web.sign_in("alice")
    other = TestClient(web.client.app)
    first = web.csrf("/settings/tokens")
    other_token = other.get("/login", headers=HTML).text
    token = re.search(r'name="csrf_token" value="([^"]*)"', other_token).group(1)
    other.post("/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD}, headers=HTML)
    second = re.search(r'name="csrf_token" value="([^"]*)"', other.get("/settings/tokens", headers=HTML).text)
    assert second is not None and second.group(1) != first  # each session has its own CSRF token
    assert len(_sessions(web)) == 2
    # one browser's token does not work in the other
    r = other.post("/settings/tokens", data={"csrf_token": first, "name": "x"}, headers=HTML)
    assert r.status_code == 403


# --- the sign-in rate limit -----------------------------------------------------------------------


def test_sign_in_is_rate_limited_per_user_name_and_address(web):
    web.password("alice")
    clock = [1000.0]
    web.client.app.state.login_throttle.clock = lambda: clock[0]
    for _ in range(5):
        assert web.sign_in("alice", "wrong guess").status_code == 401
        clock[0] += 10
    r = web.sign_in("alice")  # even the right password waits
    assert r.status_code == 429 and r.headers["x-error-code"] == "TooManyRequests"
    retry = int(r.headers["retry-after"])
    assert 0 < retry <= 300 and retry == 300 - 50
    assert f"try again in {retry} seconds" in r.text
    assert _sessions(web) == []
    assert web.sign_in("somebody-else", "x").status_code == 429  # the same address is limited too
    clock[0] += retry
    assert web.sign_in("alice").status_code == 303


def test_the_throttle_counts_each_key_in_its_window():
    from cove.server.web.throttle import LoginThrottle

    now = [0.0]
    t = LoginThrottle(3, 60, clock=lambda: now[0])
    for i in range(3):
        assert t.retry_after("user:a", "ip:1") == 0
        t.failed("user:a", f"ip:{i}")
        now[0] += 1
    assert t.retry_after("user:a") == 57  # now is 3; the first failure (t=0) leaves the window at t=60
    assert t.retry_after("ip:1") == 0  # each address failed once
    assert t.retry_after("user:b", "ip:0") == 0
    t.forget("user:a")
    assert t.retry_after("user:a") == 0
    for _ in range(3):
        t.failed("user:c")
    now[0] += 60
    assert t.retry_after("user:c") == 0


# --- tokens and profile ---------------------------------------------------------------------------


def test_tokens_are_created_shown_once_and_revoked_from_settings(web):
    web.password("alice")
    assert web.get("/settings/tokens", follow_redirects=False).headers["location"] == (
        "/login?next=/settings/tokens"
    )
    web.sign_in("alice")
    token = web.csrf("/settings/tokens")
    r = web.post("/settings/tokens", {"csrf_token": token, "name": "laptop", "role": "read"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    value = re.search(r'<code class="token-value">(cove_[^<]+)</code>', r.text).group(1)
    who = web.client.get("/api/whoami-v2", headers={"authorization": f"Bearer {value}"}).json()
    assert who["name"] == "alice" and who["auth"]["accessToken"] == {"displayName": "laptop", "role": "read"}
    listing = web.get("/settings/tokens").text
    assert "laptop" in listing and value not in listing  # shown once: only its name and role stay
    ids = re.findall(r"/settings/tokens/(\d+)/revoke", listing)
    assert len(ids) == 2  # the fixture's default token, then the new one
    r = web.post(f"/settings/tokens/{ids[-1]}/revoke", {"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/settings/tokens"
    assert web.client.get("/api/whoami-v2", headers={"authorization": f"Bearer {value}"}).status_code == 401
    assert "laptop" not in web.get("/settings/tokens").text


def test_token_forms_refuse_bad_input_other_users_tokens_and_forged_posts(web):
    from cove.server.auth.service import list_tokens

    web.password("alice")
    bob = web.user("bob")
    web.sign_in("alice")
    token = web.csrf("/settings/tokens")
    r = web.post("/settings/tokens", {"csrf_token": token, "name": "x", "role": "admin"})
    assert r.status_code == 400 and "Unknown token role" in r.text
    r = web.post("/settings/tokens", {"csrf_token": token, "name": "  ", "role": "read"})
    assert r.status_code == 400 and "1 to 96 characters" in r.text
    assert web.post("/settings/tokens", {"name": "forged", "role": "write"}).status_code == 403
    with web.store.session() as s:
        bob_id = list_tokens(s, "bob")[0].id
        assert [t.name for t in list_tokens(s, "alice")] == ["default"]
    r = web.post(f"/settings/tokens/{bob_id}/revoke", {"csrf_token": token})
    assert r.status_code == 400 and "No live token" in r.text
    assert web.client.get("/api/whoami-v2", headers={"authorization": f"Bearer {bob}"}).status_code == 200


def test_account_settings_need_a_browser_session_not_a_token(web):
    web.user("alice")
    r = web.get("/settings/tokens", user="alice")
    assert r.status_code == 403 and "signed-in browser" in r.text
    r = web.post("/settings/tokens", {"name": "more", "role": "write"}, user="alice")
    assert r.status_code == 403
    assert web.post("/settings/tokens", {"name": "more", "role": "write"}).status_code == 401


def test_profile_and_password_change(web):
    from fastapi.testclient import TestClient

    web.password("alice")
    elsewhere = TestClient(web.client.app)
    token = re.search(r'name="csrf_token" value="([^"]*)"', elsewhere.get("/login", headers=HTML).text).group(
        1
    )
    elsewhere.post(
        "/login", data={"csrf_token": token, "username": "alice", "password": PASSWORD}, headers=HTML
    )
    web.sign_in("alice")
    csrf = web.csrf("/settings/profile")
    r = web.post("/settings/profile", {"csrf_token": csrf, "fullname": "Alice A.", "email": "not-an-email"})
    assert r.status_code == 400 and "is not an email address" in r.text
    r = web.post("/settings/profile", {"csrf_token": csrf, "fullname": "Alice A.", "email": "a@example.org"})
    assert r.status_code == 200 and "Profile saved." in r.text
    assert (_account(web, "alice").fullname, _account(web, "alice").email) == ("Alice A.", "a@example.org")
    r = web.post(
        "/settings/password", {"csrf_token": csrf, "current": "wrong", "new": "n" * 9, "confirm": "n" * 9}
    )
    assert r.status_code == 401 and "current password is wrong" in r.text
    r = web.post(
        "/settings/password", {"csrf_token": csrf, "current": PASSWORD, "new": "n" * 9, "confirm": "m" * 9}
    )
    assert r.status_code == 400 and "differ" in r.text
    r = web.post(
        "/settings/password",
        {"csrf_token": csrf, "current": PASSWORD, "new": "new password 1", "confirm": "new password 1"},
    )
    assert r.status_code == 303
    assert "Password changed" in web.get(r.headers["location"]).text  # this browser stays signed in
    assert elsewhere.get("/settings/tokens", headers=HTML, follow_redirects=False).status_code == 303
    assert len(_sessions(web)) == 1
    web.client.cookies.clear()
    assert web.sign_in("alice", PASSWORD).status_code == 401
    assert web.sign_in("alice", "new password 1").status_code == 303


# --- API routes and the session cookie ------------------------------------------------------------


def test_api_routes_take_the_cookie_only_with_the_pages_csrf_header(web):
    web.password("alice")
    web.repo("bob/model", {"a.txt": "a"})
    web.sign_in("alice")
    token = web.csrf("/settings/tokens")
    # the hub's JSON API outside the like routes ignores the cookie: it reads tokens only
    assert web.client.get("/api/whoami-v2").status_code == 401
    # an API route built on session.ApiCaller: without the header the cookie is ignored (anonymous)...
    r = web.client.post("/api/models/bob/model/like")
    assert r.status_code == 401
    # ...with a wrong one the request is refused, with the page's token it acts as the user
    assert (
        web.client.post("/api/models/bob/model/like", headers={"x-csrf-token": "f" * 64}).status_code == 403
    )
    r = web.client.post("/api/models/bob/model/like", headers={"x-csrf-token": token})
    assert r.status_code == 200 and r.json() == {"liked": True, "likes": 1}
