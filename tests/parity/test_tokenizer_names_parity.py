"""The tokenizer class names tutorials import, against transformers 5's classes of the same names on folders
built here with the `tokenizers` library: same ids, labels from text_target, tensors from encode, decodes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

import cove

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Studies have shown that owning a dog is good for you.",
    "translate English to German: The house is wonderful.",
    "summarize: Cove runs offline and keeps every model on your own machine.",
    "Ein Haus ist wunderbar, und der Hund schläft.",
    "Naïve café owners can't stop; it's 2024 and they won't.",
] * 20
TEXTS = [
    "The lazy dog sleeps.",
    "translate English to German: The fox is quick!",
    "café naïve, it's fine",
    "",
]
TARGETS = ["Der Hund schläft.", "Der Fuchs ist schnell!", "ok", "fine"]


def _unigram(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        CORPUS, trainers.UnigramTrainer(vocab_size=120, special_tokens=specials, unk_token="<unk>")
    )
    return tok


def _byte_bpe(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        trainers.BpeTrainer(
            vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    return tok


def _wordpiece() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        CORPUS,
        trainers.WordPieceTrainer(
            vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ),
    )
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tok


def _t5() -> Tokenizer:
    tok = _unigram(["<pad>", "</s>", "<unk>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)]
    )
    return tok


def _roberta() -> Tokenizer:
    tok = _byte_bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


def _marian() -> Tokenizer:
    tok = _unigram(["</s>", "<unk>", "<pad>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", 0)]
    )
    return tok


def _llama() -> Tokenizer:
    tok = _unigram(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    return tok


# Cove name -> (backend factory, transformers class to build the folder with, its special tokens)
NAMES = {
    "GPT2Tokenizer": (
        lambda: _byte_bpe(["<|endoftext|>"]),
        "GPT2TokenizerFast",
        {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"},
    ),
    "BertTokenizer": (_wordpiece, "BertTokenizerFast", {}),
    "DistilBertTokenizer": (_wordpiece, "DistilBertTokenizerFast", {}),
    "RobertaTokenizer": (_roberta, "RobertaTokenizerFast", {}),
    "BartTokenizer": (_roberta, "BartTokenizerFast", {}),
    "T5Tokenizer": (
        _t5,
        "T5TokenizerFast",
        {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
    ),
    "LlamaTokenizer": (
        _llama,
        "PreTrainedTokenizerFast",
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"},
    ),
    "MarianTokenizer": (
        _marian,
        "PreTrainedTokenizerFast",
        {
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "tokenizer_class": "MarianTokenizer",
        },
    ),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name, (backend, hf_class, specials) in NAMES.items():
        folder = tmp_path_factory.mktemp(name)
        hf = getattr(transformers, hf_class)(tokenizer_object=backend(), **specials)
        hf.save_pretrained(folder)
        out[name] = folder
    return out


def _reference(name: str, folder: Path):
    # MarianTokenizer in transformers reads SentencePiece files; on a tokenizer.json folder the reference is
    # the tokenizer transformers' AutoTokenizer builds from it
    if name in ("MarianTokenizer", "LlamaTokenizer"):
        return transformers.PreTrainedTokenizerFast.from_pretrained(folder)
    return getattr(transformers, name).from_pretrained(folder)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_named_tokenizer_matches_transformers(folders, name):
    folder = folders[name]
    ours = getattr(cove, name).from_pretrained(folder)
    ref = _reference(name, folder)
    assert type(ours).__name__ == ("RobertaTokenizer" if name == "BartTokenizer" else name)
    fast = getattr(cove, name + "Fast", None)
    if name != "MarianTokenizer":
        assert fast is getattr(cove, name)  # transformers 5: one class under both names
    assert ours.special_tokens_map == ref.special_tokens_map
    if ours.pad_token is None:  # GPT-2 and Llama have none: pad with eos, as tutorials do
        ours.pad_token = ref.pad_token = ours.eos_token
    got = ours(TEXTS, text_target=TARGETS, padding=True)
    want = ref(TEXTS, text_target=TARGETS, padding=True)
    assert dict(got) == {k: list(v) for k, v in want.items()}
    assert "labels" in got
    ids = ours.encode(TEXTS[1], return_tensors="pt")
    ref_ids = ref.encode(TEXTS[1], return_tensors="pt")
    assert isinstance(ids, torch.Tensor) and torch.equal(ids, ref_ids)
    assert ours.encode(TEXTS[0]) == ref.encode(TEXTS[0])
    for row in got["input_ids"]:
        assert ours.decode(row, skip_special_tokens=True) == ref.decode(row, skip_special_tokens=True)


def test_marian_spm_folder_says_what_is_missing(tmp_path):
    (tmp_path / "source.spm").write_bytes(b"\x00")
    (tmp_path / "target.spm").write_bytes(b"\x00")
    (tmp_path / "config.json").write_text('{"model_type": "marian"}')
    with pytest.raises(cove.errors.MissingFileError, match=r"source\.spm"):
        cove.MarianTokenizer.from_pretrained(tmp_path)
