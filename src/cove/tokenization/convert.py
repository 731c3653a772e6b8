"""Build a `tokenizers` backend from "slow" vocabulary files (vocab.txt; vocab.json + merges.txt; T5's
SentencePiece spiece.model).

The pipelines mirror what transformers builds for BertTokenizer, GPT2Tokenizer, RobertaTokenizer and
T5Tokenizer, so ids, offsets and decodes are identical. Post-processors that need special-token ids are built afterwards
(`bert_post_processor`, `roberta_post_processor`, `bos_eos_post_processor`), once special tokens are registered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, Unigram, WordPiece

from cove.errors import TokenizerError


def wordpiece_backend(
    vocab_file: Path,
    *,
    unk_token: str,
    do_lower_case: bool = True,
    tokenize_chinese_chars: bool = True,
    strip_accents: bool | None = None,
) -> Tokenizer:
    """BERT's pipeline: BertNormalizer, BertPreTokenizer, WordPiece with "##" continuation."""
    try:
        vocab = WordPiece.read_file(str(vocab_file))
    except Exception as e:
        raise TokenizerError(
            f"Cannot read WordPiece vocabulary {vocab_file}: {e}. Expected one token per line."
        ) from e
    if not vocab:
        raise TokenizerError(f"WordPiece vocabulary {vocab_file} is empty: it needs one token per line.")
    tok = Tokenizer(WordPiece(vocab, unk_token=str(unk_token)))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=strip_accents,
        lowercase=do_lower_case,
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def byte_level_bpe_backend(
    vocab_file: Path, merges_file: Path, *, add_prefix_space: bool = False
) -> Tokenizer:
    """GPT-2/RoBERTa's pipeline: ByteLevel pre-tokenizer and decoder over a BPE without subword affixes."""
    try:
        vocab, merges = BPE.read_file(str(vocab_file), str(merges_file))
    except Exception as e:
        raise TokenizerError(
            f"Cannot read byte-level BPE files {vocab_file} and {merges_file}: {e}. "
            "vocab.json must map tokens to ids; merges.txt holds one 'left right' pair per line."
        ) from e
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
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tok.decoder = decoders.ByteLevel()
    return tok


def read_sentencepiece_model(model_file: Path) -> Any:
    """Parse a SentencePiece model file (spiece.model, *.spm) into its protobuf ``ModelProto``.

    ``sentencepiece`` (and its ``protobuf`` dependency) is needed only here, to read the file; the tokenizer
    built from it runs on the `tokenizers` library alone.
    """
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError as e:
        raise TokenizerError(
            f"Reading the SentencePiece model {model_file} needs the `sentencepiece` package (and `protobuf`): "
            f"pip install sentencepiece protobuf ({e}). Or put a tokenizer.json in the folder instead."
        ) from e
    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]  # generated protobuf module
    try:
        proto.ParseFromString(model_file.read_bytes())
    except Exception as e:  # protobuf raises its own DecodeError, not a built-in
        raise TokenizerError(
            f"Cannot read SentencePiece model {model_file}: {e}. Expected a file written by SentencePiece."
        ) from e
    if not proto.pieces:
        raise TokenizerError(f"SentencePiece model {model_file} holds no pieces.")
    return proto


def t5_sentencepiece_backend(model_file: Path, *, extra_ids: int = 100) -> tuple[Tokenizer, list[AddedToken]]:
    """T5's pipeline over spiece.model, as transformers 5's T5Tokenizer builds it from the file.

    Unigram over the file's pieces and scores, then ``extra_ids`` sentinels ``<extra_id_{n-1}>`` ..
    ``<extra_id_0>`` appended (so ``<extra_id_0>`` gets the last id); the file's precompiled character map
    as normalizer; whitespace split, then Metaspace ("▁" prefix on every word). Returns the backend and the
    special tokens transformers registers: the file's control and user-defined pieces, then the sentinels
    ``<extra_id_0>`` .. ``<extra_id_{n-1}>``. The ``</s>`` post-processor needs ids, so it is built later
    (`t5_post_processor`).
    """
    proto = read_sentencepiece_model(model_file)
    if proto.trainer_spec.model_type != 1:  # 1 = UNIGRAM in sentencepiece_model.proto
        raise TokenizerError(
            f"{model_file} is a SentencePiece model of type {proto.trainer_spec.model_type}, not Unigram (1): "
            "T5 tokenizers are Unigram. Put a tokenizer.json in the folder for other SentencePiece models."
        )
    if extra_ids < 0:
        raise TokenizerError(f"extra_ids must be >= 0, got {extra_ids}.")
    vocab = [(piece.piece, piece.score) for piece in proto.pieces]
    vocab += [(f"<extra_id_{i}>", 0.0) for i in range(extra_ids - 1, -1, -1)]
    tok = Tokenizer(Unigram(vocab, unk_id=proto.trainer_spec.unk_id, byte_fallback=False))
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if charsmap:
        tok.normalizer = normalizers.Precompiled(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    # piece types (sentencepiece_model.proto): 3 = CONTROL (special), 4 = USER_DEFINED (not special)
    specials = [
        AddedToken(piece.piece, normalized=False, special=piece.type == 3)
        for piece in proto.pieces
        if piece.type in (3, 4)
    ]
    specials += [AddedToken(f"<extra_id_{i}>", special=True) for i in range(extra_ids)]
    return tok, specials


def t5_post_processor(eos_token: str, eos_token_id: int) -> processors.PostProcessor:
    """A </s> (B </s>): T5 appends eos to each sequence, all in token type 0."""
    return processors.TemplateProcessing(
        single=["$A", eos_token],
        pair=["$A", eos_token, "$B", eos_token],
        special_tokens=[(eos_token, eos_token_id)],
    )


def bert_post_processor(
    cls_token: str, cls_token_id: int, sep_token: str, sep_token_id: int
) -> processors.PostProcessor:
    """[CLS] A [SEP] (B [SEP]), with token type 1 for the second sequence."""
    return processors.TemplateProcessing(
        single=f"{cls_token}:0 $A:0 {sep_token}:0",
        pair=f"{cls_token}:0 $A:0 {sep_token}:0 $B:1 {sep_token}:1",
        special_tokens=[(cls_token, cls_token_id), (sep_token, sep_token_id)],
    )


def roberta_post_processor(
    cls_token: str,
    cls_token_id: int,
    sep_token: str,
    sep_token_id: int,
    *,
    trim_offsets: bool,
    add_prefix_space: bool,
) -> processors.PostProcessor:
    """<s> A </s> (</s> B </s>), trimming offsets to exclude the byte-level space marker."""
    return processors.RobertaProcessing(
        (sep_token, sep_token_id), (cls_token, cls_token_id), trim_offsets, add_prefix_space
    )


def bos_eos_post_processor(
    bos: tuple[str, int] | None, eos: tuple[str, int] | None
) -> processors.PostProcessor:
    """Optional BOS/EOS around each sequence (transformers' update_post_processor for GPT-2 style models)."""
    single = f"{(bos[0] + ':0 ') if bos else ''}$A:0{(' ' + eos[0] + ':0') if eos else ''}"
    pair = f"{single}{(' ' + bos[0] + ':1') if bos else ''} $B:1{(' ' + eos[0] + ':1') if eos else ''}"
    special = [t for t in (bos, eos) if t is not None]
    # one entry per distinct token: TemplateProcessing rejects duplicates when bos == eos
    unique = list(dict.fromkeys(special))
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=unique)
