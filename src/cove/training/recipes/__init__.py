"""Recipes that build Cove's default task models by fine-tuning bundled base models on public data.

``DEFAULT_MODELS`` names the model each pipeline task uses by default; ``default_model_dir(task)`` finds it:
the hub (or the embedded local hub) under that repo id first, then the folder ``cove setup-models`` writes
under the Cove data dir (``$COVE_DATA_DIR`` or ``~/.cove``): ``<data dir>/models/<repo id>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from cove.errors import ModelNotFoundError

# pipeline task -> repo id of the model `cove setup-models` builds for it (cove.pipelines.defaults names
# the same repos; a test keeps the two in step)
DEFAULT_MODELS: dict[str, str] = {
    "sentiment-analysis": "cove/minilm-sentiment",
    "text-classification": "cove/minilm-sentiment",
    "ner": "cove/minilm-ner",
    "token-classification": "cove/minilm-ner",
}

# recipe name -> (module, tasks it provides)
RECIPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sentiment": ("cove.training.recipes.sentiment", ("sentiment-analysis", "text-classification")),
    "ner": ("cove.training.recipes.ner", ("ner", "token-classification")),
}


def data_dir() -> Path:
    return Path(os.environ.get("COVE_DATA_DIR") or "~/.cove").expanduser()


def local_model_dir(repo_id: str) -> Path:
    """Where ``cove setup-models`` stores a recipe's result: ``<data dir>/models/<namespace>/<name>``."""
    return data_dir() / "models" / repo_id


def default_model_dir(task: str) -> Path:
    """The folder of ``task``'s default model; raises ModelNotFoundError saying how to build it."""
    if task not in DEFAULT_MODELS:
        raise ModelNotFoundError(
            f"No default model for task {task!r}; tasks with one: {sorted(DEFAULT_MODELS)}. Pass model=... instead."
        )
    repo_id = DEFAULT_MODELS[task]
    folder = local_model_dir(repo_id)
    if (folder / "config.json").is_file():
        return folder
    try:
        from cove.hub.resolve import resolve_model_dir

        return resolve_model_dir(repo_id)
    except (ModelNotFoundError, OSError):
        pass
    raise ModelNotFoundError(
        f"The default {task!r} model ({repo_id}) is not built yet: run `cove setup-models` "
        f"(it fine-tunes it locally in a few minutes and stores it in {folder})."
    )


def publish(folder: Path, repo_id: str, message: str) -> str | None:
    """Commit a recipe's model to the hub under ``repo_id``, so ``pipeline(task)`` finds it by name.

    With no hub endpoint configured, cove.hub writes into the embedded local hub of the Cove data dir.
    Returns the commit reference, or None when this Cove build has no hub client.
    """
    try:
        from cove.hub import upload_folder  # type: ignore[attr-defined]
    except ImportError:
        return None
    return str(upload_folder(repo_id, folder, commit_message=message))
