"""Read a tokenizer folder: tokenizer.json, or vocab.txt (WordPiece), or vocab.json + merges.txt (byte-level BPE),
or T5's spiece.model (SentencePiece Unigram), plus tokenizer_config.json / special_tokens_map.json, the way transformers' AutoTokenizer reads them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from cove.errors import MissingFileError, TokenizerError
from cove.hub.resolve import HubOptions, Snapshot, resolve
from cove.tokenization import convert
from cove.tokenization.tokenizer import SPECIAL_TOKENS_ATTRIBUTES, PreTrainedTokenizerFast

TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

# tokenizer class -> model_input_names, for classes that differ from the default (input_ids, attention_mask)
_WITH_TOKEN_TYPE_IDS = ["input_ids", "token_type_ids", "attention_mask"]
_MODEL_INPUT_NAMES: dict[str, list[str]] = {
    "BertTokenizer": _WITH_TOKEN_TYPE_IDS,
    "ElectraTokenizer": _WITH_TOKEN_TYPE_IDS,
    "MarkupLMTokenizer": _WITH_TOKEN_TYPE_IDS,
    "DebertaTokenizer": ["input_ids", "attention_mask", "token_type_ids"],
    "DebertaV2Tokenizer": ["input_ids", "attention_mask", "token_type_ids"],
}

# config.json model_type -> the tokenizer class transformers picks when tokenizer_config names none
_MODEL_TYPE_TO_CLASS = {
    "bert": "BertTokenizer",
    "distilbert": "BertTokenizer",
    "electra": "BertTokenizer",
    "roberta": "RobertaTokenizer",
    "gpt2": "GPT2Tokenizer",
    "mpnet": "MPNetTokenizer",
}

# per-family defaults for special tokens, applied when the config does not set them (as the classes' __init__ do)
_BERT_SPECIALS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
_GPT2_SPECIALS = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
_ROBERTA_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
_T5_SPECIALS = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
_FAMILY_SPECIALS = {
    "BertTokenizer": _BERT_SPECIALS,
    "DistilBertTokenizer": _BERT_SPECIALS,
    "ElectraTokenizer": _BERT_SPECIALS,
    "GPT2Tokenizer": _GPT2_SPECIALS,
    "RobertaTokenizer": _ROBERTA_SPECIALS,
    "T5Tokenizer": _T5_SPECIALS,
}
SPIECE_FILE = "spiece.model"

# keywords of transformers' AutoTokenizer.from_pretrained that pick an implementation, not a setting: Cove has
# one (fast) implementation, whose output is what transformers' slow and fast tokenizers both produce
_IMPLEMENTATION_KWARGS = ("use_fast",)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"Cannot read {path}: {e}. Fix or delete the file.") from e
    if not isinstance(data, dict):
        raise TokenizerError(f"{path} must hold a JSON object, found {type(data).__name__}.")
    return data


def _normalize_class(name: str | None) -> str | None:
    if not name:
        return None
    return name[:-4] if name.endswith("Fast") else name


def load_tokenizer(
    name_or_path: str | os.PathLike[str] | Snapshot,
    *,
    cls: type[PreTrainedTokenizerFast] = PreTrainedTokenizerFast,
    **kwargs: Any,
) -> PreTrainedTokenizerFast:
    """Build a tokenizer from a model folder or a name ``resolve`` knows.

    The download keywords (``HubOptions``: token, revision, cache_dir, local_files_only, force_download,
    subfolder, trust_remote_code) are used for the download and never stored; the other keywords are
    tokenizer settings that override tokenizer_config.json's, as in transformers.
    """
    hub = HubOptions.pop_from(kwargs)
    for key in _IMPLEMENTATION_KWARGS:
        kwargs.pop(key, None)
    if kwargs.get("tokenizer_type") is not None:
        raise TypeError(
            f"tokenizer_type={kwargs['tokenizer_type']!r} is not supported: Cove picks the tokenizer from "
            "tokenizer_config.json / config.json."
        )
    kwargs.pop("tokenizer_type", None)
    snapshot = resolve(name_or_path, hub)
    folder = snapshot.folder(hub.subfolder)
    name = snapshot.name
    from cove.checkpoint.gguf import gguf_tokenizer_folder  # a model shipped as one GGUF file

    folder = gguf_tokenizer_folder(name, folder, kwargs.pop("gguf_file", None)) or folder

    config_path = folder / TOKENIZER_CONFIG_FILE
    init_kwargs: dict[str, Any] = _read_json(config_path) if config_path.is_file() else {}
    init_kwargs.pop("init_inputs", None)
    model_config = _read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    class_name = (
        _normalize_class(init_kwargs.pop("tokenizer_class", None))
        or _normalize_class(model_config.get("tokenizer_class"))
        or _MODEL_TYPE_TO_CLASS.get(str(model_config.get("model_type", "")))
        or "PreTrainedTokenizerFast"
    )
    for key in list(init_kwargs):  # the path arguments of slow tokenizers never come from a config
        if key.endswith("_file") or key in ("name_or_path", "auto_map"):
            init_kwargs.pop(key)

    tokenizer_json = folder / TOKENIZER_FILE
    has_json = tokenizer_json.is_file()
    if has_json:  # tokenizer.json's post-processor wins over these flags (transformers drops them too)
        init_kwargs.pop("add_bos_token", None)
        init_kwargs.pop("add_eos_token", None)

    template_file = folder / CHAT_TEMPLATE_FILE
    if template_file.is_file():
        init_kwargs["chat_template"] = template_file.read_text(encoding="utf-8")

    user_kwargs = dict(kwargs)
    init_kwargs.update(user_kwargs)
    if "additional_special_tokens" in init_kwargs and not init_kwargs.get("extra_special_tokens"):
        init_kwargs["extra_special_tokens"] = init_kwargs.pop("additional_special_tokens")

    # added tokens and special tokens, as transformers' _from_pretrained reads them
    added_tokens_decoder: dict[int, AddedToken] = {}
    added_tokens_map: dict[str, AddedToken] = {}
    if "added_tokens_decoder" in init_kwargs:
        raw = init_kwargs["added_tokens_decoder"] or {}
        if not isinstance(raw, dict):
            raise TokenizerError(
                f"added_tokens_decoder in {config_path} must map ids to tokens, got {raw!r:.100}."
            )
        for idx, token in raw.items():
            if isinstance(token, dict):
                fields = {k: v for k, v in token.items() if k != "__type"}
                try:
                    token = AddedToken(**fields)
                except TypeError as e:
                    raise TokenizerError(f"Bad added token {token!r} in {config_path}: {e}.") from e
            if not isinstance(token, AddedToken):
                raise TokenizerError(
                    f"Bad added token {token!r} for id {idx} in {config_path}: expected a dict."
                )
            try:
                added_tokens_decoder[int(idx)] = token
            except ValueError as e:
                raise TokenizerError(f"Bad added token id {idx!r} in {config_path}: ids are integers.") from e
            added_tokens_map[token.content] = token
    else:
        special_map_path = folder / SPECIAL_TOKENS_MAP_FILE
        if special_map_path.is_file():
            for key, value in _read_json(special_map_path).items():
                if user_kwargs.get(key):
                    continue
                if isinstance(value, dict) and key not in (
                    "extra_special_tokens",
                    "additional_special_tokens",
                ):
                    fields = {k: v for k, v in value.items() if k not in ("special", "__type")}
                    value = AddedToken(**fields, special=True)
                elif key in ("extra_special_tokens", "additional_special_tokens") and isinstance(value, list):
                    existing = list(init_kwargs.get("extra_special_tokens") or [])
                    for tok in value:
                        if isinstance(tok, dict):
                            tok = AddedToken(
                                **{k: v for k, v in tok.items() if k not in ("special", "__type")},
                                special=True,
                            )
                        if tok not in existing:
                            existing.append(tok)
                    value = existing
                    key = "extra_special_tokens"
                init_kwargs[key] = value
        if has_json:
            for entry in _read_json(tokenizer_json).get("added_tokens") or []:
                entry = dict(entry)
                idx = entry.pop("id")
                token = AddedToken(**entry)
                added_tokens_decoder[int(idx)] = token
                added_tokens_map[token.content] = token
    init_kwargs["added_tokens_decoder"] = added_tokens_decoder
    for key in SPECIAL_TOKENS_ATTRIBUTES:
        value = init_kwargs.get(key)
        if isinstance(value, dict) and value.get("__type") == "AddedToken":
            value = AddedToken(**{k: v for k, v in value.items() if k != "__type"})
            init_kwargs[key] = value
        if value is not None and added_tokens_map:
            init_kwargs[key] = added_tokens_map.get(
                str(value) if isinstance(value, str) else value.content, value
            )

    for key, default in _FAMILY_SPECIALS.get(class_name, {}).items():
        init_kwargs.setdefault(key, default)
    if "model_input_names" not in init_kwargs:
        init_kwargs["model_input_names"] = _MODEL_INPUT_NAMES.get(class_name, ["input_ids", "attention_mask"])
    init_kwargs["name_or_path"] = name
    init_kwargs["tokenizer_class"] = class_name

    post_processor_kind: str | None = None
    if has_json:
        from cove.tokenization.tokenizer import _load_tokenizer_json

        backend = _load_tokenizer_json(tokenizer_json)
        if backend.post_processor is None or "add_bos_token" in user_kwargs or "add_eos_token" in user_kwargs:
            post_processor_kind = "bos_eos"
    elif (folder / SPIECE_FILE).is_file():
        is_t5 = class_name in ("T5Tokenizer", "MT5Tokenizer") or (
            class_name == "PreTrainedTokenizerFast" and model_config.get("model_type") in ("t5", "mt5")
        )
        if not is_t5:
            raise TokenizerError(
                f"{folder} has {SPIECE_FILE} but no tokenizer.json, and its tokenizer class is {class_name}: Cove "
                "converts SentencePiece files for T5Tokenizer only (each family builds a different pipeline). "
                "Put the model's tokenizer.json in the folder."
            )
        class_name = init_kwargs["tokenizer_class"] = "T5Tokenizer"
        for key, default in _T5_SPECIALS.items():
            init_kwargs.setdefault(key, default)
        backend, specials = convert.t5_sentencepiece_backend(
            folder / SPIECE_FILE, extra_ids=int(init_kwargs.get("extra_ids", 100))
        )
        # as transformers 5: the file's control pieces and the sentinels are the extra special tokens, whatever
        # list tokenizer_config.json carries (it names the same sentinels)
        init_kwargs["extra_special_tokens"] = specials
        post_processor_kind = "t5"
    elif (folder / "source.spm").is_file():
        raise MissingFileError(
            f"{folder} holds Marian's SentencePiece models (source.spm/target.spm) but no tokenizer.json: Cove "
            "cannot convert Marian's .spm files (their pieces map to ids through vocab.json, which a `tokenizers` "
            "model cannot express exactly). Put a tokenizer.json in the folder."
        )
    elif (folder / "vocab.txt").is_file():
        backend = convert.wordpiece_backend(
            folder / "vocab.txt",
            unk_token=str(init_kwargs.get("unk_token") or "[UNK]"),
            do_lower_case=bool(init_kwargs.get("do_lower_case", True)),
            tokenize_chinese_chars=bool(init_kwargs.get("tokenize_chinese_chars", True)),
            strip_accents=init_kwargs.get("strip_accents"),
        )
        if class_name == "PreTrainedTokenizerFast":
            class_name = init_kwargs["tokenizer_class"] = "BertTokenizer"
            for key, default in _BERT_SPECIALS.items():
                init_kwargs.setdefault(key, default)
            init_kwargs["model_input_names"] = user_kwargs.get("model_input_names", _WITH_TOKEN_TYPE_IDS)
        post_processor_kind = "bert"
    elif (folder / "vocab.json").is_file():
        merges = folder / "merges.txt"
        if not merges.is_file():
            raise MissingFileError(
                f"{folder} has vocab.json but no merges.txt: a byte-level BPE tokenizer needs both "
                "(or a tokenizer.json). Copy merges.txt next to vocab.json."
            )
        is_roberta = class_name == "RobertaTokenizer" or model_config.get("model_type") == "roberta"
        if class_name == "PreTrainedTokenizerFast":
            class_name = init_kwargs["tokenizer_class"] = (
                "RobertaTokenizer" if is_roberta else "GPT2Tokenizer"
            )
        for key, default in (_ROBERTA_SPECIALS if is_roberta else _GPT2_SPECIALS).items():
            init_kwargs.setdefault(key, default)
        backend = convert.byte_level_bpe_backend(
            folder / "vocab.json", merges, add_prefix_space=bool(init_kwargs.get("add_prefix_space", False))
        )
        post_processor_kind = "roberta" if is_roberta else "bos_eos"
    elif any(folder.glob("*.gguf")):
        raise MissingFileError(
            f"{folder} holds a GGUF file but no tokenizer.json: reading tokenizers out of GGUF files is not "
            "supported yet. Put the model's tokenizer.json (and tokenizer_config.json) next to it."
        )
    else:
        raise MissingFileError(
            f"No tokenizer files in {folder}: expected tokenizer.json, or vocab.txt (WordPiece), or vocab.json + "
            "merges.txt (byte-level BPE), or spiece.model (T5's SentencePiece). Save the tokenizer there with save_pretrained."
        )

    add_bos = bool(init_kwargs.get("add_bos_token", False))
    add_eos = bool(init_kwargs.get("add_eos_token", False))
    tokenizer = cls(tokenizer_object=backend, **init_kwargs)
    backend = tokenizer.backend_tokenizer
    if post_processor_kind == "bert":
        cls_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else 2
        sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else 3
        backend.post_processor = convert.bert_post_processor(
            str(tokenizer.cls_token), cls_id, str(tokenizer.sep_token), sep_id
        )
    elif post_processor_kind == "roberta":
        backend.post_processor = convert.roberta_post_processor(
            str(tokenizer.cls_token),
            tokenizer.cls_token_id,
            str(tokenizer.sep_token),
            tokenizer.sep_token_id,
            trim_offsets=bool(init_kwargs.get("trim_offsets", True)),
            add_prefix_space=bool(init_kwargs.get("add_prefix_space", False)),
        )
    elif post_processor_kind == "t5":
        if tokenizer.eos_token is None or tokenizer.eos_token_id is None:
            raise TokenizerError(f"{folder}: a T5 tokenizer needs an eos_token, got {tokenizer.eos_token!r}.")
        backend.post_processor = convert.t5_post_processor(tokenizer.eos_token, tokenizer.eos_token_id)
    elif post_processor_kind == "bos_eos":
        bos = (
            (tokenizer.bos_token, tokenizer.bos_token_id)
            if add_bos and tokenizer.bos_token is not None
            else None
        )
        eos = (
            (tokenizer.eos_token, tokenizer.eos_token_id)
            if add_eos and tokenizer.eos_token is not None
            else None
        )
        backend.post_processor = convert.bos_eos_post_processor(bos, eos)  # type: ignore[arg-type]
    return tokenizer
