"""text-generation: continue a prompt, or answer a chat (a list of {"role", "content"} messages).

Outputs follow transformers' TextGenerationPipeline: a list of ``{"generated_text": ...}`` records per input
(one per returned sequence); for a chat, ``generated_text`` is the conversation with the assistant's reply
appended. ``stream=True`` returns an iterator of text pieces instead. Every ``generate`` option is accepted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cove.errors import PipelineError
from cove.pipelines.base import Pipeline, windows

# transformers' pipeline defaults for free-form generation; a call's own options override them
GENERATION_DEFAULTS = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}


@dataclass
class TextGenerationParams:
    return_full_text: bool = True
    return_tensors: bool = False
    prefix: str = ""
    continue_final_message: bool | None = None
    skip_special_tokens: bool = True
    clean_up_tokenization_spaces: bool | None = None
    add_special_tokens: bool | None = None
    stream: bool = False
    seed: int | None = None
    generate_kwargs: dict[str, Any] = field(default_factory=dict)


def is_chat(item: Any) -> bool:
    return (
        isinstance(item, (list, tuple))
        and bool(item)
        and all(isinstance(m, dict) and "role" in m for m in item)
    )


class TextGenerationPipeline(Pipeline):
    task = "text-generation"
    auto_model = "AutoModelForCausalLM"
    Params = TextGenerationParams
    default_batch_size = 1

    def __init__(self, model: Any = None, tokenizer: Any = None, **kwargs: Any):
        super().__init__(model, tokenizer, **kwargs)
        if not hasattr(self.model, "generate"):
            raise PipelineError(
                f"{type(self.model).__name__} cannot generate text: pass a causal language model."
            )

    def make_params(self, base: Any, overrides: dict[str, Any]) -> Any:
        from cove.generation.config import GenerationConfig

        overrides = dict(overrides)
        generation = {k: overrides.pop(k) for k in list(overrides) if k in GenerationConfig.field_names()}
        for key in ("streamer", "generation_config", "truncate_prompt"):
            if key in overrides:
                generation[key] = overrides.pop(key)
        params = super().make_params(base, overrides)
        params.generate_kwargs = {**base.generate_kwargs, **generation}
        return params

    def encode(self, item: Any, params: TextGenerationParams) -> tuple[Any, list[int]]:
        tokenizer_kwargs = (
            {} if params.add_special_tokens is None else {"add_special_tokens": params.add_special_tokens}
        )
        if is_chat(item):
            messages = [dict(m) for m in item]
            continue_final = params.continue_final_message
            if continue_final is None:
                continue_final = messages[-1]["role"] == "assistant"
            ids = self.tokenizer.apply_chat_template(
                messages,
                add_generation_prompt=not continue_final,
                continue_final_message=continue_final,
                tokenize=True,
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return messages, list(ids)
        if not isinstance(item, str):
            raise PipelineError(
                f"text-generation takes a prompt string or a chat (a list of {{'role', 'content'}} dicts), "
                f"got {type(item).__name__}."
            )
        return item, list(self.tokenizer(params.prefix + item, **tokenizer_kwargs)["input_ids"])

    def generate_options(self, params: TextGenerationParams) -> dict[str, Any]:
        options = {**GENERATION_DEFAULTS, **params.generate_kwargs}
        if "max_length" in params.generate_kwargs and "max_new_tokens" not in params.generate_kwargs:
            options.pop("max_new_tokens")
        if not options.get("do_sample") and "temperature" not in params.generate_kwargs:
            options.pop("temperature", None)
        if options.get("pad_token_id") is None and self.tokenizer.pad_token_id is not None:
            options["pad_token_id"] = self.tokenizer.pad_token_id
        return options

    def _left_pad(self, rows: list[list[int]]) -> tuple[Any, Any]:
        import torch

        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        longest = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (longest - len(r)) + r for r in rows], dtype=torch.long)
        mask = torch.tensor([[0] * (longest - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
        return ids, mask

    def records(
        self, prompt: Any, prompt_len: int, sequences: list[list[int]], params: TextGenerationParams
    ) -> list[Any]:
        out = []
        for seq in sequences:
            if params.return_tensors:
                out.append({"generated_token_ids": seq})
                continue
            text = self.tokenizer.decode(
                seq[prompt_len:],
                skip_special_tokens=params.skip_special_tokens,
                clean_up_tokenization_spaces=params.clean_up_tokenization_spaces,
            )
            if params.return_full_text:
                if isinstance(prompt, str):
                    text = prompt + text
                else:
                    continue_final = params.continue_final_message
                    if continue_final is None:
                        continue_final = prompt[-1]["role"] == "assistant"
                    if continue_final:
                        last = prompt[-1]
                        text = [*prompt[:-1], {"role": last["role"], "content": last["content"] + text}]
                    else:
                        text = [*prompt, {"role": "assistant", "content": text}]
            out.append({"generated_text": text})
        return out

    def __call__(self, inputs: Any, **params: Any) -> Any:
        call_params = self.make_params(self.params, params)
        if inputs is None:
            raise PipelineError("text-generation got None: pass a prompt string, a chat, or a list of them.")
        single = isinstance(inputs, str) or is_chat(inputs)
        items = [inputs] if single else inputs
        if call_params.stream:
            if not single:
                raise PipelineError("stream=True takes one prompt or chat at a time.")
            return self.stream(inputs, call_params)
        options = self.generate_options(call_params)
        results: list[Any] = []
        for chunk in windows(items, self.batch_size):
            encoded = [self.encode(item, call_params) for item in chunk]
            ids, mask = self._left_pad([e[1] for e in encoded])
            out = self.model.generate(ids, attention_mask=mask, seed=call_params.seed, **options)
            sequences = out.tolist() if hasattr(out, "tolist") else out.sequences.tolist()
            per_item = len(sequences) // len(chunk)
            width = ids.shape[1]
            for i, (prompt, _) in enumerate(encoded):
                rows = sequences[i * per_item : (i + 1) * per_item]
                results.append(self.records(prompt, width, rows, call_params))
        return results[0] if single else results

    def stream(self, item: Any, params: TextGenerationParams) -> Iterator[str]:
        """Text pieces of the reply as they are generated (generation runs in a background thread)."""
        import torch

        from cove.generation.streamers import TextIteratorStreamer

        _, ids = self.encode(item, params)
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=params.skip_special_tokens
        )
        options = self.generate_options(params)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self.model.generate(torch.tensor([ids]), streamer=streamer, seed=params.seed, **options)
            except BaseException as exc:  # surfaced to the reader below
                errors.append(exc)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        yield from streamer
        thread.join()
        if errors:
            raise errors[0]
