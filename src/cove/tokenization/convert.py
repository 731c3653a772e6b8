"""Build a `tokenizers` backend from "slow" vocabulary files (vocab.txt; vocab.json + merges.txt).

The pipelines mirror what transformers builds for BertTokenizer, GPT2Tokenizer and RobertaTokenizer, so ids,
offsets and decodes are identical. Post-processors that need special-token ids are built afterwards
(`bert_post_processor`, `roberta_post_processor`, `bos_eos_post_processor`), once special tokens are registered.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

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
