"""Browsers get error pages, API clients keep JSON errors, from the same server."""

from __future__ import annotations


def test_a_browser_gets_a_404_page_and_a_client_gets_json(web):
    page = web.get("/no/such/page/anywhere")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["x-error-code"] == "NotFound"
    assert "<h1>404</h1>" in page.text
    api = web.client.get("/api/models/nobody/nothing")
    assert api.status_code == 404
    assert api.headers["x-error-code"] == "RepoNotFound"
    assert api.json()["error"].startswith("Model repo 'nobody/nothing' not found")


def test_a_browser_asking_an_api_path_still_gets_json(web):
    r = web.get("/api/models/nobody/nothing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")


def test_messages_are_escaped_in_error_pages(web):
    r = web.get("/<script>alert(1)</script>/x/tree/main")
    assert r.status_code in (400, 404)
    assert "<script>alert(1)</script>" not in r.text


def test_pages_carry_a_content_security_policy(web):
    page = web.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "object-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in web.get("/no/such/page/anywhere").headers  # error pages too
