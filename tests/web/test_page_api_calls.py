"""A hub page's scripts call the inference API with the session cookie and the page's CSRF token: both are
needed (a cookie alone is anonymous, so another site cannot use a signed-in user's access), a wrong token
is refused."""

from __future__ import annotations

import re


def test_the_session_reaches_the_inference_api_only_with_the_pages_csrf_token(web):
    web.password("alice")
    web.repo("alice/secret", {"README.md": "---\npipeline_tag: text-classification\n---\n"}, private=True)
    assert web.sign_in("alice").status_code == 303
    page = web.get("/alice/secret")
    assert page.status_code == 200
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)
    body = {"inputs": "probe"}
    # the cookie alone: anonymous, so the private model does not exist
    alone = web.client.post("/models/alice/secret", json=body)
    assert alone.status_code == 404 and alone.headers["x-error-code"] == "RepoNotFound"
    wrong = web.client.post("/models/alice/secret", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status_code == 403
    # cookie + token: the owner; the repo has no weights, so the answer is about loading, not visibility
    owner = web.client.post("/models/alice/secret", json=body, headers={"X-CSRF-Token": token})
    assert owner.status_code not in (403, 404), owner.text
    web.client.cookies.clear()
    gone = web.client.post("/models/alice/secret", json=body, headers={"X-CSRF-Token": token})
    assert gone.status_code == 404
