"""``push_to_hub`` for anything with ``save_pretrained``: models, tokenizers, configs."""

from __future__ import annotations

import tempfile
from typing import Any


def push_to_hub(
    obj: Any,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    revision: str | None = None,
    **save_kwargs: Any,
) -> Any:
    """Save ``obj`` to a temporary folder and commit that folder to ``repo_id`` (created if missing)."""
    import cove.hub as hub

    with tempfile.TemporaryDirectory(prefix="cove-push-") as folder:
        obj.save_pretrained(folder, **save_kwargs)
        hub.create_repo(repo_id, token=token, private=private, exist_ok=True)
        kwargs: dict[str, Any] = {
            "token": token,
            "commit_message": commit_message or f"Upload {type(obj).__name__}",
        }
        if revision is not None:
            kwargs["revision"] = revision
        return hub.upload_folder(repo_id, folder, **kwargs)
