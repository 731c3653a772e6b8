"""Cove's tokenizers against transformers' fast tokenizers on the same files.

Four tokenizers: the bundled all-MiniLM-L6-v2 (tokenizer.json), a cased WordPiece folder holding only vocab.txt,
and GPT-2 and RoBERTa style byte-level BPEs (vocab.json + merges.txt) trained here with `tokenizers`.
Every comparison covers >= 1,000 seeded random strings (accents, emoji, CJK, control characters, whitespace
runs, very long, empty) or pairs of them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import cove
from cove.errors import TokenizerError
from cove.hub.resolve import resolve_model_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the reference must not try the network for local folders
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
N_STRINGS = 1200

_WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "tokenizer",
    "hello",
    "world",
    "can't",
    "won't",
    "it's",
    "I'm",
    "naïve",
    "café",
]
_POOLS = {
    "accents": "éèêëàâäôöûüçñÉÈÀÇÑåøæßłżśćőűãõíóúý"
    + "e\u0301a\u0300o\u0308n\u0303",  # precomposed and combining
    "emoji": "😀😂🥲👍🏽👨‍👩‍👧‍👦🏳️‍🌈❤️🔥✨🚀🇫🇷🧑🏿‍💻",
    "cjk": "世界你好日本語の文章한국어테스트漢字カタカナひらがな中文字符",
    "scripts": "مرحبا بالعالم שלום עולם नमस्ते दुनिया สวัสดี Привет мир Γειά σου",
    "control": "\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x85\u200b\u200c\u200d\u2028\u2029\ufeff\ufffd",
    "whitespace": " \t\n\r\u00a0\u2003\u3000",
    "punct": ".,;:!?'\"()[]{}<>-_/\\@#$%^&*+=~`|…—–«»“”‘’",
    "digits": "0123456789½²³",
}
_SPECIAL_SNIPPETS = [
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "[PAD]",
    "[UNK]",
    "<s>",
    "</s>",
    "<mask>",
    "<pad>",
    "<|endoftext|>",
]


def _random_string(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.03:
        return ""
    if kind < 0.06:  # whitespace-only runs
        return "".join(rng.choice(_POOLS["whitespace"]) for _ in range(rng.randint(1, 12)))
    if kind < 0.09:  # very long
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(800, 1500)))
    parts = []
    for _ in range(rng.randint(1, 25)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(_WORDS).capitalize() if rng.random() < 0.3 else rng.choice(_WORDS))
        elif r < 0.45:
            parts.append(rng.choice(_SPECIAL_SNIPPETS))
        else:
            pool = _POOLS[rng.choice(list(_POOLS))]
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        sep = rng.choice([" ", " ", " ", "", "  ", "\t", "\n", " \u00a0 "])
        parts.append(sep)
    return "".join(parts)


@pytest.fixture(scope="module")
def strings() -> list[str]:
    rng = random.Random(1234)
    out = [_random_string(rng) for _ in range(N_STRINGS)]
    out[:4] = ["", " ", "Hello world!", "[CLS] hello [SEP] <s> </s> <mask>"]
    return out


@pytest.fixture(scope="module")
def pairs(strings: list[str]) -> list[tuple[str, str]]:
    rng = random.Random(99)
    shuffled = strings[:]
    rng.shuffle(shuffled)
    return list(zip(strings, shuffled))


# --- the tokenizer folders ----------------------------------------------------------------------


def _corpus() -> list[str]:
    rng = random.Random(7)
    return [_random_string(rng) for _ in range(600)]


def _train_byte_level_bpe(folder: Path, special_tokens: list[str]) -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, special_tokens=special_tokens, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.model.save(str(folder))  # vocab.json + merges.txt, as slow tokenizers ship them


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    minilm = resolve_model_dir(MINILM)

    wordpiece = root / "wordpiece"
    wordpiece.mkdir()
    shutil.copy(minilm / "vocab.txt", wordpiece / "vocab.txt")
    (wordpiece / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": False, "model_max_length": 64})
    )

    gpt2 = root / "gpt2"
    gpt2.mkdir()
    _train_byte_level_bpe(gpt2, ["<|endoftext|>"])
    (gpt2 / "tokenizer_config.json").write_text(
        json.dumps(
            {"tokenizer_class": "GPT2Tokenizer", "pad_token": "<|endoftext|>", "model_max_length": 128}
        )
    )

    roberta = root / "roberta"
    roberta.mkdir()
    _train_byte_level_bpe(roberta, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    (roberta / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 96})
    )
    (roberta / "config.json").write_text(json.dumps({"model_type": "roberta"}))
    return {"minilm": minilm, "wordpiece": wordpiece, "gpt2": gpt2, "roberta": roberta}


KINDS = ["minilm", "wordpiece", "gpt2", "roberta"]
HF_CLASSES = {
    "minilm": "BertTokenizer",
    "wordpiece": "BertTokenizer",
    "gpt2": "GPT2Tokenizer",
    "roberta": "RobertaTokenizer",
}


@pytest.fixture(scope="module", params=KINDS)
def pair_of_tokenizers(request: pytest.FixtureRequest, folders: dict[str, Path]):
    folder = folders[request.param]
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert type(hf).__name__ == HF_CLASSES[request.param]
    ours = cove.AutoTokenizer.from_pretrained(folder)
    return request.param, ours, hf


# --- helpers ------------------------------------------------------------------------------------


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _assert_same(ours, theirs, context: str) -> None:
    assert list(ours.keys()) == list(theirs.keys()), context
    for key in theirs:
        a, b = ours[key], theirs[key]
        if hasattr(b, "tolist"):
            a, b = _plain(a), _plain(b)
        if a != b:
            for i, (x, y) in enumerate(zip(a, b)):
                assert x == y, f"{context}: {key}[{i}] differs"
            assert a == b, f"{context}: {key} differs in length"


def _call_both(ours, hf, *args, **kwargs):
    """Both results, or both errors (the Rust side raises for impossible truncations)."""
    try:
        expected = hf(*args, **kwargs)
    except Exception as e:
        with pytest.raises(TokenizerError):
            ours(*args, **kwargs)
        return None, e
    return ours(*args, **kwargs), expected


ALL_OUTPUTS = dict(
    return_offsets_mapping=True,
    return_special_tokens_mask=True,
    return_token_type_ids=True,
    return_attention_mask=True,
    return_length=True,
)


# --- tests --------------------------------------------------------------------------------------


def test_same_special_tokens_and_vocab(pair_of_tokenizers) -> None:
    kind, ours, hf = pair_of_tokenizers
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(hf, f"{name}_token"), (kind, name)
        assert getattr(ours, f"{name}_token_id") == getattr(hf, f"{name}_token_id"), (kind, name)
    assert ours.all_special_tokens == hf.all_special_tokens
    assert ours.all_special_ids == hf.all_special_ids
    assert ours.special_tokens_map == hf.special_tokens_map
    assert ours.vocab_size == hf.vocab_size
    assert len(ours) == len(hf)
    assert ours.get_vocab() == hf.get_vocab()
    assert ours.model_max_length == hf.model_max_length
    assert ours.model_input_names == hf.model_input_names
    assert ours.padding_side == hf.padding_side
    assert {i: str(t) for i, t in ours.added_tokens_decoder.items()} == {
        i: str(t) for i, t in hf.added_tokens_decoder.items()
    }
    assert [repr(t) for t in ours.added_tokens_decoder.values()] == [
        repr(t) for t in hf.added_tokens_decoder.values()
    ]


def test_single_strings_identical(pair_of_tokenizers, strings: list[str]) -> None:
    kind, ours, hf = pair_of_tokenizers
    _assert_same(ours(strings, **ALL_OUTPUTS), hf(strings, **ALL_OUTPUTS), f"{kind} batch")
    for i, text in enumerate(strings[:300]):  # unbatched calls return flat lists
        _assert_same(ours(text, **ALL_OUTPUTS), hf(text, **ALL_OUTPUTS), f"{kind} string {i}")
        assert ours.tokenize(text) == hf.tokenize(text), f"{kind} string {i}"
        assert ours.encode(text) == hf.encode(text)


def test_decodes_identical(pair_of_tokenizers, strings: list[str]) -> None:
    kind, ours, hf = pair_of_tokenizers
    ids = hf(strings)["input_ids"]
    assert ours.batch_decode(ids) == hf.batch_decode(ids), kind
    assert ours.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(ids, skip_special_tokens=True)
    assert ours.batch_decode(ids, clean_up_tokenization_spaces=True) == hf.batch_decode(
        ids, clean_up_tokenization_spaces=True
    )
    for seq in ids[:200]:
        assert ours.decode(seq) == hf.decode(seq)
        assert ours.convert_ids_to_tokens(seq) == hf.convert_ids_to_tokens(seq)
        assert ours.convert_ids_to_tokens(seq, skip_special_tokens=True) == hf.convert_ids_to_tokens(
            seq, skip_special_tokens=True
        )
        tokens = hf.convert_ids_to_tokens(seq)
        assert ours.convert_tokens_to_ids(tokens) == hf.convert_tokens_to_ids(tokens)
        assert ours.convert_tokens_to_string(tokens) == hf.convert_tokens_to_string(tokens)
    assert ours.convert_tokens_to_ids("no-such-token-xyz") == hf.convert_tokens_to_ids("no-such-token-xyz")


SETTINGS = [
    {},
    {"padding": True},
    {"padding": "longest", "padding_side": "left"},
    {"padding": "max_length", "truncation": True},
    {"padding": "max_length", "max_length": 40, "truncation": "longest_first"},
    {"truncation": True, "max_length": 24},
    {"truncation": "only_first", "max_length": 30},
    {"truncation": "only_second", "max_length": 30, "padding": True},
    {"max_length": 16},
    {"truncation": True, "max_length": 32, "padding": True, "pad_to_multiple_of": 8},
    {"truncation": "longest_first", "max_length": 20, "stride": 4, "return_overflowing_tokens": True},
    {"add_special_tokens": False, "padding": True},
]


@pytest.mark.slow
@pytest.mark.parametrize("setting", SETTINGS, ids=[json.dumps(s, sort_keys=True) for s in SETTINGS])
def test_pairs_identical(pair_of_tokenizers, pairs: list[tuple[str, str]], setting: dict) -> None:
    kind, ours, hf = pair_of_tokenizers
    first = [a for a, _ in pairs]
    second = [b for _, b in pairs]
    # very long texts are covered by the single-text tests; in pairs they make every batch pad to thousands of
    # tokens, and the Rust side builds every overflow combination of a truncated pair (quadratic in length)
    cap = 400 if setting.get("truncation") or "max_length" in setting else 1500
    first, second = [a[:cap] for a in first], [b[:cap] for b in second]
    if setting.get("return_overflowing_tokens"):
        first, second = first[:300], second[:300]
    for start in range(0, len(first), 100):  # batches, so an impossible truncation fails only its batch
        a, b = first[start : start + 100], second[start : start + 100]
        got, expected = _call_both(ours, hf, a, b, **ALL_OUTPUTS, **setting)
        if got is not None:
            _assert_same(got, expected, f"{kind} pairs {start} {setting}")
    for i in range(0, 60):  # single pairs
        got, expected = _call_both(ours, hf, first[i], second[i], **ALL_OUTPUTS, **setting)
        if got is not None:
            _assert_same(got, expected, f"{kind} pair {i} {setting}")


@pytest.mark.parametrize("setting", SETTINGS[1:6], ids=[json.dumps(s, sort_keys=True) for s in SETTINGS[1:6]])
def test_singles_under_padding_and_truncation(pair_of_tokenizers, strings: list[str], setting: dict) -> None:
    kind, ours, hf = pair_of_tokenizers
    for start in range(0, len(strings), 200):  # padding is per batch: smaller batches, less to compare
        batch = strings[start : start + 200]
        got, expected = _call_both(ours, hf, batch, **ALL_OUTPUTS, **setting)
        assert got is not None, f"{kind}: transformers failed on {setting}: {expected}"
        _assert_same(got, expected, f"{kind} {setting}")


@pytest.mark.parametrize(
    "setting",
    [{}, {"padding": "max_length", "max_length": 600}, {"pad_to_multiple_of": 16, "padding_side": "left"}],
    ids=["longest", "max_length", "multiple-left"],
)
def test_pad_identical(pair_of_tokenizers, strings: list[str], setting: dict) -> None:
    kind, ours, hf = pair_of_tokenizers
    examples = [
        dict(e) for e in _rows(hf(strings[:200], return_special_tokens_mask=True, return_token_type_ids=True))
    ]
    _assert_same(ours.pad(examples, **setting), hf.pad(examples, **setting), f"{kind} pad {setting}")
    got = ours.pad(examples[:8], return_tensors="np", **setting)
    expected = hf.pad(examples[:8], return_tensors="np", **setting)
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key])


def _rows(batch) -> list[dict]:
    return [{key: batch[key][i] for key in batch} for i in range(len(batch["input_ids"]))]


def test_tensors_identical(pair_of_tokenizers, strings: list[str]) -> None:
    _kind, ours, hf = pair_of_tokenizers
    batch = strings[:64]
    for tensors in ("np", "pt"):
        got = ours(batch, padding=True, truncation=True, max_length=48, return_tensors=tensors, **ALL_OUTPUTS)
        expected = hf(
            batch, padding=True, truncation=True, max_length=48, return_tensors=tensors, **ALL_OUTPUTS
        )
        for key in expected:
            assert type(got[key]) is type(expected[key]), key
            assert str(got[key].dtype) == str(expected[key].dtype), key
            np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(expected[key]))
    single = ours("hello", return_tensors="np")
    assert single["input_ids"].shape == hf("hello", return_tensors="np")["input_ids"].shape


def test_split_into_words_and_word_ids(pair_of_tokenizers, strings: list[str]) -> None:
    kind, ours, hf = pair_of_tokenizers
    words = [s.split() or ["x"] for s in strings[:300]]
    kw = dict(is_split_into_words=True, padding=True, **ALL_OUTPUTS)
    got, expected = ours(words, **kw), hf(words, **kw)
    _assert_same(got, expected, f"{kind} pre-split")
    for i in range(len(words)):
        assert got.word_ids(i) == expected.word_ids(i)
        assert got.sequence_ids(i) == expected.sequence_ids(i)
        assert got.tokens(i) == expected.tokens(i)
    one = ours(words[5], is_split_into_words=True)
    assert one["input_ids"] == hf(words[5], is_split_into_words=True)["input_ids"]
    assert one.word_ids() == hf(words[5], is_split_into_words=True).word_ids()


def test_added_tokens_identical(pair_of_tokenizers, strings: list[str], tmp_path: Path) -> None:
    kind, ours, hf = pair_of_tokenizers
    ours = cove.AutoTokenizer.from_pretrained(ours.name_or_path)  # fresh copies: the fixtures are shared
    hf = transformers.AutoTokenizer.from_pretrained(str(hf.name_or_path))
    assert ours.add_tokens(["quickfox", "zzz"]) == hf.add_tokens(["quickfox", "zzz"])
    assert ours.add_special_tokens({"additional_special_tokens": ["<ent>"]}) == hf.add_special_tokens(
        {"additional_special_tokens": ["<ent>"]}
    )
    texts = [s + " quickfox<ent>zzz" for s in strings[:300]]
    _assert_same(ours(texts, **ALL_OUTPUTS), hf(texts, **ALL_OUTPUTS), f"{kind} added tokens")
    ids = hf(texts)["input_ids"]
    assert ours.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(ids, skip_special_tokens=True)
    assert len(ours) == len(hf)
    assert ours.all_special_tokens == hf.all_special_tokens
    saved = tmp_path / "with-added-tokens"
    ours.save_pretrained(saved)
    reloaded = transformers.AutoTokenizer.from_pretrained(str(saved))
    _assert_same(
        reloaded(texts, **ALL_OUTPUTS), hf(texts, **ALL_OUTPUTS), f"{kind} added tokens, saved by cove"
    )
    assert reloaded.all_special_tokens == hf.all_special_tokens
    assert len(reloaded) == len(hf)


def test_cove_save_loads_in_transformers(pair_of_tokenizers, strings, pairs, tmp_path: Path) -> None:
    kind, ours, hf = pair_of_tokenizers
    ours.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    reloaded_hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    reloaded_ours = cove.AutoTokenizer.from_pretrained(tmp_path)
    assert type(reloaded_hf).__name__ == HF_CLASSES[kind]
    for other in (reloaded_hf, reloaded_ours):
        _assert_same(other(strings, **ALL_OUTPUTS), hf(strings, **ALL_OUTPUTS), f"{kind} saved by cove")
        a, b = [p[0] for p in pairs[:300]], [p[1] for p in pairs[:300]]
        _assert_same(
            other(a, b, padding=True, truncation=True, **ALL_OUTPUTS),
            hf(a, b, padding=True, truncation=True, **ALL_OUTPUTS),
            f"{kind} pairs saved by cove",
        )
        assert other.model_max_length == hf.model_max_length
        assert other.special_tokens_map == hf.special_tokens_map
        assert other.all_special_ids == hf.all_special_ids
        ids = hf(strings)["input_ids"]
        assert other.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(
            ids, skip_special_tokens=True
        )


def test_transformers_save_loads_in_cove(pair_of_tokenizers, strings, tmp_path: Path) -> None:
    kind, _ours, hf = pair_of_tokenizers
    hf.save_pretrained(str(tmp_path))
    reloaded = cove.AutoTokenizer.from_pretrained(tmp_path)
    _assert_same(
        reloaded(strings, **ALL_OUTPUTS), hf(strings, **ALL_OUTPUTS), f"{kind} saved by transformers"
    )
    assert reloaded.special_tokens_map == hf.special_tokens_map
    assert reloaded.model_max_length == hf.model_max_length
    assert reloaded.model_input_names == hf.model_input_names
    ids = hf(strings)["input_ids"]
    assert reloaded.batch_decode(ids) == hf.batch_decode(ids)


def test_text_target_labels_identical(pair_of_tokenizers, strings: list[str]) -> None:
    kind, ours, hf = pair_of_tokenizers
    sources, targets = strings[:100], strings[100:200]
    for kwargs in ({}, {"padding": True, "truncation": True, "max_length": 32, "max_target_length": 16}):
        _assert_same(
            ours(sources, text_target=targets, **kwargs),
            hf(sources, text_target=targets, **kwargs),
            f"{kind} targets",
        )
    _assert_same(ours(text_target=targets), hf(text_target=targets), f"{kind} targets only")


def _variant_folders(root: Path, folders: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """More config shapes: each folder and the class transformers must pick for it."""
    out: dict[str, tuple[Path, str]] = {}
    distil = root / "distilbert"
    distil.mkdir()
    shutil.copy(folders["wordpiece"] / "vocab.txt", distil / "vocab.txt")
    (distil / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "DistilBertTokenizer"}))
    out["distilbert"] = (distil, "DistilBertTokenizer")

    bos = root / "gpt2-bos-eos"
    shutil.copytree(folders["gpt2"], bos)
    (bos / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "GPT2Tokenizer",
                "add_bos_token": True,
                "add_eos_token": True,
                "pad_token": "<|endoftext|>",
            }
        )
    )
    out["gpt2-bos-eos"] = (bos, "GPT2Tokenizer")

    prefix = root / "roberta-prefix"
    shutil.copytree(folders["roberta"], prefix)
    (prefix / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "RobertaTokenizer", "add_prefix_space": True, "trim_offsets": False})
    )
    out["roberta-prefix"] = (prefix, "RobertaTokenizer")

    generic = root / "generic-json"
    generic.mkdir()
    backend = Tokenizer.from_file(str(folders["minilm"] / "tokenizer.json"))
    backend.post_processor = None
    backend.no_padding()
    backend.no_truncation()
    backend.save(str(generic / "tokenizer.json"))
    (generic / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "[CLS]",
                "eos_token": {
                    "content": "[SEP]",
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "__type": "AddedToken",
                },
                "pad_token": "[PAD]",
                "model_max_length": 50,
                "padding_side": "left",
                "clean_up_tokenization_spaces": True,
            }
        )
    )
    out["generic-json"] = (generic, "TokenizersBackend")
    return out


@pytest.mark.slow
def test_config_variants_identical(folders, strings, pairs, tmp_path: Path) -> None:
    for name, (folder, hf_class) in _variant_folders(tmp_path, folders).items():
        hf = transformers.AutoTokenizer.from_pretrained(str(folder))
        assert type(hf).__name__ == hf_class, name
        ours = cove.AutoTokenizer.from_pretrained(folder)
        assert ours.model_input_names == hf.model_input_names, name
        assert ours.special_tokens_map == hf.special_tokens_map, name
        assert ours.all_special_ids == hf.all_special_ids, name
        assert (ours.model_max_length, ours.padding_side) == (hf.model_max_length, hf.padding_side), name
        _assert_same(ours(strings, **ALL_OUTPUTS), hf(strings, **ALL_OUTPUTS), name)
        a, b = [p[0][:300] for p in pairs[:400]], [p[1][:300] for p in pairs[:400]]
        kwargs = dict(padding=True, truncation=True, max_length=40, **ALL_OUTPUTS)
        _assert_same(ours(a, b, **kwargs), hf(a, b, **kwargs), f"{name} pairs")
        words = [s.split() or ["x"] for s in strings[:200]]
        _assert_same(
            ours(words, is_split_into_words=True, **ALL_OUTPUTS),
            hf(words, is_split_into_words=True, **ALL_OUTPUTS),
            f"{name} words",
        )
        ids = hf(strings)["input_ids"]
        assert ours.batch_decode(ids) == hf.batch_decode(ids), name
        assert ours.batch_decode(ids, skip_special_tokens=True) == hf.batch_decode(
            ids, skip_special_tokens=True
        )
        saved = tmp_path / f"{name}-saved"
        ours.save_pretrained(saved)
        again = transformers.AutoTokenizer.from_pretrained(str(saved))
        _assert_same(again(a, b, **kwargs), hf(a, b, **kwargs), f"{name} saved by cove")
