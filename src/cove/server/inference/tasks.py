"""Which task a model serves: its card's ``pipeline_tag``, else its config's architectures; and which other
tasks the same loaded weights also serve (an embedding model does feature-extraction and
sentence-similarity, an encoder-decoder summarization, translation and text2text-generation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cove.server.inference.errors import UnservableTaskError

# the Hub's task names Cove serves -> the pipeline that runs them
PIPELINE_OF = {
    "feature-extraction": "feature-extraction",
    "sentence-similarity": "sentence-similarity",
    "text-classification": "text-classification",
    "token-classification": "token-classification",
    "question-answering": "question-answering",
    "fill-mask": "fill-mask",
    "zero-shot-classification": "zero-shot-classification",
    "text-generation": "text-generation",
    "text2text-generation": "text2text-generation",
    "summarization": "summarization",
    "translation": "translation",
}
ALIASES = {
    "sentiment-analysis": "text-classification",
    "ner": "token-classification",
    "sentence-embeddings": "sentence-similarity",
    "conversational": "text-generation",
}
SERVED_TASKS = sorted(PIPELINE_OF)

# tasks one set of loaded weights serves together
_GROUPS = [
    frozenset({"feature-extraction", "sentence-similarity"}),
    frozenset({"text-classification", "zero-shot-classification"}),
    frozenset({"token-classification"}),
    frozenset({"question-answering"}),
    frozenset({"fill-mask"}),
    frozenset({"text-generation"}),
    frozenset({"text2text-generation", "summarization", "translation"}),
]
ENCODER_TASKS = frozenset(
    {
        "feature-extraction",
        "sentence-similarity",
        "text-classification",
        "zero-shot-classification",
        "token-classification",
        "question-answering",
        "fill-mask",
    }
)
SEQ2SEQ_TASKS = frozenset({"text2text-generation", "summarization", "translation"})

# config.json architectures, by their class-name endings, most specific first
_ARCHITECTURE_ENDINGS = [
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForMaskedLM", "fill-mask"),
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("MTModel", "translation"),
    ("ForConditionalGeneration", "text2text-generation"),
    ("Model", "feature-extraction"),
]


def canonical(task: str) -> str:
    """The Hub's name of task (aliases and translation_xx_to_yy folded), or UnservableTaskError."""
    if task.startswith("translation_") and "_to_" in task:
        return "translation"
    task = ALIASES.get(task, task)
    if task not in PIPELINE_OF:
        raise UnservableTaskError(
            f"Cove does not serve the task {task!r}; it serves {', '.join(SERVED_TASKS)}."
        )
    return task


@dataclass(frozen=True)
class ModelInfo:
    """What one commit of a model repo serves, read from its card, config.json and file list."""

    task: str | None  # the model's own task; None when Cove cannot serve it
    tasks: frozenset[str]  # every task the loaded model serves
    problem: str | None  # why it cannot be served (task None)
    config: dict[str, Any] = field(default_factory=dict, compare=False)
    sentence_transformers: bool = False  # modules.json: pooled embeddings for feature-extraction
    prompts: dict[str, str] = field(default_factory=dict, compare=False)  # sentence-transformers prompts

    def check(self, task: str | None, repo_id: str) -> str:
        """The task to run (the asked one, else the model's own), or an error naming the servable ones."""
        if self.task is None:
            raise UnservableTaskError(f"{repo_id!r} cannot be served: {self.problem}")
        if task is None:
            return self.task
        asked = canonical(task)
        if asked not in self.tasks:
            raise UnservableTaskError(
                f"{repo_id!r} is a {self.task} model: it serves {', '.join(sorted(self.tasks))}, not {asked!r}."
            )
        return asked


def model_info(card: Mapping[str, Any], config: Mapping[str, Any] | None, files: set[str]) -> ModelInfo:
    config = dict(config or {})
    st = "modules.json" in files
    task, problem = _own_task(card, config, files, st)
    if task is None:
        return ModelInfo(None, frozenset(), problem, config, st)
    group = next(g for g in _GROUPS if task in g)
    tasks = set(group)
    if task == "text-classification" and not _is_nli(config):
        tasks.discard("zero-shot-classification")
    return ModelInfo(task, frozenset(tasks), None, config, st)


def _own_task(
    card: Mapping[str, Any], config: dict[str, Any], files: set[str], st: bool
) -> tuple[str | None, str | None]:
    tag = card.get("pipeline_tag")
    if isinstance(tag, str) and tag:
        try:
            return canonical(tag), None
        except UnservableTaskError:
            return None, (
                f"its card's pipeline_tag is {tag!r}, which Cove does not serve; Cove serves "
                f"{', '.join(SERVED_TASKS)}."
            )
    if not config:
        if any(p.endswith(".gguf") for p in files):
            return "text-generation", None  # a GGUF file holds a causal LM
        return None, "it has neither a pipeline_tag in its card nor a config.json naming its architecture."
    for name in config.get("architectures") or []:
        for ending, task in _ARCHITECTURE_ENDINGS:
            if isinstance(name, str) and name.endswith(ending):
                if task == "feature-extraction" and st:
                    return "sentence-similarity", None
                return task, None
    if st:
        return "sentence-similarity", None
    return None, (
        f"its config.json names no architecture Cove can serve (architectures={config.get('architectures')!r}) "
        "and its card has no pipeline_tag: add `pipeline_tag: <task>` to the card's metadata."
    )


def _is_nli(config: dict[str, Any]) -> bool:
    labels = config.get("label2id") or {}
    return any(str(label).lower().startswith("entail") for label in labels)
