"""question-answering: extractive answers (text span, score, character offsets) from a context.

Follows transformers 4.x's QuestionAnsweringPipeline (removed in transformers 5): a long context is split
into overlapping windows (max_seq_len, doc_stride); in each window start and end probabilities are
softmaxed over the context tokens, spans up to max_answer_len tokens are scored start x end, snapped to
word boundaries, and answers with the same text across windows add their scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cove.errors import PipelineError
from cove.pipelines.base import Feature, Pipeline


@dataclass
class QuestionAnsweringParams:
    top_k: int = 1
    doc_stride: int | None = None
    max_answer_len: int = 15
    max_seq_len: int | None = None
    max_question_len: int = 64
    handle_impossible_answer: bool = False
    align_to_words: bool = True


def decode_spans(
    start: np.ndarray, end: np.ndarray, topk: int, max_answer_len: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The topk (start, end) pairs by start x end probability, end >= start, at most max_answer_len long."""
    outer = np.matmul(start[None, :, None], end[None, None, :])  # (1, seq, seq)
    candidates = np.tril(np.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    best: Any
    if topk == 1:
        best = [np.argmax(flat)]
    elif len(flat) < topk:
        best = np.argsort(-flat)
    else:
        idx = np.argpartition(-flat, topk)[0:topk]
        best = idx[np.argsort(-flat[idx])]
    starts, ends = np.unravel_index(best, candidates.shape)[1:]
    keep = np.isin(starts, allowed.nonzero()) & np.isin(ends, allowed.nonzero())
    starts, ends = starts[keep], ends[keep]
    return starts, ends, candidates[0, starts, ends]


class QuestionAnsweringPipeline(Pipeline):
    task = "question-answering"
    auto_model = "AutoModelForQuestionAnswering"
    Params = QuestionAnsweringParams

    def rename_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "topk" in params and "top_k" not in params:
            params["top_k"] = params.pop("topk")
        return params

    def validate_params(self, params: QuestionAnsweringParams) -> None:
        for name in ("top_k", "max_answer_len", "max_question_len"):
            value = getattr(params, name)
            if not isinstance(value, int) or value < 1:
                raise PipelineError(f"{name} must be a positive integer, got {value!r}.")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        question = kwargs.pop("question", None)
        context = kwargs.pop("context", None)
        if args:
            if len(args) == 2 and all(isinstance(a, str) for a in args):
                inputs: Any = {"question": args[0], "context": args[1]}
            elif len(args) == 1:
                inputs = args[0]
            else:
                raise PipelineError(
                    "Pass question= and context=, a dict {'question', 'context'}, or a list of them."
                )
        elif question is not None or context is not None:
            if question is None or context is None:
                raise PipelineError("question-answering needs both a question and a context.")
            if isinstance(question, list) and isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            elif isinstance(question, list) and isinstance(context, list):
                if len(question) != len(context):
                    raise PipelineError(
                        f"{len(question)} questions but {len(context)} contexts: pass one context per question."
                    )
                inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
            elif isinstance(question, str) and isinstance(context, str):
                inputs = {"question": question, "context": context}
            else:
                raise PipelineError("question and context must be strings or lists of strings.")
        else:
            raise PipelineError("question-answering needs question= and context=.")
        if isinstance(inputs, list) and len(inputs) == 1:
            inputs = inputs[0]  # transformers returns a single answer for a one-element list
        return super().__call__(inputs, **kwargs)

    def preprocess(self, item: Any, params: QuestionAnsweringParams) -> list[Feature]:
        if not isinstance(item, dict) or "question" not in item or "context" not in item:
            raise PipelineError(
                f"Each question-answering input is a dict with 'question' and 'context', got {item!r:.80}."
            )
        for key in ("question", "context"):
            if item[key] is None:
                raise PipelineError(f"`{key}` cannot be None.")
            if not isinstance(item[key], str):
                raise PipelineError(f"`{key}` must be a string, got {type(item[key]).__name__}.")
            if not item[key]:
                raise PipelineError(f"`{key}` cannot be empty.")
        max_seq_len = params.max_seq_len or min(self.tokenizer.model_max_length, 384)
        doc_stride = params.doc_stride if params.doc_stride is not None else min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise PipelineError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len}).")
        question_first = self.tokenizer.padding_side == "right"
        first, second = (
            (item["question"], item["context"]) if question_first else (item["context"], item["question"])
        )
        enc = self.tokenizer(
            first,
            second,
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        features = []
        for span in range(len(enc["input_ids"])):
            ids = list(enc["input_ids"][span])
            p_mask = [tok != 1 if question_first else 0 for tok in enc.sequence_ids(span)]
            if self.tokenizer.cls_token_id is not None:
                for i, token in enumerate(ids):
                    if token == self.tokenizer.cls_token_id:
                        p_mask[i] = 0
            inputs = {
                k: list(enc[k][span]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc
            }
            if "token_type_ids" not in self.tokenizer.model_input_names:
                inputs.pop("token_type_ids", None)
            features.append(
                Feature(inputs, {"p_mask": np.array(p_mask, dtype=int), "encoding": enc.encodings[span]})
            )
        return features

    def forward(self, batch: dict[str, Any], params: Any) -> list[Any]:
        out = self.model(**batch)
        start, end = out.start_logits.float().numpy(), out.end_logits.float().numpy()
        return [(start[i, :n], end[i, :n]) for i, n in enumerate(batch["attention_mask"].sum(1).tolist())]

    def postprocess(
        self, item: Any, outputs: list[tuple[Feature, Any]], params: QuestionAnsweringParams
    ) -> Any:
        min_null_score = 1000000.0
        answers: list[dict[str, Any]] = []
        question_first = self.tokenizer.padding_side == "right"
        sequence_index = 1 if question_first else 0
        pre_topk = params.top_k * 2 + 10 if params.align_to_words else params.top_k
        context = item["context"]
        for feature, (start, end) in outputs:
            allowed = np.abs(feature.meta["p_mask"] - 1) & np.array(feature.inputs["attention_mask"])
            start = np.where(allowed == 0, -10000.0, start)
            end = np.where(allowed == 0, -10000.0, end)
            start = np.exp(start - start.max())
            start = start / start.sum()
            end = np.exp(end - end.max())
            end = end / end.sum()
            if params.handle_impossible_answer:
                min_null_score = min(min_null_score, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            starts, ends, scores = decode_spans(start, end, pre_topk, params.max_answer_len, allowed)
            enc = feature.meta["encoding"]
            for s, e, score in zip(starts, ends, scores):
                a, b = self.char_span(enc, int(s), int(e), sequence_index, params.align_to_words)
                text = context[a:b]
                same = next((x for x in answers if x["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += float(score)
                else:
                    answers.append({"score": float(score), "start": a, "end": b, "answer": text})
        if params.handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda x: x["score"], reverse=True)[: params.top_k]
        return answers[0] if len(answers) == 1 else answers

    @staticmethod
    def char_span(enc: Any, s: int, e: int, sequence_index: int, align_to_words: bool) -> tuple[int, int]:
        if align_to_words:
            try:
                start_word, end_word = enc.token_to_word(s), enc.token_to_word(e)
                return (
                    enc.word_to_chars(start_word, sequence_index=sequence_index)[0],
                    enc.word_to_chars(end_word, sequence_index=sequence_index)[1],
                )
            except Exception:  # a token with no word (e.g. special): fall back to token offsets
                pass
        return enc.offsets[s][0], enc.offsets[e][1]
