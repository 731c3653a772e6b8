"""A space's build or run log: lines kept in memory (the last few thousand) and appended to a file, read by
the SSE log routes, which follow it as it grows."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

MAX_LINES = 5000


class LogBook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.lines: list[tuple[str, str]] = []  # (timestamp, line)
        self.dropped = 0  # lines that left the front of self.lines: an offset stays valid across trimming
        self.generation = 0  # bumped when a new build or run starts the log again

    def reset(self) -> None:
        with self._lock:
            self.lines = []
            self.dropped = 0
            self.generation += 1
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def write(self, text: str) -> None:
        stamp = dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")
        with self._lock:
            new = [(stamp, line) for line in text.rstrip("\n").split("\n")]
            self.lines.extend(new)
            if len(self.lines) > MAX_LINES:
                cut = len(self.lines) - MAX_LINES
                del self.lines[:cut]
                self.dropped += cut
            with self.path.open("a", encoding="utf-8", errors="replace") as f:
                f.writelines(f"{line}\n" for _, line in new)

    def since(self, generation: int, offset: int) -> tuple[int, int, list[tuple[str, str]]]:
        """(generation, next offset, lines from offset on); a new generation starts again at 0."""
        with self._lock:
            if generation != self.generation:
                offset = 0
            start = max(0, offset - self.dropped)
            return self.generation, self.dropped + len(self.lines), self.lines[start:]

    def tail(self, count: int = 20) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines[-count:])
