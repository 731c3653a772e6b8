"""Form bodies, read as the API reads bodies: capped (server/body.py), only after the route's guards.

Urlencoded forms are small and read whole (`FormBody`: COVE_MAX_JSON_BYTES; the card editor's `LargeFormBody`:
COVE_MAX_YAML_BYTES). Uploads are multipart and never held: `MultipartReader` parses the body as it arrives
and hands each file part out as a stream, which the blob store reads directly.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Coroutine, Generator, Iterator
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse

from cove.errors import HubError, HubRequestError
from cove.server.body import iter_body, read_body
from cove.server.settings import Settings


class Form:
    """The fields of a urlencoded form (the last value of a repeated field)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[-1] if values else default


def _form_reader(limit: str) -> Callable[[Request], Coroutine[Any, Any, Form]]:
    async def read(request: Request) -> Form:
        settings: Settings = request.app.state.hub.settings
        raw = await read_body(request, getattr(settings, limit), settings, setting=f"COVE_{limit.upper()}")
        content_type = request.headers.get("content-type", "")
        if raw and not content_type.startswith("application/x-www-form-urlencoded"):
            raise HubRequestError(
                f"This form takes application/x-www-form-urlencoded, not {content_type or 'no content type'!r}."
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HubRequestError("The form is not valid UTF-8: submit it from the hub's page.") from None
        return Form(parse_qs(text, keep_blank_values=True, max_num_fields=1000))

    read.__name__ = f"read_form_{limit}"
    return read


FormBody = Annotated[Form, Depends(_form_reader("max_json_bytes"))]
LargeFormBody = Annotated[Form, Depends(_form_reader("max_yaml_bytes"))]


def see_other(url: str) -> RedirectResponse:
    """The answer to a successful form post: go (GET) to url."""
    return RedirectResponse(url, status_code=303)


def _mapped(exc: HubError) -> tuple[int, str | None]:
    from cove.server.errors import _STATUS  # the one table from domain errors to statuses and codes

    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return status, code
    return 400, "BadRequest"


def status_of(exc: HubError) -> int:
    """The status server/errors.py gives a domain error, for a form shown again with the error."""
    return _mapped(exc)[0]


def error_headers(exc: HubError) -> dict[str, str]:
    """The headers of that answer: its X-Error-Code, and Connection: close when the rest of the body was
    never read (413, 408)."""
    status, code = _mapped(exc)
    headers = {"X-Error-Code": code} if code else {}
    if status in (408, 413):
        headers["Connection"] = "close"
    return headers


def body_chunks(request: Request, limit: int, setting: str) -> Generator[bytes, None, None]:
    """The request body's chunks (capped, with server/body.py's timeouts) for a plain route running in a
    worker thread: each chunk is awaited on the event loop, and all the work on it stays in the thread."""
    import anyio.from_thread

    settings: Settings = request.app.state.hub.settings
    chunks = iter_body(request, limit, settings, setting=setting)

    async def next_chunk() -> bytes | None:
        try:
            return await chunks.__anext__()
        except StopAsyncIteration:
            return None

    try:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            yield chunk
    finally:
        anyio.from_thread.run(chunks.aclose)  # type: ignore[attr-defined]


# --- multipart ------------------------------------------------------------------------------------

_MAX_HEADER_BYTES = 16 * 1024
_READ = 1 << 20


class Part:
    """One part of a multipart body: its field name, file name (None for a plain field) and a read(n) over
    its bytes, which pulls the body only as far as asked."""

    def __init__(self, reader: MultipartReader, name: str, filename: str | None) -> None:
        self._reader = reader
        self.name = name
        self.filename = filename
        self.done = False

    def read(self, n: int = -1) -> bytes:
        if self.done:
            return b""
        data, self.done = self._reader._read_part(_READ if n is None or n < 1 else n)
        return data

    def read_all(self, limit: int) -> bytes:
        """The whole part (a plain field), refused past limit bytes."""
        out = bytearray()
        while chunk := self.read(_READ):
            out += chunk
            if len(out) > limit:
                raise HubRequestError(f"Form field {self.name!r} is over {limit} bytes.")
        return bytes(out)


class MultipartReader:
    """A streaming multipart/form-data parser over an iterator of body chunks: parts() yields each part in
    order; a part must be read (or is skipped) before the next one begins. Memory holds one chunk and what a
    read asks for, whatever the body's size."""

    def __init__(self, chunks: Iterator[bytes], content_type: str) -> None:
        from python_multipart.multipart import parse_options_header

        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary or len(boundary) > 200:
            raise HubRequestError(
                "Uploads are multipart/form-data with a boundary: submit the upload form from the hub's page."
            )
        self._chunks = chunks
        self._delimiter = b"\r\n--" + boundary
        self._buf = bytearray(b"\r\n")  # so the first boundary looks like every later one
        self._eof = False
        self._part: Part | None = None

    def _fill(self, size: int) -> bool:
        """Read until the buffer holds size bytes or the body ends; whether it holds them."""
        while len(self._buf) < size and not self._eof:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                self._eof = True
        return len(self._buf) >= size

    def _malformed(self, what: str) -> HubRequestError:
        return HubRequestError(f"Malformed upload: {what}. Submit the upload form from the hub's page.")

    def _read_part(self, n: int) -> tuple[bytes, bool]:
        """Up to n bytes of the current part and whether the part ended with them."""
        d = self._delimiter
        self._fill(n + len(d))
        at = self._buf.find(d)
        if at != -1 and at <= n:
            data = bytes(self._buf[:at])
            del self._buf[: at + len(d)]
            return data, True
        if self._eof and at == -1 and len(self._buf) < n + len(d):
            raise self._malformed("the body ended inside a part")
        # bytes that cannot begin a delimiter are the part's
        take = min(n, len(self._buf) - len(d) + 1) if at == -1 else n
        data = bytes(self._buf[:take])
        del self._buf[:take]
        return data, False

    def parts(self) -> Iterator[Part]:
        # the preamble, up to and including the first delimiter
        while True:
            self._fill(len(self._buf) + len(self._delimiter))
            at = self._buf.find(self._delimiter)
            if at != -1:
                del self._buf[: at + len(self._delimiter)]
                break
            if self._eof:
                raise self._malformed("no part boundary found")
            del self._buf[: max(0, len(self._buf) - len(self._delimiter))]
        while True:
            if self._part is not None:
                while not self._part.done:  # skip what the caller did not read
                    self._part.read(_READ)
            self._fill(2)
            if self._buf[:2] == b"--":
                return
            end = self._headers_end()
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            self._part = self._new_part(head)
            yield self._part

    def _headers_end(self) -> int:
        while True:
            at = self._buf.find(b"\r\n\r\n")
            if at != -1:
                return at
            if len(self._buf) > _MAX_HEADER_BYTES:
                raise self._malformed(f"part headers over {_MAX_HEADER_BYTES} bytes")
            if self._eof:
                raise self._malformed("the body ended inside part headers")
            self._fill(len(self._buf) + 1)

    def _new_part(self, head: bytes) -> Part:
        from python_multipart.multipart import parse_options_header

        # the line after a boundary ends the boundary (optionally padded): the headers follow it
        lines = head.split(b"\r\n")
        if lines[0].strip():
            raise self._malformed("text after a part boundary")
        disposition = b""
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == b"content-disposition":
                disposition = value.strip()
        kind, params = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in params:
            raise self._malformed("a part without a form-data name")
        filename = params.get(b"filename")
        return Part(
            self,
            _text(params[b"name"]),
            None if filename is None else _text(filename),
        )


def _text(value: bytes) -> str:
    # browsers send UTF-8 names in the quoted parameter
    return codecs.decode(value, "utf-8", "replace")
