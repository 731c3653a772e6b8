"""Cove's tokenizer API on its own: outputs, BatchEncoding behaviour, and clear errors for bad input."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

import cove
from cove.errors import CheckpointError, MissingFileError, ModelNotFoundError, TokenizerError
from cove.hub.resolve import resolve_model_dir
from cove.tokenization.tokenizer import BatchEncoding, PreTrainedTokenizerFast

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return cove.AutoTokenizer.from_pretrained(MINILM)


def test_bundled_minilm_basics(tok: PreTrainedTokenizerFast) -> None:
    enc = tok("Hello, world!")
    assert enc["input_ids"] == [101, 7592, 1010, 2088, 999, 102]
    assert enc.input_ids == enc["input_ids"]
    assert enc.token_type_ids == [0] * 6
    assert enc.attention_mask == [1] * 6
    assert enc.tokens() == ["[CLS]", "hello", ",", "world", "!", "[SEP]"]
    assert enc.word_ids() == [None, 0, 1, 2, 3, None]
    assert tok.decode(enc.input_ids) == "[CLS] hello, world! [SEP]"
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == "hello, world!"
    assert (tok.cls_token, tok.cls_token_id, tok.sep_token_id, tok.pad_token_id) == ("[CLS]", 101, 102, 0)
    assert tok.bos_token is None and tok.bos_token_id is None
    assert tok.model_max_length == 512
    assert tok.vocab_size == 30522 and len(tok) == 30522
    assert tok.tokenize("Tokenization!") == ["token", "##ization", "!"]
    assert tok.convert_tokens_to_ids(["token", "##ization", "not-a-token"]) == [19204, 3989, 100]
    assert tok.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]


def test_padding_sides_and_max_length(tok: PreTrainedTokenizerFast) -> None:
    texts = ["short", "a somewhat longer sentence here"]
    right = tok(texts, padding=True)
    assert len(right.input_ids[0]) == len(right.input_ids[1]) == 7
    assert right.input_ids[0][-1] == tok.pad_token_id and right.attention_mask[0][-1] == 0
    left = tok(texts, padding=True, padding_side="left")
    assert left.input_ids[0][0] == tok.pad_token_id and left.attention_mask[0][0] == 0
    fixed = tok(texts, padding="max_length", max_length=10)
    assert [len(x) for x in fixed.input_ids] == [10, 10]
    cut = tok(texts, truncation=True, max_length=4)
    assert [len(x) for x in cut.input_ids] == [3, 4]
    assert cut.input_ids[1][-1] == tok.sep_token_id
    # truncation=True without max_length truncates to model_max_length
    long = tok("word " * 2000, truncation=True)
    assert len(long.input_ids) == 512


def test_pairs_and_token_types(tok: PreTrainedTokenizerFast) -> None:
    enc = tok("first one", "second", return_special_tokens_mask=True)
    assert enc.token_type_ids == [0, 0, 0, 0, 1, 1]
    assert enc.special_tokens_mask == [1, 0, 0, 1, 0, 1]
    assert enc.sequence_ids() == [None, 0, 0, None, 1, None]
    batch = tok(["a", "b c"], ["d e f", "g"], padding=True, return_tensors="np")
    assert batch.input_ids.shape == (2, 7)
    only_second = tok("a b c", "d e f g h", truncation="only_second", max_length=7)
    assert only_second.input_ids[:5] == tok("a b c", "d").input_ids[:5]
    assert len(only_second.input_ids) == 7
    assert tok.get_special_tokens_mask([5, 6], [7]) == [1, 0, 0, 1, 0, 1]
    assert tok.num_special_tokens_to_add(pair=True) == 3


def test_overflow_with_stride(tok: PreTrainedTokenizerFast) -> None:
    enc = tok(
        ["one two three four five six seven", "x"],
        truncation=True,
        max_length=5,
        stride=1,
        return_overflowing_tokens=True,
    )
    assert enc.overflow_to_sample_mapping == [0, 0, 0, 1]
    assert all(len(ids) <= 5 for ids in enc.input_ids)
    # consecutive windows share `stride` tokens
    assert enc.input_ids[0][-2] == enc.input_ids[1][1]


def test_offsets_point_into_the_text(tok: PreTrainedTokenizerFast) -> None:
    text = "Café au lait, 東京!"
    enc = tok(text, return_offsets_mapping=True)
    pieces = [text[s:e] for s, e in enc.offset_mapping]
    assert enc.tokens() == ["[CLS]", "cafe", "au", "lai", "##t", ",", "東", "京", "!", "[SEP]"]
    assert pieces == [
        "",
        "Café",
        "au",
        "lai",
        "t",
        ",",
        "東",
        "京",
        "!",
        "",
    ]  # offsets in the un-normalized text
    assert enc.char_to_token(6) == 2
    assert enc.token_to_chars(4) == (11, 12)


def test_tensors_and_model_call(tok: PreTrainedTokenizerFast) -> None:
    torch = pytest.importorskip("torch")
    enc = tok(["a b", "c"], padding=True, return_tensors="pt")
    assert enc.input_ids.dtype == torch.int64 and enc.input_ids.shape == (2, 4)
    assert enc.to("cpu") is enc
    assert isinstance(enc, dict)

    def model(input_ids, attention_mask, token_type_ids):
        return input_ids.shape, int(attention_mask.sum()), int(token_type_ids.sum())

    assert model(**enc) == ((2, 4), 7, 0)
    single = tok("hello", return_tensors="pt")
    assert single.input_ids.shape == (1, 3)
    empty = tok([], return_tensors="np")
    assert empty.input_ids.shape == (0,)


def test_batch_encoding_behaves_like_a_dict(tok: PreTrainedTokenizerFast) -> None:
    enc = tok(["a", "b c"])
    assert set(enc) == {"input_ids", "token_type_ids", "attention_mask"}
    assert enc[1].ids == enc.input_ids[1]  # ints index the backend encodings
    assert enc[:1] == {k: v[:1] for k, v in enc.items()}
    with pytest.raises(AttributeError, match="no key or attribute"):
        _ = enc.labels
    clone = pickle.loads(pickle.dumps(enc))
    assert clone == enc and clone.word_ids(1) == enc.word_ids(1)
    bare = BatchEncoding({"input_ids": [[1, 2], [3]]})
    with pytest.raises(TokenizerError, match="different lengths"):
        bare.convert_to_tensors("np")
    with pytest.raises(TokenizerError, match="no backend encodings"):
        bare.word_ids()


def test_decode_forms(tok: PreTrainedTokenizerFast) -> None:
    ids = tok(["hello world", "don't stop"]).input_ids
    assert tok.decode(ids) == tok.batch_decode(ids)
    assert tok.decode(np.asarray(ids[0])) == tok.decode(ids[0])
    assert tok.decode(ids[0][1]) == "hello"
    assert tok.batch_decode(ids[0]) == [tok.decode(ids[0])]
    assert tok.decode(
        tok.encode("do n't , ok ."), clean_up_tokenization_spaces=True, skip_special_tokens=True
    ) == ("don't, ok.")
    with pytest.raises(TokenizerError, match="token ids"):
        tok.decode(["hello"])


def test_add_tokens_and_special_tokens() -> None:
    tok = cove.AutoTokenizer.from_pretrained(MINILM)
    assert tok.add_tokens(["covetoken"]) == 1
    assert tok.add_tokens(["covetoken"]) == 0
    assert len(tok) == 30523
    assert tok.tokenize("a covetoken b") == ["a", "covetoken", "b"]
    assert tok.add_special_tokens({"additional_special_tokens": ["<extra>"], "bos_token": "<bos>"}) == 2
    # transformers moves additional_special_tokens after the named ones, so <bos> comes first
    assert tok.bos_token == "<bos>" and tok.bos_token_id == 30523
    assert tok.convert_tokens_to_ids("<extra>") == 30524
    assert "<extra>" in tok.all_special_tokens
    assert tok.decode(tok.encode("x <extra> y"), skip_special_tokens=True) == "x y"
    with pytest.raises(TokenizerError, match="not a special-token name"):
        tok.add_special_tokens({"beginning": "<b>"})


def test_save_round_trip_keeps_everything(tmp_path: Path) -> None:
    tok = cove.AutoTokenizer.from_pretrained(MINILM, model_max_length=128, padding_side="left")
    tok.add_tokens(["covetoken"])
    tok.chat_template = "{{ messages }}"
    files = tok.save_pretrained(tmp_path)
    assert sorted(Path(f).name for f in files) == [
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer"
    assert config["do_lower_case"] is True and config["chat_template"] == "{{ messages }}"
    back = cove.AutoTokenizer.from_pretrained(tmp_path)
    assert (back.model_max_length, back.padding_side, back.chat_template) == (128, "left", "{{ messages }}")
    text = ["a covetoken b", "Hello there, 世界"]
    assert back(text, padding=True) == tok(text, padding=True)
    # the saved tokenizer.json keeps the file's own settings, not the last call's padding
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["padding"]["strategy"] == {"Fixed": 128}


def test_vocab_txt_only_folder_builds_bert(tmp_path: Path) -> None:
    shutil.copy(resolve_model_dir(MINILM) / "vocab.txt", tmp_path / "vocab.txt")
    tok = cove.AutoTokenizer.from_pretrained(tmp_path)
    assert tok.tokenizer_class == "BertTokenizer"
    assert tok("Hello [SEP] x").input_ids == [101, 7592, 102, 1060, 102]
    assert tok.model_input_names == ["input_ids", "token_type_ids", "attention_mask"]
    assert tok.model_max_length > 10**20  # no config: no limit, as transformers


def test_direct_construction_from_tokenizer_object() -> None:
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "<pad>": 1, "hi": 2, "there": 3}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>")
    enc = tok(["hi there", "hi you"], padding=True, return_length=True)
    assert enc.input_ids == [[2, 3], [2, 0]]
    assert enc.length == [2, 2]
    assert tok.decode([2, 3]) == "hi there"


# --- bad input ----------------------------------------------------------------------------------


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="No tokenizer files"):
        cove.AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "model.gguf").write_bytes(
        b"GGUF"
    )  # tokenizers are rebuilt from GGUF files: a broken one says so
    with pytest.raises(CheckpointError, match="GGUF"):
        cove.AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "model.gguf").unlink()
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(MissingFileError, match=r"merges\.txt"):
        cove.AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        cove.AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text("[1, 2]")
    with pytest.raises(TokenizerError, match=r"tokenizer_config\.json"):
        cove.AutoTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ModelNotFoundError):
        cove.AutoTokenizer.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(MissingFileError, match="does not exist"):
        PreTrainedTokenizerFast(tokenizer_file=tmp_path / "missing.json")
    with pytest.raises(OSError, match="from_pretrained"):
        cove.AutoTokenizer()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "longer"}, "Unknown padding='longer'"),
        ({"padding": 3}, "Unknown padding=3"),
        ({"truncation": "only_third"}, "Unknown truncation='only_third'"),
        ({"max_length": -1}, "max_length must be"),
        ({"max_length": "10"}, "max_length must be"),
        ({"padding_side": "middle"}, "padding_side must be 'left' or 'right'"),
        ({"return_tensors": "tf"}, "Unsupported return_tensors='tf'"),
        ({"paddding": True}, "Unknown tokenizer option"),
        ({"stride": -2}, "stride must be"),
        ({"padding": True, "truncation": True, "max_length": 10, "pad_to_multiple_of": 4}, "not a multiple"),
        ({"truncation": "only_first", "max_length": 5}, "too short to respect the provided max_length"),
    ],
)
def test_bad_call_options(tok: PreTrainedTokenizerFast, kwargs: dict, message: str) -> None:
    with pytest.raises(TokenizerError, match=message):
        tok(["some text here", "and more"], ["a pair text", "and another one"], **kwargs)


def test_bad_text_inputs(tok: PreTrainedTokenizerFast) -> None:
    with pytest.raises(TokenizerError, match="Bad text input"):
        tok(123)
    with pytest.raises(TokenizerError, match="No text given"):
        tok()
    with pytest.raises(TokenizerError, match="text_pair must be a list"):
        tok(["a", "b"], "c")
    with pytest.raises(TokenizerError, match="2 items but text_pair has 1"):
        tok(["a", "b"], ["c"])
    with pytest.raises(ValueError):  # TokenizerError is also a ValueError, as in transformers
        tok(None)


def test_padding_without_pad_token_says_what_to_do() -> None:
    backend = Tokenizer(models.WordLevel({"<unk>": 0, "hi": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>")
    with pytest.raises(TokenizerError, match="pad_token"):
        tok(["hi", "hi hi"], padding=True)
    tok.pad_token = "<unk>"
    assert tok(["hi", "hi hi"], padding=True).attention_mask == [[1, 0], [1, 1]]


def test_importing_tokenization_does_not_import_torch() -> None:
    code = (
        "import sys, cove; tok = cove.AutoTokenizer.from_pretrained('sentence-transformers/all-MiniLM-L6-v2'); "
        "tok(['a', 'b c'], padding=True, return_tensors='np'); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_copies_and_threads(tok: PreTrainedTokenizerFast) -> None:
    import copy
    from concurrent.futures import ThreadPoolExecutor

    for clone in (pickle.loads(pickle.dumps(tok)), copy.deepcopy(tok)):
        assert clone("Hello there") == tok("Hello there")
        assert clone.special_tokens_map == tok.special_tokens_map
    texts = [f"sentence number {i} " * (i % 7 + 1) for i in range(40)]
    padded = tok(texts, padding="max_length", max_length=64)
    plain = tok(texts)

    def run(i: int) -> bool:  # alternate settings that share the backend's padding state
        if i % 2:
            return tok(texts, padding="max_length", max_length=64) == padded
        return tok(texts) == plain

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, range(200)))
