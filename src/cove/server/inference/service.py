"""From a request's model name and token to a loaded model: who calls, which repo and commit, what it serves.

Access follows the hub's rules (``cove.server.auth``): a private model the caller may not read does not
exist for it (404, as everywhere on the hub); public models answer anonymous callers unless
``COVE_INFERENCE_REQUIRE_TOKEN=1``. A revision pins a commit (``ns/name@revision`` or ``?revision=``), so two
commits of one model are two loaded models.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cove.errors import AuthenticationError, RepoNotFoundError
from cove.server.auth.service import TOKEN_PREFIX, Principal, authenticate
from cove.server.deps import Hub, find_repo
from cove.server.inference.engine import Engine, ServedModel, Target
from cove.server.inference.tasks import ModelInfo, model_info
from cove.store import FileEntry, RepoStore

_MAX_CONFIG_BYTES = 4 * 1024**2


@dataclass(frozen=True)
class ModelRef:
    """A model as a request names it: ``ns/name``, with an optional revision."""

    repo_id: str
    revision: str | None = None

    @classmethod
    def parse(cls, name: str, revision: str | None = None) -> ModelRef:
        """``ns/name`` or ``ns/name@revision`` (an explicit revision wins over one in the name)."""
        repo_id, at, pinned = name.partition("@")
        if at and not pinned:
            raise RepoNotFoundError(f"Model {name!r} not found: a revision follows '@' (ns/name@main).")
        return cls(repo_id, revision or (pinned or None))


class _InfoCache:
    """ModelInfo by commit id: a commit's files never change."""

    def __init__(self, size: int = 1024):
        self._items: OrderedDict[str, ModelInfo] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, commit: str) -> ModelInfo | None:
        with self._lock:
            hit = self._items.get(commit)
            if hit is not None:
                self._items.move_to_end(commit)
            return hit

    def put(self, commit: str, info: ModelInfo) -> None:
        with self._lock:
            self._items[commit] = info
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_infos = _InfoCache()


# the credentials of a hub page's script: its session cookie and the page's CSRF token (X-CSRF-Token)
SESSION_SCHEME = "CoveSession"


def credentials(request: Any) -> str | None:
    """What identifies an inference request's caller, as one string (the resolution cache's key): the
    Authorization header; else, for the hub's own pages (the try-it widgets call with fetch), the session
    cookie together with the X-CSRF-Token header, both needed (a cookie alone is anonymous, so another
    site cannot spend a signed-in user's access); else None (anonymous)."""
    header = request.headers.get("authorization")
    if header:
        return header
    from cove.server.web.session import CSRF_HEADER, SESSION_COOKIE

    cookie, csrf = request.cookies.get(SESSION_COOKIE), request.headers.get(CSRF_HEADER)
    if cookie and csrf and " " not in cookie and " " not in csrf:
        return f"{SESSION_SCHEME} {cookie} {csrf}"
    return None


def caller_of(hub: Hub, authorization: str | None) -> Principal:
    with hub.store.session() as s:
        return check_caller(hub, authenticate_caller(s, authorization, hub.secret))


def _session_caller(s: Session, value: str, secret: bytes) -> Principal:
    """A page's session credentials: the user when the CSRF token matches, anonymous for a session that is
    gone (as on the pages), 403 for a wrong token."""
    from cove.server.web.session import csrf_session_principal

    cookie, _, csrf = value.partition(" ")
    return csrf_session_principal(s, secret, cookie, csrf) or Principal()


def authenticate_caller(s: Session, authorization: str | None, secret: bytes = b"") -> Principal:
    """The caller of an inference route. A bearer value that is not a Cove token (``cove_...``) counts as
    no token: OpenAI clients must send some api_key ("EMPTY"), and InferenceClient sends the caller's stored
    huggingface.co token, which means nothing here. A Cove token that is wrong or revoked is still a 401.
    A page's session credentials (``credentials``) count with a matching CSRF token."""
    if authorization and authorization.startswith(SESSION_SCHEME + " ") and secret:
        return _session_caller(s, authorization[len(SESSION_SCHEME) + 1 :], secret)
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and not token.strip().startswith(TOKEN_PREFIX):
            return Principal()
    return authenticate(s, authorization)


def check_caller(hub: Hub, caller: Principal) -> Principal:
    if hub.settings.inference_require_token and caller.name is None:
        raise AuthenticationError(
            "This hub's inference API needs a token (COVE_INFERENCE_REQUIRE_TOKEN): pass Authorization: Bearer ..."
        )
    return caller


class _Resolved:
    """Recent resolutions by (authorization, repo, revision, token rule): a busy model's requests skip the
    token, repo and ref queries for COVE_INFERENCE_RESOLVE_CACHE_SECONDS (a revoked token, a repo made
    private or a moved branch applies after at most that long)."""

    def __init__(self, size: int = 4096):
        self._items: OrderedDict[tuple[Any, ...], tuple[float, Target]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Target | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                del self._items[key]
                return None
            return hit[1]

    def put(self, key: tuple[Any, ...], target: Target, seconds: float) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + seconds, target)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_resolved = _Resolved()


def _key(hub: Hub, authorization: str | None, ref: ModelRef) -> tuple[Any, ...]:
    return (id(hub), authorization or "", ref.repo_id, ref.revision, hub.settings.inference_require_token)


def cached(hub: Hub, authorization: str | None, ref: ModelRef) -> Target | None:
    """A recent resolution of the same lookup, or None (no database call: safe on the event loop)."""
    if hub.settings.inference_resolve_cache_seconds <= 0:
        return None
    return _resolved.get(_key(hub, authorization, ref))


def resolve(hub: Hub, authorization: str | None, ref: ModelRef) -> Target:
    """The commit the caller may run, with what it serves; RepoNotFoundError when it may not see it."""
    hit = cached(hub, authorization, ref)
    if hit is not None:
        return hit
    target = _resolve(hub, authorization, ref)
    seconds = hub.settings.inference_resolve_cache_seconds
    if seconds > 0:
        _resolved.put(_key(hub, authorization, ref), target, seconds)
    return target


def _resolve(hub: Hub, authorization: str | None, ref: ModelRef) -> Target:
    store = hub.store
    with store.session() as s:
        caller = check_caller(hub, authenticate_caller(s, authorization, hub.secret))
        namespace, slash, name = ref.repo_id.partition("/")
        if not slash or not namespace or not name or "/" in name:
            raise RepoNotFoundError(
                f"Model {ref.repo_id!r} not found: name a model repo as namespace/name (e.g. acme/my-model)."
            )
        repo = find_repo("model", namespace, name, hub, s, caller)
        commit = store.resolve(s, repo, ref.revision)
        info = _infos.get(commit)
        if info is None:
            info = read_info(store, store.tree(s, commit))
            _infos.put(commit, info)
        return Target(repo_id=repo.repo_id, commit=commit, info=info)


def read_info(store: RepoStore, tree: dict[str, FileEntry]) -> ModelInfo:
    card = store.card_of(tree.get("README.md"))
    config = _json_file(store, tree.get("config.json"))
    info = model_info(card, config, set(tree))
    st_config = _json_file(store, tree.get("config_sentence_transformers.json")) or {}
    prompts = st_config.get("prompts")
    if isinstance(prompts, dict):
        clean = {str(k): v for k, v in prompts.items() if isinstance(v, str)}
        info = ModelInfo(info.task, info.tasks, info.problem, info.config, info.sentence_transformers, clean)
    return info


def _json_file(store: RepoStore, entry: FileEntry | None) -> dict[str, Any] | None:
    if entry is None or entry.size > _MAX_CONFIG_BYTES:
        return None
    try:
        data = json.loads(store.blobs.read(entry.sha256))
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def load(hub: Hub, engine: Engine, target: Target) -> ServedModel:
    """The loaded model (loading it when needed: the snapshot folder is built from the store's tree)."""

    def tree() -> dict[str, FileEntry]:
        with hub.store.session() as s:
            return hub.store.tree(s, target.commit)

    return engine.get(target, tree)
