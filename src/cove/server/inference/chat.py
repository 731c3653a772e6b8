"""Generation in three protocols over one internal request (``GenerationJob``: prompt token ids and one
``SamplingParams`` per choice, decoded by the continuous batcher):

- TGI's ``/generate`` and ``/generate_stream`` (and the HF API's text-generation, which InferenceClient
  sends to ``/models/{repo_id}``): ``{"inputs", "parameters", "stream"}``; events ``data:{"index","token",
  "generated_text","details"}`` with no ``[DONE]``, the last carrying ``generated_text`` and ``details``.
- OpenAI's ``/v1/chat/completions`` (the tokenizer's chat template) and ``/v1/completions``; chunks
  ``chat.completion.chunk`` / ``text_completion`` ending with ``data: [DONE]``; ``stream_options.include_usage``
  adds a last chunk with ``usage`` and no choices.

Sampling follows each protocol: TGI samples when ``do_sample`` or any of temperature/top_k/top_p says so;
OpenAI samples at ``temperature`` 1 unless it is 0. A parameter Cove cannot honour (``best_of`` > 1,
``watermark``, ``top_n_tokens``, tools, ...) is a 422 naming it; the ones InferenceClient sends with their
neutral values are accepted.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import cove
from cove.server.inference import hf
from cove.server.inference.engine import ServedModel
from cove.server.inference.errors import InferenceFailedError, InferenceInputError, error_event
from cove.server.inference.generation import GenerationHandle, GenerationResult, SamplingParams, TokenEvent

MAX_CHOICES = 16
MAX_STOPS = 16
TGI_DEFAULT_NEW_TOKENS = 100  # InferenceClient's documented default for text_generation
COMPLETIONS_DEFAULT_TOKENS = 16  # OpenAI's /v1/completions default
FINISH = {"eos_token": "stop", "stop_sequence": "stop", "length": "length", "cancelled": "stop"}
FINGERPRINT = f"cove-{cove.__version__}"

TGI_PARAMETERS = {
    "adapter_id",
    "best_of",
    "decoder_input_details",
    "details",
    "do_sample",
    "frequency_penalty",
    "grammar",
    "max_new_tokens",
    "repetition_penalty",
    "return_full_text",
    "seed",
    "stop",
    "temperature",
    "top_k",
    "top_n_tokens",
    "top_p",
    "truncate",
    "typical_p",
    "watermark",
}
CHAT_KEYS = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "stop",
    "seed",
    "n",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "response_format",
    "tools",
    "tool_choice",
    "tool_prompt",
    "parallel_tool_calls",
    "user",
}
COMPLETION_KEYS = {
    "model",
    "prompt",
    "stream",
    "stream_options",
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "stop",
    "seed",
    "n",
    "echo",
    "frequency_penalty",
    "presence_penalty",
    "logprobs",
    "logit_bias",
    "best_of",
    "suffix",
    "user",
}


@dataclass
class GenerationJob:
    prompt: list[int]  # token ids
    choices: list[SamplingParams]
    model: str  # the name answers carry
    prompt_text: str = ""  # TGI's return_full_text, completions' echo
    stream: bool = False
    details: bool = False  # TGI
    full_text: bool = False  # TGI return_full_text / completions echo
    include_usage: bool = False  # OpenAI stream_options
    logprobs: bool = False  # OpenAI chat
    seed: int | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))


# -- parameter checks -----------------------------------------------------------------------------


def _int(value: Any, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InferenceInputError(f"{name} must be an integer >= {low}, got {value!r}.")
    return value


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InferenceInputError(f"{name} must be a number, got {value!r}.")
    return float(value)


def _stops(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or any(not isinstance(s, str) for s in stops):
        raise InferenceInputError(f"stop must be a string or a list of strings, got {value!r}.")
    if len(stops) > MAX_STOPS:
        raise InferenceInputError(f"stop takes at most {MAX_STOPS} strings, got {len(stops)}.")
    return [s for s in stops if s]


def _neutral(data: dict[str, Any], name: str, *neutral: Any) -> None:
    """Parameters Cove accepts only at their 'off' value (what clients send when the user set nothing)."""
    value = data.get(name)
    if value is not None and value not in neutral:
        raise InferenceInputError(f"{name}={value!r} is not supported by Cove's generation: leave it out.")


def _room(served: ServedModel, prompt: list[int]) -> int | None:
    window = served.generator.context_window if served.generator is not None else None
    if window is None:
        return None
    room = window - len(prompt)
    if room < 1:
        raise InferenceInputError(
            f"The prompt is {len(prompt)} tokens, and {served.repo_id!r}'s context window is {window} tokens: "
            "no room is left to generate. Shorten the prompt."
        )
    return room


def _new_tokens(served: ServedModel, prompt: list[int], asked: Any, name: str, default: int) -> int:
    """The asked limit (a prompt plus it past the context is refused by the batcher, naming the window),
    else the default, cut to the room the context leaves."""
    room = _room(served, prompt)
    if asked is not None:
        return _int(asked, name, 1)
    return default if room is None else min(default, room)


def _choices(base: SamplingParams, n: Any) -> list[SamplingParams]:
    count = 1 if n is None else _int(n, "n", 1)
    if count > MAX_CHOICES:
        raise InferenceInputError(f"n takes at most {MAX_CHOICES} choices, got {count}.")
    if count == 1 or base.seed is None:
        return [base] * count
    return [replace(base, seed=base.seed + i) for i in range(count)]  # seeded choices that still differ


# -- TGI ------------------------------------------------------------------------------------------


def tgi_job(served: ServedModel, body: dict[str, Any], *, stream: bool | None) -> GenerationJob:
    """A TGI request (stream None: the body's "stream" says, as on TGI's POST / and the HF API)."""
    hf.check_keys(body, {"inputs", "parameters", "stream", "options"}, "body field")
    prompt_text = hf.text(body.get("inputs"), "inputs")
    parameters = body.get("parameters")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise InferenceInputError(f"parameters must be an object, got {parameters!r:.60}.")
    hf.check_keys(parameters, TGI_PARAMETERS, "parameter")
    for name, neutral in (
        ("best_of", (1,)),
        ("decoder_input_details", (False,)),
        ("watermark", (False,)),
        ("top_n_tokens", (0,)),
        ("typical_p", (1, 1.0)),
        ("frequency_penalty", (0, 0.0)),
        ("grammar", ()),
        ("adapter_id", ()),
    ):
        _neutral(parameters, name, *neutral)
    if stream is None:
        stream = body.get("stream") or False
        if not isinstance(stream, bool):
            raise InferenceInputError(f"stream must be true or false, got {stream!r}.")
    prompt = list(served.tokenizer(prompt_text)["input_ids"])
    if not prompt:
        raise InferenceInputError("inputs tokenizes to no tokens: send some text.")
    truncate = parameters.get("truncate")
    if truncate is not None:
        prompt = prompt[-_int(truncate, "truncate", 1) :]
    temperature = parameters.get("temperature")
    top_k, top_p = parameters.get("top_k"), parameters.get("top_p")
    if temperature is not None and _float(temperature, "temperature") <= 0:
        raise InferenceInputError(f"temperature must be strictly positive, got {temperature!r}.")
    do_sample = parameters.get("do_sample") or False
    if not isinstance(do_sample, bool):
        raise InferenceInputError(f"do_sample must be true or false, got {do_sample!r}.")
    # TGI samples when any warper is set, not only with do_sample
    do_sample = bool(
        do_sample
        or (temperature is not None and float(temperature) != 1.0)
        or (top_k is not None and top_k != 0)
        or (top_p is not None and top_p != 1.0)
    )
    seed = parameters.get("seed")
    params = SamplingParams(
        max_new_tokens=_new_tokens(
            served, prompt, parameters.get("max_new_tokens"), "max_new_tokens", TGI_DEFAULT_NEW_TOKENS
        ),
        do_sample=do_sample,
        temperature=1.0 if temperature is None else float(temperature),
        top_k=0 if top_k is None else _int(top_k, "top_k", 0),
        top_p=1.0 if top_p is None else _float(top_p, "top_p"),
        repetition_penalty=_float(parameters.get("repetition_penalty") or 1.0, "repetition_penalty"),
        seed=None if seed is None else _int(seed, "seed"),
        stop=_stops(parameters.get("stop")),
    )
    return GenerationJob(
        prompt=prompt,
        choices=[params],
        model=served.repo_id,
        prompt_text=prompt_text,
        stream=stream,
        details=bool(parameters.get("details")),
        full_text=bool(parameters.get("return_full_text")),
        seed=params.seed,
    )


def _token(event: TokenEvent) -> dict[str, Any]:
    return {"id": event.token_id, "text": event.text, "logprob": event.logprob, "special": event.special}


def tgi_answer(job: GenerationJob, result: GenerationResult, events: list[TokenEvent]) -> dict[str, Any]:
    check_result(result)
    text = (job.prompt_text + result.text) if job.full_text else result.text
    out: dict[str, Any] = {"generated_text": text}
    if job.details:
        out["details"] = {
            "finish_reason": result.finish_reason,
            "generated_tokens": result.generated_tokens,
            "seed": job.seed,
            "prefill": [],
            "tokens": [_token(e) for e in events if e.token_id >= 0],
            "top_tokens": None,
            "best_of_sequences": None,
        }
    return out


async def tgi_stream(job: GenerationJob, handle: GenerationHandle) -> AsyncIterator[bytes]:
    text = ""
    index = 0
    try:
        async for event in handle:
            if event.token_id < 0:  # ended by no token: cancelled (the client left) or failed
                if event.finish_reason == "error":
                    yield sse(
                        error_event(InferenceFailedError(f"Generation failed: {event.error}")), tgi=True
                    )
                return
            text += event.text
            index += 1
            last = event.finish_reason is not None
            yield sse(
                {
                    "index": index,
                    "token": _token(event),
                    "generated_text": ((job.prompt_text + text) if job.full_text else text) if last else None,
                    "details": {
                        "finish_reason": event.finish_reason,
                        "generated_tokens": index,
                        "seed": job.seed,
                        "input_length": len(job.prompt),
                    }
                    if last
                    else None,
                    "top_tokens": None,
                },
                tgi=True,
            )
    finally:
        handle.cancel()  # a no-op once finished; the client's disconnect otherwise frees the row


# -- OpenAI ---------------------------------------------------------------------------------------


def _openai_common(body: dict[str, Any]) -> None:
    _neutral(body, "frequency_penalty", 0, 0.0)
    _neutral(body, "presence_penalty", 0, 0.0)
    if body.get("logit_bias"):
        raise InferenceInputError("logit_bias is not supported by Cove's generation: leave it out.")
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict):
            raise InferenceInputError(f"stream_options must be an object, got {stream_options!r:.60}.")
        hf.check_keys(stream_options, {"include_usage", "continuous_usage_stats"}, "stream_options field")


def _openai_sampling(
    served: ServedModel, body: dict[str, Any], prompt: list[int], max_tokens: Any, default: int
) -> SamplingParams:
    temperature = body.get("temperature")
    temperature = 1.0 if temperature is None else _float(temperature, "temperature")
    if not 0 <= temperature <= 2:
        raise InferenceInputError(f"temperature must be between 0 and 2, got {temperature}.")
    top_p = body.get("top_p")
    top_p = 1.0 if top_p is None else _float(top_p, "top_p")
    seed = body.get("seed")
    return SamplingParams(
        max_new_tokens=_new_tokens(served, prompt, max_tokens, "max_tokens", default),
        do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else 1.0,
        top_k=0 if body.get("top_k") is None else _int(body["top_k"], "top_k"),
        top_p=top_p,
        repetition_penalty=_float(body.get("repetition_penalty") or 1.0, "repetition_penalty"),
        seed=None if seed is None else _int(seed, "seed"),
        stop=_stops(body.get("stop")),
    )


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InferenceInputError('messages must be a non-empty list of {"role", "content"} objects.')
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InferenceInputError(f'messages[{i}] must be an object with a "role" and a "content".')
        content = message.get("content")
        if isinstance(content, list):  # OpenAI's content parts: text only
            texts = []
            for part in content:
                if (
                    not isinstance(part, dict)
                    or part.get("type") != "text"
                    or not isinstance(part.get("text"), str)
                ):
                    raise InferenceInputError(
                        f"messages[{i}].content holds a {part.get('type') if isinstance(part, dict) else part!r} "
                        "part: Cove's models take text parts only."
                    )
                texts.append(part["text"])
            content = "".join(texts)
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise InferenceInputError(f"messages[{i}].content must be a string, got {content!r:.60}.")
        clean = {k: v for k, v in message.items() if k in ("role", "name")}
        clean["content"] = content
        out.append(clean)
    return out


def chat_job(served: ServedModel, body: dict[str, Any], model: str) -> GenerationJob:
    hf.check_keys(body, CHAT_KEYS, "body field")
    _openai_common(body)
    if body.get("tools"):
        raise InferenceInputError(
            "tools (function calling) are not supported by Cove's chat: leave them out."
        )
    _neutral(body, "tool_choice", "none", "auto")
    _neutral(body, "top_logprobs", 0)
    _neutral(body, "tool_prompt", "")
    response_format = body.get("response_format")
    if response_format not in (None, {"type": "text"}):
        raise InferenceInputError(
            f"response_format={response_format!r:.80} is not supported (Cove does not constrain decoding): "
            'leave it out or send {"type": "text"}.'
        )
    messages = _messages(body.get("messages"))
    if not getattr(served.tokenizer, "chat_template", None):
        raise InferenceInputError(
            f"{served.repo_id!r} has no chat template in its tokenizer_config.json: use /v1/completions or "
            "/generate with a prompt."
        )
    ids = served.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(ids, "keys"):
        ids = ids["input_ids"]
    prompt = [int(i) for i in ids]
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    default = served.settings.inference_default_max_tokens
    base = _openai_sampling(served, body, prompt, asked, default)
    stream = body.get("stream") or False
    stream_options = body.get("stream_options") or {}
    return GenerationJob(
        prompt=prompt,
        choices=_choices(base, body.get("n")),
        model=model,
        stream=bool(stream),
        include_usage=bool(stream_options.get("include_usage")),
        logprobs=bool(body.get("logprobs")),
        seed=base.seed,
        id=f"chatcmpl-{secrets.token_hex(12)}",
    )


def completion_jobs(served: ServedModel, body: dict[str, Any], model: str) -> list[GenerationJob]:
    """One job per prompt (``prompt`` may be a list of strings); their choices are numbered across them."""
    hf.check_keys(body, COMPLETION_KEYS, "body field")
    _openai_common(body)
    _neutral(body, "best_of", 1)
    _neutral(body, "logprobs", 0)
    _neutral(body, "suffix", "")
    prompts = body.get("prompt")
    if isinstance(prompts, list) and prompts and all(isinstance(p, int | list) for p in prompts):
        raise InferenceInputError("prompt as token ids is not supported: send the text.")
    texts = hf.texts(prompts, "prompt")
    stream = body.get("stream") or False
    stream_options = body.get("stream_options") or {}
    jobs = []
    shared_id = f"cmpl-{secrets.token_hex(12)}"
    for text in texts:
        prompt = list(served.tokenizer(text)["input_ids"])
        base = _openai_sampling(served, body, prompt, body.get("max_tokens"), COMPLETIONS_DEFAULT_TOKENS)
        jobs.append(
            GenerationJob(
                prompt=prompt,
                choices=_choices(base, body.get("n")),
                model=model,
                prompt_text=text,
                stream=bool(stream),
                full_text=bool(body.get("echo")),
                include_usage=bool(stream_options.get("include_usage")),
                seed=base.seed,
                id=shared_id,
            )
        )
    return jobs


def check_result(result: GenerationResult) -> None:
    if result.finish_reason == "error":
        raise InferenceFailedError(f"Generation failed: {result.error}")


def _logprobs(tokenizer: Any, events: Sequence[TokenEvent]) -> dict[str, Any]:
    content = []
    for event in events:
        if event.token_id < 0:
            continue
        token = tokenizer.decode([event.token_id])
        content.append(
            {
                "token": token,
                "logprob": event.logprob,
                "bytes": list(token.encode("utf-8")),
                "top_logprobs": [],
            }
        )
    return {"content": content}


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_answer(
    job: GenerationJob, results: list[GenerationResult], events: list[list[TokenEvent]], tokenizer: Any
) -> dict[str, Any]:
    for result in results:
        check_result(result)
    return {
        "id": job.id,
        "object": "chat.completion",
        "created": job.created,
        "model": job.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": _logprobs(tokenizer, evs) if job.logprobs else None,
                "finish_reason": FINISH.get(result.finish_reason, "stop"),
            }
            for i, (result, evs) in enumerate(zip(results, events))
        ],
        "usage": _usage(len(job.prompt), sum(r.generated_tokens for r in results)),
    }


def completion_answer(jobs: list[GenerationJob], results: list[list[GenerationResult]]) -> dict[str, Any]:
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    for job, job_results in zip(jobs, results):
        prompt_tokens += len(job.prompt)
        for result in job_results:
            check_result(result)
            completion_tokens += result.generated_tokens
            choices.append(
                {
                    "index": len(choices),
                    "text": (job.prompt_text + result.text) if job.full_text else result.text,
                    "logprobs": None,
                    "finish_reason": FINISH.get(result.finish_reason, "stop"),
                }
            )
    first = jobs[0]
    return {
        "id": first.id,
        "object": "text_completion",
        "created": first.created,
        "model": first.model,
        "system_fingerprint": FINGERPRINT,
        "choices": choices,
        "usage": _usage(prompt_tokens, completion_tokens),
    }


async def merged(handles: list[GenerationHandle]) -> AsyncIterator[tuple[int, TokenEvent]]:
    """(choice index, event) of several handles as they come; cancels the rest when the consumer leaves."""
    if len(handles) == 1:
        async for event in handles[0]:
            yield 0, event
        return
    queue: asyncio.Queue[tuple[int, TokenEvent]] = asyncio.Queue()

    async def pump(i: int, handle: GenerationHandle) -> None:
        async for event in handle:
            await queue.put((i, event))

    tasks = [asyncio.ensure_future(pump(i, h)) for i, h in enumerate(handles)]
    try:
        open_ = len(handles)
        while open_:
            i, event = await queue.get()
            if event.finish_reason is not None:
                open_ -= 1
            yield i, event
    finally:
        for task in tasks:
            task.cancel()


async def chat_stream(
    job: GenerationJob,
    handles: list[GenerationHandle],
    tokenizer: Any,
    *,
    kind: str = "chat",
    echo: list[str] | None = None,
    prompt_tokens: int | None = None,
) -> AsyncIterator[bytes]:
    """OpenAI chunks; kind "completion" for /v1/completions, whose choices (numbered in handles' order)
    may come from several prompts: ``echo`` then holds each choice's prompt text, ``prompt_tokens`` their
    total."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    prompt_tokens = len(job.prompt) if prompt_tokens is None else prompt_tokens

    def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        data: dict[str, Any] = {
            "id": job.id,
            "object": obj,
            "created": job.created,
            "model": job.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if job.include_usage:
            data["usage"] = usage
        return sse(data)

    def choice(
        i: int, text: str | None, finish: str | None, event: TokenEvent | None = None
    ) -> dict[str, Any]:
        if kind == "chat":
            delta: dict[str, Any] = {"role": "assistant"}
            if text is not None:
                delta["content"] = text
            out: dict[str, Any] = {"index": i, "delta": delta, "finish_reason": finish}
            if job.logprobs:
                out["logprobs"] = _logprobs(tokenizer, [event]) if event is not None else None
            return out
        return {"index": i, "text": text or "", "logprobs": None, "finish_reason": finish}

    generated = 0
    try:
        if kind == "chat":
            yield chunk([choice(i, "", None) for i in range(len(handles))])
        elif echo:  # the prompt first
            yield chunk([choice(i, text, None) for i, text in enumerate(echo)])
        async for i, event in merged(handles):
            if event.token_id < 0:
                if event.finish_reason == "error":
                    yield sse(error_event(InferenceFailedError(f"Generation failed: {event.error}")))
                    return
                if event.finish_reason == "cancelled":
                    return
            else:
                generated += 1
            finish = FINISH.get(event.finish_reason) if event.finish_reason else None
            if event.text or finish is not None or (job.logprobs and event.token_id >= 0):
                text = event.text if (event.text or kind != "chat") else None
                yield chunk([choice(i, text, finish, event if event.token_id >= 0 else None)])
        if job.include_usage:
            yield chunk([], _usage(prompt_tokens, generated))
        yield b"data: [DONE]\n\n"
    finally:
        for handle in handles:
            handle.cancel()


def sse(data: dict[str, Any], *, tgi: bool = False) -> bytes:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data:{payload}\n\n".encode() if tgi else f"data: {payload}\n\n".encode()
