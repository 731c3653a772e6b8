"""README.md front matter (the model/dataset card's YAML) into the metadata the hub lists and filters by."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

from cove import errors
from cove.errors import CardTooLargeError, HubRequestError, InvalidCardError
from cove.store.text import check_text


def split_front_matter(text: str) -> str | None:
    """The YAML between the leading '---' lines, or None when the README has none."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "\n".join(lines[1:i])
    return None


# The YAML of one card; larger metadata is refused. libyaml parses this much in well under a second.
MAX_CARD_YAML_BYTES = 1024 * 1024
# Below this many characters a parse takes milliseconds and runs in the caller's thread; a larger one runs
# in a child process with a time limit: a thread would share the GIL with the server's event loop (a parse
# holds it throughout, so every other request waits) and yaml cannot be interrupted midway, a process can.
IN_PROCESS_MAX_CHARS = 64 * 1024
CARD_PARSE_TIMEOUT_SECONDS = 10.0
_children = threading.BoundedSemaphore(2)  # large parses at once per process; more wait their turn


def parse_yaml(content: str) -> dict[str, Any]:
    """Card YAML into a dict; a syntax error names the line; text that could not be listed or sent as
    UTF-8 (lone surrogates from YAML escapes, control characters) is refused."""
    import yaml

    try:
        content.encode("utf-8")
    except UnicodeEncodeError as exc:  # a str from a JSON body can hold what no UTF-8 README can
        raise InvalidCardError(
            f"The card metadata holds a lone surrogate at character {exc.start}, which is not valid UTF-8 "
            "text: fix the README.md front matter."
        ) from None
    size = len(content.encode("utf-8"))
    if size > MAX_CARD_YAML_BYTES:
        raise CardTooLargeError(
            f"The card metadata (README.md front matter) is {size:,} bytes, over the cap of "
            f"{MAX_CARD_YAML_BYTES:,}: move long content below the front matter."
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        data = yaml.load(content, Loader=loader) if content.strip() else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise HubRequestError(
            f"Invalid YAML in the card metadata{where}: {problem}. Fix the front matter."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HubRequestError(
            f"The card metadata must be a YAML mapping (key: value), got a {type(data).__name__}."
        )
    return _jsonable(data, [_MAX_NODES])


# YAML anchors let a few lines stand for an exponentially large document ("billion laughs"); copying the
# card into JSON would expand it, so the copy has a budget.
_MAX_NODES = 100_000


def _jsonable(value: Any, budget: list[int]) -> Any:
    import datetime as dt

    budget[0] -= 1
    if budget[0] < 0:
        raise CardTooLargeError(
            f"The card metadata is too large (over {_MAX_NODES} values once YAML anchors are expanded): "
            "shorten it or drop the anchors/aliases."
        )
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_clean_text(str(k)): _jsonable(v, budget) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, budget) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


def _clean_text(value: str) -> str:
    try:
        return check_text(value, "text in the card metadata", multiline=True)
    except HubRequestError as exc:
        raise InvalidCardError(f"{exc} Fix the README.md front matter.") from None


def parse_yaml_bounded(content: str, *, timeout: float = CARD_PARSE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """parse_yaml, in a child process with a time limit when the document is large (see above)."""
    if len(content) <= IN_PROCESS_MAX_CHARS:
        return parse_yaml(content)
    try:
        data = content.encode("utf-8")
    except UnicodeEncodeError:
        return parse_yaml(content)  # refuses it, with the position, before any parse
    if len(data) > MAX_CARD_YAML_BYTES:
        return parse_yaml(content)  # refused for its size at once
    with _children:
        try:
            done = subprocess.run(
                [sys.executable, "-c", "from cove.store.cards import _child; _child()"],
                input=data,
                capture_output=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise CardTooLargeError(
                f"Reading the card metadata took longer than {timeout:g} s and was stopped "
                "(COVE_YAML_TIMEOUT_SECONDS): shorten the README.md front matter."
            ) from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise HubRequestError(
            f"The card metadata could not be read: its checker process failed ({done.returncode})."
        ) from None
    if "error" in answer:
        kind = getattr(errors, answer["kind"], None)
        if not (isinstance(kind, type) and issubclass(kind, HubRequestError)):
            kind = HubRequestError
        raise kind(answer["error"])
    return answer["card"]


def card_from_readme_bounded(text: str, *, timeout: float = CARD_PARSE_TIMEOUT_SECONDS) -> dict[str, Any]:
    yaml_text = split_front_matter(text)
    return {} if yaml_text is None else parse_yaml_bounded(yaml_text, timeout=timeout)


def _child() -> None:
    """The child process: parse the YAML on stdin, answer JSON on stdout."""
    content = sys.stdin.buffer.read().decode("utf-8")
    try:
        out: dict[str, Any] = {"card": parse_yaml(content)}
    except HubRequestError as exc:
        out = {"error": str(exc), "kind": type(exc).__name__}
    sys.stdout.write(json.dumps(out))


def card_from_readme(text: str) -> dict[str, Any]:
    yaml_text = split_front_matter(text)
    return {} if yaml_text is None else parse_yaml(yaml_text)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def card_tags(card: dict[str, Any], repo_type: str) -> list[str]:
    """The tags the Hub derives from a card: its tags, library, pipeline, license, datasets, languages."""
    tags = _as_list(card.get("tags"))
    if repo_type == "model":
        tags += _as_list(card.get("library_name"))
        tags += _as_list(card.get("pipeline_tag"))
        tags += [f"dataset:{d}" for d in _as_list(card.get("datasets"))]
        tags += [f"base_model:{b}" for b in _as_list(card.get("base_model"))]
    tags += _as_list(card.get("language"))
    tags += [f"license:{lic}" for lic in _as_list(card.get("license"))]
    seen: dict[str, None] = {}
    for t in tags:
        seen.setdefault(t, None)
    return list(seen)
