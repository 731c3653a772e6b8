"""Client side of the hub protocol: resolving names to local folders, cache, download, upload.

The functions below import their dependencies lazily, so ``import cove.hub`` stays cheap.
"""

from __future__ import annotations

from typing import Any

_FUNCS = {
    "create_repo": "cove.hub.client",
    "upload_folder": "cove.hub.client",
    "upload_file": "cove.hub.client",
    "hub_download": "cove.hub.client",
    "snapshot_download": "cove.hub.client",
    "save_token": "cove.hub.client",
    "get_token": "cove.hub.client",
    "resolve_model_dir": "cove.hub.resolve",
    "resolve": "cove.hub.resolve",
    "Snapshot": "cove.hub.resolve",
    "HubOptions": "cove.hub.resolve",
    "local_snapshot": "cove.hub.local",
}

__all__ = sorted(_FUNCS)


def __getattr__(name: str) -> Any:
    module = _FUNCS.get(name)
    if module is None:
        raise AttributeError(f"module 'cove.hub' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
