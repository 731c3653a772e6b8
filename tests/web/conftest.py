"""Web tests without a browser: the app in-process (FastAPI's TestClient), users, tokens and repos made
through the store, and a browser-like Accept header."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PASSWORD = "correct horse battery"  # what WebHub.password gives users unless told otherwise


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

    def commit(
        self,
        repo_id: str,
        *,
        add: dict[str, bytes | str] | None = None,
        lfs: dict[str, bytes] | None = None,
        delete: tuple[str, ...] = (),
        repo_type: str = "model",
        title: str = "Update files",
        branch: str | None = None,
    ) -> str:
        """One commit to an existing repo: regular files, LFS files (uploaded and linked first) and
        deletions; returns the commit id."""
        from cove.store import CommitOp

        with self.store.session() as s:
            row = self.store.get_repo(s, repo_type, repo_id)
            ops = []
            for path, data in (add or {}).items():
                raw = data.encode() if isinstance(data, str) else data
                ops.append(CommitOp("add", path, self.store.store_regular(raw, path)))
            for path, raw in (lfs or {}).items():
                sha = self.store.blobs.put_bytes(raw)
                self.store.link_lfs(s, row.id, sha)
                ops.append(CommitOp("add", path, self.store.lfs_entry(path, sha, len(raw))))
            ops += [CommitOp("delete", path) for path in delete]
            return self.store.commit(s, row, ops, title=title, author=repo_id.split("/")[0], branch=branch)

    def huge_lfs(self, repo_id: str, path: str, size: int, head: bytes, *, repo_type: str = "model") -> str:
        """Commit an LFS file of size bytes that holds head and then zeros, as a sparse blob (a 5 GB
        checkpoint costs the test no disk); returns the commit id."""
        import hashlib

        from cove.store import CommitOp

        sha = hashlib.sha256(head + str(size).encode()).hexdigest()  # a name; the store never re-hashes
        blob = self.store.blobs.path(sha)
        blob.parent.mkdir(parents=True, exist_ok=True)
        with open(blob, "wb") as f:
            f.write(head)
            f.truncate(size)
        with self.store.session() as s:
            row = self.store.get_repo(s, repo_type, repo_id)
            self.store.link_lfs(s, row.id, sha)
            op = CommitOp("add", path, self.store.lfs_entry(path, sha, size))
            return self.store.commit(s, row, [op], title=f"Add {path}", author=repo_id.split("/")[0])

    def like(self, user: str, repo_id: str, *, repo_type: str = "model") -> None:
        """user likes the repo (a likes row and the repo's count, as the like form leaves them)."""
        from cove.server.auth.service import get_account
        from cove.store import LikeRow

        with self.store.session() as s:
            row = self.store.get_repo(s, repo_type, repo_id)
            account = get_account(s, user)
            assert account is not None
            s.add(LikeRow(user_id=account.id, repo_id=row.id))
            row.likes = (row.likes or 0) + 1
            s.commit()

    def get(self, path: str, *, user: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
        """GET as a browser (Accept: text/html), optionally with a user's token."""
        headers = dict(HTML)
        if user is not None:
            headers["authorization"] = f"Bearer {self.tokens[user]}"
        headers.update(kwargs.pop("headers", {}))
        return self.client.get(path, headers=headers, **kwargs)

    # --- accounts (tests/web/test_accounts.py, test_forms.py, test_likes.py) ---

    def password(self, name: str, password: str = PASSWORD) -> None:
        """Give a user (made when missing) a password."""
        from cove.server.auth.service import set_password

        self.user(name)
        with self.store.session() as s:
            set_password(s, name, password)

    def sign_in(self, name: str, password: str = PASSWORD, *, next: str = "/"):  # type: ignore[no-untyped-def]
        """Sign this client in as a browser does (the form's CSRF token, then the post); the session
        cookie stays in the client's jar. Returns the post's response (a 303 on success)."""
        token = self.csrf("/login")
        return self.client.post(
            "/login",
            data={"csrf_token": token, "username": name, "password": password, "next": next},
            headers=HTML,
            follow_redirects=False,
        )

    def csrf(self, path: str, **kwargs) -> str:  # type: ignore[no-untyped-def]
        """The csrf_token of the first form on a page (GET as this client)."""
        page = self.get(path, **kwargs)
        assert page.status_code == 200, (path, page.status_code, page.text[:500])
        found = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
        assert found is not None, f"no CSRF field on {path}"
        return found.group(1)

    def post(self, path: str, data: dict | None = None, *, user: str | None = None, **kwargs):  # type: ignore[no-untyped-def]
        """POST a form as a browser (Accept: text/html), not following redirects."""
        headers = dict(HTML)
        if user is not None:
            headers["authorization"] = f"Bearer {self.tokens[user]}"
        headers.update(kwargs.pop("headers", {}))
        kwargs.setdefault("follow_redirects", False)
        return self.client.post(path, data=data, headers=headers, **kwargs)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebHub]:
    from cove.server.app import create_app
    from cove.server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "hub"))
    with TestClient(app) as client:
        yield WebHub(client=client, data_dir=tmp_path / "hub")


# --- weight files built at test time (no model is ever downloaded) -----------------------------------------

_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}


def safetensors_bytes(
    tensors: dict[str, tuple[str, tuple[int, ...]]], metadata: dict[str, str] | None = None
) -> bytes:
    """A valid safetensors file of zeros: name -> (dtype, shape)."""
    import json
    import math

    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * _DTYPE_BYTES[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + bytes(offset)


def gguf_bytes(tmp_path: Path, name: str = "tiny", vocab: int = 40) -> bytes:
    """A small llama GGUF file (metadata, a vocabulary, three tensors) written by the gguf package."""
    import gguf
    import numpy as np

    path = tmp_path / f"{name}.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name(name)
    w.add_block_count(1)
    w.add_context_length(128)
    w.add_embedding_length(8)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_scores([0.5] * vocab)
    w.add_tensor("token_embd.weight", np.zeros((vocab, 8), dtype=np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((8, 8), dtype=np.float16))
    w.add_tensor("output_norm.weight", np.ones(8, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.fixture
def make_web(tmp_path: Path) -> Iterator[Callable[..., WebHub]]:
    """Web hubs with settings of the test's choosing (make_web(max_upload_bytes=2000)); https=True serves
    them at https://testserver."""
    from cove.server.app import create_app
    from cove.server.settings import Settings

    clients: list[TestClient] = []

    def make(*, https: bool = False, **settings) -> WebHub:  # type: ignore[no-untyped-def]
        data_dir = tmp_path / f"hub{len(clients)}"
        app = create_app(Settings(data_dir=data_dir, **settings))
        client = TestClient(app, base_url="https://testserver" if https else "http://testserver")
        client.__enter__()
        clients.append(client)
        return WebHub(client=client, data_dir=data_dir)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def readme(card: dict | None = None, body: str = "") -> str:
    """A README.md: card as YAML front matter (JSON is YAML), then body."""
    import json

    front = f"---\n{json.dumps(card)}\n---\n" if card is not None else ""
    return front + body


from tests.server.conftest import postgres  # noqa: E402, F401  (a real PostgreSQL, for the migration tests)
