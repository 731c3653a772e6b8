"""GGUF import: llama.cpp's single-file format -> an HF-style config dict, state dict and tokenizer files.

Metadata, tensors and quantized blocks are read with the `gguf` package (gguf.quants.dequantize). Two
things llama.cpp's converter did are undone here: it permuted the rows of the Q and K projections of
Llama-family models (so its RoPE kernel can rotate adjacent pairs), and it transposed GPT-2's Conv1D weights.
The tokenizer is rebuilt from the vocabulary, merges and token types the file stores, as a `tokenizers`
tokenizer.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cove.errors import CheckpointError, ConfigError, MissingFileError

# GGUF general.architecture -> Cove model_type
ARCHITECTURES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "gpt2": "gpt2"}

# GGUF metadata keys (after "<arch>.") -> config.json keys
_LLAMA_KEYS = {
    "context_length": "max_position_embeddings",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "embedding_length": "hidden_size",
    "rope.dimension_count": "head_dim",
    "rope.freq_base": "rope_theta",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
    "attention.layer_norm_rms_epsilon": "rms_norm_eps",
    "vocab_size": "vocab_size",
}
_CONFIG_KEYS = {
    "llama": _LLAMA_KEYS,
    "mistral": _LLAMA_KEYS,
    "qwen2": {k: v for k, v in _LLAMA_KEYS.items() if k != "rope.dimension_count"},
    "gpt2": {
        "context_length": "n_positions",
        "block_count": "n_layer",
        "feed_forward_length": "n_inner",
        "embedding_length": "n_embd",
        "attention.head_count": "n_head",
        "attention.layer_norm_epsilon": "layer_norm_epsilon",
        "vocab_size": "vocab_size",
    },
}

# GGUF tensor name (with {} for the block) -> checkpoint (transformers) name
_LLAMA_TENSORS = {
    "token_embd": "model.embed_tokens",
    "output_norm": "model.norm",
    "output": "lm_head",
    "blk.{}.attn_q": "model.layers.{}.self_attn.q_proj",
    "blk.{}.attn_k": "model.layers.{}.self_attn.k_proj",
    "blk.{}.attn_v": "model.layers.{}.self_attn.v_proj",
    "blk.{}.attn_output": "model.layers.{}.self_attn.o_proj",
    "blk.{}.ffn_gate": "model.layers.{}.mlp.gate_proj",
    "blk.{}.ffn_up": "model.layers.{}.mlp.up_proj",
    "blk.{}.ffn_down": "model.layers.{}.mlp.down_proj",
    "blk.{}.attn_norm": "model.layers.{}.input_layernorm",
    "blk.{}.ffn_norm": "model.layers.{}.post_attention_layernorm",
}
_TENSORS = {
    "llama": _LLAMA_TENSORS,
    "mistral": _LLAMA_TENSORS,
    "qwen2": _LLAMA_TENSORS,
    "gpt2": {
        "token_embd": "transformer.wte",
        "position_embd": "transformer.wpe",
        "output_norm": "transformer.ln_f",
        "output": "lm_head",
        "blk.{}.attn_norm": "transformer.h.{}.ln_1",
        "blk.{}.attn_qkv": "transformer.h.{}.attn.c_attn",
        "blk.{}.attn_output": "transformer.h.{}.attn.c_proj",
        "blk.{}.ffn_norm": "transformer.h.{}.ln_2",
        "blk.{}.ffn_up": "transformer.h.{}.mlp.c_fc",
        "blk.{}.ffn_down": "transformer.h.{}.mlp.c_proj",
    },
}
# tensors llama.cpp adds that carry nothing transformers-format models use
_SKIPPED_TENSORS = {"rope_freqs.weight"}
_GPT2_TRANSPOSED = ("attn_qkv.weight", "attn_output.weight", "ffn_up.weight", "ffn_down.weight")


def _reader(path: Path) -> Any:
    try:
        from gguf import GGUFReader
    except ImportError as exc:  # pragma: no cover - gguf is a dependency
        raise CheckpointError("Reading GGUF files needs the `gguf` package: pip install gguf.") from exc
    if not path.is_file():
        raise MissingFileError(f"GGUF file {path} does not exist.")
    try:
        return GGUFReader(str(path))
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable GGUF file ({exc}).") from exc


def find_gguf(name: Any, folder: Path, gguf_file: Any) -> Path | None:
    """The GGUF file to load for ``from_pretrained(name, gguf_file=...)``, or None for an HF folder.

    A bundled model shipped as GGUF, or a folder that holds one GGUF file and no config.json, needs no
    ``gguf_file``.
    """
    if gguf_file is not None:
        path = Path(gguf_file)
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise MissingFileError(f"gguf_file {gguf_file!r} is not in {folder}.")
        if ".." in Path(gguf_file).parts:
            raise MissingFileError(f"gguf_file {gguf_file!r} must name a file inside {folder}.")
        return path
    if (folder / "config.json").is_file():
        return None
    from cove.hub.bundled import find_bundled

    bundled = find_bundled(str(name))
    if bundled is not None and bundled.gguf_file:
        return folder / bundled.gguf_file
    found = sorted(folder.glob("*.gguf"))
    return found[0] if len(found) == 1 else None


def _field(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    if field is None:
        return default
    value = field.contents()
    return value


class GGUFFile:
    """A GGUF file's metadata, config, tensors and tokenizer, in transformers' terms."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.reader = _reader(self.path)
        arch = _field(self.reader, "general.architecture")
        name = str(_field(self.reader, "general.name", "") or "")
        if arch == "llama" and "mistral" in name.lower():
            arch = "mistral"  # llama.cpp files Mistral under the llama architecture
        if arch not in ARCHITECTURES:
            raise ConfigError(
                f"{self.path}: GGUF architecture {arch!r} is not supported; Cove loads {sorted(ARCHITECTURES)}."
            )
        self.architecture = arch
        self.gguf_arch = _field(self.reader, "general.architecture")

    @property
    def model_type(self) -> str:
        return ARCHITECTURES[self.architecture]

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_type": self.model_type}
        for key, target in _CONFIG_KEYS[self.architecture].items():
            value = _field(self.reader, f"{self.gguf_arch}.{key}")
            if value is not None:
                out[target] = value
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            gguf_key = {"pad_token_id": "padding_token_id"}.get(key, key)
            value = _field(self.reader, f"tokenizer.ggml.{gguf_key}")
            if value is not None:
                out[key] = int(value)
        if "vocab_size" not in out:
            tokens = self.reader.fields.get("tokenizer.ggml.tokens")
            if tokens is not None:
                out["vocab_size"] = len(tokens.data)
        scaling = _field(self.reader, f"{self.gguf_arch}.rope.scaling.type")
        if scaling not in (None, "none"):
            rope: dict[str, Any] = {"rope_type": scaling}
            factor = _field(self.reader, f"{self.gguf_arch}.rope.scaling.factor")
            if factor is not None:
                rope["factor"] = float(factor)
            original = _field(self.reader, f"{self.gguf_arch}.rope.scaling.original_context_length")
            if original is not None:
                rope["original_max_position_embeddings"] = int(original)
            out["rope_scaling"] = rope
        names = {t.name for t in self.reader.tensors}
        out["tie_word_embeddings"] = "output.weight" not in names
        if self.model_type == "llama" and any(n.endswith("attn_q.bias") for n in names):
            out["attention_bias"] = True
        out["architectures"] = [
            {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM", "qwen2": "Qwen2ForCausalLM"}.get(
                self.model_type, "GPT2LMHeadModel"
            )
        ]
        return out

    def tensor_types(self) -> dict[str, str]:
        return {t.name: t.tensor_type.name for t in self.reader.tensors}

    def state_dict(self, dtype: Any = None) -> dict[str, Any]:
        """Dequantized tensors (float32, or ``dtype``) under transformers' checkpoint names."""
        import torch

        return {name: torch.from_numpy(array).to(dtype or torch.float32) for name, array in self._arrays()}

    def packed_state_dict(
        self, packed_types: dict[str, tuple[int, int]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(float32 tensors, packed blocks) under transformers' names: 2-D tensors whose GGML type is in
        ``packed_types`` (name -> (block elements, block bytes)) stay as their (rows, bytes_per_row) uint8 blocks, Q/K rows
        un-permuted; the rest is dequantized as in ``state_dict``. Packed values are
        ``(type name, in_features, uint8 tensor)``: rows are output features, also for GPT-2's Conv1D weights
        (which the float path transposes to (in, out))."""
        import torch

        if self.architecture not in ("llama", "mistral", "qwen2", "gpt2"):
            raise CheckpointError(
                f"{self.path}: keeping GGUF blocks packed is supported for llama, mistral, qwen2 and gpt2 files, "
                f"not {self.architecture!r}; load it without quantization= (or with 'int8'/'int4')."
            )
        floats: dict[str, Any] = {}
        packed: dict[str, Any] = {}
        for name, value in self._arrays(packed_types):
            if isinstance(value, tuple):
                qtype, k, blocks = value
                packed[name] = (qtype, k, torch.from_numpy(blocks))
            else:
                floats[name] = torch.from_numpy(value)
        return floats, packed

    def _arrays(self, packed_types: dict[str, tuple[int, int]] | None = None) -> Iterator[tuple[str, Any]]:
        from gguf import GGMLQuantizationType
        from gguf.quants import dequantize

        config = self.config()
        heads: int = config.get("num_attention_heads") or 0
        kv_heads: int = config.get("num_key_value_heads") or heads
        rules = _TENSORS[self.architecture]
        packed_types = packed_types or {}
        unsupported = sorted(
            {
                t.tensor_type.name
                for t in self.reader.tensors
                if not _can_dequantize(t.tensor_type) and t.tensor_type.name not in packed_types
            }
        )
        if unsupported:
            raise CheckpointError(
                f"{self.path} holds tensors of type(s) {unsupported}, which the installed gguf package cannot "
                f"dequantize; supported here: {sorted(supported_types())}."
            )
        for tensor in self.reader.tensors:
            if tensor.name in _SKIPPED_TENSORS:
                continue
            target = _rename(tensor.name, rules)
            if target is None:
                raise CheckpointError(
                    f"{self.path}: GGUF tensor {tensor.name!r} has no place in a {self.model_type} model."
                )
            shape = [int(d) for d in reversed(tensor.shape.tolist())]
            qtype = tensor.tensor_type.name
            if qtype in packed_types and len(shape) == 2:
                blocks = _blocks(self.path, tensor, shape, packed_types[qtype])
                if self.architecture in ("llama", "mistral") and heads:
                    if ".attn_q." in tensor.name:
                        blocks = _unpermute(blocks, heads)
                    elif ".attn_k." in tensor.name:
                        blocks = _unpermute(blocks, kv_heads)
                yield (
                    target,
                    (qtype, shape[1], np.array(blocks, order="C")),
                )  # a copy: the file is unmapped later
                continue
            if tensor.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                array = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32)
            else:
                array = dequantize(tensor.data, tensor.tensor_type)
            # numpy shape is the reverse of GGUF's ne: (out_features, in_features) like a torch Linear
            array = array.reshape(shape)
            if self.architecture in ("llama", "mistral") and heads:
                if ".attn_q." in tensor.name:
                    array = _unpermute(array, heads)
                elif ".attn_k." in tensor.name:
                    array = _unpermute(array, kv_heads)
            if self.architecture == "gpt2" and tensor.name.endswith(_GPT2_TRANSPOSED):
                array = array.T
            array = np.ascontiguousarray(array, dtype=np.float32)
            yield target, array if array.flags.writeable else array.copy()

    # -- tokenizer --------------------------------------------------------------------------

    def tokenizer_files(self) -> dict[str, str]:
        """tokenizer.json, tokenizer_config.json and special_tokens_map.json contents."""
        from cove.checkpoint.gguf_tokenizer import build_tokenizer

        return build_tokenizer(self.reader, self.path)

    def generation_config(self) -> dict[str, Any]:
        config = self.config()
        return {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}


def _rename(name: str, rules: dict[str, str]) -> str | None:
    stem, _, param = name.rpartition(".")
    parts = stem.split(".")
    if parts[0] == "blk" and len(parts) >= 3:
        key, index = "blk.{}." + ".".join(parts[2:]), parts[1]
        target = rules.get(key)
        return f"{target.format(index)}.{param}" if target else None
    target = rules.get(stem)
    return f"{target}.{param}" if target else None


def _blocks(path: Path, tensor: Any, shape: list[int], block: tuple[int, int]) -> np.ndarray:
    """A quantized 2-D tensor's bytes as (rows, bytes_per_row), after checking that its size, type and
    geometry agree (the file is untrusted: native kernels read these bytes without further checks)."""
    elems, block_bytes = block
    rows, k = shape
    data = tensor.data
    if k <= 0 or rows <= 0 or k % elems:
        raise CheckpointError(
            f"{path}: tensor {tensor.name!r} of type {tensor.tensor_type.name} has rows of {k} values, not a "
            f"multiple of its block size {elems}."
        )
    want = rows * (k // elems) * block_bytes
    if data.dtype != np.uint8 or data.nbytes != want:
        raise CheckpointError(
            f"{path}: tensor {tensor.name!r} holds {data.nbytes} bytes; {rows} x {k} "
            f"{tensor.tensor_type.name} needs {want}. The file is damaged or truncated."
        )
    return np.asarray(data).reshape(rows, want // rows)


def _unpermute(weights: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's permute: per head, its converter interleaved the two rotary halves row by row."""
    dim = weights.shape[0] // heads // 2
    w = weights.reshape(heads, dim, 2, *weights.shape[1:])
    return w.swapaxes(2, 1).reshape(weights.shape)


def supported_types() -> set[str]:
    from gguf import GGMLQuantizationType

    return {t.name for t in GGMLQuantizationType if _can_dequantize(t)}


def _can_dequantize(qtype: Any) -> bool:
    from gguf import GGMLQuantizationType
    from gguf.quants import _type_traits

    return qtype in (GGMLQuantizationType.F32, GGMLQuantizationType.F16) or qtype in _type_traits


def convert_gguf(gguf_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> Path:
    """Write an HF-format folder (config.json, model.safetensors, tokenizer and generation config)."""
    from cove.checkpoint.weights import save_state_dict

    source = GGUFFile(gguf_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = source.config()
    state = source.state_dict()
    if config.get("tie_word_embeddings"):
        state.pop("lm_head.weight", None)
    config["dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    save_state_dict(state, out)
    for name, text in source.tokenizer_files().items():
        (out / name).write_text(text, encoding="utf-8")
    generation = source.generation_config()
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n", encoding="utf-8")
    return out


def gguf_tokenizer_folder(name: Any, folder: Path, gguf_file: Any = None) -> Path | None:
    """For a model that is only a GGUF file: a folder holding the tokenizer files rebuilt from it (written
    once under $COVE_CACHE or ~/.cache/cove, keyed by the file's path, size and mtime), else None."""
    import hashlib

    if gguf_file is None and any(
        (folder / f).is_file() for f in ("tokenizer.json", "vocab.json", "vocab.txt")
    ):
        return None
    path = find_gguf(name, folder, gguf_file)
    if path is None:
        return None
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("COVE_CACHE") or Path.home() / ".cache" / "cove")
    out = root / "gguf-tokenizers" / key
    if not (out / "tokenizer.json").is_file():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for file_name, text in GGUFFile(path).tokenizer_files().items():
            (tmp / file_name).write_text(text, encoding="utf-8")
        try:
            tmp.rename(out)
        except OSError:  # another process wrote it first
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    return out
