"""Default models per task, all local: bundled in packages or built here by `cove setup-models`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cove.errors import PipelineError

if TYPE_CHECKING:
    from cove.hub.resolve import Snapshot

# task -> hub name. The sentiment and NER models are made by the recipes (`cove setup-models`).
DEFAULTS: dict[str, str] = {
    "feature-extraction": "sentence-transformers/all-MiniLM-L6-v2",
    "sentence-similarity": "sentence-transformers/all-MiniLM-L6-v2",
    "sentiment-analysis": "cove/minilm-sentiment",
    "ner": "cove/minilm-ner",
    "text-generation": "HuggingFaceTB/SmolLM2-135M-Instruct",
    # extractive (MiniLM sentence centrality), built by `cove setup-models` (recipes/summarization.py)
    "summarization": "cove/minilm-extractive-summarizer",
    # extractive QA fine-tuned on questions generated from spaCy-parsed text (recipes/qa.py)
    "question-answering": "cove/minilm-qa",
}


def default_model(task: str) -> Snapshot:
    """The task's default model, resolved (the pipeline loads model and tokenizer from this snapshot)."""
    from cove.hub.resolve import resolve

    name = DEFAULTS.get(task)
    if name is None:
        raise PipelineError(f"The {task!r} pipeline has no default model: pass model='<name or folder>'.")
    try:
        return resolve(name)
    except FileNotFoundError:
        raise PipelineError(
            f"The default {task!r} model {name!r} is not built yet: run `cove setup-models` to build it, "
            "or pass model='<name or folder>'."
        ) from None
