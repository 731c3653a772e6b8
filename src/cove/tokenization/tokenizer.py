"""PreTrainedTokenizerFast and BatchEncoding: transformers' tokenizer API over a `tokenizers.Tokenizer`.

Behaviour follows transformers' fast tokenizers (padding/truncation strategy resolution, special tokens,
decode clean-up, save format) so results are identical on the same files; the parity tests pin that.
torch is imported only when ``return_tensors="pt"`` is asked for.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Encoding, Tokenizer

from cove.errors import TokenizerError

VERY_LARGE_INTEGER = int(1e30)  # model_max_length when the config gives none: "no limit"
LARGE_INTEGER = int(1e20)

SPECIAL_TOKENS_ATTRIBUTES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")
TENSOR_TYPES = ("pt", "np")

# __call__ options besides text/text_pair: unknown keywords raise instead of being ignored
_CALL_OPTIONS = frozenset(
    {
        "add_special_tokens",
        "padding",
        "truncation",
        "max_length",
        "stride",
        "is_split_into_words",
        "pad_to_multiple_of",
        "padding_side",
        "return_tensors",
        "return_token_type_ids",
        "return_attention_mask",
        "return_overflowing_tokens",
        "return_special_tokens_mask",
        "return_offsets_mapping",
        "return_length",
        "verbose",
        "split_special_tokens",
    }
)


# --- BatchEncoding ------------------------------------------------------------------------------


class BatchEncoding(dict):
    """The tokenizer's output: a dict (``input_ids``, ``attention_mask``, ...) with attribute access.

    Works as ``model(**enc)``; keeps the backend ``tokenizers.Encoding`` objects for word/char alignment.
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        encoding: Encoding | Sequence[Encoding] | None = None,
        tensor_type: str | None = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
    ):
        super().__init__(data or {})
        if isinstance(encoding, Encoding):
            encoding = [encoding]
        self._encodings: list[Encoding] | None = list(encoding) if encoding is not None else None
        if n_sequences is None and self._encodings:
            n_sequences = self._encodings[0].n_sequences
        self._n_sequences = n_sequences
        self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, str):
            return super().__getitem__(item)
        if self._encodings is not None and isinstance(item, int):
            return self._encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(
            f"Invalid BatchEncoding key {item!r}: use a string (e.g. 'input_ids'), an int (the backend encoding of "
            "that batch item) or a slice."
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_encodings", "_n_sequences"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"BatchEncoding has no key or attribute {name!r}; keys: {list(self)}"
            ) from None

    def __reduce__(self):  # pickle the dict and the encodings, not the attribute hook
        return (self.__class__, (dict(self), self._encodings, None, False, self._n_sequences))

    @property
    def data(self) -> dict[str, Any]:
        return dict(self)

    @property
    def encodings(self) -> list[Encoding] | None:
        return self._encodings

    @property
    def n_sequences(self) -> int | None:
        return self._n_sequences

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    def _encoding(self, batch_index: int) -> Encoding:
        if not self._encodings:
            raise TokenizerError(
                "This BatchEncoding holds no backend encodings (it was built from plain lists), so token/word "
                "alignment is unavailable: get it straight from the tokenizer call."
            )
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        return self._encoding(batch_index).tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index).word_ids

    def words(self, batch_index: int = 0) -> list[int | None]:
        return self.word_ids(batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index).sequence_ids

    def _batch_and_index(self, batch_or_index: int, index: int | None) -> tuple[int, int]:
        if index is None:
            if self._encodings is not None and len(self._encodings) > 1:
                raise TokenizerError(
                    "This BatchEncoding holds a batch: pass the batch index and then the token/char index."
                )
            return 0, batch_or_index
        return batch_or_index, index

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        b, i = self._batch_and_index(batch_or_token_index, token_index)
        if i < 0:
            i += len(self._encoding(b).ids)
        return self._encoding(b).token_to_word(i)

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        b, i = self._batch_and_index(batch_or_token_index, token_index)
        if i < 0:
            i += len(self._encoding(b).ids)
        return self._encoding(b).token_to_sequence(i)

    def token_to_chars(
        self, batch_or_token_index: int, token_index: int | None = None
    ) -> tuple[int, int] | None:
        b, i = self._batch_and_index(batch_or_token_index, token_index)
        return self._encoding(b).token_to_chars(i)

    def char_to_token(
        self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0
    ) -> int | None:
        b, i = self._batch_and_index(batch_or_char_index, char_index)
        return self._encoding(b).char_to_token(i, sequence_index)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> tuple[int, int] | None:
        b, i = self._batch_and_index(batch_or_word_index, word_index)
        return self._encoding(b).word_to_tokens(i, sequence_index)

    def convert_to_tensors(
        self, tensor_type: str | None = None, prepend_batch_axis: bool = False
    ) -> BatchEncoding:
        """Turn the lists into torch tensors ('pt') or numpy arrays ('np'), in place."""
        if tensor_type is None:
            return self
        tensor_type = getattr(tensor_type, "value", tensor_type)
        if tensor_type not in TENSOR_TYPES:
            raise TokenizerError(
                f"Unsupported return_tensors={tensor_type!r}: use 'pt' (torch), 'np' (numpy) or None."
            )
        if tensor_type == "pt":
            import torch

            def as_tensor(value: Any) -> Any:
                if torch.is_tensor(value):
                    return value
                if _is_empty(value):
                    return torch.tensor(value, dtype=torch.int64)
                return torch.tensor(value)
        else:
            import numpy as np

            def as_tensor(value: Any) -> Any:
                if isinstance(value, np.ndarray):
                    return value
                if _is_empty(value):
                    return np.asarray(value, dtype=np.int64)
                return np.asarray(value)

        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            if _is_ragged(value):
                raise TokenizerError(
                    f"Cannot make a tensor of {key!r}: the sequences have different lengths. "
                    "Pass padding=True (and truncation=True for long inputs) to get equal lengths."
                )
            try:
                self[key] = as_tensor(value)
            except (ValueError, TypeError, RuntimeError) as e:
                raise TokenizerError(f"Cannot make a {tensor_type} tensor of {key!r}: {e}") from e
        return self

    def to(self, device: Any, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every tensor to ``device`` (torch only); other values stay as they are."""
        for key, value in list(self.items()):
            if hasattr(value, "to") and callable(value.to):
                self[key] = value.to(device=device, non_blocking=non_blocking)
        return self


def _is_empty(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_empty(v) for v in value)
    return False


def _is_ragged(value: Any) -> bool:
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        lengths = {len(v) if isinstance(v, (list, tuple)) else -1 for v in value}
        return len(lengths) > 1 or any(_is_ragged(v) for v in value)
    return False


# --- tokenizer ----------------------------------------------------------------------------------


def _token_content(token: str | AddedToken | None) -> str | None:
    return None if token is None else str(token) if isinstance(token, str) else token.content


def _as_added_token(value: Any, *, key: str) -> str | AddedToken | None:
    """A special-token value from a config: a string, None, or a serialized AddedToken dict."""
    if value is None or isinstance(value, (str, AddedToken)):
        return value
    if isinstance(value, dict) and "content" in value:
        fields = {k: v for k, v in value.items() if k != "__type"}
        fields.setdefault("special", True)
        try:
            return AddedToken(**fields)
        except TypeError as e:
            raise TokenizerError(f"Bad token definition for {key}: {value!r} ({e}).") from e
    raise TokenizerError(f"{key} must be a string, a token dict or null, got {value!r}.")


class PreTrainedTokenizerFast:
    """A tokenizer over a `tokenizers.Tokenizer`, with transformers' calling conventions.

    Build one with ``AutoTokenizer.from_pretrained(name_or_path)`` or directly with
    ``PreTrainedTokenizerFast(tokenizer_object=..., unk_token=..., ...)``.
    """

    model_input_names: list[str] = ["input_ids", "attention_mask"]
    padding_side: str = "right"
    truncation_side: str = "right"

    def __init__(
        self,
        tokenizer_object: Tokenizer | None = None,
        *,
        tokenizer_file: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ):
        if tokenizer_object is not None:
            backend = copy.deepcopy(tokenizer_object)
        elif tokenizer_file is not None:
            backend = _load_tokenizer_json(Path(tokenizer_file))
        else:
            raise TokenizerError(
                "PreTrainedTokenizerFast needs a backend: pass tokenizer_object=tokenizers.Tokenizer(...) or "
                "tokenizer_file='.../tokenizer.json', or use AutoTokenizer.from_pretrained(folder)."
            )
        self._tokenizer: Tokenizer = backend
        self._lock = threading.Lock()

        if "additional_special_tokens" in kwargs and "extra_special_tokens" not in kwargs:
            kwargs["extra_special_tokens"] = kwargs.pop("additional_special_tokens")
        kwargs.pop("additional_special_tokens", None)
        added_tokens_decoder: dict[int, AddedToken] = kwargs.pop("added_tokens_decoder", None) or {}

        # settings baked into tokenizer.json act as defaults (transformers does the same)
        json_truncation = backend.truncation
        json_padding = backend.padding
        self._json_truncation = json_truncation
        self._json_padding = json_padding
        if json_truncation is not None:
            kwargs.setdefault("truncation_side", json_truncation["direction"])
        if json_padding is not None:
            kwargs.setdefault("pad_token", json_padding["pad_token"])
            kwargs.setdefault("padding_side", json_padding["direction"])
        backend.no_truncation()
        backend.no_padding()

        self.init_kwargs: dict[str, Any] = copy.deepcopy(
            {k: v for k, v in kwargs.items() if k not in ("name_or_path", "tokenizer_class")}
        )
        self.name_or_path: str = str(kwargs.pop("name_or_path", ""))
        self.tokenizer_class: str = str(kwargs.pop("tokenizer_class", None) or type(self).__name__)

        self._special_tokens: dict[str, str | AddedToken | None] = dict.fromkeys(SPECIAL_TOKENS_ATTRIBUTES)
        for key in SPECIAL_TOKENS_ATTRIBUTES:
            if key in kwargs:
                self._special_tokens[key] = _as_added_token(kwargs.pop(key), key=key)
        extra = kwargs.pop("extra_special_tokens", None) or []
        if isinstance(extra, dict):  # named model-specific tokens: keep the values
            extra = list(extra.values())
        if not isinstance(extra, (list, tuple)):
            raise TokenizerError(f"extra_special_tokens must be a list of tokens, got {extra!r}.")
        self._extra_special_tokens: list[str | AddedToken] = [
            t for t in (_as_added_token(v, key="extra_special_tokens") for v in extra) if t is not None
        ]

        model_max_length = kwargs.pop("model_max_length", kwargs.pop("max_len", None))
        self.model_max_length: int = (
            int(model_max_length) if model_max_length is not None else VERY_LARGE_INTEGER
        )
        self.padding_side = _check_side(kwargs.pop("padding_side", type(self).padding_side), "padding_side")
        self.truncation_side = _check_side(
            kwargs.pop("truncation_side", type(self).truncation_side), "truncation_side"
        )
        self.model_input_names = list(kwargs.pop("model_input_names", type(self).model_input_names))
        self.clean_up_tokenization_spaces: bool = bool(kwargs.pop("clean_up_tokenization_spaces", False))
        self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output: bool = bool(
            kwargs.pop("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output", False)
        )
        self.split_special_tokens: bool = bool(kwargs.pop("split_special_tokens", False))
        chat_template = kwargs.pop("chat_template", None)
        if isinstance(chat_template, (list, tuple)):
            chat_template = {t["name"]: t["template"] for t in chat_template}
        self.chat_template: str | dict[str, str] | None = chat_template
        self._pad_token_type_id = 0
        self._extra_config = kwargs  # other config keys (do_lower_case, add_prefix_space, ...): saved back

        backend.encode_special_tokens = self.split_special_tokens
        self._register_special_tokens(added_tokens_decoder)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; each copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # --- construction helpers -------------------------------------------------------------------

    def _register_special_tokens(self, added_tokens_decoder: dict[int, AddedToken]) -> None:
        """Make config-declared added tokens and every special token an added token of the backend.

        Same order and rules as transformers, so token flags (lstrip, normalized, ...) end up identical.
        """
        to_add: list[str | AddedToken] = [tok for _, tok in sorted(added_tokens_decoder.items())]
        encoder = [t.content for t in self._tokenizer.get_added_tokens_decoder().values()]
        encoder += [str(_token_content(t)) for t in to_add]
        for value in [*self._special_tokens.values(), *self._extra_special_tokens]:
            if value is None:
                continue
            if _token_content(value) not in encoder and value not in to_add:
                to_add.append(value)
        named = {str(_token_content(v)) for v in self._special_tokens.values() if v is not None}
        tokens: list[AddedToken] = []
        for token in to_add:
            if isinstance(token, str):
                token = AddedToken(token, special=True)
            elif not token.special and token.content in named:
                token.special = True
            tokens.append(token)
        if tokens:
            self._tokenizer.add_tokens(tokens)

    # --- special tokens ------------------------------------------------------------------------

    def _get_special(self, key: str) -> str | None:
        return _token_content(self._special_tokens.get(key))

    def _set_special(self, key: str, value: str | AddedToken | None) -> None:
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise TokenizerError(f"{key} must be a string, an AddedToken or None, got {value!r}.")
        self._special_tokens[key] = value

    def _get_special_id(self, key: str) -> int | None:
        token = self._get_special(key)
        return None if token is None else self.convert_tokens_to_ids(token)

    def _set_special_id(self, key: str, value: int | None) -> None:
        self._set_special(key, None if value is None else self.convert_ids_to_tokens(int(value)))

    bos_token = property(
        lambda self: self._get_special("bos_token"), lambda self, v: self._set_special("bos_token", v)
    )
    eos_token = property(
        lambda self: self._get_special("eos_token"), lambda self, v: self._set_special("eos_token", v)
    )
    unk_token = property(
        lambda self: self._get_special("unk_token"), lambda self, v: self._set_special("unk_token", v)
    )
    sep_token = property(
        lambda self: self._get_special("sep_token"), lambda self, v: self._set_special("sep_token", v)
    )
    pad_token = property(
        lambda self: self._get_special("pad_token"), lambda self, v: self._set_special("pad_token", v)
    )
    cls_token = property(
        lambda self: self._get_special("cls_token"), lambda self, v: self._set_special("cls_token", v)
    )
    mask_token = property(
        lambda self: self._get_special("mask_token"), lambda self, v: self._set_special("mask_token", v)
    )
    bos_token_id = property(
        lambda self: self._get_special_id("bos_token"), lambda self, v: self._set_special_id("bos_token", v)
    )
    eos_token_id = property(
        lambda self: self._get_special_id("eos_token"), lambda self, v: self._set_special_id("eos_token", v)
    )
    unk_token_id = property(
        lambda self: self._get_special_id("unk_token"), lambda self, v: self._set_special_id("unk_token", v)
    )
    sep_token_id = property(
        lambda self: self._get_special_id("sep_token"), lambda self, v: self._set_special_id("sep_token", v)
    )
    pad_token_id = property(
        lambda self: self._get_special_id("pad_token"), lambda self, v: self._set_special_id("pad_token", v)
    )
    cls_token_id = property(
        lambda self: self._get_special_id("cls_token"), lambda self, v: self._set_special_id("cls_token", v)
    )
    mask_token_id = property(
        lambda self: self._get_special_id("mask_token"), lambda self, v: self._set_special_id("mask_token", v)
    )

    @property
    def pad_token_type_id(self) -> int:
        return self._pad_token_type_id

    @property
    def extra_special_tokens(self) -> list[str]:
        return [str(_token_content(t)) for t in self._extra_special_tokens]

    @extra_special_tokens.setter
    def extra_special_tokens(self, value: Iterable[str | AddedToken] | None) -> None:
        self._extra_special_tokens = list(value or [])

    additional_special_tokens = extra_special_tokens  # the transformers 4 name

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.extra_special_tokens)

    additional_special_tokens_ids = extra_special_tokens_ids

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """Named special tokens as strings: {'cls_token': '[CLS]', ...}."""
        return {k: str(_token_content(v)) for k, v in self._special_tokens.items() if v is not None}

    @property
    def all_special_tokens(self) -> list[str]:
        """Every special token (named, then extra), each once."""
        out: list[str] = []
        for value in [*self._special_tokens.values(), *self._extra_special_tokens]:
            content = _token_content(value)
            if content is not None and content not in out:
                out.append(content)
        return out

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    # --- vocabulary ----------------------------------------------------------------------------

    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._tokenizer

    @property
    def is_fast(self) -> bool:
        return True

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._tokenizer.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        """Size of the full vocabulary, added tokens included."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True

    def get_vocab(self) -> dict[str, int]:
        return self._tokenizer.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return self._tokenizer.get_added_tokens_decoder()

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {tok.content: i for i, tok in sorted(self.added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> Any:
        """Token(s) to id(s); unknown tokens give unk_token_id (None when there is no unk token)."""
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        return [self._token_to_id(t) for t in tokens]

    def _token_to_id(self, token: str) -> int | None:
        index = self._tokenizer.token_to_id(token)
        if index is None:
            unk = self._get_special("unk_token")
            return None if unk is None else self._tokenizer.token_to_id(unk)
        return index

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False) -> Any:
        """Id(s) to token string(s); ids outside the vocabulary give None."""
        if isinstance(ids, int) or (hasattr(ids, "ndim") and getattr(ids, "ndim", 1) == 0):
            return self._tokenizer.id_to_token(int(ids))  # type: ignore[arg-type]
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._tokenizer.id_to_token(int(i)) for i in _to_list(ids) if int(i) not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self._tokenizer.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens to the vocabulary (never split, matched before the model); returns how many are new."""
        if not new_tokens:
            return 0
        if isinstance(new_tokens, (str, AddedToken)):
            new_tokens = [new_tokens]
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise TokenizerError(f"add_tokens takes strings or tokenizers.AddedToken, got {token!r}.")
        if special_tokens:
            return self._tokenizer.add_special_tokens(list(new_tokens))
        return self._tokenizer.add_tokens(list(new_tokens))

    def add_special_tokens(
        self, special_tokens_dict: dict[str, Any], replace_extra_special_tokens: bool = True
    ) -> int:
        """Set named special tokens ({'pad_token': '[PAD]'}) or extra ones, adding them to the vocabulary."""
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get(
            "extra_special_tokens"
        ):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        special_tokens_dict.pop("additional_special_tokens", None)
        allowed = [*SPECIAL_TOKENS_ATTRIBUTES, "extra_special_tokens", "additional_special_tokens"]
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise TokenizerError(f"{key!r} is not a special-token name: use one of {allowed}.")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(
                    isinstance(t, (str, AddedToken)) for t in value
                ):
                    raise TokenizerError(
                        f"extra_special_tokens must be a list of strings or AddedTokens, got {value!r}."
                    )
                new = [
                    AddedToken(t, rstrip=False, lstrip=False, normalized=False, special=True)
                    if isinstance(t, str)
                    else t
                    for t in value
                    if replace_extra_special_tokens or str(_token_content(t)) not in self.extra_special_tokens
                ]
                if replace_extra_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise TokenizerError(f"{key} must be a string or an AddedToken, got {value!r}.")
                if isinstance(value, str):
                    value = AddedToken(value, rstrip=False, lstrip=False, normalized=False, special=True)
                self._special_tokens[key] = value
                to_add.append(value)
        return self.add_tokens(to_add, special_tokens=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._tokenizer.num_special_tokens_to_add(pair)

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for special tokens, 0 otherwise; on raw ids, the mask of the sequence the tokenizer would build."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise TokenizerError(
                    "Pass one sequence when already_has_special_tokens=True (it is already built)."
                )
            special = set(self.all_special_ids)
            return [1 if int(t) in special else 0 for t in token_ids_0]
        if self._tokenizer.post_processor is None:
            return [0] * (len(token_ids_0) + len(token_ids_1 or []))
        # lay the real lengths onto the post-processor's template, built around one-token placeholders
        backend = self._tokenizer
        with self._lock:  # every call sets padding/truncation itself, so clearing them here is safe
            backend.no_truncation()
            backend.no_padding()
            probe = backend.encode("a", "a" if token_ids_1 is not None else None, add_special_tokens=True)
        lengths = {0: len(token_ids_0), 1: len(token_ids_1 or [])}
        mask: list[int] = []
        placed: set[int] = set()
        for seq in probe.sequence_ids:
            if seq is None:
                mask.append(1)
            elif seq not in placed:
                placed.add(seq)
                mask.extend([0] * lengths[seq])
        return mask

    # --- encoding ------------------------------------------------------------------------------

    def _resolve_strategies(
        self, padding: Any, truncation: Any, max_length: Any, pad_to_multiple_of: Any
    ) -> tuple[str, str, int | None]:
        """transformers' _get_padding_truncation_strategies, with clear errors for bad values."""
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0
        ):
            raise TokenizerError(f"max_length must be a non-negative int or None, got {max_length!r}.")
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool)
            or not isinstance(pad_to_multiple_of, int)
            or pad_to_multiple_of <= 0
        ):
            raise TokenizerError(
                f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}."
            )
        # only max_length given: truncate to it (transformers' backward-compatible behaviour)
        if max_length is not None and padding is False and truncation is None:
            truncation = "longest_first"

        padding = getattr(padding, "value", padding)
        if padding is False or padding is None:
            padding_strategy = "do_not_pad"
        elif padding is True:
            padding_strategy = "longest"
        elif isinstance(padding, str) and padding in PADDING_STRATEGIES:
            padding_strategy = padding
        else:
            raise TokenizerError(
                f"Unknown padding={padding!r}: use True/'longest' (pad to the longest in the batch), "
                "'max_length' (pad to max_length) or False/'do_not_pad'."
            )

        truncation = getattr(truncation, "value", truncation)
        if truncation is False or truncation is None:
            truncation_strategy = "do_not_truncate"
        elif truncation is True:
            truncation_strategy = "longest_first"
        elif isinstance(truncation, str) and truncation in TRUNCATION_STRATEGIES:
            truncation_strategy = truncation
        else:
            raise TokenizerError(
                f"Unknown truncation={truncation!r}: use True/'longest_first', 'only_first', 'only_second' "
                "or False/'do_not_truncate'."
            )

        if max_length is None:
            if padding_strategy == "max_length":
                if self.model_max_length > LARGE_INTEGER:
                    padding_strategy = "do_not_pad"
                else:
                    max_length = self.model_max_length
            if truncation_strategy != "do_not_truncate":
                if self.model_max_length > LARGE_INTEGER:
                    truncation_strategy = "do_not_truncate"
                else:
                    max_length = self.model_max_length

        if padding_strategy != "do_not_pad":
            pad_id = self.pad_token_id
            if self.pad_token is None or pad_id is None or pad_id < 0:
                raise TokenizerError(
                    "Asked to pad but the tokenizer has no pad token: set one, e.g. "
                    "`tokenizer.pad_token = tokenizer.eos_token` or "
                    "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
                )
        if (
            truncation_strategy != "do_not_truncate"
            and padding_strategy != "do_not_pad"
            and pad_to_multiple_of is not None
            and max_length is not None
            and max_length % pad_to_multiple_of != 0
        ):
            raise TokenizerError(
                f"Truncation length {max_length} is not a multiple of pad_to_multiple_of={pad_to_multiple_of}: "
                "pick a max_length that is."
            )
        return padding_strategy, truncation_strategy, max_length

    def __call__(
        self,
        text: str | list[str] | list[list[str]] | None = None,
        text_pair: str | list[str] | list[list[str]] | None = None,
        text_target: str | list[str] | list[list[str]] | None = None,
        text_pair_target: str | list[str] | list[list[str]] | None = None,
        **kwargs: Any,
    ) -> BatchEncoding:
        """Tokenize one text, a batch, or (batches of) text pairs; see transformers' tokenizer __call__.

        ``text_target`` (seq2seq labels) is encoded the same way and returned as ``labels``.
        """
        unknown = set(kwargs) - _CALL_OPTIONS - {"max_target_length"}
        if unknown:
            raise TokenizerError(
                f"Unknown tokenizer option(s) {sorted(unknown)}: supported are {sorted(_CALL_OPTIONS)}."
            )
        if text is None and text_target is None:
            raise TokenizerError(
                "No text given: call tokenizer(text) with a string, a list of strings or pairs."
            )
        max_target_length = kwargs.pop("max_target_length", None)
        padding_strategy, truncation_strategy, max_length = self._resolve_strategies(
            kwargs.pop("padding", False),
            kwargs.pop("truncation", None),
            kwargs.pop("max_length", None),
            kwargs.get("pad_to_multiple_of"),
        )
        kwargs["padding_strategy"] = padding_strategy
        kwargs["truncation_strategy"] = truncation_strategy
        encodings = targets = None
        if text is not None:
            encodings = self._encode(text, text_pair, max_length=max_length, **kwargs)
        if text_target is not None:
            target_length = max_target_length if max_target_length is not None else max_length
            targets = self._encode(text_target, text_pair_target, max_length=target_length, **kwargs)
        if targets is None:
            return encodings  # type: ignore[return-value]
        if encodings is None:
            return targets
        encodings["labels"] = targets["input_ids"]
        return encodings

    def _encode(
        self,
        text: Any,
        text_pair: Any = None,
        *,
        padding_strategy: str = "do_not_pad",
        truncation_strategy: str = "do_not_truncate",
        max_length: int | None = None,
        add_special_tokens: bool = True,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        verbose: bool = True,
        split_special_tokens: bool | None = None,
    ) -> BatchEncoding:
        if not _is_valid_text_input(text):
            raise TokenizerError(
                f"Bad text input of type {type(text).__name__}: pass a str (one text), a list of str (a batch, or "
                "one pre-split text with is_split_into_words=True) or a list of lists of str (pre-split batch)."
            )
        if text_pair is not None and not _is_valid_text_input(text_pair):
            raise TokenizerError(
                f"Bad text_pair input of type {type(text_pair).__name__}: pass a str or a list like `text`."
            )
        if padding_side is not None:
            _check_side(padding_side, "padding_side")
        if return_tensors is not None:
            return_tensors = getattr(return_tensors, "value", return_tensors)
            if return_tensors not in TENSOR_TYPES:
                raise TokenizerError(
                    f"Unsupported return_tensors={return_tensors!r}: use 'pt' (torch), 'np' (numpy) or None."
                )
        if not isinstance(stride, int) or stride < 0:
            raise TokenizerError(f"stride must be a non-negative int, got {stride!r}.")

        if is_split_into_words:
            is_batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
        else:
            is_batched = isinstance(text, (list, tuple))
        if is_batched:
            if isinstance(text_pair, str):
                raise TokenizerError(
                    "For a batch of texts, text_pair must be a list of the same length, not a str."
                )
            if text_pair is not None and len(text) != len(text_pair):
                raise TokenizerError(
                    f"text has {len(text)} items but text_pair has {len(text_pair)}: pass one pair text per text."
                )
            inputs = list(zip(text, text_pair)) if text_pair is not None else list(text)
        else:
            inputs = [(text, text_pair)] if text_pair else [text]

        # the backend's padding/truncation settings are shared state: one call at a time (encode_batch
        # releases the GIL, so concurrent calls from server threads would otherwise mix settings)
        with self._lock:
            backend = self._tokenizer
            if truncation_strategy == "do_not_truncate":
                if backend.truncation is not None:
                    backend.no_truncation()
            else:
                if max_length is None:  # _resolve_strategies sets it whenever truncation is on
                    raise TokenizerError(
                        "Truncation needs max_length: pass max_length= or set model_max_length."
                    )
                try:
                    backend.enable_truncation(
                        max_length=max_length,
                        stride=stride,
                        strategy=truncation_strategy,
                        direction=self.truncation_side,
                    )
                except Exception as e:
                    raise TokenizerError(
                        f"Bad truncation settings (max_length={max_length}, stride={stride}): {e}"
                    ) from e
            if padding_strategy == "do_not_pad":
                if backend.padding is not None:
                    backend.no_padding()
            else:
                backend.enable_padding(
                    length=max_length if padding_strategy == "max_length" else None,
                    direction=padding_side if padding_side is not None else self.padding_side,
                    pad_id=self.pad_token_id,
                    pad_token=self.pad_token,
                    pad_type_id=self.pad_token_type_id,
                    pad_to_multiple_of=pad_to_multiple_of,
                )
            split = self.split_special_tokens if split_special_tokens is None else bool(split_special_tokens)
            if backend.encode_special_tokens != split:
                backend.encode_special_tokens = split

            try:
                encodings = backend.encode_batch(
                    inputs, add_special_tokens=add_special_tokens, is_pretokenized=is_split_into_words
                )
            except Exception as e:  # the Rust side raises plain Exception for truncation/shape problems
                raise TokenizerError(
                    f"Tokenization failed: {e}. Check max_length/truncation against the inputs."
                ) from e

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names

        data: dict[str, list[Any]] = {"input_ids": []}
        if return_token_type_ids:
            data["token_type_ids"] = []
        if return_attention_mask:
            data["attention_mask"] = []
        if return_special_tokens_mask:
            data["special_tokens_mask"] = []
        if return_offsets_mapping:
            data["offset_mapping"] = []
        if return_length:
            data["length"] = []
        flat: list[Encoding] = []
        overflow_to_sample: list[int] = []
        for sample, encoding in enumerate(encodings):
            group = [encoding, *encoding.overflowing] if return_overflowing_tokens else [encoding]
            for enc in group:
                flat.append(enc)
                overflow_to_sample.append(sample)
                data["input_ids"].append(enc.ids)
                if return_token_type_ids:
                    data["token_type_ids"].append(enc.type_ids)
                if return_attention_mask:
                    data["attention_mask"].append(enc.attention_mask)
                if return_special_tokens_mask:
                    data["special_tokens_mask"].append(enc.special_tokens_mask)
                if return_offsets_mapping:
                    data["offset_mapping"].append(enc.offsets)
                if return_length:
                    data["length"].append(len(enc.ids))
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = overflow_to_sample

        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            data = {k: (v[0] if v and isinstance(v[0], list) else v) for k, v in data.items()}
            return BatchEncoding(data, flat)
        return BatchEncoding(data, flat, tensor_type=return_tensors)

    def pad(
        self,
        encoded_inputs: Any,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad already-encoded inputs (a dict of lists, or a list of per-example dicts), as data collators do."""
        if (
            isinstance(encoded_inputs, (list, tuple))
            and encoded_inputs
            and isinstance(encoded_inputs[0], dict)
        ):
            encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in encoded_inputs[0]}
        if not isinstance(encoded_inputs, dict):
            raise TokenizerError(
                f"pad takes a dict of encoded inputs or a list of them, got {type(encoded_inputs).__name__}."
            )
        main = self.model_input_names[0]
        if main not in encoded_inputs:
            raise TokenizerError(f"pad needs {main!r} in the inputs; got keys {list(encoded_inputs)}.")
        if padding_side is not None:
            _check_side(padding_side, "padding_side")
        data = {key: _to_list(value) for key, value in encoded_inputs.items()}
        if return_tensors is None:
            first = encoded_inputs[main]
            sample = first[0] if isinstance(first, (list, tuple)) and len(first) else first
            module = type(sample).__module__
            if module.startswith("torch"):
                return_tensors = "pt"
            elif module.startswith("numpy"):
                return_tensors = "np"
        required = data[main]
        if required is None or len(required) == 0:
            if return_attention_mask:
                data["attention_mask"] = []
            return BatchEncoding(data)
        strategy, _, max_length = self._resolve_strategies(padding, None, max_length, None)
        if not isinstance(required[0], (list, tuple)):  # one example
            return BatchEncoding(
                self._pad_one(
                    data, strategy, max_length, pad_to_multiple_of, padding_side, return_attention_mask
                ),
                tensor_type=return_tensors,
            )
        sizes = {key: len(value) for key, value in data.items()}
        if len(set(sizes.values())) > 1:
            raise TokenizerError(f"pad got batches of different sizes per key: {sizes}.")
        if strategy == "longest":
            max_length = max(len(ids) for ids in required)
            strategy = "max_length"
        out: dict[str, list[Any]] = {}
        for i in range(len(required)):
            example = {
                key: list(value[i]) if isinstance(value[i], (list, tuple)) else value[i]
                for key, value in data.items()
            }
            padded = self._pad_one(
                example, strategy, max_length, pad_to_multiple_of, padding_side, return_attention_mask
            )
            for key, value in padded.items():
                out.setdefault(key, []).append(value)
        return BatchEncoding(out, tensor_type=return_tensors)

    def _pad_one(
        self,
        example: dict[str, Any],
        strategy: str,
        max_length: int | None,
        pad_to_multiple_of: int | None,
        padding_side: str | None,
        return_attention_mask: bool | None,
    ) -> dict[str, Any]:
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        main = self.model_input_names[0]
        ids = list(example[main])
        if strategy == "longest":
            max_length = len(ids)
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if return_attention_mask and "attention_mask" not in example:
            example["attention_mask"] = [1] * len(ids)
        if strategy == "do_not_pad" or max_length is None or len(ids) >= max_length:
            return example
        n = max_length - len(ids)
        fills = {
            "attention_mask": 0,
            "token_type_ids": self.pad_token_type_id,
            "special_tokens_mask": 1,
            main: self.pad_token_id,
        }
        left = (padding_side or self.padding_side) == "left"
        for key, fill in fills.items():
            if key in example and (key != "attention_mask" or return_attention_mask):
                values = list(example[key])
                example[key] = [fill] * n + values if left else values + [fill] * n
        return example

    def encode(
        self,
        text: str | list[str],
        text_pair: str | list[str] | None = None,
        add_special_tokens: bool = True,
        **kwargs: Any,
    ) -> Any:
        """The input ids of one text (or pair): ``tokenizer(text, ...)["input_ids"]``."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def tokenize(
        self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs: Any
    ) -> list[str]:
        """The token strings of one text (no special tokens unless asked)."""
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).tokens()

    # --- decoding ------------------------------------------------------------------------------

    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> Any:
        """Ids to text; a batch (list of lists, 2-D tensor) gives a list of texts."""
        ids = _to_list(token_ids)
        if isinstance(ids, list) and ids and isinstance(ids[0], list):
            return [self._decode(seq, skip_special_tokens, clean_up_tokenization_spaces) for seq in ids]
        return self._decode(ids, skip_special_tokens, clean_up_tokenization_spaces)

    def batch_decode(
        self,
        sequences: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
    ) -> list[str]:
        result = self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces)
        return [result] if isinstance(result, str) else result

    def _decode(self, ids: Any, skip_special_tokens: bool, clean_up_tokenization_spaces: bool | None) -> str:
        if isinstance(ids, int):
            ids = [ids]
        if isinstance(ids, dict):
            ids = ids["input_ids"]
        try:
            text = self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        except (TypeError, ValueError, OverflowError) as e:
            raise TokenizerError(f"decode takes token ids (ints), got {ids!r:.100}: {e}") from e
        cleanup = (
            self.clean_up_tokenization_spaces
            if clean_up_tokenization_spaces is None
            else clean_up_tokenization_spaces
        )
        # the clean-up targets WordPiece output and corrupts byte-level BPE text, so transformers skips it there
        if cleanup and (
            type(self._tokenizer.model).__name__ != "BPE"
            or self.clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output
        ):
            text = clean_up_tokenization(text)
        return text

    # --- chat --------------------------------------------------------------------------------

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any:
        """Render (and by default tokenize) a conversation with the model's chat template; see
        `cove.tokenization.chat.apply_chat_template` for the arguments (transformers' names and defaults)."""
        from cove.tokenization.chat import apply_chat_template

        return apply_chat_template(self, conversation, **kwargs)

    # --- saving --------------------------------------------------------------------------------

    def save_pretrained(self, save_directory: str | os.PathLike[str], **kwargs: Any) -> tuple[str, ...]:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (transformers' format)."""
        if kwargs.pop("legacy_format", None) is True:
            raise TokenizerError(
                "legacy_format=True (slow vocab files) is not supported: Cove saves tokenizer.json."
            )
        if kwargs:
            raise TokenizerError(f"Unknown save_pretrained option(s) {sorted(kwargs)}.")
        folder = Path(save_directory)
        if folder.is_file():
            raise TokenizerError(f"{folder} is a file: save_pretrained needs a directory path.")
        folder.mkdir(parents=True, exist_ok=True)

        config: dict[str, Any] = {
            k: v
            for k, v in copy.deepcopy(self.init_kwargs).items()
            if k not in ("add_bos_token", "add_eos_token")
        }
        for key in ("tokenizer_file", "vocab_file", "merges_file", "special_tokens_map_file", "name_or_path"):
            config.pop(key, None)
        config.update(self._synced_config())
        config["model_max_length"] = self.model_max_length
        config["padding_side"] = self.padding_side
        config["truncation_side"] = self.truncation_side
        config["clean_up_tokenization_spaces"] = self.clean_up_tokenization_spaces
        if self.model_input_names != type(self).model_input_names or "model_input_names" in self.init_kwargs:
            config["model_input_names"] = list(self.model_input_names)
        for key in SPECIAL_TOKENS_ATTRIBUTES:
            config.pop(key, None)
        config.update(self.special_tokens_map)
        config.pop("additional_special_tokens", None)
        config.pop("extra_special_tokens", None)
        if self._extra_special_tokens:
            config["extra_special_tokens"] = self.extra_special_tokens
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        config.pop("added_tokens_decoder", None)
        config["tokenizer_class"] = self.tokenizer_class
        config = _jsonable(config)

        config_file = folder / "tokenizer_config.json"
        config_file.write_text(
            json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        special_file = folder / "special_tokens_map.json"
        special_map: dict[str, Any] = dict(self.special_tokens_map)
        if self._extra_special_tokens:
            special_map["additional_special_tokens"] = self.extra_special_tokens
        special_file.write_text(
            json.dumps(special_map, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        tokenizer_file = folder / "tokenizer.json"
        state = json.loads(self._tokenizer.to_str())
        # save the settings the files came with, not the last call's padding/truncation
        probe = Tokenizer.from_str(self._tokenizer.to_str())
        probe.no_padding()
        probe.no_truncation()
        if self._json_truncation is not None:
            probe.enable_truncation(**self._json_truncation)
        if self._json_padding is not None:
            probe.enable_padding(**self._json_padding)
        fixed = json.loads(probe.to_str())
        state["truncation"], state["padding"] = fixed["truncation"], fixed["padding"]
        tokenizer_file.write_text(json.dumps(state, indent=2, ensure_ascii=False), encoding="utf-8")
        return (str(config_file), str(special_file), str(tokenizer_file))

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """Save the tokenizer files and commit them to ``repo_id`` (added beside what the repo holds, so a
        model pushed there first keeps its weights), as the models' ``push_to_hub`` does."""
        from cove.hub.push import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)

    def _synced_config(self) -> dict[str, Any]:
        """Config keys that transformers' per-family classes rebuild the pipeline from, read off the backend.

        transformers' BertTokenizer/GPT2Tokenizer/RobertaTokenizer rebuild normalizer and pre-tokenizer from
        tokenizer_config.json, so those keys must agree with tokenizer.json for a faithful reload.
        """
        out: dict[str, Any] = {}
        state = json.loads(self._tokenizer.to_str())
        normalizer = state.get("normalizer") or {}
        if normalizer.get("type") == "BertNormalizer":
            out["do_lower_case"] = normalizer.get("lowercase", True)
            out["strip_accents"] = normalizer.get("strip_accents")
            out["tokenize_chinese_chars"] = normalizer.get("handle_chinese_chars", True)
        pre = state.get("pre_tokenizer") or {}
        if pre.get("type") == "ByteLevel":
            out["add_prefix_space"] = pre.get("add_prefix_space", False)
        post = state.get("post_processor") or {}
        if post.get("type") == "RobertaProcessing":
            out["trim_offsets"] = post.get("trim_offsets", True)
        return out

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], **kwargs: Any) -> PreTrainedTokenizerFast:
        """Load from a model folder or name (see `cove.tokenization.auto.AutoTokenizer`)."""
        from cove.tokenization.loading import load_tokenizer

        return load_tokenizer(name_or_path, cls=cls, **kwargs)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})"
        )


# --- helpers ------------------------------------------------------------------------------------


def clean_up_tokenization(text: str) -> str:
    """Remove spaces before punctuation and contractions (transformers' clean_up_tokenization)."""
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


def _check_side(value: Any, name: str) -> str:
    if value not in ("left", "right"):
        raise TokenizerError(f"{name} must be 'left' or 'right', got {value!r}.")
    return value


def _is_valid_text_input(t: Any) -> bool:
    if isinstance(t, str):
        return True
    if isinstance(t, (list, tuple)):
        if len(t) == 0 or isinstance(t[0], str):
            return True
        if isinstance(t[0], (list, tuple)):
            if len(t[0]) == 0 or isinstance(t[0][0], str):
                return True
            if isinstance(t[0][0], (list, tuple)):
                return len(t[0][0]) == 0 or isinstance(t[0][0][0], str)
    return False


def _to_list(value: Any) -> Any:
    """Tensors and arrays to (nested) Python lists; other values unchanged."""
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, AddedToken):
        return {**value.__getstate__(), "__type": "AddedToken"}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _load_tokenizer_json(path: Path) -> Tokenizer:
    if not path.is_file():
        from cove.errors import MissingFileError

        raise MissingFileError(f"Tokenizer file {path} does not exist: pass the path of a tokenizer.json.")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:
        raise TokenizerError(
            f"Cannot read {path}: {e}. It must be a tokenizer.json written by the `tokenizers` library "
            "(re-save it with tokenizer.save_pretrained)."
        ) from e
