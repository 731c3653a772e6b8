"""T5 folders that carry only a SentencePiece spiece.model (no tokenizer.json), against transformers 5's
T5Tokenizer on the same folder: the model is trained here with sentencepiece, and both libraries convert it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import cove
from cove.errors import MissingFileError, TokenizerError

transformers = pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

pytestmark = pytest.mark.parity

CORPUS = [
    f"The quick brown fox number {i} jumps over the lazy dog near river {i % 7}." for i in range(40)
] + [
    "translate English to German: The house is wonderful.",
    "summarize: Cove runs offline and keeps every model on your own machine.",
    "Ein Haus ist wunderbar, und der Hund schläft.",
]
TEXTS = [
    "The quick brown fox.",
    "  leading   and  trailing  ",  # whitespace runs
    "unknown: ü 漢字 ✓ Ωmega",  # characters the model never saw
    "mask <extra_id_0> here <extra_id_99>!",  # sentinels
    "tab\tand\nnewline",
    "</s> inside <pad> x",  # control pieces typed in the text
    "",
    "Dog's   fox-jumps... river 12",
    "summarize: Ein Haus ist wunderbar.",
]


def _train(folder: Path, **trainer_options: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_prefix=str(folder / "spiece"),
        vocab_size=60,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
        **{"model_type": "unigram", **trainer_options},
    )
    (folder / "spiece.vocab").unlink()


def _t5_folder(folder: Path, config: dict[str, object] | None) -> Path:
    _train(folder)
    if config is not None:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


T5_SMALL_CONFIG = {  # the keys t5-small's tokenizer_config.json carries
    "tokenizer_class": "T5Tokenizer",
    "extra_ids": 100,
    "additional_special_tokens": [f"<extra_id_{i}>" for i in range(100)],
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "model_max_length": 512,
}


def _compare(ref, ours) -> None:
    assert len(ours) == len(ref)
    assert ours.all_special_tokens == ref.all_special_tokens
    for text in TEXTS:
        want = ref(text)["input_ids"]
        got = ours(text)["input_ids"]
        assert got == want, text
        assert ours.convert_ids_to_tokens(got) == ref.convert_ids_to_tokens(want), text
        assert ours.decode(got) == ref.decode(want), text
        assert ours.decode(got, skip_special_tokens=True) == ref.decode(want, skip_special_tokens=True), text
    pair = ("a quick fox", "the lazy dog")
    assert ours(*pair)["input_ids"] == ref(*pair)["input_ids"]
    batch = ours(TEXTS, text_target=TEXTS[::-1], padding=True)
    want = ref(TEXTS, text_target=TEXTS[::-1], padding=True)
    assert batch["input_ids"] == want["input_ids"]
    assert batch["attention_mask"] == want["attention_mask"]
    assert batch["labels"] == want["labels"]


@pytest.mark.parametrize(
    "config",
    [T5_SMALL_CONFIG, {"tokenizer_class": "T5Tokenizer"}, {"tokenizer_class": "T5Tokenizer", "extra_ids": 3}],
    ids=["t5-small-config", "default-extra-ids", "three-extra-ids"],
)
def test_spiece_model_matches_transformers(tmp_path, config):
    folder = _t5_folder(tmp_path / "t5", config)
    ref = transformers.T5Tokenizer.from_pretrained(str(folder))
    for load in (cove.T5Tokenizer.from_pretrained, cove.AutoTokenizer.from_pretrained):
        ours = load(folder)
        _compare(ref, ours)
        extra_ids = int(config.get("extra_ids", 100))  # type: ignore[call-overload]
        assert ours.convert_tokens_to_ids("<extra_id_0>") == 60 + extra_ids - 1  # sentinels count down
        assert ours.convert_tokens_to_ids(f"<extra_id_{extra_ids - 1}>") == 60


def test_spiece_model_from_model_type(tmp_path):
    """No tokenizer_config.json: config.json's model_type picks T5, as transformers' AutoTokenizer does."""
    folder = _t5_folder(tmp_path / "t5", None)
    (folder / "config.json").write_text(json.dumps({"model_type": "t5"}))
    ref = transformers.AutoTokenizer.from_pretrained(str(folder))
    _compare(ref, cove.AutoTokenizer.from_pretrained(folder))


def test_converted_tokenizer_saves_a_tokenizer_json(tmp_path):
    folder = _t5_folder(tmp_path / "t5", T5_SMALL_CONFIG)
    ours = cove.AutoTokenizer.from_pretrained(folder)
    ours.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "tokenizer.json").is_file()
    ref = transformers.T5Tokenizer.from_pretrained(str(tmp_path / "saved"))
    _compare(ref, cove.AutoTokenizer.from_pretrained(tmp_path / "saved"))
    _compare(ref, ours)


def test_non_unigram_model_is_refused(tmp_path):
    folder = tmp_path / "bpe"
    _train(folder, model_type="bpe")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    with pytest.raises(TokenizerError, match="not Unigram"):
        cove.AutoTokenizer.from_pretrained(folder)


def test_other_families_spiece_model_is_refused(tmp_path):
    folder = _t5_folder(tmp_path / "llama", {"tokenizer_class": "LlamaTokenizer"})
    with pytest.raises(TokenizerError, match="LlamaTokenizer"):
        cove.AutoTokenizer.from_pretrained(folder)


def test_missing_sentencepiece_says_what_to_install(tmp_path, monkeypatch):
    folder = _t5_folder(tmp_path / "t5", {"tokenizer_class": "T5Tokenizer"})
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import now raises ImportError
    with pytest.raises(TokenizerError, match="pip install sentencepiece"):
        cove.AutoTokenizer.from_pretrained(folder)


def test_marian_spm_folder_is_refused_by_auto_tokenizer(tmp_path):
    """Marian's source.spm/target.spm + vocab.json: refused, naming the files, not misread as byte-level BPE."""
    _train(tmp_path)
    (tmp_path / "spiece.model").rename(tmp_path / "source.spm")
    (tmp_path / "vocab.json").write_text(json.dumps({"<pad>": 0, "</s>": 1, "<unk>": 2}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MarianTokenizer"}))
    with pytest.raises(MissingFileError, match=r"source\.spm"):
        cove.AutoTokenizer.from_pretrained(tmp_path)
