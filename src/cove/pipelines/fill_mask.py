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

    def targets_for(self, params: FillMaskParams) -> np.ndarray | None:
        """The target ids (looked up once per distinct `targets`, not per input)."""
        if params.targets is None:
            return None
        key = params.targets if isinstance(params.targets, str) else tuple(params.targets)
        cached = getattr(self, "_targets_cache", None)
        if cached is None or cached[0] != key:
            cached = self._targets_cache = (key, self.target_ids(params.targets))
        return cached[1]

    def forward(self, batch: dict[str, Any], params: FillMaskParams) -> list[Any]:
        """Per row: (scores, token ids), each (masks, top_k), best first.

        Only the mask positions go through the vocabulary head (a 384 x 30k projection costs as much as the
        whole MiniLM encoder per token); softmax over the full vocabulary, then top-k, as transformers does.
        """
        import torch

        masked = batch["input_ids"] == self.tokenizer.mask_token_id  # (batch, seq)
        head = getattr(self.model, "masked_lm_logits", None)
        if head is not None:
            hidden = getattr(self.model, self.model.base_model_prefix)(**batch).last_hidden_state
            logits = head(hidden[masked])  # (masks in the batch, vocab)
        else:  # a model without the split head: the full logits, then the mask rows
            logits = self.model(**batch).logits[masked]
        probs = torch.softmax(logits.float(), dim=-1)
        targets = self.targets_for(params)
        if targets is not None:
            probs = probs[:, torch.from_numpy(targets)]
        values, tokens = probs.topk(min(params.top_k, probs.shape[-1]))
        if targets is not None:
            tokens = torch.from_numpy(targets)[tokens]
        cuts = np.cumsum(masked.sum(1).numpy())[:-1]  # each row's share of the mask positions
        return list(zip(np.split(values.numpy(), cuts), np.split(tokens.numpy(), cuts)))

    def postprocess(self, item: Any, outputs: list[tuple[Feature, Any]], params: FillMaskParams) -> Any:
        feature, (scores, tokens) = outputs[0]
        input_ids = np.array(feature.inputs["input_ids"])
        mask_positions = np.nonzero(input_ids == self.tokenizer.mask_token_id)[0]
        single_mask = len(mask_positions) == 1
        pad = self.tokenizer.pad_token_id
        result = []
        for row_scores, row_tokens, position in zip(scores, tokens, mask_positions):
            filled = np.repeat(input_ids[None], len(row_tokens), axis=0)  # (top_k, seq)
            filled[:, position] = row_tokens
            sequences = self.tokenizer.batch_decode(
                [row[row != pad].tolist() for row in filled], skip_special_tokens=single_mask
            )
            result.append(
                [
                    {
                        "score": float(score),
                        "token": int(token),
                        "token_str": self.tokenizer.decode([int(token)]),
                        "sequence": sequence,
                    }
                    for score, token, sequence in zip(row_scores, row_tokens, sequences)
                ]
            )
        return result[0] if single_mask else result

    def finalize(self, results: list[Any], single: str, params: Any) -> Any:
        return results[0] if single or len(results) == 1 else results
