"""feature-extraction: the model's last hidden states, and sentence-similarity: pooled, normalised embeddings
compared by cosine. Pooling follows the model's sentence-transformers config when it has one."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cove.errors import PipelineError
from cove.pipelines.base import batched_forward, check_texts, load_model_and_tokenizer, windows

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_WINDOW = 4096  # items tokenized and batched together; bounds memory for streamed inputs


@dataclass
class FeatureExtractionParams:
    batch_size: int = 32
    truncation: bool = True
    return_tensors: bool = False


@dataclass
class Pooling:
    mode: str = "mean"  # mean | cls | max
    normalize: bool = True

    @classmethod
    def from_folder(cls, folder: Path | None) -> Pooling:
        """Read sentence-transformers' modules.json / 1_Pooling/config.json; mean + normalise otherwise."""
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


class FeatureExtractionPipeline:
    task = "feature-extraction"

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        dtype: Any = None,
        device: Any = None,
        batch_size: int | None = None,
        **params: Any,
    ):
        from cove.models.auto import AutoModel

        loaded = load_model_and_tokenizer(
            AutoModel, model or DEFAULT_MODEL, tokenizer, dtype=dtype, device=device
        )
        self.model, self.tokenizer = loaded.model, loaded.tokenizer
        self.params = FeatureExtractionParams(batch_size=batch_size or 32, **params)

    def _encode(self, texts: list[str]) -> list[dict[str, list[int]]]:
        check_texts(texts, self.task)
        enc = self.tokenizer(texts, truncation=self.params.truncation)
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
        return [{k: enc[k][i] for k in keys} for i in range(len(texts))]

    def _run(self, inputs: Iterable[str], forward: Any) -> list[Any]:
        out: list[Any] = []
        for chunk in windows(inputs, _WINDOW):
            out.extend(
                batched_forward(
                    self._encode(chunk),
                    forward,
                    batch_size=self.params.batch_size,
                    pad_token_id=self.tokenizer.pad_token_id or 0,
                )
            )
        return out

    def __call__(self, inputs: str | Iterable[str], **params: Any) -> Any:
        for k, v in params.items():
            if not hasattr(self.params, k):
                raise PipelineError(
                    f"{self.task} has no parameter {k!r}; it takes {sorted(vars(self.params))}."
                )
            setattr(self.params, k, v)
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        if texts is None:
            raise PipelineError(f"{self.task} needs a string or a list of strings, got None.")

        def forward(batch: dict[str, Any]) -> list[Any]:
            hidden = self.model(**batch).last_hidden_state.float()  # (batch, seq, hidden)
            lengths = batch["attention_mask"].sum(1).tolist()
            return [hidden[i, :n][None] for i, n in enumerate(lengths)]

        results = self._run(texts, forward)
        if not self.params.return_tensors:
            results = [r.tolist() for r in results]
        return results[0] if single else results


class SentenceSimilarityPipeline(FeatureExtractionPipeline):
    """``pipe(source, candidates)`` -> cosine similarities; ``pipe.encode(texts)`` -> embeddings (n, dim)."""

    task = "sentence-similarity"

    def __init__(self, model: Any = None, tokenizer: Any = None, **kwargs: Any):
        super().__init__(model, tokenizer, **kwargs)
        self.pooling = Pooling.from_folder(_model_folder(self.model))

    def encode(self, texts: str | Iterable[str]) -> Any:
        import torch

        single = isinstance(texts, str)

        def forward(batch: dict[str, Any]) -> list[Any]:
            hidden = self.model(**batch).last_hidden_state
            return list(self.pooling(hidden, batch["attention_mask"]))

        rows = self._run([texts] if single else texts, forward)
        if not rows:
            return torch.empty(0, self.model.config.hidden_size)
        emb = torch.stack(rows)
        return emb[0] if single else emb

    def __call__(
        self, source: str | dict[str, Any], candidates: Sequence[str] | None = None, **_: Any
    ) -> list[float]:
        if isinstance(source, dict):  # the inference-API shape {"source_sentence": ..., "sentences": [...]}
            source, candidates = source.get("source_sentence"), source.get("sentences")
        if not isinstance(source, str):
            raise PipelineError(f"sentence-similarity needs a source string, got {type(source).__name__}.")
        if not candidates or isinstance(candidates, str):
            raise PipelineError(
                "sentence-similarity needs a non-empty list of candidate sentences to compare with."
            )
        emb = self.encode([source, *candidates])
        return (emb[1:] @ emb[0]).tolist()
