# Seed tutorial: 001, "Core Libraries" (`accelerate`: lightweight training across CPUs, GPUs, TPUs) and
# "When to Use What" (custom model training: `Trainer`, `accelerate`).
#
# The seed names accelerate without a code block: this is the loop of accelerate's nlp_example.py (a
# sequence-pair classifier on MRPC, evaluated with gather_for_metrics) with the imports changed:
# `accelerate`, `transformers`, `datasets` -> `cove`, `evaluate` -> `cove.metrics`. Offline, bert-base-cased
# becomes the bundled all-MiniLM-L6-v2 and glue/mrpc the tiny examples/data/paraphrase-pairs; two epochs
# instead of three keep it to seconds. `cove launch --nproc_per_node 2 examples/11_accelerate_loop.py` runs
# it in two processes (accelerate's `accelerate launch`).
from pathlib import Path

import torch
from torch.utils.data import DataLoader

import cove.metrics as evaluate
from cove import (
    Accelerator,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
    load_dataset,
    set_seed,
)

DATA = Path(__file__).resolve().parent / "data" / "paraphrase-pairs"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def main():
    accelerator = Accelerator(mixed_precision="no", gradient_accumulation_steps=1)
    set_seed(42)

    tokenizer = AutoTokenizer.from_pretrained(MODEL)
    datasets = load_dataset(str(DATA))

    def tokenize_function(examples):
        return tokenizer(examples["sentence1"], examples["sentence2"], truncation=True, max_length=None)

    with accelerator.main_process_first():
        tokenized = datasets.map(
            tokenize_function, batched=True, remove_columns=["idx", "sentence1", "sentence2"]
        )
    tokenized = tokenized.rename_column("label", "labels")

    collator = DataCollatorWithPadding(tokenizer)
    train_dataloader = DataLoader(tokenized["train"], shuffle=True, collate_fn=collator, batch_size=8)
    eval_dataloader = DataLoader(tokenized["validation"], shuffle=False, collate_fn=collator, batch_size=8)

    model = AutoModelForSequenceClassification.from_pretrained(MODEL, num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    num_epochs = 2
    scheduler = torch.optim.lr_scheduler.LinearLR(
        optimizer, start_factor=1.0, end_factor=0.1, total_iters=num_epochs * len(train_dataloader)
    )

    model, optimizer, train_dataloader, eval_dataloader, scheduler = accelerator.prepare(
        model, optimizer, train_dataloader, eval_dataloader, scheduler
    )

    metric = evaluate.combine(["accuracy", "f1"])
    for epoch in range(num_epochs):
        model.train()
        total_loss = 0.0
        for batch in train_dataloader:
            with accelerator.accumulate(model):
                outputs = model(**batch)
                loss = outputs.loss
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            total_loss += loss.item()

        model.eval()
        for batch in eval_dataloader:
            with torch.no_grad():
                outputs = model(**batch)
            predictions = outputs.logits.argmax(dim=-1)
            predictions, references = accelerator.gather_for_metrics((predictions, batch["labels"]))
            metric.add_batch(predictions=predictions, references=references)
        eval_metric = metric.compute()
        accelerator.print(
            f"epoch {epoch}: train loss {total_loss / len(train_dataloader):.4f}, {eval_metric}"
        )

    accelerator.wait_for_everyone()
    accelerator.print(f"processes: {accelerator.num_processes}, main process: {accelerator.is_main_process}")


if __name__ == "__main__":
    main()
