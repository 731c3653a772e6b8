"""Recipes that build Cove's default task models by fine-tuning bundled base models on public data.

``DEFAULT_MODELS`` names the model each pipeline task uses by default; ``default_model_dir(task)`` finds it:
the hub (or the embedded local hub) under that repo id first, then the folder ``cove setup-models`` writes
under the Cove data dir (``$COVE_DATA_DIR`` or ``~/.cove``): ``<data dir>/models/<repo id>``.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

from cove.errors import ModelNotFoundError

# pipeline task -> repo id of the model `cove setup-models` builds for it (cove.pipelines.defaults names
# the same repos; a test keeps the two in step)
DEFAULT_MODELS: dict[str, str] = {
    "sentiment-analysis": "cove/minilm-sentiment",
    "text-classification": "cove/minilm-sentiment",
    "ner": "cove/minilm-ner",
    "token-classification": "cove/minilm-ner",
    "summarization": "cove/minilm-extractive-summarizer",
    "question-answering": "cove/minilm-qa",
}

# recipe name -> (module, tasks it provides)
RECIPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sentiment": ("cove.training.recipes.sentiment", ("sentiment-analysis", "text-classification")),
    "ner": ("cove.training.recipes.ner", ("ner", "token-classification")),
    "summarization": ("cove.training.recipes.summarization", ("summarization",)),
    "qa": ("cove.training.recipes.qa", ("question-answering",)),
}


def data_dir() -> Path:
    return Path(os.environ.get("COVE_DATA_DIR") or "~/.cove").expanduser()


def local_model_dir(repo_id: str) -> Path:
    """Where ``cove setup-models`` stores a recipe's result: ``<data dir>/models/<namespace>/<name>``."""
    return data_dir() / "models" / repo_id


def default_model_dir(task: str) -> Path:
    """The folder of ``task``'s default model; raises ModelNotFoundError saying how to build it."""
    if task not in DEFAULT_MODELS:
        raise ModelNotFoundError(
            f"No default model for task {task!r}; tasks with one: {sorted(DEFAULT_MODELS)}. Pass model=... instead."
        )
    repo_id = DEFAULT_MODELS[task]
    folder = local_model_dir(repo_id)
    if (folder / "config.json").is_file():
        return folder
    try:
        from cove.hub.resolve import resolve_model_dir

        return resolve_model_dir(repo_id)
    except (ModelNotFoundError, OSError):
        pass
    raise ModelNotFoundError(
        f"The default {task!r} model ({repo_id}) is not built yet: run `cove setup-models` "
        f"(it fine-tunes it locally in a few minutes and stores it in {folder})."
    )


def publish(folder: Path, repo_id: str, message: str) -> str | None:
    """Commit a recipe's model to the hub under ``repo_id``, so ``pipeline(task)`` finds it by name.

    With no hub endpoint configured, cove.hub writes into the embedded local hub of the Cove data dir.
    Returns the commit reference, or None when this Cove build has no hub client.
    """
    try:
        from cove.hub import upload_folder  # type: ignore[attr-defined]
    except ImportError:
        return None
    return str(upload_folder(repo_id, folder, commit_message=message))


def training_arguments(
    work: str,
    *,
    epochs: float,
    batch_size: int,
    learning_rate: float,
    seed: int,
    bf16: bool | str,
    progress: bool,
) -> Any:
    """The recipes' shared TrainingArguments: linear decay after 10% warmup, length-grouped batches (far less
    padding, the same examples), logs every 10 steps, no intermediate evaluation or checkpoints. ``bf16``
    is normally "auto": bf16 autocast only where this CPU computes bf16 natively and faster than fp32."""
    import cove

    return cove.TrainingArguments(
        work,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=128,
        learning_rate=learning_rate,
        weight_decay=0.01,
        warmup_ratio=0.1,
        lr_scheduler_type="linear",
        logging_steps=10,
        group_by_length=True,
        eval_strategy="no",
        save_strategy="no",
        seed=seed,
        bf16=bf16,
        disable_tqdm=not progress,
        report_to="none",
    )


def save_with_card(trainer: Any, output_dir: Path, base_model: str, repo_id: str, **card: Any) -> None:
    """Save the trained model with its lineage card (``card``: create_model_card's dataset and tag fields)
    and the training log, naming ``base_model`` as the model it was fine-tuned from."""
    trainer.model.config.name_or_path = base_model
    trainer.save_model(str(output_dir))
    trainer.create_model_card(output_dir=str(output_dir), model_name=repo_id, language="en", **card)
    shutil.copy(Path(trainer.args.output_dir) / "train_log.jsonl", output_dir / "train_log.jsonl")


def recipe_parser(description: str | None, learning_rate: float) -> argparse.ArgumentParser:
    """The options every recipe script takes (a recipe adds its own)."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", help="folder to write the model to (default: the Cove data dir)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=learning_rate)
    parser.add_argument("--seed", type=int, default=42, help="seeds the split, the head's init and the order")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--fp32",
        action="store_true",
        help="train in fp32 (default: bf16 autocast where the CPU computes it natively)",
    )
    precision.add_argument(
        "--bf16", action="store_true", help="train with bf16 autocast even where the CPU emulates bf16 (slow)"
    )
    return parser


def precision_arg(args: argparse.Namespace) -> bool | str:
    """--fp32 / --bf16 / neither -> TrainingArguments' bf16 (False / True / "auto")."""
    return False if args.fp32 else True if args.bf16 else "auto"


def print_figures(figures: dict[str, Any]) -> None:
    width = max(map(len, figures), default=0)
    for key, value in figures.items():
        print(f"{key:>{width}}: {value}")
