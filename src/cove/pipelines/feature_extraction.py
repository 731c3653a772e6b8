"""feature-extraction (the model's last hidden states) and sentence-similarity (pooled, normalised
embeddings compared by cosine; pooling follows the model's sentence-transformers config when it has one)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text, model_inputs


@dataclass
class FeatureExtractionParams:
    truncation: bool = True
    return_tensors: bool = False


@dataclass
class SentenceEmbeddingParams(FeatureExtractionParams):
    normalize: bool | None = None  # None: as the model's sentence-transformers modules say


@dataclass
class Pooling:
    mode: str = "mean"  # mean | cls | max
    normalize: bool = True

    @classmethod
    def from_folder(cls, folder: Path | None) -> Pooling:
        """Read sentence-transformers' modules.json and pooling config; mean + normalise otherwise."""
        if folder is None or not (folder / "modules.json").is_file():
            return cls()
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
        mode = "mean"
        for m in modules:
            if m.get("type", "").endswith("Pooling"):
                cfg_path = folder / m.get("path", "1_Pooling") / "config.json"
                if cfg_path.is_file():
                    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
                    if cfg.get("pooling_mode_cls_token"):
                        mode = "cls"
                    elif cfg.get("pooling_mode_max_tokens"):
                        mode = "max"
        return cls(mode=mode, normalize=normalize)

    def __call__(self, hidden: Any, mask: Any) -> Any:
        import torch

        if self.mode == "cls":
            pooled = hidden[:, 0]
        elif self.mode == "max":
            pooled = (
                hidden.masked_fill(~mask.bool().unsqueeze(-1), torch.finfo(hidden.dtype).min).max(1).values
            )
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
        pooled = pooled.float()
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled


def _model_folder(model: Any) -> Path | None:
    from cove.hub.resolve import resolve_model_dir

    name = getattr(getattr(model, "config", None), "name_or_path", "")
    try:
        return resolve_model_dir(name) if name else None
    except FileNotFoundError:
        return None


class FeatureExtractionPipeline(Pipeline):
    task = "feature-extraction"
    auto_model = "AutoModel"
    Params = FeatureExtractionParams
    default_batch_size = 32

    def preprocess(self, item: Any, params: FeatureExtractionParams) -> list[Feature]:
        enc = self.tokenizer(check_text(item, self.task), truncation=params.truncation)
        return [Feature(model_inputs(enc))]

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        hidden = self.model(**batch).last_hidden_state.float()  # (batch, seq, hidden)
        return [hidden[i, :n][None] for i, n in enumerate(batch["attention_mask"].sum(1).tolist())]

    def postprocess(
        self, item: Any, outputs: list[tuple[Feature, Any]], params: FeatureExtractionParams
    ) -> Any:
        tensor = outputs[0][1]  # (1, tokens, hidden)
        return tensor if params.return_tensors else tensor.tolist()


class SentenceSimilarityPipeline(FeatureExtractionPipeline):
    """``pipe(source, candidates)`` -> cosine similarities; ``pipe.encode(texts)`` -> embeddings (n, dim)."""

    task = "sentence-similarity"
    Params = SentenceEmbeddingParams

    def __init__(self, model: Any = None, tokenizer: Any = None, **kwargs: Any):
        super().__init__(model, tokenizer, **kwargs)
        self.pooling = Pooling.from_folder(self.model_folder or _model_folder(self.model))

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        pooling = self.pooling
        if params is not None and params.normalize is not None and params.normalize != pooling.normalize:
            pooling = Pooling(mode=pooling.mode, normalize=params.normalize)
        return list(pooling(self.model(**batch).last_hidden_state, batch["attention_mask"]))

    @staticmethod
    def similarities(embeddings: Any) -> list[float]:
        """Cosine scores of rows 1.. against row 0 (the source), from normalised embeddings."""
        return (embeddings[1:] @ embeddings[0]).tolist()

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: Any) -> Any:
        return outputs[0][1]

    def encode(self, texts: str | Iterable[str]) -> Any:
        import torch

        single = isinstance(texts, str)
        rows = Pipeline.__call__(self, [texts] if single else texts)
        if not rows:
            return torch.empty(0, self.model.config.hidden_size)
        emb = torch.stack(rows)
        return emb[0] if single else emb

    def __call__(self, source: Any, candidates: Sequence[str] | None = None, **_: Any) -> list[float]:  # type: ignore[override]
        if isinstance(source, dict):  # the inference-API shape {"source_sentence": ..., "sentences": [...]}
            source, candidates = source.get("source_sentence"), source.get("sentences")
        check_text(source, self.task, "source sentence")
        if not candidates or isinstance(candidates, str):
            raise PipelineError(
                "sentence-similarity needs a non-empty list of candidate sentences to compare with."
            )
        return self.similarities(self.encode([source, *candidates]))
