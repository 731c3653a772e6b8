"""validate-yaml's check of a README's front matter (or a bare YAML document).

Small documents are parsed in a worker thread. Large ones are parsed in a child process
(`python -m cove.server.yamlcheck`), with a time limit: a thread would keep the event loop free of the
call, but not of the GIL, and a YAML parse holds it for seconds, making every other request wait at each
of its system calls; a child process shares nothing and can be killed when it runs too long.
"""

from __future__ import annotations

import asyncio
import json
import sys
import weakref

from starlette.concurrency import run_in_threadpool

from cove.errors import HubRequestError
from cove.store import card_from_readme, parse_yaml, split_front_matter

# below this many characters a parse takes milliseconds: not worth a process
IN_THREAD_MAX_CHARS = 64 * 1024
# child processes at once per event loop; more requests wait their turn
CONCURRENT_CHILDREN = 2
_limits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def problem_with(content: str) -> str | None:
    """What is wrong with the document, or None when it is valid. CPU-bound on large input."""
    try:
        if split_front_matter(content) is not None:
            card_from_readme(content)
        else:
            parse_yaml(content)
    except HubRequestError as exc:
        return str(exc)
    return None


async def check(content: str, *, timeout: float) -> str | None:
    if len(content) <= IN_THREAD_MAX_CHARS:
        return await run_in_threadpool(problem_with, content)
    loop = asyncio.get_running_loop()
    limit = _limits.setdefault(loop, asyncio.Semaphore(CONCURRENT_CHILDREN))
    async with limit:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cove.server.yamlcheck",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            out, _ = await asyncio.wait_for(
                proc.communicate(content.encode("utf-8", "surrogatepass")), timeout
            )
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise HubRequestError(
                f"Validating the YAML took longer than {timeout:g} s and was stopped "
                "(COVE_YAML_TIMEOUT_SECONDS): shorten the card metadata."
            ) from exc
    if proc.returncode != 0:
        raise HubRequestError("The YAML could not be validated: the checker failed on it.")
    return json.loads(out)["problem"]


def main() -> None:
    content = sys.stdin.buffer.read().decode("utf-8", "surrogatepass")
    sys.stdout.write(json.dumps({"problem": problem_with(content)}))


if __name__ == "__main__":
    main()
