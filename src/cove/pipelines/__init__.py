"""``cove.pipeline(task, model=..., ...)``: tasks with the ecosystem's output formats."""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Any

from cove.errors import PipelineError

# task (and aliases) -> (module, class)
TASKS: dict[str, tuple[str, str]] = {
    "feature-extraction": ("cove.pipelines.feature_extraction", "FeatureExtractionPipeline"),
    "sentence-similarity": ("cove.pipelines.feature_extraction", "SentenceSimilarityPipeline"),
    "sentence-embeddings": ("cove.pipelines.feature_extraction", "SentenceSimilarityPipeline"),
    "text-classification": ("cove.pipelines.text_classification", "TextClassificationPipeline"),
    "sentiment-analysis": ("cove.pipelines.text_classification", "TextClassificationPipeline"),
    "token-classification": ("cove.pipelines.token_classification", "TokenClassificationPipeline"),
    "ner": ("cove.pipelines.token_classification", "TokenClassificationPipeline"),
    "question-answering": ("cove.pipelines.question_answering", "QuestionAnsweringPipeline"),
    "fill-mask": ("cove.pipelines.fill_mask", "FillMaskPipeline"),
    "zero-shot-classification": ("cove.pipelines.zero_shot", "ZeroShotClassificationPipeline"),
    "text-generation": ("cove.pipelines.text_generation", "TextGenerationPipeline"),
    "text2text-generation": ("cove.pipelines.text2text_generation", "Text2TextGenerationPipeline"),
    "summarization": ("cove.pipelines.summarization", "SummarizationPipeline"),
    "translation": ("cove.pipelines.translation", "TranslationPipeline"),
}
# translation_xx_to_yy (translation_en_to_de, ...): the translation pipeline for that pair
TRANSLATION_PAIR = re.compile(r"translation_[^_]+_to_[^_]+")


def pipeline(
    task: str,
    model: Any = None,
    tokenizer: Any = None,
    device: Any = None,
    dtype: Any = None,
    batch_size: int | None = None,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    trust_remote_code: bool | None = None,
    device_map: Any = None,
    model_kwargs: dict[str, Any] | None = None,
    quantization: str | None = None,
    **task_params: Any,
) -> Any:
    """A task pipeline over a model given by name, folder or object.

    As in transformers: ``revision``, ``token``, ``trust_remote_code`` (True refused: Cove runs no repo code),
    ``local_files_only`` and ``device_map`` reach the loading of a model (and tokenizer) given by name;
    ``model_kwargs`` go to the model's ``from_pretrained`` (``cache_dir``, config overrides, ...). The
    name is resolved once, so model and tokenizer come from one snapshot. Other keywords are the task's
    parameters. ``quantization`` ("int8", "int4", "gguf") reaches from_pretrained (cove.quant).
    """
    if quantization is not None:
        if model_kwargs and "quantization" in model_kwargs:
            raise PipelineError(
                "quantization is given both to the pipeline and in model_kwargs: pass it once."
            )
        model_kwargs = {**(model_kwargs or {}), "quantization": quantization}
    if TRANSLATION_PAIR.fullmatch(task):
        task_params["task_name"] = task
        task = "translation"
    if task not in TASKS:
        close = difflib.get_close_matches(task, list(TASKS), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise PipelineError(f"Unknown pipeline task {task!r}.{hint} Available: {sorted(TASKS)}.")
    module, name = TASKS[task]
    cls = getattr(importlib.import_module(module), name)
    if task == "summarization":  # seq2seq or extractive, by the model's config
        from cove.pipelines.summarization import pipeline_class

        cls, model = pipeline_class(
            model,
            revision=revision,
            token=token,
            local_files_only=bool(task_params.get("local_files_only")),
            model_kwargs=model_kwargs,
        )
    if "torch_dtype" in task_params and dtype is None:
        dtype = task_params.pop("torch_dtype")
    return cls(
        model,
        tokenizer,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        revision=revision,
        token=token,
        trust_remote_code=trust_remote_code,
        device_map=device_map,
        model_kwargs=model_kwargs,
        **task_params,
    )
