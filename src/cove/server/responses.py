"""A JSON response that always renders: a value that JSON or UTF-8 cannot carry (a lone surrogate or a NaN
in a card stored before text was validated at the door) is replaced and logged, so one bad row never turns
a listing into a 500 for everyone."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)

_SURROGATES = re.compile("[\ud800-\udfff]")


def _dump(content: Any) -> bytes:
    # starlette's own JSONResponse encoding: compact, UTF-8, no NaN/Infinity (which JSON does not have)
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def sanitized(value: Any) -> Any:
    """value with lone surrogates in its strings (keys too) replaced by U+FFFD and non-finite floats by
    None, so it renders as JSON in UTF-8."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {sanitized(k) if isinstance(k, str) else k: sanitized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitized(v) for v in value]
    return value


class SafeJSONResponse(JSONResponse):
    """JSONResponse whose render never fails on text JSON cannot carry. The fast path is starlette's; only
    a body that fails is walked, item by item for a list, and each repaired item is logged (by its "id"
    when it has one)."""

    def render(self, content: Any) -> bytes:
        try:
            return _dump(content)
        except (UnicodeEncodeError, ValueError):
            pass
        if not isinstance(content, list):
            log.warning("a response held text that JSON/UTF-8 cannot carry; sent with it replaced")
            return _dump(sanitized(content))
        items = []
        for i, item in enumerate(content):
            try:
                _dump(item)
            except (UnicodeEncodeError, ValueError):
                name = item.get("id") if isinstance(item, dict) else None
                log.warning(
                    "response item %r holds text that JSON/UTF-8 cannot carry (a lone surrogate or NaN, "
                    "stored before text was validated); sent with it replaced",
                    sanitized(name) if name is not None else i,
                )
                item = sanitized(item)
            items.append(item)
        return _dump(items)
