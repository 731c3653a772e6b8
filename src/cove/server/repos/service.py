"""Repo metadata as the Hub's JSON (info with siblings, tree entries, refs, commits), and the changes to
repos the routes ask for: create, delete, move, settings, branches, tags."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from cove.errors import AuthenticationError, HubPermissionError, HubRequestError, RepoExistsError
from cove.server.auth.service import Principal, get_account
from cove.server.deps import iso
from cove.server.repos.schemas import (
    CreateBranchRequest,
    CreateRepoRequest,
    CreateRepoResponse,
    CreateTagRequest,
    MoveRepoRequest,
    RepoRef,
    RepoSettingsRequest,
)
from cove.store import (
    FileEntry,
    RepoRow,
    RepoStore,
    card_tags,
    check_path,
    check_repo_type,
    lfs_pointer,
)


def card(repo: RepoRow) -> dict[str, Any]:
    try:
        data = json.loads(repo.card_json or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def repo_tags(repo: RepoRow) -> list[str]:
    return card_tags(card(repo), repo.type)


def summary_json(repo: RepoRow, sha: str | None = None, *, with_card: bool = False) -> dict[str, Any]:
    """The fields list endpoints return for each repo."""
    data = card(repo)
    out: dict[str, Any] = {
        "_id": f"{repo.id:024x}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "private": repo.private,
        "gated": False,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": repo.likes or 0,  # kept in step with the likes table by the like service
        "tags": repo_tags(repo),
        "lastModified": iso(repo.updated_at),
        "createdAt": iso(repo.created_at),
    }
    if sha is not None:
        out["sha"] = sha
    if repo.type == "model":
        out["modelId"] = repo.repo_id
        if data.get("pipeline_tag"):
            out["pipeline_tag"] = data["pipeline_tag"]
        if data.get("library_name"):
            out["library_name"] = data["library_name"]
    if repo.type == "space":
        out["sdk"] = data.get("sdk") or repo.sdk
    if with_card and data:
        out["cardData"] = data
    return out


def info_json(
    store: RepoStore, s: Session, repo: RepoRow, commit_id: str, *, files_metadata: bool
) -> dict[str, Any]:
    tree = store.tree(s, commit_id)
    out = summary_json(repo, commit_id, with_card=True)
    siblings = []
    for path, entry in sorted(tree.items()):
        sib: dict[str, Any] = {"rfilename": path}
        if files_metadata:
            sib["size"] = entry.size
            sib["blobId"] = entry.oid
            if entry.lfs:
                sib["lfs"] = lfs_json(entry)
        siblings.append(sib)
    out["siblings"] = siblings
    if repo.type == "model":
        if "model-index" in card(repo):
            out["model-index"] = card(repo)["model-index"]
        config = _small_json(store, tree.get("config.json"))
        if config is not None:
            out["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
    out["spaces"] = []
    out["usedStorage"] = sum(e.size for e in tree.values())
    if repo.type == "dataset":
        out["description"] = card(repo).get("description", "")
        out["citation"] = ""
    return out


def _small_json(store: RepoStore, entry: FileEntry | None) -> dict[str, Any] | None:
    if entry is None or entry.size > 1_000_000:
        return None
    try:
        data = json.loads(store.blobs.read(entry.sha256))
    except (ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def lfs_json(entry: FileEntry) -> dict[str, Any]:
    return {
        "oid": entry.sha256,
        "size": entry.size,
        "pointerSize": len(lfs_pointer(entry.sha256, entry.size)),
    }


def file_json(entry: FileEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": entry.path}
    if entry.lfs:
        out["lfs"] = lfs_json(entry)
    return out


def folder_oid(tree: dict[str, FileEntry], folder: str) -> str:
    prefix = folder + "/"
    listing = "\n".join(f"{p} {e.oid}" for p, e in sorted(tree.items()) if p.startswith(prefix))
    return hashlib.sha1(listing.encode()).hexdigest()


def folder_json(tree: dict[str, FileEntry], folder: str) -> dict[str, Any]:
    return {"type": "directory", "oid": folder_oid(tree, folder), "size": 0, "path": folder}


def is_folder(tree: dict[str, FileEntry], path: str) -> bool:
    prefix = path + "/"
    return any(p.startswith(prefix) for p in tree)


def tree_listing(tree: dict[str, FileEntry], path: str, *, recursive: bool) -> list[dict[str, Any]] | None:
    """Entries under path ('' for the root), folders first at each level; None when path is not a folder."""
    prefix = path + "/" if path else ""
    if path and not is_folder(tree, path):
        return None
    files: list[dict[str, Any]] = []
    folders: set[str] = set()
    for p, entry in sorted(tree.items()):
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix) :]
        parts = rest.split("/")
        if recursive:
            for i in range(1, len(parts)):
                folders.add(prefix + "/".join(parts[:i]))
            files.append(file_json(entry))
        elif len(parts) == 1:
            files.append(file_json(entry))
        else:
            folders.add(prefix + parts[0])
    return [folder_json(tree, f) for f in sorted(folders)] + files


def paths_info(tree: dict[str, FileEntry], paths: list[str]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        path = path.strip("/")
        if path in tree:
            out.append(file_json(tree[path]))
        elif path and is_folder(tree, path):
            out.append(folder_json(tree, path))
    return out


def refs_json(store: RepoStore, s: Session, repo: RepoRow, *, include_prs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"branches": [], "converts": [], "tags": []}
    for ref in store.refs(s, repo):
        key, prefix = ("branches", "refs/heads/") if ref.kind == "branch" else ("tags", "refs/tags/")
        out[key].append({"name": ref.name, "ref": prefix + ref.name, "targetCommit": ref.commit_id})
    if include_prs:
        out["pullRequests"] = []
    return out


# --- changes: each raises the domain errors server/errors.py maps ----------------------------------


def create_repo(
    store: RepoStore,
    s: Session,
    caller: Principal,
    body: CreateRepoRequest,
    url_of: Callable[[str, str], str],
) -> CreateRepoResponse:
    namespace = body.organization or caller.name
    if namespace is None:
        raise AuthenticationError(
            "Creating a repo needs a write token: pass one (Authorization: Bearer ...)."
        )
    repo_type = check_repo_type(body.type)
    if not caller.can_write_namespace(namespace):
        raise HubPermissionError(
            f"You may not create repos under {namespace!r}: use a write token of that user or of an org member."
        )
    if get_account(s, namespace) is None:
        raise HubRequestError(f"No user or organisation named {namespace!r}: create it first (cove org add).")
    private = bool(body.private)
    if body.visibility is not None:
        private = body.visibility == "private"
    repo_id = f"{namespace}/{body.name}"
    url = url_of(repo_type, repo_id)
    if store.exists(s, repo_type, repo_id):
        exists = RepoExistsError(f"You already created this {repo_type} repo: {repo_id}")
        exists.body = {"url": url}  # type: ignore[attr-defined]  # the client reads it (exist_ok=True)
        raise exists
    repo = store.create_repo(
        s, repo_type, repo_id, private=private, author=caller.name or namespace, sdk=body.sdk
    )
    return CreateRepoResponse(url=url, name=repo_id, id=f"{repo.id:024x}")


def delete_repo(store: RepoStore, s: Session, caller: Principal, body: RepoRef) -> None:
    namespace = body.organization or caller.name
    repo = store.get_repo(s, check_repo_type(body.type), f"{namespace}/{body.name}")
    caller.check_admin(repo)
    store.delete_repo(s, repo)


def move_repo(store: RepoStore, s: Session, caller: Principal, body: MoveRepoRequest) -> RepoRow:
    repo = store.get_repo(s, check_repo_type(body.type), body.fromRepo)
    caller.check_admin(repo)
    namespace = body.toRepo.split("/")[0]
    if not caller.can_write_namespace(namespace) or get_account(s, namespace) is None:
        raise HubPermissionError(f"You may not move repos into {namespace!r}.")
    return store.move_repo(s, repo, body.toRepo)


def update_settings(
    store: RepoStore, s: Session, caller: Principal, repo: RepoRow, body: RepoSettingsRequest
) -> bool:
    """Apply the settings Cove supports (visibility); returns whether the repo is now private."""
    if body.gated not in (None, False, "false"):
        raise HubRequestError(f"Gated repos are not supported by Cove (gated={body.gated!r}).")
    private = body.private
    if body.visibility is not None:
        private = body.visibility == "private"
    if private is not None and private != repo.private:
        caller.check_admin(repo)
        store.set_private(s, repo, private)
    return repo.private


def create_branch(store: RepoStore, s: Session, repo: RepoRow, name: str, body: CreateBranchRequest) -> None:
    store.create_ref(s, repo, "branch", name, body.startingPoint)


def create_tag(store: RepoStore, s: Session, repo: RepoRow, revision: str, body: CreateTagRequest) -> None:
    store.create_ref(s, repo, "tag", body.tag, revision, message=body.message or "")


def commits_json(
    store: RepoStore, s: Session, repo: RepoRow, revision: str, path: str | None
) -> list[dict[str, Any]]:
    if path:
        check_path(path)
    return [
        {
            "id": c.id,
            "title": c.title,
            "message": c.message,
            "authors": [{"user": c.author, "avatar": None}],
            "date": iso(c.created_at),
        }
        for c in store.history(s, repo, revision, path or None)
    ]
