"""Reading and writing weight files: safetensors (single and sharded) first, ``.bin`` only on request.

Pickle-based ``pytorch_model.bin`` files can run code when unpickled; Cove reads them only with
``allow_pickle=True`` and then through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from cove.errors import CheckpointError, MissingFileError, UnsafeCheckpointError

if TYPE_CHECKING:
    import torch

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
PICKLE_WEIGHTS_NAME = "pytorch_model.bin"
PICKLE_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"


def find_weight_files(
    folder: Path, *, allow_pickle: bool = False, use_safetensors: bool | None = None
) -> list[Path]:
    """The weight files of a model folder, safetensors first.

    ``use_safetensors`` as in transformers: True reads safetensors only; False reads the ``.bin`` files
    (which still need ``allow_pickle=True``) even when safetensors are there.
    """
    pickled = [p for p in (folder / PICKLE_WEIGHTS_NAME, folder / PICKLE_WEIGHTS_INDEX_NAME) if p.is_file()]
    if use_safetensors is False and not pickled:
        raise MissingFileError(
            f"use_safetensors=False, but {folder} has no {PICKLE_WEIGHTS_NAME} or {PICKLE_WEIGHTS_INDEX_NAME}: "
            "drop use_safetensors to read its safetensors."
        )
    if use_safetensors is not False:
        if (folder / SAFE_WEIGHTS_NAME).is_file():
            return [folder / SAFE_WEIGHTS_NAME]
        if (folder / SAFE_WEIGHTS_INDEX_NAME).is_file():
            return _shards_from_index(folder, SAFE_WEIGHTS_INDEX_NAME)
    if use_safetensors:
        raise MissingFileError(
            f"use_safetensors=True, but {folder} has no {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME}."
        )
    if pickled:
        if not allow_pickle:
            raise UnsafeCheckpointError(
                f"{pickled[0]} is a pickle file, and {folder} has no model.safetensors. Pickle files can run code "
                "when loaded: convert the checkpoint to safetensors, or pass allow_pickle=True if you trust it "
                "(Cove then reads it with torch.load(weights_only=True))."
            )
        if pickled[0].name == PICKLE_WEIGHTS_NAME:
            return [pickled[0]]
        return _shards_from_index(folder, PICKLE_WEIGHTS_INDEX_NAME)
    raise MissingFileError(
        f"No weights in {folder}: expected {SAFE_WEIGHTS_NAME} or {SAFE_WEIGHTS_INDEX_NAME} "
        f"(or {PICKLE_WEIGHTS_NAME} with allow_pickle=True)."
    )


def _shards_from_index(folder: Path, index_name: str) -> list[Path]:
    index_path = folder / index_name
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{index_path} is not a valid shard index (needs a 'weight_map'): {exc}"
        ) from exc
    shards = []
    for name in dict.fromkeys(weight_map.values()):
        shard = (folder / name).resolve()
        if folder.resolve() not in shard.parents:
            raise CheckpointError(f"{index_path} names a shard outside the model folder: {name!r}.")
        if not shard.is_file():
            raise MissingFileError(f"Shard {name} listed in {index_path} is missing; re-download the model.")
        shards.append(shard)
    return shards


def load_file(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of one weight file, with errors that name the file."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file as st_load

        try:
            return st_load(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path} is not a readable safetensors file ({exc}); it may be truncated or corrupt: "
                "download it again."
            ) from exc
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad pickles
        raise CheckpointError(f"{path} could not be read as a weights-only torch file: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a dict of tensors.")
    return state


def load_state_dict(
    folder: str | os.PathLike[str], *, allow_pickle: bool = False, use_safetensors: bool | None = None
) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in find_weight_files(Path(folder), allow_pickle=allow_pickle, use_safetensors=use_safetensors):
        state.update(load_file(path))
    return state


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*$", re.IGNORECASE)
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(size: int | str) -> int:
    """'5GB' -> 5_000_000_000; ints pass through."""
    if isinstance(size, int):
        return size
    match = _SIZE_RE.match(size)
    if not match:
        raise CheckpointError(f"Cannot read the size {size!r}: use an int of bytes or a string like '500MB'.")
    return int(float(match.group(1)) * _UNITS[(match.group(2) or "B").upper()])


def save_state_dict(
    state: dict[str, torch.Tensor], folder: str | os.PathLike[str], *, max_shard_size: int | str = "5GB"
) -> list[Path]:
    """Write safetensors, sharded with an index when larger than max_shard_size. Returns the files."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    limit = parse_size(max_shard_size)
    state = {k: v.detach().contiguous() for k, v in state.items()}
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > limit:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    for name in (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME):
        (out / name).unlink(missing_ok=True)
    for stale in out.glob("model-*-of-*.safetensors"):
        stale.unlink()
    if len(shards) == 1:
        save_file(shards[0], str(out / SAFE_WEIGHTS_NAME), metadata={"format": "pt"})
        return [out / SAFE_WEIGHTS_NAME]
    files = []
    weight_map = {}
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(out / name), metadata={"format": "pt"})
        files.append(out / name)
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / SAFE_WEIGHTS_INDEX_NAME).write_text(
        json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return [*files, out / SAFE_WEIGHTS_INDEX_NAME]
