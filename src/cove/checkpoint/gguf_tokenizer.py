"""Rebuild a `tokenizers` tokenizer.json from the vocabulary a GGUF file stores.

Two kinds are supported, the ones transformers' GGUF loader builds the same way: byte-level BPE
(``tokenizer.ggml.model = gpt2``: GPT-2, SmolLM, Qwen2, Llama 3) and SentencePiece BPE with byte
fallback (``llama``: Llama 1/2, Mistral). Tokens the file marks CONTROL become special added tokens and
USER_DEFINED ones plain added tokens, so they are matched whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cove.errors import CheckpointError

_CONTROL, _USER_DEFINED = 3, 4

_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# tokenizer.ggml.pre -> the split regex its merges were learned with (others keep GPT-2's)
_PRE_SPLITS = {
    "llama3": _LLAMA3_SPLIT,
    "llama-v3": _LLAMA3_SPLIT,
    "llama-bpe": _LLAMA3_SPLIT,
    "smaug-bpe": _LLAMA3_SPLIT,
    "dbrx": _LLAMA3_SPLIT,
    "qwen2": _QWEN2_SPLIT,
    "deepseek-r1-qwen": _QWEN2_SPLIT,
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's printable spelling of every byte."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _meta(reader: Any, key: str, default: Any = None) -> Any:
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def build_tokenizer(reader: Any, path: Path) -> dict[str, str]:
    try:
        return _build(reader, path)
    except Exception as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(
            f"{path}: the tokenizer stored in this GGUF file is inconsistent ({exc})."
        ) from exc


def _build(reader: Any, path: Path) -> dict[str, str]:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    kind = _meta(reader, "tokenizer.ggml.model")
    tokens: list[str] = list(_meta(reader, "tokenizer.ggml.tokens") or [])
    if not tokens:
        raise CheckpointError(f"{path} stores no tokenizer vocabulary (tokenizer.ggml.tokens).")
    token_types: list[int] = list(_meta(reader, "tokenizer.ggml.token_type") or [])
    merges = [tuple(m.split(" ", 1)) for m in (_meta(reader, "tokenizer.ggml.merges") or [])]
    byte_level = kind == "gpt2"
    if byte_level:
        spelling = _bytes_to_unicode()
        alphabet = set(spelling.values())
        vocab = {
            (t if set(t) <= alphabet else "".join(spelling[b] for b in t.encode("utf-8"))): i
            for i, t in enumerate(tokens)
        }
        tok = Tokenizer(
            BPE(
                vocab=vocab,
                merges=merges,
                dropout=None,
                continuing_subword_prefix="",
                end_of_word_suffix="",
                fuse_unk=False,
            )
        )
        split = _PRE_SPLITS.get(_meta(reader, "tokenizer.ggml.pre"))
        if split is None:
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        else:
            tok.pre_tokenizer = pre_tokenizers.Sequence(
                [
                    pre_tokenizers.Split(Regex(split), behavior="isolated"),
                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
                ]
            )
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    elif kind == "llama":
        vocab = {t: i for i, t in enumerate(tokens)}
        if not merges:
            raise CheckpointError(
                f"{path}: a SentencePiece vocabulary without merges is not supported by Cove's GGUF import."
            )
        tok = Tokenizer(BPE(vocab=vocab, merges=merges, fuse_unk=True, byte_fallback=True, dropout=None))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        tok.decoder = decoders.Sequence(
            [
                decoders.Replace("▁", " "),
                decoders.ByteFallback(),
                decoders.Fuse(),
                decoders.Strip(content=" ", left=1),
            ]
        )
    else:
        raise CheckpointError(
            f"{path}: GGUF tokenizer model {kind!r} is not supported; Cove rebuilds 'gpt2' (byte-level BPE) and "
            "'llama' (SentencePiece BPE) tokenizers."
        )
    control = [
        AddedToken(t, normalized=False, special=True)
        for t, kind_id in zip(tokens, token_types)
        if kind_id == _CONTROL and (not byte_level or set(t) <= alphabet)
    ]
    if control:
        tok.add_special_tokens(control)
    user = [
        AddedToken(t, normalized=False, special=False)
        for t, k in zip(tokens, token_types)
        if k == _USER_DEFINED
    ]
    if user:
        tok.add_tokens(user)

    def special(key: str) -> str | None:
        index = _meta(reader, f"tokenizer.ggml.{key}")
        return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

    add_bos = _meta(reader, "tokenizer.ggml.add_bos_token")
    if add_bos is None:
        add_bos = kind == "llama"
    add_eos = bool(_meta(reader, "tokenizer.ggml.add_eos_token", False))
    bos, eos = special("bos_token_id"), special("eos_token_id")
    if (add_bos and bos) or (add_eos and eos):
        single = (
            ([f"{bos}:0"] if add_bos and bos else []) + ["$A:0"] + ([f"{eos}:0"] if add_eos and eos else [])
        )
        pair = (
            single
            + ([f"{bos}:1"] if add_bos and bos else [])
            + ["$B:1"]
            + ([f"{eos}:1"] if add_eos and eos else [])
        )
        specials = [
            (t, tok.token_to_id(t))
            for t in {bos, eos}
            if t and ((t == bos and add_bos) or (t == eos and add_eos))
        ]
        template = processors.TemplateProcessing(
            single=" ".join(single), pair=" ".join(pair), special_tokens=specials
        )
        tok.post_processor = (
            processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
            if byte_level
            else template
        )
    special_map = {
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": special("unknown_token_id"),
        "pad_token": special("padding_token_id"),
    }
    special_map = {k: v for k, v in special_map.items() if v is not None}
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(add_bos),
        "add_eos_token": add_eos,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(
            _meta(reader, f"{_meta(reader, 'general.architecture')}.context_length", 2048) or 2048
        ),
        **special_map,
    }
    template = _meta(reader, "tokenizer.chat_template")
    if template:
        config["chat_template"] = template
    return {
        "tokenizer.json": tok.to_str(pretty=True),
        "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False) + "\n",
        "special_tokens_map.json": json.dumps(special_map, indent=2, ensure_ascii=False) + "\n",
    }
