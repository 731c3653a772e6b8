"""Text the hub stores must be sendable: valid UTF-8 (no lone surrogates) without control characters."""

from __future__ import annotations

import re

from cove.errors import HubRequestError

# C0 and C1 control characters and DEL; a lone surrogate cannot be encoded as UTF-8 at all
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_text(value: str, what: str, *, multiline: bool = False) -> str:
    """Text that can be stored, listed and sent as UTF-8: no lone surrogates, no control characters
    (with multiline, tab, newline and carriage return are allowed). Refused at the door, so a stored row
    can never break a page or a list for others."""
    if not isinstance(value, str):
        raise HubRequestError(f"Invalid {what}: expected text, got {type(value).__name__}.")
    if _SURROGATE.search(value):
        raise HubRequestError(
            f"Invalid {what} {value!r}: it holds a lone surrogate, which is not valid UTF-8 text."
        )
    bad = _CONTROL.search(value.replace("\t", "").replace("\n", "").replace("\r", "") if multiline else value)
    if bad:
        raise HubRequestError(f"Invalid {what} {value!r}: control character {bad.group()!r} is not allowed.")
    return value
