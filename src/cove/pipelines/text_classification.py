"""text-classification / sentiment-analysis: one label (or top_k labels) with scores per text or text pair."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text, model_inputs

_LEGACY = ""  # top_k not given: transformers' older single-label output shape


@dataclass
class TextClassificationParams:
    top_k: int | str | None = _LEGACY
    function_to_apply: str | None = None  # softmax | sigmoid | none; default from the model's problem_type
    truncation: bool = True


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class TextClassificationPipeline(Pipeline):
    task = "text-classification"
    auto_model = "AutoModelForSequenceClassification"
    defaults_key = "sentiment-analysis"
    Params = TextClassificationParams

    def validate_params(self, params: TextClassificationParams) -> None:
        if params.top_k not in (_LEGACY, None) and (not isinstance(params.top_k, int) or params.top_k < 1):
            raise PipelineError(f"top_k must be a positive integer or None, got {params.top_k!r}.")
        fn = params.function_to_apply
        if fn is not None and (not isinstance(fn, str) or fn.lower() not in ("softmax", "sigmoid", "none")):
            raise PipelineError(
                f"function_to_apply={params.function_to_apply!r} is not one of 'softmax', 'sigmoid', 'none'."
            )

    def normalize_inputs(self, inputs: Any, params: Any) -> tuple[str, Any]:
        if (
            isinstance(inputs, list)
            and len(inputs) == 1
            and isinstance(inputs[0], list)
            and len(inputs[0]) == 2
        ):
            return "dict", [{"text": inputs[0][0], "text_pair": inputs[0][1]}]  # the older pair spelling
        return super().normalize_inputs(inputs, params)

    def preprocess(self, item: Any, params: TextClassificationParams) -> list[Feature]:
        if isinstance(item, dict):
            if "text" not in item:
                raise PipelineError(
                    'A text pair is a dict {"text": ..., "text_pair": ...}; "text" is missing.'
                )
            text = check_text(item["text"], self.task, "text")
            pair = item.get("text_pair")
            pair = None if pair is None else check_text(pair, self.task, "text_pair")
            enc = self.tokenizer(text, pair, truncation=params.truncation)
        elif isinstance(item, (list, tuple)):
            raise PipelineError(
                'To classify text pairs, pass a dict {"text": "...", "text_pair": "..."} (or a list of them).'
            )
        else:
            enc = self.tokenizer(check_text(item, self.task), truncation=params.truncation)
        return [Feature(model_inputs(enc))]

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        return list(self.model(**batch).logits.float().numpy())

    def scores(self, logits: np.ndarray, function_to_apply: str | None) -> np.ndarray:
        config = self.model.config
        fn = (function_to_apply or "").lower()
        if not fn:
            if config.problem_type == "regression":
                fn = "none"
            elif config.problem_type == "multi_label_classification" or config.num_labels == 1:
                fn = "sigmoid"
            else:
                fn = "softmax"
        if fn == "sigmoid":
            return sigmoid(logits)
        if fn == "softmax":
            return softmax(logits)
        return logits

    def postprocess(
        self, item: Any, outputs: list[tuple[Feature, Any]], params: TextClassificationParams
    ) -> Any:
        scores = self.scores(outputs[0][1], params.function_to_apply)
        id2label = self.model.config.id2label
        if params.top_k == _LEGACY:
            best = int(scores.argmax())
            return {"label": id2label[best], "score": float(scores[best])}
        ranked = sorted(
            ({"label": id2label[i], "score": float(s)} for i, s in enumerate(scores)),
            key=lambda d: -d["score"],
        )
        return ranked if not isinstance(params.top_k, int) else ranked[: params.top_k]

    def finalize(self, results: list[Any], single: str, params: TextClassificationParams) -> Any:
        if single == "str" and params.top_k == _LEGACY:
            return [results[0]]  # a lone string without top_k gives a one-element list, as transformers does
        return results[0] if single else results
