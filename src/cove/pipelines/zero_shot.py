"""zero-shot-classification: an NLI model scores "premise -> hypothesis" for each candidate label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text, model_inputs


@dataclass
class ZeroShotParams:
    candidate_labels: list[str] = field(default_factory=list)
    hypothesis_template: str = "This example is {}."
    multi_label: bool = False


class ZeroShotClassificationPipeline(Pipeline):
    task = "zero-shot-classification"
    auto_model = "AutoModelForSequenceClassification"
    Params = ZeroShotParams

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        entailment_id = next(
            (i for label, i in self.model.config.label2id.items() if label.lower().startswith("entail")), None
        )
        if entailment_id is None:
            raise PipelineError(
                "zero-shot-classification needs an NLI model whose labels include 'entailment'; this model's "
                f"labels are {list(self.model.config.label2id)}."
            )
        self.entailment_id: int = int(entailment_id)

    def rename_params(self, params: dict[str, Any]) -> dict[str, Any]:
        labels = params.get("candidate_labels")
        if isinstance(labels, str):
            params["candidate_labels"] = [x.strip() for x in labels.split(",") if x.strip()]
        return params

    def validate_params(self, params: ZeroShotParams) -> None:
        template = params.hypothesis_template
        if not isinstance(template, str) or template.format("x") == template:
            raise PipelineError(
                f"hypothesis_template={template!r} has no {{}} for the label to go into, e.g. 'This example is {{}}.'."
            )

    def __call__(self, inputs: Any, *args: Any, **params: Any) -> Any:
        if len(args) == 1 and "candidate_labels" not in params:
            params["candidate_labels"] = args[0]
        elif args:
            raise PipelineError(f"Unexpected positional arguments {args!r}: pass candidate_labels=[...].")
        return super().__call__(inputs, **params)

    def preprocess(self, item: Any, params: ZeroShotParams) -> list[Feature]:
        text = check_text(item, self.task)
        if not params.candidate_labels:
            raise PipelineError("zero-shot-classification needs candidate_labels: at least one label.")
        features = []
        for label in params.candidate_labels:
            enc = self.tokenizer(text, params.hypothesis_template.format(label), truncation="only_first")
            features.append(Feature(model_inputs(enc), {"label": label}))
        return features

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        return list(self.model(**batch).logits.float().numpy())

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: ZeroShotParams) -> Any:
        labels = [f.meta["label"] for f, _ in outputs]
        logits = np.stack([o for _, o in outputs])  # (labels, classes)
        entail = self.entailment_id
        if params.multi_label or len(labels) == 1:
            contradiction = -1 if entail == 0 else 0
            pair = logits[:, [contradiction, entail]]
            scores = (np.exp(pair) / np.exp(pair).sum(-1, keepdims=True))[:, 1]
        else:
            e = np.exp(logits[:, entail])
            scores = e / e.sum()
        order = list(reversed(scores.argsort()))
        return {
            "sequence": item,
            "labels": [labels[i] for i in order],
            "scores": [float(scores[i]) for i in order],
        }
