"""summarization: text2text-generation whose records say ``summary_text`` (``summary_token_ids``), with the
model's ``task_specific_params["summarization"]`` (T5's ``"summarize: "`` prefix, BART's beam and length
settings) applied."""

from __future__ import annotations

import json
from typing import Any

from cove.pipelines.text2text_generation import Text2TextGenerationPipeline


class SummarizationPipeline(Text2TextGenerationPipeline):
    task = "summarization"
    return_name = "summary"

    @classmethod
    def resolve_default_model(cls) -> Any:
        """The default is extractive (recipes/summarization.py), built by `cove setup-models`."""
        from cove.pipelines.defaults import default_model

        return default_model(cls.task)


def pipeline_class(
    model: Any,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[type, Any]:
    """(the summarization pipeline class for model, model as that class should load it).

    A model whose config marks it extractive (``task_specific_params.summarization.method``) gets
    ExtractiveSummarizationPipeline, every other the seq2seq SummarizationPipeline. A name is resolved here
    once, and its Snapshot handed on, so the pipeline loads from the same revision it was chosen by.
    """
    from cove.hub.resolve import HubOptions, Snapshot, resolve
    from cove.pipelines.extractive import ExtractiveSummarizationPipeline, extractive_settings

    if model is None:
        model = SummarizationPipeline.resolve_default_model()
    if isinstance(model, str | Snapshot) or hasattr(model, "__fspath__"):
        subfolder = str((model_kwargs or {}).get("subfolder") or "")
        options = HubOptions(revision=revision, token=token, local_files_only=local_files_only)
        model = resolve(model, options)
        config_path = model.folder(subfolder) / "config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    else:
        config = getattr(model, "config", None)
    if extractive_settings(config) is not None:
        return ExtractiveSummarizationPipeline, model
    return SummarizationPipeline, model
