"""The tokenizer class names tutorials import (``from transformers import GPT2Tokenizer``), over Cove's one
tokenizer class.

As in transformers 5, every name is backed by the ``tokenizers`` library and the ``...Fast`` names are the
same classes as the plain ones; ``BartTokenizer`` is ``RobertaTokenizer``. Each loads a folder the way
``AutoTokenizer`` does (tokenizer.json, or the vocab files Cove can convert); the class only names the
family.
"""

from __future__ import annotations

from cove.tokenization.tokenizer import PreTrainedTokenizerFast


class GPT2Tokenizer(PreTrainedTokenizerFast):
    """Byte-level BPE (GPT-2): tokenizer.json, or vocab.json + merges.txt."""


class BertTokenizer(PreTrainedTokenizerFast):
    """WordPiece (BERT): tokenizer.json, or vocab.txt."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]


class DistilBertTokenizer(BertTokenizer):
    """BERT's WordPiece; DistilBERT takes no token_type_ids."""

    model_input_names = ["input_ids", "attention_mask"]


class RobertaTokenizer(PreTrainedTokenizerFast):
    """Byte-level BPE with <s> ... </s> framing (RoBERTa, BART): tokenizer.json, or vocab.json + merges.txt."""


class T5Tokenizer(PreTrainedTokenizerFast):
    """T5's Unigram (SentencePiece) vocabulary: tokenizer.json, or spiece.model converted as transformers does."""


class LlamaTokenizer(PreTrainedTokenizerFast):
    """Llama's byte-fallback BPE (or SentencePiece) vocabulary, from tokenizer.json."""


class MarianTokenizer(PreTrainedTokenizerFast):
    """Marian (OPUS-MT) vocabulary, from tokenizer.json.

    OPUS-MT checkpoints ship SentencePiece models (source.spm, target.spm) whose pieces map to ids through
    vocab.json; the loader refuses such a folder without a tokenizer.json, naming the files.
    """


# transformers 5: the Fast names are the same classes
GPT2TokenizerFast = GPT2Tokenizer
BertTokenizerFast = BertTokenizer
DistilBertTokenizerFast = DistilBertTokenizer
RobertaTokenizerFast = RobertaTokenizer
T5TokenizerFast = T5Tokenizer
LlamaTokenizerFast = LlamaTokenizer
BartTokenizer = RobertaTokenizer
BartTokenizerFast = RobertaTokenizer
