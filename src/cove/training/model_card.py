"""The model card a Trainer writes next to the weights: lineage (base model + revision, dataset + fingerprint),
hyperparameters, and evaluation results as ``model-index`` YAML, so a fine-tuned model's origin is always known.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

_TASKS = {
    "ForSequenceClassification": ("text-classification", "Text Classification"),
    "ForTokenClassification": ("token-classification", "Token Classification"),
    "ForQuestionAnswering": ("question-answering", "Question Answering"),
    "ForMaskedLM": ("fill-mask", "Masked Language Modeling"),
    "ForCausalLM": ("text-generation", "Causal Language Modeling"),
}

_HYPERPARAMETERS = (
    "learning_rate",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
    "seed",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "weight_decay",
    "max_grad_norm",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "num_train_epochs",
    "max_steps",
    "bf16",
)


def folder_revision(folder: str | os.PathLike[str]) -> str | None:
    """A content revision for a local model folder: sha256 over its weight and config files."""
    path = Path(folder)
    files = sorted(
        p for p in path.iterdir() if p.is_file() and (p.suffix in (".safetensors", ".json", ".bin", ".txt"))
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def base_model_lineage(model: Any) -> tuple[str | None, str | None]:
    """(name, revision) of the checkpoint the model was loaded from; (None, None) for a model built from a config."""
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) if config is not None else None
    if not name:
        return None, None
    cached = getattr(model, "_cove_base_lineage", None)
    if cached is not None and cached[0] == name:
        return cached
    revision = getattr(config, "_commit_hash", None)
    if revision is None:
        try:
            from cove.hub.resolve import resolve_model_dir

            revision = folder_revision(resolve_model_dir(name))
        except Exception:  # the base is gone or unreachable: record the name alone
            revision = None
    lineage = (str(name), revision)
    model._cove_base_lineage = lineage  # hashing a base folder once per run is enough
    return lineage


def dataset_lineage(dataset: Any) -> dict[str, Any] | None:
    """Name, split, size and fingerprint of a dataset (cove.data's fingerprint, or a hash of the rows)."""
    if dataset is None:
        return None
    info = getattr(dataset, "info", None)
    name = (
        getattr(info, "dataset_name", None)
        or getattr(info, "builder_name", None)
        or getattr(dataset, "name", None)
        or getattr(dataset, "cove_name", None)
    )
    fingerprint = getattr(dataset, "_fingerprint", None) or getattr(dataset, "fingerprint", None)
    if fingerprint is None:
        digest = hashlib.sha256()
        try:
            for i in range(len(dataset)):
                digest.update(json.dumps(_plain(dataset[i]), sort_keys=True, default=str).encode())
            fingerprint = digest.hexdigest()[:16]
        except Exception:
            fingerprint = None
    split = getattr(dataset, "split", None)
    return {
        "name": str(name) if name else "custom",
        "split": str(split) if split is not None else None,
        "num_rows": len(dataset) if hasattr(dataset, "__len__") else None,
        "fingerprint": fingerprint,
    }


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _task_of(model: Any) -> tuple[str, str] | None:
    name = type(model).__name__
    for suffix, task in _TASKS.items():
        if name.endswith(suffix):
            return task
    return None


def _eval_results(trainer: Any) -> dict[str, float]:
    results: dict[str, float] = {}
    for record in trainer.state.log_history:
        if any(k.startswith("eval_") for k in record):
            results = {
                k[len("eval_") :]: float(v)
                for k, v in record.items()
                if k.startswith("eval_")
                and not k.endswith(("_runtime", "_per_second"))
                and isinstance(v, (int, float))
            }
    return results


def write_model_card(
    trainer: Any,
    output_dir: str,
    *,
    model_name: str | None = None,
    language: str | list[str] | None = None,
    license: str | None = None,
    tags: list[str] | None = None,
    finetuned_from: str | None = None,
    dataset_name: str | None = None,
    dataset_revision: str | None = None,
    **_: Any,
) -> str:
    """Write README.md (YAML front matter + a short body) into ``output_dir``; returns the text."""
    model = trainer.model
    base, base_revision = base_model_lineage(model)
    base = finetuned_from or base
    train_data = dataset_lineage(trainer.train_dataset)
    eval_data = dataset_lineage(trainer.eval_dataset)
    for data in (train_data, eval_data):  # a named source covers both of its splits
        if data is not None and dataset_name:
            data["name"] = dataset_name
        if data is not None and dataset_revision:
            data["revision"] = dataset_revision
    name = model_name or trainer.args.hub_model_id or Path(output_dir).name
    hyper = {k: getattr(trainer.args, k) for k in _HYPERPARAMETERS}
    results = _eval_results(trainer)

    meta: dict[str, Any] = {"library_name": "cove"}
    if license:
        meta["license"] = license
    if language:
        meta["language"] = language
    if base:
        meta["base_model"] = base
        if base_revision:
            meta["base_model_revision"] = base_revision
    meta["tags"] = list(dict.fromkeys([*(tags or []), "generated_from_trainer", "cove"]))
    if train_data is not None:
        meta["datasets"] = [train_data["name"]]
    if results:
        meta["metrics"] = sorted(k for k in results if k != "loss")
    task = _task_of(model)
    card_data = eval_data or train_data
    if results and task is not None:
        dataset_entry: dict[str, Any] = {
            "name": card_data["name"] if card_data else "custom",
            "type": card_data["name"] if card_data else "custom",
        }
        if card_data and card_data.get("split"):
            dataset_entry["split"] = card_data["split"]
        if card_data and (card_data.get("revision") or card_data.get("fingerprint")):
            dataset_entry["revision"] = card_data.get("revision") or card_data["fingerprint"]
        meta["model-index"] = [
            {
                "name": name,
                "results": [
                    {
                        "task": {"type": task[0], "name": task[1]},
                        "dataset": dataset_entry,
                        "metrics": [
                            {"type": k, "value": v, "name": k.replace("_", " ").title()}
                            for k, v in sorted(results.items())
                        ],
                    }
                ],
            }
        ]
    meta["training"] = {
        "hyperparameters": hyper,
        "train_dataset": train_data,
        "eval_dataset": eval_data,
        "global_step": trainer.state.global_step,
    }

    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {name}",
        "",
    ]
    if base:
        rev = f" (revision `{base_revision}`)" if base_revision else ""
        lines.append(f"This model is a fine-tuned version of `{base}`{rev}")
    else:
        lines.append("This model was trained from scratch")
    if train_data is not None:
        fp = f", fingerprint `{train_data['fingerprint']}`" if train_data.get("fingerprint") else ""
        if train_data.get("revision"):
            fp += f", source revision `{train_data['revision']}`"
        lines[-1] += f" on the `{train_data['name']}` dataset ({train_data['num_rows']} rows{fp})."
    else:
        lines[-1] += "."
    if results:
        lines += ["", "## Evaluation results", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in sorted(results.items())]
    lines += ["", "## Training hyperparameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in hyper.items()]
    lines += ["", "Trained with Cove's `Trainer`.", ""]
    text = "\n".join(lines)
    os.makedirs(output_dir, exist_ok=True)
    Path(output_dir, "README.md").write_text(text)
    return text
