"""Run by test_ddp.py under torchrun (or alone): trains the tiny model, writes losses and weights."""

from __future__ import annotations

import json
import os
import sys

import torch

import cove
from cove.training.collators import DataCollatorWithPadding
from tests.training.helpers import ToyTokenizer, tiny_model, toy_examples


def main(out_dir: str, per_device_batch: int) -> None:
    args = cove.TrainingArguments(
        out_dir,
        num_train_epochs=2,
        per_device_train_batch_size=per_device_batch,
        learning_rate=2e-3,
        weight_decay=0.01,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        report_to="none",
    )
    trainer = cove.Trainer(
        tiny_model(),
        args,
        train_dataset=toy_examples(70, seed=0),
        data_collator=DataCollatorWithPadding(ToyTokenizer()),
    )
    out = trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    weights = {k: v.flatten()[:64].tolist() for k, v in trainer.model.state_dict().items()}
    with open(os.path.join(out_dir, f"result_{rank}.json"), "w") as fh:
        json.dump(
            {
                "world_size": trainer.world_size,
                "steps": out.global_step,
                "losses": losses,
                "training_loss": out.training_loss,
                "weights": weights,
            },
            fh,
        )
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
