"""Changing repos from the browser: create (/new), upload files, edit the card, settings (visibility, move,
delete) and the like button. Each is one call into the same services as the API (repos/service.py, the
store's commit, repos/likes.py) under the same permission checks (`Principal.check_write/check_admin`),
after the caller and the repo were checked from the headers and before anything changes, the CSRF token.

Repo paths are /{namespace}/{name}/... for models and /datasets/... or /spaces/... for the others;
web/router.py registers these routes before the pages' catch-alls."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response

from cove.errors import (
    AuthenticationError,
    HubError,
    HubPermissionError,
    HubRequestError,
    RepoNotFoundError,
)
from cove.server import rawpath  # noqa: F401  # registers the {x:seg} / {x:kind} convertors
from cove.server.auth.service import Principal
from cove.server.deps import PLURAL, TYPE_PREFIX, Db, Hub, HubDep, find_repo
from cove.server.files import service as files
from cove.server.repos import likes
from cove.server.repos import service as repos
from cove.server.repos.schemas import CreateRepoRequest, MoveRepoRequest, RepoRef, RepoSettingsRequest
from cove.server.web.forms import (
    FormBody,
    LargeFormBody,
    MultipartReader,
    body_chunks,
    error_headers,
    see_other,
    status_of,
)
from cove.server.web.render import page
from cove.server.web.session import (
    CSRF_FIELD,
    SignedIn,
    WebCaller,
    check_csrf,
    expected_csrf,
    safe_next,
    sign_in_redirect,
)
from cove.store import (
    CommitOp,
    FileEntry,
    RepoRow,
    RepoStore,
    card_from_readme_bounded,
    check_path,
    check_text,
    split_front_matter,
)

router = APIRouter(include_in_schema=False)

SDKS = ("static", "gradio", "streamlit", "docker")
_MAX_FIELD_BYTES = 64 * 1024  # a plain field of the upload form (summary, description, folder)
_MAX_FILES = 1000


def repo_page_url(repo: RepoRow) -> str:
    return f"/{TYPE_PREFIX[repo.type]}{repo.repo_id}"


def _repo_type(request: Request) -> str:
    return PLURAL[request.path_params.get("kind", "models")]


def _page_repo(request: Request, namespace: str, name: str, hub: HubDep, s: Db, caller: WebCaller) -> RepoRow:
    return find_repo(_repo_type(request), namespace, name, hub, s, caller)


def _post_repo(request: Request, namespace: str, name: str, hub: HubDep, s: Db, caller: SignedIn) -> RepoRow:
    """The repo of a form post: the caller is checked first (signed in, session alive), then the repo."""
    return find_repo(_repo_type(request), namespace, name, hub, s, caller)


PageRepo = Annotated[RepoRow, Depends(_page_repo)]
PostRepo = Annotated[RepoRow, Depends(_post_repo)]


def _repo_route(method: str, suffix: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the endpoint for /datasets|spaces|models/{ns}/{name}{suffix} and /{ns}/{name}{suffix}
    (a model); the typed prefix first, so it is never read as a model namespace."""

    def register(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        for prefix in ("/{kind:kind}", ""):
            router.add_api_route(prefix + "/{namespace:seg}/{name:seg}" + suffix, endpoint, methods=[method])
        return endpoint

    return register


def _writable_namespaces(caller: Principal) -> list[str]:
    """Where the caller may create or move repos: themselves, then orgs where they write."""
    names = [caller.name] if caller.name else []
    return names + sorted(org for org, role in caller.orgs.items() if role in ("write", "admin"))


def _repo_context(repo: RepoRow) -> dict[str, Any]:
    return {"repo": repo, "repo_url": repo_page_url(repo)}


# --- create ---------------------------------------------------------------------------------------


def _new_page(
    request: Request, caller: Principal, *, failed: HubError | None = None, **values: Any
) -> Response:
    values.setdefault("type", "model")
    values.setdefault("owner", caller.name)
    values.setdefault("visibility", "public")
    values.setdefault("sdk", "static")
    return page(
        request,
        "manage/new.html",
        status_code=status_of(failed) if failed else 200,
        headers=error_headers(failed) if failed else None,
        owners=_writable_namespaces(caller),
        sdks=SDKS,
        values=values,
        error=str(failed) if failed else None,
    )


@router.get("/new")
def new_page(request: Request, caller: WebCaller, type: str = "model", owner: str | None = None) -> Response:
    if caller.name is None:
        return sign_in_redirect(request)
    return _new_page(request, caller, type=type, owner=owner or caller.name)


@router.post("/new")
def create_repo(request: Request, hub: HubDep, s: Db, caller: SignedIn, form: FormBody) -> Response:
    check_csrf(request, form.get(CSRF_FIELD))
    values = {
        "type": form.get("type", "model"),
        "owner": form.get("owner") or caller.name,
        "name": form.get("name").strip(),
        "visibility": form.get("visibility", "public"),
        "sdk": form.get("sdk", "static"),
    }
    try:
        if not values["name"]:
            raise HubRequestError("Give the repo a name, e.g. 'my-model'.")
        if values["visibility"] not in ("public", "private"):
            raise HubRequestError(f"Unknown visibility {values['visibility']!r}: use public or private.")
        if values["type"] == "space" and values["sdk"] not in SDKS:
            raise HubRequestError(f"Unknown Space SDK {values['sdk']!r}: use one of {', '.join(SDKS)}.")
        body = CreateRepoRequest(
            name=values["name"],
            organization=values["owner"],
            type=values["type"],
            private=values["visibility"] == "private",
            sdk=values["sdk"] if values["type"] == "space" else None,
        )
        created = repos.create_repo(hub.store, s, caller, body, lambda t, r: f"/{TYPE_PREFIX[t]}{r}")
    except HubError as exc:  # a bad name, a taken one, an owner the caller may not write to
        s.rollback()
        return _new_page(request, caller, failed=exc, **values)
    return see_other(created.url)


# --- upload ---------------------------------------------------------------------------------------


def _upload_page(
    request: Request, hub: Hub, repo: RepoRow, revision: str, *, failed: HubError | None = None
) -> Response:
    return page(
        request,
        "manage/upload.html",
        status_code=status_of(failed) if failed else 200,
        headers=error_headers(failed) if failed else None,
        error=str(failed) if failed else None,
        revision=revision,
        max_upload_bytes=hub.settings.max_upload_bytes,
        **_repo_context(repo),
    )


@_repo_route("GET", "/upload/{revision:seg}")
def upload_page(
    request: Request, hub: HubDep, s: Db, caller: WebCaller, repo: PageRepo, revision: str
) -> Response:
    if caller.name is None:
        return sign_in_redirect(request)
    caller.check_write(repo)
    hub.store.resolve(s, repo, revision)
    return _upload_page(request, hub, repo, revision)


def _git_oid(store: RepoStore, sha256: str, size: int) -> str:
    """The git blob sha1 of a stored blob, read back in chunks (its size must lead the hash)."""
    digest = hashlib.sha1(b"blob %d\0" % size)
    for chunk in store.blobs.iter_range(sha256, 0, size):
        digest.update(chunk)
    return digest.hexdigest()


class _Upload:
    """What the upload form sent: its fields, and its files already in the blob store."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.files: list[tuple[str, str, int]] = []  # (file name, sha256, size)
        self.csrf_ok = False


def _receive(request: Request, store: RepoStore, reader: MultipartReader) -> _Upload:
    """Read the multipart body: plain fields into memory (capped), each file straight into the blob store.
    The CSRF token must come before the first file, so a forged upload stores nothing."""
    expected = expected_csrf(request)
    got = _Upload()
    got.csrf_ok = expected is None
    for part in reader.parts():
        if part.filename is None:
            value = part.read_all(_MAX_FIELD_BYTES).decode("utf-8", "replace")
            got.fields[part.name] = value
            if part.name == CSRF_FIELD and expected is not None:
                check_csrf(request, value)
                got.csrf_ok = True
            continue
        if not part.filename:  # a file input left empty
            continue
        if not got.csrf_ok:
            check_csrf(request, None)
        if len(got.files) >= _MAX_FILES:
            raise HubRequestError(f"Too many files in one upload: at most {_MAX_FILES}.")
        check_path(part.filename)  # before storing a byte of it
        sha, size = store.blobs.put_stream(part)  # type: ignore[arg-type]  # read(n) is all it needs
        got.files.append((part.filename, sha, size))
    if not got.csrf_ok:
        check_csrf(request, None)
    return got


def _upload_ops(hub: Hub, s: Db, repo_pk: int, got: _Upload) -> list[CommitOp]:
    folder = got.fields.get("folder", "").strip().strip("/")
    if folder:
        check_path(folder)
    ops: list[CommitOp] = []
    seen: set[str] = set()
    for filename, sha, size in got.files:
        path = check_path(f"{folder}/{filename}" if folder else filename)
        if path in seen:
            raise HubRequestError(f"{path!r} is twice in the upload: send each file once.")
        seen.add(path)
        if files.upload_mode(hub.settings, size, "", None) == "lfs":
            hub.store.link_lfs(s, repo_pk, sha)  # this repo received the object
            entry = hub.store.lfs_entry(path, sha, size)
        else:
            entry = FileEntry(path=path, oid=_git_oid(hub.store, sha, size), size=size, sha256=sha, lfs=False)
        ops.append(CommitOp("add", path, entry))
    return ops


@_repo_route("POST", "/upload/{revision:seg}")
def upload(request: Request, hub: HubDep, s: Db, caller: SignedIn, repo: PostRepo, revision: str) -> Response:
    """Files from a multipart form, each streamed into the blob store as it arrives (never whole in
    memory), then one commit. The body is capped at COVE_MAX_UPLOAD_BYTES and read only once the caller
    may write here; a refused upload commits nothing (stored blobs no commit names are `cove gc`'s)."""
    caller.check_write(repo)
    repo_pk, repo_id = repo.id, repo.repo_id
    s.rollback()  # no database connection is held while the body streams in
    chunks = body_chunks(request, hub.settings.max_upload_bytes, "COVE_MAX_UPLOAD_BYTES")
    try:
        with contextlib.closing(chunks):  # in this thread, whatever part of the body was read
            got = _receive(
                request, hub.store, MultipartReader(chunks, request.headers.get("content-type", ""))
            )
        if not got.files:
            raise HubRequestError("Choose at least one file to upload.")
        summary = check_text(got.fields.get("summary", "").strip(), "commit message")
        description = check_text(got.fields.get("description", ""), "commit description", multiline=True)
        if not summary:
            names = [name for name, _sha, _size in got.files]
            summary = f"Upload {names[0]}" if len(names) == 1 else f"Upload {len(names)} files"
        ops = _upload_ops(hub, s, repo_pk, got)
        current = hub.store.repo_by_pk(s, repo_pk)
        if current is None:
            raise RepoNotFoundError(f"Repo {repo_id!r} was deleted during the upload.")
        caller.check_write(current)
        hub.store.commit(
            s, current, ops, title=summary, message=description, author=caller.name or "", branch=revision
        )
    except (RepoNotFoundError, HubPermissionError, AuthenticationError):
        raise
    except HubError as exc:
        s.rollback()
        current = hub.store.repo_by_pk(s, repo_pk)
        if current is None:
            raise
        return _upload_page(request, hub, current, revision, failed=exc)
    return see_other(f"{repo_page_url(current)}/tree/{quote(revision, safe='')}")


# --- the card editor -------------------------------------------------------------------------------


def card_problem(text: str, *, timeout: float) -> str | None:
    """What is wrong with a README's metadata (None: fine): front matter never closed, YAML that does not
    parse, or metadata the hub refuses (too large, not a mapping, unsendable text)."""
    first = text.lstrip("\ufeff").split("\n", 1)[0]
    if first.strip() == "---" and split_front_matter(text) is None:
        return (
            "The metadata block opened by '---' on the first line is never closed: end it with a '---' line."
        )
    try:
        card_from_readme_bounded(text, timeout=timeout)
    except HubRequestError as exc:
        return str(exc)
    return None


def _edit_page(
    request: Request, repo: RepoRow, revision: str, *, failed: HubError | None = None, **ctx: Any
) -> Response:
    return page(
        request,
        "manage/edit.html",
        status_code=status_of(failed) if failed else 200,
        headers=error_headers(failed) if failed else None,
        revision=revision,
        **_repo_context(repo),
        **ctx,
    )


def _branch_head(hub: Hub, s: Db, repo: RepoRow, revision: str) -> str:
    """The head commit of a branch: the card is edited on branches only."""
    branches = {r.name: r.commit_id for r in hub.store.refs(s, repo) if r.kind == "branch"}
    name = revision.removeprefix("refs/heads/")
    if name not in branches:
        hub.store.resolve(s, repo, revision)  # 404 when it is nothing at all
        raise HubRequestError(
            f"{revision!r} is not a branch of {repo.repo_id!r}: edit the card on a branch "
            f"({', '.join(sorted(branches))})."
        )
    return branches[name]


@_repo_route("GET", "/edit/{revision:seg}/README.md")
def edit_page(
    request: Request, hub: HubDep, s: Db, caller: WebCaller, repo: PageRepo, revision: str
) -> Response:
    if caller.name is None:
        return sign_in_redirect(request)
    caller.check_write(repo)
    head = _branch_head(hub, s, repo, revision)
    entry = hub.store.tree(s, head).get("README.md")
    if entry is None:
        text = f"---\n---\n\n# {repo.name}\n"
    else:
        limit = hub.settings.max_yaml_bytes
        if entry.size > limit:
            raise HubRequestError(
                f"README.md is {entry.size:,} bytes, over the {limit:,} the editor takes (COVE_MAX_YAML_BYTES): "
                "upload a new README.md instead."
            )
        try:
            text = hub.store.blobs.read(entry.sha256).decode("utf-8")
        except UnicodeDecodeError:
            raise HubRequestError("README.md is not UTF-8 text: upload a new README.md instead.") from None
    return _edit_page(request, repo, revision, content=text, parent=head, summary="", description="")


@_repo_route("POST", "/edit/{revision:seg}/README.md")
def edit_card(
    request: Request, hub: HubDep, s: Db, caller: SignedIn, repo: PostRepo, revision: str, form: LargeFormBody
) -> Response:
    """Commit the edited README.md on the branch it was opened from. A card whose metadata is invalid is
    refused with the error and the text kept (nothing committed), as is an edit of a README that changed
    since the page was opened (412)."""
    caller.check_write(repo)
    check_csrf(request, form.get(CSRF_FIELD))
    content = form.get("content").replace("\r\n", "\n")  # browsers send textarea lines with CRLF
    summary = form.get("summary").strip() or "Update README.md"
    description = form.get("description").replace("\r\n", "\n")
    parent = form.get("parent") or None
    kept = {"content": content, "parent": parent, "summary": form.get("summary"), "description": description}
    try:
        check_text(content, "README.md", multiline=True)
        check_text(summary, "commit message")
        check_text(description, "commit description", multiline=True)
        problem = card_problem(content, timeout=hub.settings.yaml_timeout_seconds)
        if problem is not None:
            raise HubRequestError(f"The card was not saved: {problem}")
        _branch_head(hub, s, repo, revision)
        entry = hub.store.store_regular(content.encode("utf-8"), "README.md")
        hub.store.commit(
            s,
            repo,
            [CommitOp("add", "README.md", entry)],
            title=summary,
            message=description,
            author=caller.name or "",
            branch=revision,
            parent_commit=parent,
        )
    except (RepoNotFoundError, HubPermissionError, AuthenticationError):
        raise
    except HubError as exc:
        s.rollback()
        message = str(exc)
        if status_of(exc) == 412:
            message = (
                "README.md changed since you opened the editor (another commit landed on "
                f"{revision!r}). Your text is kept below: copy it, reload the editor and apply it again."
            )
        return _edit_page(request, repo, revision, failed=exc, error=message, **kept)
    return see_other(repo_page_url(repo))


# --- settings: visibility, move, delete -----------------------------------------------------------


def _settings_page(
    request: Request, repo: RepoRow, caller: Principal, *, failed: HubError | None = None, **ctx: Any
) -> Response:
    return page(
        request,
        "manage/settings.html",
        status_code=status_of(failed) if failed else 200,
        headers=error_headers(failed) if failed else None,
        owners=_writable_namespaces(caller),
        **_repo_context(repo),
        **ctx,
    )


@_repo_route("GET", "/settings")
def settings_page(request: Request, caller: WebCaller, repo: PageRepo, saved: str | None = None) -> Response:
    if caller.name is None:
        return sign_in_redirect(request)
    caller.check_admin(repo)
    return _settings_page(request, repo, caller, saved=saved)


@_repo_route("POST", "/settings/visibility")
def change_visibility(
    request: Request, hub: HubDep, s: Db, caller: SignedIn, repo: PostRepo, form: FormBody
) -> Response:
    caller.check_admin(repo)
    check_csrf(request, form.get(CSRF_FIELD))
    visibility = form.get("visibility")
    if visibility not in ("public", "private"):
        failed = HubRequestError(f"Unknown visibility {visibility!r}: choose public or private.")
        return _settings_page(request, repo, caller, failed=failed, visibility_error=str(failed))
    repos.update_settings(hub.store, s, caller, repo, RepoSettingsRequest(visibility=visibility))  # type: ignore[arg-type]
    return see_other(f"{repo_page_url(repo)}/settings?saved=visibility")


@_repo_route("POST", "/settings/move")
def move_repo(
    request: Request, hub: HubDep, s: Db, caller: SignedIn, repo: PostRepo, form: FormBody
) -> Response:
    caller.check_admin(repo)
    check_csrf(request, form.get(CSRF_FIELD))
    owner, name = form.get("owner").strip(), form.get("name").strip()
    try:
        if not owner or not name:
            raise HubRequestError("Choose the new owner and name.")
        if f"{owner}/{name}" == repo.repo_id:
            raise HubRequestError(f"{repo.repo_id!r} is already this repo's name.")
        moved = repos.move_repo(
            hub.store,
            s,
            caller,
            MoveRepoRequest(fromRepo=repo.repo_id, toRepo=f"{owner}/{name}", type=repo.type),
        )
    except HubError as exc:  # a bad or taken name, an owner the caller may not write to
        s.rollback()
        return _settings_page(request, repo, caller, failed=exc, move_error=str(exc), move_name=name)
    return see_other(f"{repo_page_url(moved)}/settings?saved=moved")


@_repo_route("POST", "/settings/delete")
def delete_repo(
    request: Request, hub: HubDep, s: Db, caller: SignedIn, repo: PostRepo, form: FormBody
) -> Response:
    """Delete the repo once its full name is typed into the confirmation field."""
    caller.check_admin(repo)
    check_csrf(request, form.get(CSRF_FIELD))
    typed = form.get("confirm").strip()
    if typed != repo.repo_id:
        failed = HubRequestError(
            f"Type {repo.repo_id!r} exactly to confirm (you typed {typed!r}). Nothing was deleted."
        )
        return _settings_page(request, repo, caller, failed=failed, delete_error=str(failed))
    namespace = repo.namespace
    repos.delete_repo(
        hub.store, s, caller, RepoRef(name=repo.name, organization=repo.namespace, type=repo.type)
    )
    return see_other(f"/{namespace}")


# --- the like button ------------------------------------------------------------------------------


@_repo_route("POST", "/like")
def like_button(request: Request, s: Db, caller: SignedIn, repo: PostRepo, form: FormBody) -> Response:
    """Like, or unlike when liked, then back to the page (a same-origin `next`, else the repo's page)."""
    check_csrf(request, form.get(CSRF_FIELD))
    url = repo_page_url(repo)
    likes.toggle(s, caller, repo)
    return see_other(safe_next(form.get("next"), default=url))
