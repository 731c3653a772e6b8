"""Tiny random T5, BART and Marian checkpoints for the seq2seq pipeline tests, made by transformers at test time with
tokenizers trained here (the model configs and tokenizer recipes are the parity tests' own)."""

from __future__ import annotations

import json

import torch

from tests.parity.test_seq2seq_parity import bart_config, t5_config
from tests.parity.test_tokenizer_names_parity import _marian, _roberta, _t5

MAX_INPUT = 64  # the tokenizers' model_max_length: longer inputs need truncation=True

T5_TASKS = {
    "summarization": {"prefix": "summarize: ", "num_beams": 2, "no_repeat_ngram_size": 3, "min_length": 3},
    "translation_en_to_de": {"prefix": "translate English to German: ", "num_beams": 3},
    "translation_en_to_fr": {"prefix": "translate English to French: "},
}


def make_seq2seq(folder, family: str, seed: int = 0) -> str:
    """Save a tiny random `family` ("t5", "bart" or "marian") model with its tokenizer into folder; return the path."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    if family == "t5":
        tok = transformers.T5TokenizerFast(
            tokenizer_object=_t5(),
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            extra_ids=0,
            model_max_length=MAX_INPUT,
        )
        config = t5_config(vocab_size=len(tok), pad_token_id=0, eos_token_id=1)
    elif family == "bart":
        tok = transformers.BartTokenizerFast(tokenizer_object=_roberta(), model_max_length=MAX_INPUT)
        # decoder positions for the pipeline's default 256 new tokens
        config = transformers.BartConfig(
            **bart_config(vocab_size=len(tok), max_position_embeddings=300, scale_embedding=True)
        )
    elif family == "marian":
        # transformers' MarianTokenizer reads SentencePiece files only: this folder's tokenizer.json loads as
        # the generic fast tokenizer in both libraries
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=_marian(),
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<pad>",
            model_max_length=MAX_INPUT,
        )
        pad = tok.pad_token_id
        config = transformers.MarianConfig(
            **bart_config(vocab_size=len(tok), max_position_embeddings=300, scale_embedding=True),
            pad_token_id=pad,
            decoder_start_token_id=pad,
            eos_token_id=tok.eos_token_id,
            forced_eos_token_id=tok.eos_token_id,
        )
    else:
        raise ValueError(family)
    torch.manual_seed(seed)
    model = transformers.AutoModelForSeq2SeqLM.from_config(config).eval()
    with torch.no_grad():  # larger weights than the init's (norms kept): varied, input-dependent outputs
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0.0, 0.4)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    # transformers 4.57 (the reference) reads extra_special_tokens as a dict only, and knows no
    # TokenizersBackend class
    path = folder / "tokenizer_config.json"
    data = json.loads(path.read_text())
    if data.get("extra_special_tokens") == []:
        del data["extra_special_tokens"]
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
    path.write_text(json.dumps(data, indent=2))
    if family == "t5":  # T5's task prefixes, as the google-t5 checkpoints carry them
        path = folder / "config.json"
        data = json.loads(path.read_text())
        data["task_specific_params"] = T5_TASKS
        path.write_text(json.dumps(data, indent=2))
    return str(folder)
