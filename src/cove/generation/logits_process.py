"""Logits processors and warpers: (input_ids (batch, len), scores (batch, vocab)) -> scores.

Each one computes what transformers' processor of the same name computes, so that greedy, beam and sampled
outputs are token-identical; they are applied in transformers' order (see ``build_processors``).
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from cove.errors import GenerationError
from cove.generation.config import GenerationConfig


class LogitsProcessor(Protocol):
    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor: ...


class RepetitionPenaltyLogitsProcessor:
    """Divides positive / multiplies negative scores of every token already in the sequence; left padding
    (the first ``prompt_ignore_length[row]`` positions) does not count, as in transformers."""

    def __init__(self, penalty: float, prompt_ignore_length: torch.Tensor | None = None):
        self.penalty = penalty
        self.ignore = prompt_ignore_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        if self.ignore is not None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            input_ids = input_ids.masked_fill(
                positions[None, :] < self.ignore[:, None].to(input_ids.device), vocab
            )
        input_ids = input_ids.clamp(max=vocab)
        scores = F.pad(scores, (0, 1))  # a sink column for ignored (and out-of-vocabulary) ids
        score = torch.gather(scores, 1, input_ids)
        score = torch.where(score < 0, score * self.penalty, score / self.penalty)
        return scores.scatter(1, input_ids, score)[..., :vocab]


class NoRepeatNGramLogitsProcessor:
    def __init__(self, ngram_size: int):
        self.n = ngram_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        cur_len = input_ids.shape[1]
        if cur_len + 1 < self.n:
            return scores
        scores = scores.clone()
        for row, tokens in enumerate(input_ids.tolist()):
            prefix = tuple(tokens[cur_len + 1 - self.n :]) if self.n > 1 else ()
            banned = {
                tokens[i + self.n - 1]
                for i in range(cur_len - self.n + 1)
                if tuple(tokens[i : i + self.n - 1]) == prefix
            }
            if banned:
                scores[row, list(banned)] = -float("inf")
        return scores


class NoBadWordsLogitsProcessor:
    """Bans token sequences: a one-token sequence always (a static mask), a longer one's last token whenever the
    row ends with the rest of it. Single-token sequences equal to an eos id are dropped, as in transformers
    (its SequenceBiasLogitsProcessor with a -inf bias; masking gives the same scores)."""

    def __init__(self, bad_words_ids: list[list[int]], eos_token_id: list[int]):
        eos = set(eos_token_id)
        sequences = [list(s) for s in bad_words_ids if not (len(s) == 1 and s[0] in eos)]
        self.ids = sorted({token for s in sequences for token in s})
        self.singles = sorted({s[0] for s in sequences if len(s) == 1})
        # longer sequences grouped by prefix length, so each group is matched in one comparison
        by_length: dict[int, list[list[int]]] = {}
        for s in dict.fromkeys(tuple(s) for s in sequences if len(s) > 1):
            by_length.setdefault(len(s) - 1, []).append(list(s))
        self.groups = [
            (torch.tensor([s[:-1] for s in group]), torch.tensor([s[-1] for s in group]))
            for group in by_length.values()
        ]
        self._static: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        batch, vocab = scores.shape
        if self._static is None:
            outside = [token for token in self.ids if token >= vocab]
            if outside:
                raise GenerationError(
                    f"bad_words_ids holds token ids {outside} outside the model's vocabulary of {vocab}."
                )
            self._static = torch.zeros(vocab, dtype=torch.bool, device=scores.device)
            self._static[self.singles] = True
            self.groups = [(p.to(scores.device), t.to(scores.device)) for p, t in self.groups]
        banned = self._static.expand(batch, vocab)
        for prefixes, last in self.groups:  # prefixes (n, prefix_len), last (n,)
            length = prefixes.shape[1]
            if length > input_ids.shape[1]:
                continue
            matching = (input_ids[:, None, -length:] == prefixes).all(dim=-1)  # (batch, n)
            hits = torch.zeros(batch, vocab, dtype=torch.int32, device=scores.device)
            hits.index_add_(1, last, matching.to(torch.int32))
            banned = banned | (hits > 0)
        return scores.masked_fill(banned, -float("inf"))


class _EosBan:
    """Sets eos's scores to -inf while a sequence is too short: on a copy, or on ``scores`` itself when the
    caller owns it (``owned``: beam search's log-probabilities, a vocabulary-sized tensor made for the step)."""

    eos: list[int]

    def too_short(self, input_ids: torch.Tensor) -> bool:
        raise NotImplementedError

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, owned: bool = False) -> torch.Tensor:
        if not self.too_short(input_ids):
            return scores
        if not owned:
            scores = scores.clone()
        scores[:, self.eos] = -float("inf")
        return scores


class MinLengthLogitsProcessor(_EosBan):
    def __init__(self, min_length: int, eos_token_id: list[int]):
        self.min_length, self.eos = min_length, eos_token_id

    def too_short(self, input_ids: torch.Tensor) -> bool:
        return input_ids.shape[-1] < self.min_length


class MinNewTokensLengthLogitsProcessor(_EosBan):
    def __init__(self, prompt_length: int, min_new_tokens: int, eos_token_id: list[int]):
        self.prompt_length, self.min_new, self.eos = prompt_length, min_new_tokens, eos_token_id

    def too_short(self, input_ids: torch.Tensor) -> bool:
        return input_ids.shape[-1] - self.prompt_length < self.min_new


class ForcedBOSTokenLogitsProcessor:
    """The first generated token (after a one-token prompt, e.g. the decoder start) is ``bos_token_id``."""

    def __init__(self, bos_token_id: int):
        self.bos = bos_token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] == 1:
            scores = torch.full_like(scores, -float("inf"))
            scores[:, self.bos] = 0
        return scores


class ForcedEOSTokenLogitsProcessor:
    """The token that reaches ``max_length`` is an eos token."""

    def __init__(self, max_length: int, eos_token_id: int | list[int]):
        self.max_length = max_length
        self.eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] == self.max_length - 1:
            scores = torch.full_like(scores, -float("inf"))
            scores[:, self.eos] = 0
        return scores


class TemperatureLogitsWarper:
    def __init__(self, temperature: float):
        self.temperature = temperature

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class TopKLogitsWarper:
    def __init__(self, top_k: int, min_tokens_to_keep: int = 1):
        self.top_k = max(top_k, min_tokens_to_keep)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, scores.shape[-1])
        threshold = torch.topk(scores, k)[0][..., -1, None]
        return scores.masked_fill(scores < threshold, -float("inf"))


class TopPLogitsWarper:
    def __init__(self, top_p: float, min_tokens_to_keep: int = 1):
        self.top_p, self.min_keep = float(top_p), min_tokens_to_keep

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative <= (1 - self.top_p)  # the low tail holding at most 1 - top_p of the mass
        remove_sorted[..., -self.min_keep :] = False
        remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
        return scores.masked_fill(remove, -float("inf"))


class LogitsProcessorList(list):
    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, owned: bool = False) -> torch.Tensor:
        """The processors in order. ``owned``: the caller made ``scores`` for this call and lets processors
        that can write in place do so (the same values, one vocabulary-sized copy fewer); a processor's new
        tensor is owned by the ones after it."""
        for processor in self:
            out = (
                processor(input_ids, scores, owned)
                if isinstance(processor, _EosBan)
                else processor(input_ids, scores)
            )
            owned = owned or out is not scores
            scores = out
        return scores


def build_processors(
    config: GenerationConfig, prompt_length: int, attention_mask: torch.Tensor | None = None
) -> LogitsProcessorList:
    """The processors ``config`` asks for, in transformers' order (penalties, banned words, length limits, then warpers)."""
    out = LogitsProcessorList()
    eos = config.eos_ids()
    if config.repetition_penalty != 1.0:
        padding = (attention_mask != 0).int().argmax(dim=1) if attention_mask is not None else None
        out.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty, padding))
    if config.no_repeat_ngram_size > 0:
        out.append(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
    if config.bad_words_ids:
        out.append(NoBadWordsLogitsProcessor(config.bad_words_ids, eos))
    if eos and config.min_length > 0:
        out.append(MinLengthLogitsProcessor(config.min_length, eos))
    if eos and config.min_new_tokens:
        out.append(MinNewTokensLengthLogitsProcessor(prompt_length, config.min_new_tokens, eos))
    if config.forced_bos_token_id is not None:
        out.append(ForcedBOSTokenLogitsProcessor(config.forced_bos_token_id))
    if config.forced_eos_token_id is not None:
        max_length = (
            prompt_length + config.max_new_tokens if config.max_new_tokens is not None else config.max_length
        )
        out.append(ForcedEOSTokenLogitsProcessor(max_length, config.forced_eos_token_id))
    if config.do_sample:
        keep = (len(eos) + 1 if eos else 2) if config.num_beams > 1 else 1
        if config.temperature != 1.0:
            out.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            out.append(TopKLogitsWarper(config.top_k, keep))
        if config.top_p < 1.0:
            out.append(TopPLogitsWarper(config.top_p, keep))
    return out
