"""A request body streamed into the blob store as it arrives: the event loop feeds a bounded queue, a worker
thread reads it as a file. Memory stays at a few chunks per upload, whatever the object's size."""

from __future__ import annotations

import asyncio
import contextlib
import io
import queue
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

T = TypeVar("T")
_END = object()


class _QueueReader(io.RawIOBase):
    def __init__(self, q: queue.Queue[Any]) -> None:
        self._q = q
        self._buf = bytearray()
        self._eof = False

    def readable(self) -> bool:
        return True

    def read(self, n: int | None = -1) -> bytes:
        want = -1 if n is None else n
        while not self._eof and (want < 0 or len(self._buf) < want):
            item = self._q.get()
            if item is _END:
                self._eof = True
            elif isinstance(item, BaseException):
                raise item  # the upload failed on the network side: the store aborts its write
            else:
                self._buf += item
        take = len(self._buf) if want < 0 else min(want, len(self._buf))
        out = bytes(self._buf[:take])
        del self._buf[:take]
        return out


async def pipe_to(
    chunks: AsyncIterator[bytes], consume: Callable[[io.RawIOBase], T], *, check: Callable[[int], None]
) -> T:
    """Run consume(file) in a worker thread on the bytes of chunks; check(total so far) may raise to stop
    the transfer, and then consume sees that exception and must leave nothing behind."""
    q: queue.Queue[Any] = queue.Queue(maxsize=8)
    task = asyncio.ensure_future(run_in_threadpool(consume, _QueueReader(q)))

    async def feed(item: Any) -> None:
        while not task.done():
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.002)

    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk)
            check(total)
            await feed(chunk)
            if task.done():
                break
    except BaseException as exc:
        await feed(exc)
        with contextlib.suppress(Exception):  # the worker re-raises exc (or failed already)
            await task
        raise
    await feed(_END)
    return await task
