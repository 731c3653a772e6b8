"""``generate``: greedy, sampling and beam search over a decoder model with a preallocated KV cache.

Decisions follow transformers' generate step for step (same processors, same beam bookkeeping, positions
from the attention mask for left-padded prompts), so outputs are token-identical to it.
"""

from __future__ import annotations

import os
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cove.errors import GenerationError
from cove.generation.config import GenerationConfig
from cove.generation.logits_process import LogitsProcessorList, build_processors
from cove.hardware import step_threads
from cove.models.causal import one_thread, one_thread_layers
from cove.models.kv_cache import KVCache
from cove.models.outputs import ModelOutput


@dataclass(repr=False, eq=False)
class GenerateOutput(ModelOutput):
    sequences: Any = None
    sequences_scores: Any = None
    scores: Any = None


class StopStrings:
    """Stops a row once its generated text contains a stop string that ends in the newest token."""

    WINDOW = 24  # tokens decoded per check: stop strings are short

    def __init__(self, stop_strings: str | list[str], tokenizer: Any):
        if tokenizer is None:
            raise GenerationError(
                "stop_strings needs the tokenizer to read the generated text: pass tokenizer=... to generate."
            )
        self.strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
        self.tokenizer = tokenizer

    def hits(self, generated: torch.Tensor) -> torch.Tensor:
        """generated (rows, new tokens) -> (rows,) bool."""
        out = []
        for tokens in generated[:, -self.WINDOW :].tolist():
            before = self.tokenizer.decode(tokens[:-1])
            after = self.tokenizer.decode(tokens)
            out.append(
                any(after.find(s, max(0, len(before) - len(s) + 1)) != -1 for s in self.strings)
                if tokens
                else False
            )
        return torch.tensor(out, dtype=torch.bool, device=generated.device)


SMALL_STEP_ROWS = 32  # beam search over 8 inputs x 4 beams still has its arrangement measured


def small_step_limit(setting: int | None = None) -> int:
    """The largest forward pass (batch x new tokens, in token rows) whose thread arrangement generate chooses
    by measurement: ``setting`` (generate's ``small_step_rows=``), else ``COVE_SMALL_STEP_ROWS``, else 32; 0
    turns it off (every pass on the caller's thread count).

    Each op of such a step is microseconds of work: the matrix-vector products are bound by memory
    bandwidth, and attention and norms are tiny. Yet each op may open an OpenMP parallel region, whose
    barrier waits for every thread; on a machine with no idle core that wait is a scheduler time slice
    (measured 12-16 ms per region on 2 busy cores, against 10 us of work), thirty layers a token. On an idle
    machine, two threads read the weights faster than one. So the arrangement (decoder layers on one thread
    and the LM head on all, everything on one, or everything on all: cove.hardware.STEP_ARMS) is timed on
    the steps themselves and the fastest one runs (cove.hardware.StepThreads; ``COVE_STEP_THREADS`` fixes
    one). Matmuls and norms give the same bits on one thread or two; SDPA's single-query kernel can differ
    in the last bit (~1e-7, as transformers' own outputs do between thread counts), which left the greedy
    tokens of every parity test and benchmark run unchanged.

    torch's thread count is process-wide: while a one-thread step runs, torch work in the process's other
    threads runs on one thread too. A server that runs other torch work beside generation passes
    ``small_step_rows=0`` (or sets ``COVE_SMALL_STEP_ROWS=0``) and keeps its thread count fixed. Nothing
    outside generate changes the count: a model's forward does so only inside generate's steps.
    """
    if setting is None:
        raw = os.environ.get("COVE_SMALL_STEP_ROWS", str(SMALL_STEP_ROWS))
        try:
            setting = int(raw)
        except ValueError:
            raise GenerationError(f"COVE_SMALL_STEP_ROWS={raw!r} is not an integer.") from None
        source = f"COVE_SMALL_STEP_ROWS={raw!r}"
    else:
        source = f"small_step_rows={setting!r}"
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 0:
        raise GenerationError(f"{source} must be a non-negative integer (0 turns one-thread steps off).")
    return setting


def _prepare_config(
    model: Any, generation_config: GenerationConfig | None, kwargs: dict[str, Any]
) -> GenerationConfig:
    base = generation_config
    if base is None:
        base = getattr(model, "generation_config", None) or GenerationConfig.from_model_config(model.config)
    config = base.update(**kwargs)
    if config.pad_token_id is None and config.eos_ids():
        config.pad_token_id = config.eos_ids()[0]
    config.validate()
    return config


def _context_window(model: Any) -> int | None:
    config = model.config
    rope = getattr(config, "rope", None)
    if callable(rope) and rope().get("rope_type") == "dynamic":
        return None  # dynamic RoPE stretches past the trained length
    return getattr(config, "max_position_embeddings", None)


def generate(model: Any, *args: Any, **kwargs: Any) -> Any:
    return under_inference_mode(_generate, model, *args, **kwargs)


def under_inference_mode(run: Any, *args: Any, **kwargs: Any) -> Any:
    """run(...) under inference_mode (no autograd bookkeeping), its ids handed back as ordinary tensors, so
    they can feed a training step later."""
    with torch.inference_mode():
        out = run(*args, **kwargs)
    if isinstance(out, torch.Tensor):
        return out.clone()
    out.sequences = out.sequences.clone()
    return out


def _generate(
    model: Any,
    input_ids: Any = None,
    attention_mask: Any = None,
    generation_config: GenerationConfig | None = None,
    *,
    streamer: Any = None,
    tokenizer: Any = None,
    seed: int | None = None,
    truncate_prompt: bool = False,
    small_step_rows: int | None = None,
    **kwargs: Any,
) -> Any:
    small_rows = small_step_limit(small_step_rows)
    kwargs.pop("use_cache", None)  # the cache is always used
    if "inputs" in kwargs:  # transformers' name for the prompt
        if input_ids is not None:
            raise GenerationError("Pass the prompt once: input_ids or inputs, not both.")
        input_ids = kwargs.pop("inputs")
    token_types = kwargs.pop("token_type_ids", None)  # tokenizers may return it next to input_ids
    if token_types is not None and bool(torch.as_tensor(token_types).any()):
        raise GenerationError("generate does not use token_type_ids; pass prompts without segment ids.")
    config = _prepare_config(model, generation_config, kwargs)
    device = model.device
    if (
        input_ids is None
        or (hasattr(input_ids, "numel") and input_ids.numel() == 0)
        or (isinstance(input_ids, list) and not any(input_ids))
    ):
        if config.bos_token_id is None:
            raise GenerationError(
                "The prompt is empty and the model has no bos_token_id to start from: pass at least one token."
            )
        input_ids = torch.full((1, 1), config.bos_token_id, dtype=torch.long)
    if not isinstance(input_ids, torch.Tensor):
        input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    if input_ids.ndim == 1:
        input_ids = input_ids[None]
    if input_ids.ndim != 2:
        raise GenerationError(f"input_ids must be (batch, seq), got shape {tuple(input_ids.shape)}.")
    input_ids = input_ids.to(device=device, dtype=torch.long)
    attention_mask = prompt_attention_mask(input_ids, attention_mask, config)

    prompt_len = input_ids.shape[1]
    max_length = (
        prompt_len + config.max_new_tokens if config.max_new_tokens is not None else config.max_length
    )
    if max_length <= prompt_len:
        raise GenerationError(
            f"max_length={config.max_length} leaves no room after the {prompt_len}-token prompt: "
            "set max_new_tokens instead."
        )
    window = _context_window(model)
    if window is not None and max_length > window:
        room = window - (max_length - prompt_len)
        if not truncate_prompt or room <= 0:
            raise GenerationError(
                f"The prompt ({prompt_len} tokens) plus {max_length - prompt_len} new tokens exceeds the model's "
                f"context window of {window} tokens: shorten the prompt, lower max_new_tokens, or pass "
                "truncate_prompt=True to keep the prompt's last tokens."
            )
        input_ids = input_ids[:, -room:]
        attention_mask = attention_mask[:, -room:] if attention_mask is not None else None
        max_length, prompt_len = max_length - (prompt_len - room), room
    if config.min_new_tokens is not None and config.min_new_tokens > max_length - prompt_len:
        pass  # transformers allows it: eos is simply banned until the end
    stop = StopStrings(config.stop_strings, tokenizer) if config.stop_strings is not None else None
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))

    expand = rows_per_input(config, streamer)
    if expand > 1:
        input_ids = input_ids.repeat_interleave(expand, dim=0)
        attention_mask = (
            attention_mask.repeat_interleave(expand, dim=0) if attention_mask is not None else None
        )
    processors = build_processors(config, prompt_len, attention_mask)
    return run_search(
        model,
        input_ids,
        attention_mask,
        config,
        processors,
        max_length,
        stop,
        generator,
        streamer,
        small_rows,
    )


def prompt_attention_mask(
    input_ids: torch.Tensor, attention_mask: Any, config: GenerationConfig
) -> torch.Tensor | None:
    """The prompt's mask on input_ids' device, checked against its shape; without one, as transformers: a
    pad token that is not also eos marks padding by itself."""
    if attention_mask is not None:
        attention_mask = torch.as_tensor(attention_mask).to(device=input_ids.device, dtype=torch.long)
        if attention_mask.shape != input_ids.shape:
            raise GenerationError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids {tuple(input_ids.shape)}."
            )
        return attention_mask
    if (
        config.pad_token_id is not None
        and config.pad_token_id not in config.eos_ids()
        and bool((input_ids == config.pad_token_id).any())
    ):
        return input_ids.ne(config.pad_token_id).long()
    return None


def rows_per_input(config: GenerationConfig, streamer: Any) -> int:
    """How many decoding rows each input becomes: its beams, or its sampled sequences."""
    if config.num_beams > 1:
        if streamer is not None:
            raise GenerationError(
                "Streaming is not supported with beam search (num_beams > 1): use num_beams=1."
            )
        return config.num_beams
    return config.num_return_sequences if config.do_sample else 1


def run_search(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    processors: Any,
    max_length: int,
    stop: Any,
    generator: Any,
    streamer: Any,
    small_rows: int,
) -> torch.Tensor:
    """Beam search or greedy/sampling over rows already expanded; a streamer gets the prompt first and is
    ended last."""
    if streamer is not None:
        streamer.put(input_ids.cpu())
    if config.num_beams > 1:
        out = _beam_search(
            model, input_ids, attention_mask, config, processors, max_length, stop, generator, small_rows
        )
    else:
        out = _sample(
            model,
            input_ids,
            attention_mask,
            config,
            processors,
            max_length,
            stop,
            generator,
            streamer,
            small_rows,
        )
    if streamer is not None:
        streamer.end()
    return out


class _Decoder:
    """Runs the model one step at a time over a preallocated cache, mask and positions; a forward pass of at
    most ``small_rows`` token rows runs in the thread arrangement measured fastest for its kind (see
    ``small_step_limit``)."""

    def __init__(
        self,
        model: Any,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        max_length: int,
        small_rows: int,
    ):
        self.model = model
        self.small_rows = small_rows
        batch, self.prompt_len = input_ids.shape
        layers = model.config.num_hidden_layers
        self.cache = KVCache(layers, capacity=max_length)
        self.padded = attention_mask is not None and not bool(attention_mask.all())
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        if self.padded:
            assert attention_mask is not None
            self.mask = torch.ones(batch, max_length, dtype=torch.long, device=input_ids.device)
            self.mask[:, : self.prompt_len] = attention_mask
            self.positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        # what the measured arrangement is keyed by, beside the rows: which model, at which thread count
        inner = getattr(model, "model", model)
        self.kind = (type(inner).__name__, id(inner), str(getattr(inner, "dtype", "")))

    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._run(input_ids, self.positions, self.prompt_len)

    def step(self, tokens: torch.Tensor, length: int) -> torch.Tensor:
        """tokens (batch,) sit at index length - 1; returns logits (batch, 1, vocab)."""
        positions = None
        if self.padded:
            assert self.positions is not None
            self.positions = self.positions[:, -1:] + 1
            positions = self.positions
        return self._run(tokens[:, None], positions, length)

    def _run(self, ids: torch.Tensor, positions: torch.Tensor | None, length: int) -> torch.Tensor:
        mask = self.mask[:, :length] if self.mask is not None else None
        rows, threads = ids.numel(), torch.get_num_threads()
        if rows > self.small_rows or threads == 1 or ids.device.type != "cpu":
            return self._forward(ids, mask, positions)
        # a prefill's rows are bucketed by powers of two: prompts of similar length share a measurement
        phase = ("step", rows) if ids.shape[1] == 1 else ("prefill", 1 << (rows - 1).bit_length())
        kind = (*self.kind, threads, *phase)
        arm = step_threads.choose(kind)
        start = time.perf_counter()
        with _ARRANGEMENTS[arm]():
            logits = self._forward(ids, mask, positions)
        step_threads.record(kind, arm, time.perf_counter() - start)
        return logits

    def _forward(
        self, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None
    ) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=self.cache,
            logits_to_keep=1,
        )
        return out.logits


_ARRANGEMENTS: dict[str, Any] = {"layers": one_thread_layers, "one": one_thread, "all": nullcontext}


def small_step(rows: int, limit: int, switch: Any) -> AbstractContextManager[None]:
    """``switch()`` (one_thread_layers or one_thread) for a step of at most ``limit`` rows, else nothing."""
    return switch() if rows <= limit else nullcontext()


def _sample(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    max_length: int,
    stop: StopStrings | None,
    generator: torch.Generator | None,
    streamer: Any,
    small_rows: int,
) -> Any:
    batch, prompt_len = input_ids.shape
    device = input_ids.device
    eos = config.eos_ids()
    eos_t = torch.tensor(eos, device=device) if eos else None
    stops = eos_t is not None or stop is not None
    pad = config.pad_token_id
    if stops and pad is None:
        raise GenerationError(
            "Stopping at eos_token_id or stop_strings needs a pad_token_id for finished rows."
        )
    sequences = torch.empty(batch, max_length, dtype=torch.long, device=device)
    sequences[:, :prompt_len] = input_ids
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    decoder = _Decoder(model, input_ids, attention_mask, max_length, small_rows)
    logits = decoder.prefill(input_ids)
    all_scores: list[torch.Tensor] = []
    cur = prompt_len
    while True:
        # vocabulary-sized but cheap: on one thread at small batch (see small_step_limit)
        with small_step(batch, small_rows, one_thread):
            scores = logits[:, -1, :]
            if processors or config.do_sample or config.output_scores:
                scores = processors(sequences[:, :cur], scores.float())
            if config.output_scores:
                all_scores.append(scores)
            if config.do_sample:
                probs = F.softmax(scores, dim=-1)
                next_tokens = torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
            else:
                next_tokens = torch.argmax(scores, dim=-1)
            if stops:
                next_tokens = torch.where(unfinished, next_tokens, pad or 0)
            sequences[:, cur] = next_tokens
        cur += 1
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if eos_t is not None:
            unfinished &= ~torch.isin(next_tokens, eos_t)
        if stop is not None:
            unfinished &= ~stop.hits(sequences[:, prompt_len:cur])
        if cur >= max_length or (stops and not bool(unfinished.any())):
            break
        logits = decoder.step(next_tokens, cur)
    sequences = sequences[:, :cur]
    if config.return_dict_in_generate:
        return GenerateOutput(sequences=sequences, scores=tuple(all_scores) if config.output_scores else None)
    return sequences


def _gather(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    while index.ndim < tensor.ndim:
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def _beam_search(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    max_length: int,
    stop: StopStrings | None,
    generator: torch.Generator | None,
    small_rows: int,
) -> Any:
    """transformers' vectorised beam search: keep the top (1 + #eos) * beams continuations per step, continue
    the best unfinished ``num_beams``, and keep the best ``num_beams`` finished hypotheses by length-penalised
    score."""
    flat_batch, prompt_len = input_ids.shape
    beams = config.num_beams
    batch = flat_batch // beams
    device = input_ids.device
    eos = config.eos_ids()
    eos_t = torch.tensor(eos, device=device) if eos else None
    keep = max(2, 1 + len(eos)) * beams
    top_beam_mask = torch.cat(
        (torch.ones(beams, dtype=torch.bool), torch.zeros(keep - beams, dtype=torch.bool))
    ).to(device)
    fill = (config.pad_token_id or eos[0]) if eos else -1
    length_penalty, early_stopping = config.length_penalty, config.early_stopping

    running = torch.full((batch, beams, max_length), fill, dtype=torch.long, device=device)
    running[:, :, :prompt_len] = input_ids.view(batch, beams, prompt_len)
    sequences = running.clone()
    running_scores = torch.zeros(batch, beams, dtype=torch.float, device=device)
    running_scores[:, 1:] = -1e9
    beam_scores = torch.full((batch, beams), -1e9, dtype=torch.float, device=device)
    finished = torch.zeros(batch, beams, dtype=torch.bool, device=device)
    improvable = torch.ones(batch, 1, dtype=torch.bool, device=device)
    running_indices = torch.full(
        (batch, beams, max_length - prompt_len), -1, dtype=torch.int32, device=device
    )
    beam_indices = running_indices.clone()
    all_scores: list[torch.Tensor] = []

    decoder = _Decoder(model, input_ids, attention_mask, max_length, small_rows)
    logits = decoder.prefill(input_ids)
    cur = prompt_len
    flat_running = input_ids
    while True:
        # log_softmax makes a vocabulary-sized tensor for this step: the processors and the beams' running
        # scores write into it (the same values as transformers' copies, fewer passes over 32 x vocab)
        log_probs = F.log_softmax(logits[:, -1, :].float(), dim=-1)
        log_probs = processors(flat_running, log_probs, owned=True)
        vocab = log_probs.shape[-1]
        if config.output_scores:
            all_scores.append(log_probs)
            log_probs = (log_probs.view(batch, beams, vocab) + running_scores[:, :, None]).view(batch, -1)
        else:  # a processor may hand back a strided view (the repetition penalty's slice): made contiguous
            log_probs = log_probs.contiguous().view(batch, beams, vocab)
            log_probs = log_probs.add_(running_scores[:, :, None]).view(batch, -1)

        # top-k continuations over every beam's vocabulary
        if config.do_sample:
            topk_idx = torch.multinomial(F.softmax(log_probs, dim=-1), num_samples=keep, generator=generator)
            topk_log_probs = torch.gather(log_probs, 1, topk_idx)
        else:
            topk_log_probs, topk_idx = torch.topk(log_probs, k=keep)
        source_beam = topk_idx // vocab
        topk_indices = _gather(running_indices, source_beam)
        topk_sequences = _gather(running, source_beam)
        topk_sequences[:, :, cur] = topk_idx % vocab
        offset = torch.arange(batch, device=device).view(-1, 1) * beams
        topk_indices[:, :, cur - prompt_len] = (source_beam + offset).to(torch.int32)

        # which continuations end here
        flat_topk = topk_sequences[:, :, : cur + 1].reshape(batch * keep, cur + 1)
        hits = torch.full((batch * keep,), cur + 1 >= max_length, dtype=torch.bool, device=device)
        if eos_t is not None:
            hits |= torch.isin(flat_topk[:, -1], eos_t)
        if stop is not None:
            hits |= stop.hits(flat_topk[:, prompt_len:])
        hits = hits.view(batch, keep)

        # the best unfinished continuations run on
        cont_scores = topk_log_probs + hits.to(torch.float32) * -1.0e9
        next_idx = torch.topk(cont_scores, k=beams)[1]
        running = _gather(topk_sequences, next_idx)
        running_scores = _gather(cont_scores, next_idx)
        running_indices = _gather(topk_indices, next_idx)

        # finished hypotheses enter the kept set if they beat it
        just_finished = hits & top_beam_mask[None, :]
        final_scores = topk_log_probs / ((cur + 1 - prompt_len) ** length_penalty)
        full = torch.all(finished, dim=-1, keepdim=True) & (early_stopping is True)
        final_scores = final_scores + full.to(torch.float32) * -1.0e9
        final_scores = final_scores + (~improvable).to(torch.float32) * -1.0e9
        final_scores = final_scores + (~just_finished) * -1.0e9
        merged_idx = torch.topk(torch.cat((beam_scores, final_scores), dim=1), k=beams)[1]
        sequences = _gather(torch.cat((sequences, topk_sequences), dim=1), merged_idx)
        beam_scores = _gather(torch.cat((beam_scores, final_scores), dim=1), merged_idx)
        beam_indices = _gather(torch.cat((beam_indices, topk_indices), dim=1), merged_idx)
        finished = _gather(torch.cat((finished, just_finished), dim=1), merged_idx)

        source = running_indices[..., cur - prompt_len].reshape(-1).long()
        cur += 1

        # can any running beam still beat the worst kept hypothesis?
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_length - prompt_len
        else:
            best_len = cur - prompt_len
        best_running = running_scores[:, :1] / (best_len**length_penalty)
        worst_kept = torch.where(finished, torch.min(beam_scores, dim=1, keepdim=True)[0], -1.0e9)
        improvable = improvable & torch.any(best_running > worst_kept, dim=-1, keepdim=True)
        open_beam = not (bool(torch.all(finished)) and early_stopping is True)
        if not (bool(torch.any(improvable)) and open_beam and not bool(torch.all(hits))):
            break
        decoder.cache.reorder(source)
        flat_running = running[:, :, :cur].reshape(batch * beams, cur)
        logits = decoder.step(flat_running[:, -1], cur)

    n = config.num_return_sequences
    sequences = sequences[:, :n].reshape(batch * n, -1)
    beam_scores = beam_scores[:, :n].reshape(batch * n)
    beam_indices = beam_indices[:, :n].reshape(batch * n, -1)
    generated = int((beam_indices + 1).bool().sum(dim=1).max())
    sequences = sequences[:, : prompt_len + generated]
    if config.return_dict_in_generate:
        return GenerateOutput(
            sequences=sequences,
            sequences_scores=beam_scores if config.output_scores else None,
            scores=tuple(all_scores) if config.output_scores else None,
        )
    return sequences
