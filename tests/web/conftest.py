"""Web tests without a browser: the app in-process (FastAPI's TestClient), users, tokens and repos made
through the store, and a browser-like Accept header."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@dataclass
class WebHub:
    client: TestClient
    data_dir: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.client.app.state.hub.store  # type: ignore[attr-defined]

    def user(self, name: str, *, org: str | None = None, role: str = "write") -> str:
        """A user (once) with a write token; with org, also a member of it. Returns the token."""
        from cove.server.auth.service import add_member, create_account, create_token, get_account

        with self.store.session() as s:
            if get_account(s, name) is None:
                create_account(s, name, "user")
                self.tokens[name] = create_token(s, name)
            if org is not None:
                if get_account(s, org) is None:
                    create_account(s, org, "org")
                add_member(s, org, name, role)
        return self.tokens[name]

    def repo(
        self,
        repo_id: str,
        files: dict[str, bytes | str] | None = None,
        *,
        repo_type: str = "model",
        private: bool = False,
        title: str = "Add files",
    ) -> str:
        """A repo (created when missing) with files committed to main; returns the commit id."""
        from cove.store import CommitOp

        namespace = repo_id.split("/")[0]
        with self.store.session() as s:
            if self.store.exists(s, repo_type, repo_id):
                row = self.store.get_repo(s, repo_type, repo_id)
            else:
                row = self.store.create_repo(s, repo_type, repo_id, private=private, author=namespace)
            ops = []
            for path, data in (files or {}).items():
                raw = data.encode() if isinstance(data, str) else data
                ops.append(CommitOp("add", path, self.store.store_regular(raw, path)))
            if not ops:
                return self.store.resolve(s, row, None)
            return self.store.commit(s, row, ops, title=title, author=namespace)

    def get(self, path: str, *, user: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
        """GET as a browser (Accept: text/html), optionally with a user's token."""
        headers = dict(HTML)
        if user is not None:
            headers["authorization"] = f"Bearer {self.tokens[user]}"
        headers.update(kwargs.pop("headers", {}))
        return self.client.get(path, headers=headers, **kwargs)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebHub]:
    from cove.server.app import create_app
    from cove.server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "hub"))
    with TestClient(app) as client:
        yield WebHub(client=client, data_dir=tmp_path / "hub")


def readme(card: dict | None = None, body: str = "") -> str:
    """A README.md: card as YAML front matter (JSON is YAML), then body."""
    import json

    front = f"---\n{json.dumps(card)}\n---\n" if card is not None else ""
    return front + body


from tests.server.conftest import postgres  # noqa: E402, F401  (a real PostgreSQL, for the migration tests)
