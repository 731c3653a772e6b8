"""Streaming generated text: ``TextStreamer`` (print, or call a callback) and ``TextIteratorStreamer`` (an
iterator of text pieces, for a generate running in another thread), with transformers' interface.

``generate`` calls ``put(token_ids)`` with the prompt first, then with each new token, and ``end()`` once.
Text is released at word boundaries, so a piece never ends inside a word or a multi-byte character.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from queue import Empty, Queue
from typing import Any

from cove.errors import GenerationError


class BaseStreamer:
    def put(self, value: Any) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError


def _is_cjk(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


class TextStreamer(BaseStreamer):
    """Prints finished words as they come (or hands them to ``callback(text, stream_end)``)."""

    def __init__(
        self,
        tokenizer: Any,
        skip_prompt: bool = False,
        callback: Callable[[str, bool], Any] | None = None,
        **decode_kwargs: Any,
    ):
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.callback = callback
        self.decode_kwargs = decode_kwargs
        self.token_cache: list[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value: Any) -> None:
        if hasattr(value, "tolist"):
            value = value.tolist()
        if value and isinstance(value[0], list):
            if len(value) > 1:
                raise GenerationError(
                    f"{type(self).__name__} streams one sequence, got a batch of {len(value)}: "
                    "generate one prompt at a time when streaming."
                )
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.next_tokens_are_prompt = False
        self.token_cache.extend(int(v) for v in value)
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        if text.endswith("\n"):
            printable = text[self.print_len :]
            self.token_cache, self.print_len = [], 0
        elif text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            printable = ""
        elif text and _is_cjk(ord(text[-1])):
            printable = text[self.print_len :]
            self.print_len += len(printable)
        else:
            printable = text[self.print_len : text.rfind(" ") + 1]
            self.print_len += len(printable)
        self.on_finalized_text(printable)

    def end(self) -> None:
        printable = ""
        if self.token_cache:
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            printable = text[self.print_len :]
        self.token_cache, self.print_len = [], 0
        self.next_tokens_are_prompt = True
        self.on_finalized_text(printable, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if self.callback is not None:
            if text or stream_end:
                self.callback(text, stream_end)
            return
        print(text, flush=True, end="" if not stream_end else None)


class TextIteratorStreamer(TextStreamer):
    """Iterate over text pieces while ``generate`` runs in another thread::

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    Thread(target=model.generate, kwargs=dict(input_ids=ids, streamer=streamer)).start()
    for piece in streamer: ...
    """

    def __init__(
        self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None, **decode_kwargs: Any
    ):
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        self.text_queue: Queue[str | None] = Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            value = self.text_queue.get(timeout=self.timeout)
        except Empty:
            raise TimeoutError(f"No text from generate within {self.timeout} s.") from None
        if value is self.stop_signal:
            raise StopIteration
        return value
