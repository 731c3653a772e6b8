"""One gradio app per pipeline task, in the shapes the Hub's widgets use: label bars for classification,
highlighted entities for NER, question + context for QA, a streaming chat for instruct LMs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.errors import PipelineError
from cove.server.inference.tasks import SERVED_TASKS, canonical

# every task the pipelines serve has a demo
DEMO_TASKS = tuple(SERVED_TASKS)
TOP_K = 5  # the label bars shown for classification, fill-mask and zero-shot


def demo_task(task: str) -> str:
    """The Hub's name of a pipeline task (aliases folded, translation_xx_to_yy is translation), the demo's
    key; PipelineError naming the tasks with a demo otherwise."""
    from cove.server.inference.errors import UnservableTaskError

    try:
        return canonical(task)
    except UnservableTaskError:
        raise PipelineError(
            f"There is no demo for the task {task!r}: `cove demo` builds one for {', '.join(DEMO_TASKS)}."
        ) from None


def _gradio() -> Any:
    try:
        import gradio
    except ImportError:
        raise PipelineError(
            "cove.demo needs gradio, which is not installed: pip install 'cove[demo]'."
        ) from None
    return gradio


# --- what the demo is built on --------------------------------------------------------------------------


@dataclass
class DemoTarget:
    pipe: Any
    task: str  # one of DEMO_TASKS
    name: str  # the model's name, for the title
    card: dict[str, Any]


def model_task(folder: Path, name: str) -> str:
    """The task a model folder serves: its card's pipeline_tag, else its config's architectures (the
    inference API's rule), as a demo task."""
    from cove.server.inference.tasks import model_info

    config = _read_json(folder / "config.json")
    info = model_info(read_card(folder), config, {p.name for p in folder.iterdir()})
    if info.task is None:
        raise PipelineError(f"Cannot tell which task {name!r} does, so no demo: {info.problem}")
    return demo_task(info.task)


def read_card(folder: Path | None) -> dict[str, Any]:
    """The README's metadata of a model folder ({} when it has none or it does not parse)."""
    from cove.store.cards import card_from_readme

    readme = folder / "README.md" if folder is not None else None
    if readme is None or not readme.is_file():
        return {}
    try:
        return card_from_readme(readme.read_text(encoding="utf-8", errors="replace"))
    except ValueError:
        return {}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def resolve_target(task_or_pipeline: Any, model: Any = None, **pipeline_kwargs: Any) -> DemoTarget:
    """A pipeline and its demo task from a task name (its default model, or model=), a model name or
    folder (the task from its card or config), or a ready cove.pipeline object."""
    from cove.pipelines import TASKS, TRANSLATION_PAIR, pipeline

    if not isinstance(task_or_pipeline, str):
        pipe = task_or_pipeline
        task = getattr(pipe, "task", None)
        if not isinstance(task, str) or not callable(pipe):
            raise PipelineError(
                f"cove.demo.interface takes a task name, a model name or a cove.pipeline, got "
                f"{type(pipe).__name__}."
            )
        folder = getattr(pipe, "model_folder", None)
        return DemoTarget(pipe, demo_task(task), _model_name(pipe), read_card(folder))
    name = task_or_pipeline
    if name in TASKS or TRANSLATION_PAIR.fullmatch(name) or model is not None:
        task = demo_task(name)  # with model=, name must be a task: an unknown one names those with a demo
        pipe = pipeline(
            name if name in TASKS or TRANSLATION_PAIR.fullmatch(name) else task,
            model=model,
            **pipeline_kwargs,
        )
        return DemoTarget(pipe, task, _model_name(pipe), read_card(pipe.model_folder))
    from cove.hub.resolve import HubOptions, resolve

    options = HubOptions.pop_from(pipeline_kwargs)
    try:
        snapshot = resolve(name, options)
    except FileNotFoundError as exc:
        raise PipelineError(
            f"{name!r} is neither a task ({', '.join(DEMO_TASKS)}) nor a model this machine or the hub has: "
            f"{exc}"
        ) from None
    folder = snapshot.folder(options.subfolder)
    task = model_task(folder, name)
    pipe = pipeline(task, model=snapshot, **pipeline_kwargs)
    return DemoTarget(pipe, task, name, read_card(folder))


def _model_name(pipe: Any) -> str:
    folder = getattr(pipe, "model_folder", None)
    config = getattr(getattr(pipe, "model", None), "config", None)
    return str(getattr(config, "name_or_path", "") or (folder.name if folder is not None else pipe.task))


# --- examples from the card's widget: ----------------------------------------------------------------------


def widget_examples(card: dict[str, Any], task: str) -> list[Any] | None:
    """The card's `widget:` examples as the demo's example rows (None when it has none for this task)."""
    widget = card.get("widget")
    if not isinstance(widget, list):
        return None
    rows: list[Any] = []
    for entry in widget:
        if not isinstance(entry, dict):
            continue
        text = entry.get("text")
        if task == "question-answering":
            if isinstance(text, str) and isinstance(entry.get("context"), str):
                rows.append([text, entry["context"]])
        elif task == "zero-shot-classification":
            labels = entry.get("candidate_labels")
            if isinstance(text, str) and isinstance(labels, (str, list)):
                labels = labels if isinstance(labels, str) else ", ".join(map(str, labels))
                rows.append([text, labels, bool(entry.get("multi_class") or entry.get("multi_label"))])
        elif task == "sentence-similarity":
            source, sentences = entry.get("source_sentence"), entry.get("sentences")
            if isinstance(source, str) and isinstance(sentences, list):
                rows.append([source, "\n".join(map(str, sentences))])
        elif task == "text-generation" and isinstance(entry.get("messages"), list):
            users = [
                m.get("content") for m in entry["messages"] if isinstance(m, dict) and m.get("role") == "user"
            ]
            if users and isinstance(users[-1], str):
                rows.append(users[-1])
        elif isinstance(text, str):
            rows.append(text)
    return rows[:20] or None


DEFAULT_EXAMPLES: dict[str, list[Any]] = {
    "text-classification": ["I like you. I love you.", "This was a waste of an evening."],
    "token-classification": ["My name is Sarah and I live in London."],
    "question-answering": [["Where do I live?", "My name is Sarah and I live in London."]],
    "feature-extraction": ["Cove runs offline."],
    "sentence-similarity": [
        ["A man is playing a guitar.", "Someone plays an instrument.\nStocks fell today."]
    ],
    "zero-shot-classification": [
        [
            "I have a problem with my phone that needs to be fixed asap!",
            "urgent, not urgent, phone, tablet",
            False,
        ]
    ],
    "summarization": [
        "The tower is 324 metres tall, about the same height as an 81-storey building, and the tallest "
        "structure in Paris. Its base is square, measuring 125 metres on each side."
    ],
    "translation": ["My name is Sarah and I live in London."],
    "text2text-generation": ["Translate English to German: How old are you?"],
    "text-generation": ["Once upon a time,"],
}


CHAT_EXAMPLES = ["Hello! What can you do?", "Write a haiku about the sea."]


def _default_examples(target: DemoTarget) -> list[Any] | None:
    if target.task == "fill-mask":
        mask = getattr(target.pipe.tokenizer, "mask_token", None) or "[MASK]"
        return [f"Paris is the {mask} of France."]
    return DEFAULT_EXAMPLES.get(target.task)


# --- the functions the apps call: pipeline outputs in the components' shapes --------------------------------


def scores(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    """{label: score} for gr.Label, from the pipeline's list of records."""
    return {str(r[key]): float(r["score"]) for r in rows}


def predict_fn(target: DemoTarget, params: dict[str, Any]) -> Callable[..., Any]:
    pipe, task = target.pipe, target.task

    if task == "text-classification":

        def classify(text: str) -> dict[str, float]:
            return scores(pipe(text, top_k=None, **params), "label")

        return classify
    if task == "token-classification":

        def entities(text: str) -> dict[str, Any]:
            found = pipe(text, **{"aggregation_strategy": "simple", **params})
            spans = [
                {"entity": e["entity_group"], "start": e["start"], "end": e["end"], "score": e["score"]}
                for e in found
            ]
            return {"text": text, "entities": spans}

        return entities
    if task == "question-answering":

        def answer(question: str, context: str) -> tuple[str, float]:
            found = pipe(question=question, context=context, **params)
            return found["answer"], float(found["score"])

        return answer
    if task == "fill-mask":

        def fill(text: str) -> dict[str, float]:
            found = pipe(text, **{"top_k": TOP_K, **params})
            if found and isinstance(found[0], list):  # several masks: the first one's candidates
                found = found[0]
            return {r["sequence"]: float(r["score"]) for r in found}

        return fill
    if task == "feature-extraction":

        def features(text: str) -> list[Any]:
            return pipe(text, **params)

        return features
    if task == "sentence-similarity":

        def similarity(source: str, sentences: str) -> dict[str, float]:
            candidates = [s.strip() for s in sentences.splitlines() if s.strip()]
            if not candidates:
                raise _gradio().Error("Give one sentence per line to compare with the source sentence.")
            return dict(zip(candidates, map(float, pipe(source, candidates, **params))))

        return similarity
    if task == "zero-shot-classification":

        def zero_shot(text: str, labels: str, multi_label: bool) -> dict[str, float]:
            candidates = [label.strip() for label in labels.split(",") if label.strip()]
            if not candidates:
                raise _gradio().Error("Give the candidate labels, separated by commas.")
            found = pipe(text, candidate_labels=candidates, multi_label=bool(multi_label), **params)
            return dict(zip(found["labels"], map(float, found["scores"])))

        return zero_shot
    if task in ("summarization", "translation", "text2text-generation"):
        key = {"summarization": "summary_text", "translation": "translation_text"}.get(task, "generated_text")

        def text_to_text(text: str) -> str:
            return pipe(text, **params)[0][key]

        return text_to_text
    assert task == "text-generation", task

    def complete(prompt: str) -> Iterator[str]:
        text = prompt if params.get("return_full_text", True) else ""
        yield text
        for piece in pipe(prompt, stream=True, **params):
            text += piece
            yield text

    return complete


def chat_fn(target: DemoTarget, params: dict[str, Any]) -> Callable[..., Iterator[str]]:
    pipe = target.pipe

    def respond(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
        messages = [{"role": m["role"], "content": _text(m.get("content"))} for m in history or []]
        messages.append({"role": "user", "content": message})
        reply = ""
        for piece in pipe(messages, stream=True, **params):
            reply += piece
            yield reply

    return respond


def _text(content: Any) -> str:
    """A history message's content as text (gradio 6 may give a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return "" if content is None else str(content)


def is_chat_model(pipe: Any) -> bool:
    return pipe.task == "text-generation" and bool(getattr(pipe.tokenizer, "chat_template", None))


# --- the app ------------------------------------------------------------------------------------------------


def interface(
    task_or_pipeline: Any,
    *,
    model: Any = None,
    examples: list[Any] | None = None,
    title: str | None = None,
    description: str | None = None,
    params: dict[str, Any] | None = None,
    chat: bool | None = None,
    **pipeline_kwargs: Any,
) -> Any:
    """The gradio app for a task, a model or a pipeline: ``gr.Interface`` (``gr.ChatInterface`` for a
    text-generation model with a chat template, streaming its reply).

    ``task_or_pipeline``: a task name (its default model, or ``model=``), a model name or folder (the task
    from its card's pipeline_tag or its config), or a ready ``cove.pipeline``. ``examples`` default to the
    card's ``widget:`` examples, else one per task; ``params`` go to every pipeline call (``top_k``,
    ``max_new_tokens``...); ``chat`` forces or refuses the chat app; other keywords are ``cove.pipeline``'s
    loading options (``dtype``, ``revision``, ``token``...)."""
    gr = _gradio()
    target = resolve_target(task_or_pipeline, model, **pipeline_kwargs)
    call_params = dict(params or {})
    rows = examples if examples is not None else widget_examples(target.card, target.task)
    title = title or f"{target.name} · {target.task}"
    use_chat = is_chat_model(target.pipe) if chat is None else chat
    if use_chat:
        if target.task != "text-generation":
            raise PipelineError(f"chat=True needs a text-generation model, not {target.task}.")
        return gr.ChatInterface(
            chat_fn(target, call_params),
            title=title,
            description=description,
            examples=CHAT_EXAMPLES if rows is None else [r for r in rows if isinstance(r, str)] or None,
            api_name="chat",
        )
    if rows is None:
        rows = _default_examples(target)
    inputs, outputs = components(gr, target)
    return gr.Interface(
        predict_fn(target, call_params),
        inputs,
        outputs,
        title=title,
        description=description,
        examples=rows,
        cache_examples=False,
        api_name="predict",
        flagging_mode="never",
    )


def components(gr: Any, target: DemoTarget) -> tuple[list[Any], list[Any]]:
    """The input and output components of a task's app."""
    text = gr.Textbox(label="Text", lines=3)
    task = target.task
    if task == "text-classification":
        return [text], [gr.Label(label="Labels", num_top_classes=TOP_K)]
    if task == "token-classification":
        return [text], [gr.HighlightedText(label="Entities", combine_adjacent=False)]
    if task == "question-answering":
        return [gr.Textbox(label="Question"), gr.Textbox(label="Context", lines=6)], [
            gr.Textbox(label="Answer"),
            gr.Number(label="Score"),
        ]
    if task == "fill-mask":
        mask = getattr(target.pipe.tokenizer, "mask_token", None) or "[MASK]"
        return [gr.Textbox(label=f"Text with {mask}", lines=2)], [
            gr.Label(label="Candidates", num_top_classes=TOP_K)
        ]
    if task == "feature-extraction":
        return [text], [gr.JSON(label="Features (tokens × hidden size)")]
    if task == "sentence-similarity":
        return [
            gr.Textbox(label="Source sentence"),
            gr.Textbox(label="Sentences to compare (one per line)", lines=4),
        ], [gr.Label(label="Similarity")]
    if task == "zero-shot-classification":
        return [
            text,
            gr.Textbox(label="Candidate labels (comma separated)"),
            gr.Checkbox(label="Several labels may be true"),
        ], [gr.Label(label="Labels", num_top_classes=TOP_K)]
    label = {"summarization": "Summary", "translation": "Translation"}.get(task, "Output")
    return [text], [gr.Textbox(label=label, lines=4)]
