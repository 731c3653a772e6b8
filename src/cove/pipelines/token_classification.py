"""token-classification / ner: a label per token, or entities grouped with an aggregation strategy.

Follows transformers' TokenClassificationPipeline: softmax scores per token, subwords found from the
tokenizer's continuing-subword prefix (WordPiece "##") or, for BPE, from the characters around the token,
words aggregated by first/average/max, then adjacent B-/I- tokens of one type grouped into entities whose
start/end are character offsets into the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline, check_text

STRATEGIES = ("none", "simple", "first", "average", "max")


@dataclass
class TokenClassificationParams:
    aggregation_strategy: str = "none"
    ignore_labels: list[str] = field(default_factory=lambda: ["O"])
    stride: int | None = None
    is_split_into_words: bool = False
    delimiter: str = " "


class TokenClassificationPipeline(Pipeline):
    task = "token-classification"
    auto_model = "AutoModelForTokenClassification"
    defaults_key = "ner"
    Params = TokenClassificationParams

    def rename_params(self, params: dict[str, Any]) -> dict[str, Any]:
        grouped = params.pop("grouped_entities", None)
        ignore_subwords = params.pop("ignore_subwords", None)
        if "aggregation_strategy" not in params:  # the older spellings
            if grouped and ignore_subwords:
                params["aggregation_strategy"] = "first"
            elif grouped:
                params["aggregation_strategy"] = "simple"
        return params

    def validate_params(self, params: TokenClassificationParams) -> None:
        strategy = params.aggregation_strategy
        if not isinstance(strategy, str) or strategy.lower() not in STRATEGIES:
            raise PipelineError(f"aggregation_strategy={strategy!r} is not one of {list(STRATEGIES)}.")
        params.aggregation_strategy = strategy.lower()
        if params.stride is not None:
            if params.aggregation_strategy == "none":
                raise PipelineError(
                    "stride needs an aggregation_strategy other than 'none' to merge the windows."
                )
            if not isinstance(params.stride, int) or params.stride < 0:
                raise PipelineError(f"stride must be a non-negative integer, got {params.stride!r}.")

    def normalize_inputs(self, inputs: Any, params: TokenClassificationParams) -> tuple[str, Any]:
        if params.is_split_into_words:
            if isinstance(inputs, list) and inputs and all(isinstance(w, str) for w in inputs):
                return "", [
                    inputs
                ]  # one pre-split sentence still gives a list of results, as in transformers
            return "", inputs
        return super().normalize_inputs(inputs, params)

    def preprocess(self, item: Any, params: TokenClassificationParams) -> list[Feature]:
        word_to_chars = None
        if params.is_split_into_words:
            if not isinstance(item, list) or not all(isinstance(w, str) for w in item):
                raise PipelineError(
                    "With is_split_into_words=True each input must be a list of words (strings)."
                )
            sentence = params.delimiter.join(item)
            word_to_chars, pos = [], 0
            for word in item:
                word_to_chars.append((pos, pos + len(word)))
                pos += len(word) + len(params.delimiter)
            text: Any = item
        else:
            sentence = text = check_text(item, self.task)
        kwargs: dict[str, Any] = {}
        if params.stride is not None:
            kwargs = {"return_overflowing_tokens": True, "stride": params.stride}
        enc = self.tokenizer(
            text,
            truncation=True,
            return_special_tokens_mask=True,
            return_offsets_mapping=True,
            is_split_into_words=params.is_split_into_words,
            **kwargs,
        )
        rows = enc["input_ids"] if params.stride is not None else [enc["input_ids"]]
        features = []
        for i in range(len(rows)):

            def get(key: str, i: int = i) -> Any:
                return enc[key][i] if params.stride is not None else enc[key]

            inputs = {k: list(get(k)) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
            meta = {
                "sentence": sentence,
                "offsets": [tuple(o) for o in get("offset_mapping")],
                "special": list(get("special_tokens_mask")),
                "word_ids": enc.word_ids(i) if word_to_chars is not None else None,
                "word_to_chars": word_to_chars,
            }
            features.append(Feature(inputs, meta))
        return features

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        logits = self.model(**batch).logits.float().numpy()  # (batch, seq, labels)
        return [logits[i, :n] for i, n in enumerate(batch["attention_mask"].sum(1).tolist())]

    def postprocess(
        self, item: Any, outputs: list[tuple[Feature, Any]], params: TokenClassificationParams
    ) -> Any:
        entities: list[dict[str, Any]] = []
        for feature, logits in outputs:
            e = np.exp(logits - logits.max(-1, keepdims=True))
            scores = e / e.sum(-1, keepdims=True)
            pre = self.gather_pre_entities(feature, scores, params.aggregation_strategy)
            grouped = self.aggregate(pre, params.aggregation_strategy)
            entities.extend(
                ent
                for ent in grouped
                if ent.get("entity") not in params.ignore_labels
                and ent.get("entity_group") not in params.ignore_labels
            )
        if len(outputs) > 1:
            entities = aggregate_overlapping_entities(entities)
        return entities

    # -- transformers' algorithm, step by step ------------------------------------------------

    def _has_subword_prefix(self) -> bool:
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        return bool(getattr(getattr(backend, "model", None), "continuing_subword_prefix", None))

    def gather_pre_entities(
        self, feature: Feature, scores: np.ndarray, strategy: str
    ) -> list[dict[str, Any]]:
        meta, ids = feature.meta, feature.inputs["input_ids"]
        sentence = meta["sentence"]
        prefix_based = self._has_subword_prefix()
        pre = []
        for idx, token_scores in enumerate(scores):
            if meta["special"][idx]:
                continue
            word = self.tokenizer.convert_ids_to_tokens(int(ids[idx]))
            start, end = meta["offsets"][idx]
            if meta["word_ids"] is not None:
                word_index = meta["word_ids"][idx]
                if word_index is not None:
                    shift = meta["word_to_chars"][word_index][0]
                    start, end = start + shift, end + shift
            word_ref = sentence[start:end]
            if prefix_based:
                is_subword = len(word) != len(word_ref)
            else:
                is_subword = start > 0 and " " not in sentence[start - 1 : start + 1]
            if int(ids[idx]) == self.tokenizer.unk_token_id:
                word, is_subword = word_ref, False
            pre.append(
                {
                    "word": word,
                    "scores": token_scores,
                    "start": start,
                    "end": end,
                    "index": idx,
                    "is_subword": is_subword,
                }
            )
        return pre

    def aggregate(self, pre: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        id2label = self.model.config.id2label
        if strategy in ("none", "simple"):
            entities = []
            for p in pre:
                best = int(p["scores"].argmax())
                entities.append(
                    {
                        "entity": id2label[best],
                        "score": float(p["scores"][best]),
                        "index": p["index"],
                        "word": p["word"],
                        "start": p["start"],
                        "end": p["end"],
                    }
                )
        else:
            entities = self.aggregate_words(pre, strategy)
        return entities if strategy == "none" else self.group_entities(entities)

    def aggregate_word(self, group: list[dict[str, Any]], strategy: str) -> dict[str, Any]:
        id2label = self.model.config.id2label
        word = self.tokenizer.convert_tokens_to_string([p["word"] for p in group])
        if strategy == "first":
            scores = group[0]["scores"]
        elif strategy == "max":
            scores = max(group, key=lambda p: p["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([p["scores"] for p in group]), axis=0)
        best = int(scores.argmax())
        return {
            "entity": id2label[best],
            "score": float(scores[best]),
            "word": word,
            "start": group[0]["start"],
            "end": group[-1]["end"],
        }

    def aggregate_words(self, pre: list[dict[str, Any]], strategy: str) -> list[dict[str, Any]]:
        words, group = [], None
        for p in pre:
            if group is None:
                group = [p]
            elif p["is_subword"]:
                group.append(p)
            else:
                words.append(self.aggregate_word(group, strategy))
                group = [p]
        if group is not None:
            words.append(self.aggregate_word(group, strategy))
        return words

    def group_sub_entities(self, entities: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(np.mean(np.nanmean([e["score"] for e in entities]))),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def group_entities(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        current: list[dict[str, Any]] = []
        for entity in entities:
            if not current:
                current.append(entity)
                continue
            bi, tag = get_tag(entity["entity"])
            _, last_tag = get_tag(current[-1]["entity"])
            if tag == last_tag and bi != "B":
                current.append(entity)
            else:
                groups.append(self.group_sub_entities(current))
                current = [entity]
        if current:
            groups.append(self.group_sub_entities(current))
        return groups


def get_tag(name: str) -> tuple[str, str]:
    if name.startswith("B-"):
        return "B", name[2:]
    if name.startswith("I-"):
        return "I", name[2:]
    return "I", name  # not in B/I format: treat as a continuation


def aggregate_overlapping_entities(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Windows overlap when stride is set: keep the longest (then highest-scoring) of overlapping entities."""
    if not entities:
        return entities
    entities = sorted(entities, key=lambda e: e["start"])
    out, previous = [], entities[0]
    for entity in entities:
        if previous["start"] <= entity["start"] < previous["end"]:
            length, prev_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
            if length > prev_length or (length == prev_length and entity["score"] > previous["score"]):
                previous = entity
        else:
            out.append(previous)
            previous = entity
    out.append(previous)
    return out
