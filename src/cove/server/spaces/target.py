"""Where a space's app can be reached: the contract between the runtime (build, sandbox, lifecycle) and the
proxy that serves the app at /spaces/{owner}/{name}/."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

# The stages as Hugging Face reports them in a space's runtime.
BUILDING = "BUILDING"
BUILD_ERROR = "BUILD_ERROR"
RUNNING = "RUNNING"
RUNTIME_ERROR = "RUNTIME_ERROR"
PAUSED = "PAUSED"
SLEEPING = "SLEEPING"
NO_APP_FILE = "NO_APP_FILE"
CONFIG_ERROR = "CONFIG_ERROR"
STAGES = (BUILDING, BUILD_ERROR, RUNNING, RUNTIME_ERROR, PAUSED, SLEEPING, NO_APP_FILE, CONFIG_ERROR)


@dataclass(frozen=True)
class SpaceTarget:
    """A space's stage and, when it is RUNNING, the address of its app's HTTP server.

    The app is reached over a unix socket (``uds``, the sandbox's side of the bridge) or a loopback TCP port
    (``port`` on ``host``); ``message`` says why a space that is not RUNNING is where it is (the error, or
    "starting")."""

    stage: str
    uds: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    message: str = ""

    @property
    def reachable(self) -> bool:
        return self.stage == RUNNING and (self.uds is not None or self.port is not None)


# The runtime's side: given a space repo id ("owner/name"), wake it (or start its build) if it has to and say
# where it is. Called on every proxied request, so it must be cheap when the space is already running, and it
# also counts the request as a visit (the sleep timer starts again).
Locate = Callable[[str], Awaitable[SpaceTarget]]
