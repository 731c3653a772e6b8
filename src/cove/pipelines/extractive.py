"""Extractive summarization: the sentences of a text closest to its centre, in the text's order.

A sentence encoder (a sentence-transformers model such as the bundled all-MiniLM-L6-v2) embeds every
sentence; the summary is the ``num_sentences`` sentences whose embeddings have the highest cosine
similarity to the mean embedding of all of them (the text's "centroid"). A model folder marks itself for this
pipeline with ``config.json``'s ``task_specific_params["summarization"] = {"method": "extractive", ...}``;
``pipeline("summarization")`` then builds this class instead of the seq2seq one, and the output is the same
``[{"summary_text": ...}]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text, model_inputs
from cove.pipelines.feature_extraction import Pooling, _model_folder
from cove.pipelines.sentences import split_sentences

METHOD = "extractive"


def extractive_settings(config: Any) -> dict[str, Any] | None:
    """The model config's extractive summarization settings, or None when it is not such a model."""
    params = getattr(config, "task_specific_params", None) or {}
    if isinstance(config, dict):
        params = config.get("task_specific_params") or {}
    summarization = params.get("summarization") if isinstance(params, dict) else None
    if isinstance(summarization, dict) and summarization.get("method") == METHOD:
        return summarization
    return None


@dataclass
class ExtractiveParams:
    num_sentences: int = 3
    # transformers' summarization lengths, in tokens of this model's tokenizer: sentences are taken best
    # first while the summary stays within max_length, and past num_sentences until it reaches min_length
    max_length: int | None = None
    min_length: int | None = None
    do_sample: bool = False  # nothing is sampled: only False is meaningful (True is refused)
    return_text: bool = True
    truncation: bool = True  # a sentence longer than the encoder's limit is embedded from its start
    clean_up_tokenization_spaces: bool | None = None  # accepted for summarization's callers; text is copied


class ExtractiveSummarizationPipeline(Pipeline):
    task = "summarization"
    auto_model = "AutoModel"
    Params = ExtractiveParams
    default_batch_size = 32

    def __init__(self, model: Any = None, tokenizer: Any = None, **kwargs: Any):
        params = dict(kwargs)
        loading = {k: params.pop(k) for k in list(params) if k not in ExtractiveParams.__dataclass_fields__}
        super().__init__(model, tokenizer, **loading)
        settings = extractive_settings(self.model.config)
        if settings is None:
            raise PipelineError(
                "This model is not an extractive summarizer (its config.json has no task_specific_params."
                'summarization.method "extractive"): pass a seq2seq model (T5, BART) or the default.'
            )
        base = ExtractiveParams(num_sentences=int(settings.get("num_sentences", 3)))
        self.params = self.make_params(base, params)
        self.pooling = Pooling.from_folder(self.model_folder or _model_folder(self.model))

    def validate_params(self, params: ExtractiveParams) -> None:
        n = params.num_sentences
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise PipelineError(f"num_sentences must be a positive integer, got {n!r}.")
        for name in ("max_length", "min_length"):
            value = getattr(params, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise PipelineError(f"{name} must be a positive number of tokens, got {value!r}.")
        if (
            params.max_length is not None
            and params.min_length is not None
            and params.min_length > params.max_length
        ):
            raise PipelineError(
                f"min_length ({params.min_length}) is above max_length ({params.max_length}): lower min_length."
            )
        if params.do_sample:
            raise PipelineError(
                "do_sample=True: the extractive summarizer picks sentences, it samples nothing; drop do_sample."
            )

    def preprocess(self, item: Any, params: ExtractiveParams) -> list[Feature]:
        sentences = split_sentences(check_text(item, self.task))
        if not sentences:
            raise PipelineError("summarization got an empty text: pass the text to summarize.")
        enc = self.tokenizer(sentences, truncation=params.truncation)
        return [Feature(model_inputs(enc, i), meta={"sentence": s}) for i, s in enumerate(sentences)]

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        hidden = self.model(**batch).last_hidden_state
        return list(self.pooling(hidden, batch["attention_mask"]))

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: ExtractiveParams) -> Any:
        import torch

        embeddings = torch.nn.functional.normalize(torch.stack([vec for _, vec in outputs]).float(), dim=1)
        centroid = torch.nn.functional.normalize(embeddings.mean(0), dim=0)
        scores = embeddings @ centroid
        # best first; ties go to the earlier sentence
        ranked = sorted(range(len(outputs)), key=lambda i: (-float(scores[i]), i))
        picked: list[int] = []
        tokens = 0
        for i in ranked:
            size = len(outputs[i][0].inputs["input_ids"]) - 2  # without [CLS] and [SEP]
            enough = len(picked) >= params.num_sentences
            if enough and (params.min_length is None or tokens >= params.min_length):
                break
            if params.max_length is not None and picked and tokens + size > params.max_length:
                continue  # too long to add: a shorter, lower-ranked sentence may still fit
            picked.append(i)
            tokens += size
        summary = " ".join(outputs[i][0].meta["sentence"] for i in sorted(picked))
        return {"summary_text": summary}

    def finalize(self, results: list[Any], single: str, params: Any) -> Any:
        # as the seq2seq summarization: [record] for one text, one record per text for several
        return [results[0]] if single else results
