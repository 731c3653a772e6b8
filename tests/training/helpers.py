"""A tiny BERT and a learnable toy task, shared by the training tests."""

from __future__ import annotations

import random

import torch

import cove

VOCAB = 60


class ToyTokenizer:
    """Just what collators need: pad/mask ids, special ids and a length."""

    pad_token_id = 0
    mask_token_id = 3
    all_special_ids = [0, 1, 2, 3]
    padding_side = "right"

    def __len__(self) -> int:
        return VOCAB

    def save_pretrained(self, folder) -> None:  # transformers' Trainer saves the collator's tokenizer
        import json
        import os

        with open(os.path.join(folder, "toy_tokenizer.json"), "w") as fh:
            json.dump({"vocab_size": VOCAB, "pad_token_id": self.pad_token_id}, fh)


def tiny_config(dropout: float = 0.0, num_labels: int = 2):
    return cove.AutoConfig.for_model(
        "bert",
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
    )


def tiny_model(seed: int = 0, dropout: float = 0.0):
    torch.manual_seed(seed)
    return cove.AutoModelForSequenceClassification.from_config(tiny_config(dropout))


def toy_examples(n: int, seed: int = 0, with_text: bool = True) -> list[dict]:
    """Sequences of 5..14 ids; the label says whether id 7 or 8 occurs (learnable by a tiny model)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ids = [rng.randint(5, VOCAB - 1) for _ in range(rng.randint(3, 12))]
        ex = {"input_ids": [1, *ids, 2], "label": int(7 in ids or 8 in ids)}
        if with_text:
            ex["text"] = " ".join(map(str, ids))  # an unused column the Trainer must drop
        out.append(ex)
    return out


def accuracy(pred) -> dict:
    predictions, labels = pred
    return {"accuracy": float((predictions.argmax(-1) == labels).mean())}
