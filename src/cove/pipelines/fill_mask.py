"""fill-mask: the top_k tokens for each mask token, with the filled-in sequence."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text, model_inputs

logger = logging.getLogger("cove.pipelines")


@dataclass
class FillMaskParams:
    top_k: int = 5
    targets: str | list[str] | None = None


class FillMaskPipeline(Pipeline):
    task = "fill-mask"
    auto_model = "AutoModelForMaskedLM"
    Params = FillMaskParams

    def validate_params(self, params: FillMaskParams) -> None:
        if not isinstance(params.top_k, int) or params.top_k < 1:
            raise PipelineError(f"top_k must be a positive integer, got {params.top_k!r}.")
        if self.tokenizer.mask_token_id is None:
            raise PipelineError("This tokenizer defines no mask token, so the model cannot fill masks.")

    def target_ids(self, targets: str | list[str]) -> np.ndarray:
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in [targets] if isinstance(targets, str) else targets:
            token_id = vocab.get(target)
            if token_id is None:
                pieces = self.tokenizer(target, add_special_tokens=False, truncation=True, max_length=1)[
                    "input_ids"
                ]
                if not pieces:
                    logger.warning(
                        "Target %r is not in the vocabulary and tokenizes to nothing; ignored.", target
                    )
                    continue
                token_id = pieces[0]
                logger.warning(
                    "Target %r is not in the vocabulary; using its first token %r.",
                    target,
                    self.tokenizer.convert_ids_to_tokens(token_id),
                )
            ids.append(token_id)
        ids = list(set(ids))
        if not ids:
            raise PipelineError(
                f"None of the targets {targets!r} maps to a token: pass at least one usable target."
            )
        return np.array(ids)

    def preprocess(self, item: Any, params: FillMaskParams) -> list[Feature]:
        enc = self.tokenizer(check_text(item, self.task), truncation=True)
        if self.tokenizer.mask_token_id not in enc["input_ids"]:
            raise PipelineError(
                f"No mask token ({self.tokenizer.mask_token}) found in the input {item!r:.80}."
            )
        return [Feature(model_inputs(enc))]

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        import torch

        logits = self.model(**batch).logits  # (batch, seq, vocab)
        masked = batch["input_ids"] == self.tokenizer.mask_token_id
        out = []
        for i in range(logits.shape[0]):
            probs = torch.softmax(logits[i][masked[i]].float(), dim=-1)  # (masks, vocab)
            out.append(probs.numpy())
        return out

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: FillMaskParams) -> Any:
        feature, probs = outputs[0]
        input_ids = np.array(feature.inputs["input_ids"])
        mask_positions = np.nonzero(input_ids == self.tokenizer.mask_token_id)[0]
        targets = self.target_ids(params.targets) if params.targets is not None else None
        top_k = min(params.top_k, len(targets)) if targets is not None else params.top_k
        single_mask = len(mask_positions) == 1
        result = []
        for row, position in zip(probs, mask_positions):
            scores = row[targets] if targets is not None else row
            top = np.argsort(-scores, kind="stable")[:top_k]
            props = []
            for j in top:
                token = int(targets[j]) if targets is not None else int(j)
                tokens = input_ids.copy()
                tokens[position] = token
                tokens = tokens[tokens != self.tokenizer.pad_token_id]
                props.append(
                    {
                        "score": float(scores[j]),
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        "sequence": self.tokenizer.decode(tokens.tolist(), skip_special_tokens=single_mask),
                    }
                )
            result.append(props)
        return result[0] if single_mask else result

    def finalize(self, results: list[Any], single: str, params: Any) -> Any:
        return results[0] if single or len(results) == 1 else results
