"""A small thread-safe LRU for what the repo pages derive from immutable content (rendered READMEs,
weight headers, last commits per folder, dataset previews): keyed by sha256s or commit ids, so an entry
never goes stale, only old. Bounded by entry count and by a total weight (roughly bytes)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class LRU(Generic[V]):
    def __init__(
        self, max_items: int, max_weight: int | None = None, weigh: Callable[[V], int] | None = None
    ):
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._max_items = max_items
        self._max_weight = max_weight
        self._weigh = weigh or (lambda _value: 1)
        self._weight = 0
        self._guard = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._guard:
            hit = self._items.get(key)
            if hit is None:
                return None
            self._items.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: V) -> V:
        weight = self._weigh(value)
        if self._max_weight is not None and weight > self._max_weight:
            return value  # larger than the whole cache: not kept
        with self._guard:
            old = self._items.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._items[key] = (value, weight)
            self._weight += weight
            while len(self._items) > self._max_items or (
                self._max_weight is not None and self._weight > self._max_weight
            ):
                _, (_, dropped) = self._items.popitem(last=False)
                self._weight -= dropped
        return value

    def clear(self) -> None:
        with self._guard:
            self._items.clear()
            self._weight = 0
