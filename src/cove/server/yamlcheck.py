"""validate-yaml's check of a README's front matter (or a bare YAML document).

The store's bounded parse does the work (cove.store.cards: a large document is parsed in a child process with
a time limit, so it shares no GIL with the event loop and can be stopped); here it runs in a worker thread,
which only waits on that child.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from cove.errors import HubRequestError
from cove.store import card_from_readme_bounded, parse_yaml_bounded, split_front_matter


def problem_with(content: str, *, timeout: float) -> str | None:
    """What is wrong with the document, or None when it is valid."""
    try:
        if split_front_matter(content) is not None:
            card_from_readme_bounded(content, timeout=timeout)
        else:
            parse_yaml_bounded(content, timeout=timeout)
    except HubRequestError as exc:
        return str(exc)
    return None


async def check(content: str, *, timeout: float) -> str | None:
    return await run_in_threadpool(lambda: problem_with(content, timeout=timeout))
