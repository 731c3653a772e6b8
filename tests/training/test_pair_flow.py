"""The tutorial's MRPC-style flow: sentence pairs -> tokenizer(s1, s2) -> Trainer with processing_class ->
evaluate with cove.metrics -> predict, on a small local paraphrase set and a tiny BERT with MiniLM's vocab."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import cove
import cove.metrics

SUBJECTS = ["the company", "the minister", "our team", "the court", "the bank", "the city council"]
VERBS = [("bought", "acquired"), ("said", "stated"), ("began", "started"), ("ended", "finished")]
OBJECTS = ["the deal", "the talks", "a new plan", "the review", "the project"]
UNRELATED = ["nothing at all", "a football match", "the weather", "an old song"]


def pairs(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for idx in range(n):
        s, (v1, v2), o = rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)
        first = f"{s} {v1} {o} on monday ."
        if idx % 2:
            second, label = f"on monday , {s} {v2} {o} .", 1
        else:
            # a different event: learnable by a tiny model in a few epochs, which is all this flow test needs
            second, label = f"on monday , {s} {v2} {rng.choice(UNRELATED)} .", 0
        rows.append({"sentence1": first, "sentence2": second, "label": label, "idx": idx})
    return rows


@pytest.mark.slow
def test_sentence_pair_fine_tuning_flow(tmp_path):
    tokenizer = cove.AutoTokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    config = cove.AutoConfig.for_model(
        "bert",
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = cove.AutoModelForSequenceClassification.from_config(config)

    def tokenize(rows):
        enc = tokenizer([r["sentence1"] for r in rows], [r["sentence2"] for r in rows], truncation=True)
        return [{**r, **{k: enc[k][i] for k in enc}} for i, r in enumerate(rows)]

    train, validation = tokenize(pairs(128, 0)), tokenize(pairs(40, 1))
    assert 1 in train[0]["token_type_ids"]  # the second sentence has segment id 1
    metric = cove.metrics.combine(["accuracy", "f1"])

    def compute_metrics(eval_pred):
        logits, labels = eval_pred
        return metric.compute(predictions=np.argmax(logits, axis=-1), references=labels)

    args = cove.TrainingArguments(
        str(tmp_path),
        eval_strategy="epoch",
        num_train_epochs=5,
        learning_rate=3e-3,
        per_device_train_batch_size=16,
        disable_tqdm=True,
        save_strategy="no",
    )
    trainer = cove.Trainer(
        model,
        args,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
    )
    assert isinstance(trainer.data_collator, cove.DataCollatorWithPadding)  # chosen from the tokenizer
    first = trainer.evaluate()
    trainer.train()
    metrics = trainer.evaluate()
    assert {"eval_accuracy", "eval_f1", "eval_loss"} <= set(metrics)
    assert metrics["eval_loss"] < first["eval_loss"]
    assert metrics["eval_accuracy"] >= 0.8
    predictions = trainer.predict(validation)
    assert predictions.predictions.shape == (40, 2)
    assert predictions.metrics["test_accuracy"] == pytest.approx(metrics["eval_accuracy"])
    trainer.save_model(str(tmp_path / "final"))
    assert (tmp_path / "final" / "tokenizer.json").exists()
