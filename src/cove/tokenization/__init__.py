"""Tokenizers: transformers' tokenizer API over the `tokenizers` library (tokenizer.json, vocab.txt, BPE files)."""
