"""Coalesced timers: items due at about the same time share one ``loop.call_at`` per tick.

asyncio keeps every pending timer in one heap ordered by Python-level comparisons; with tens of thousands of
simulated model latencies or request deadlines pending, pushing and popping that heap is a visible share of
the loop's CPU. Grouped by tick, a loop keeps about ``horizon / tick`` timers instead of one per item, and an
item is due at most one tick late, never early.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["TickTimers"]


class TickTimers:
    """Buckets of items keyed by the tick they are due in; a subclass says what a bucket is (``_new_bucket``)
    and what happens when its tick comes (``_fire``). Belongs to one event loop."""

    __slots__ = ("loop", "tick", "buckets", "_per_tick")

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop = loop
        self.tick = tick
        self._per_tick = 1.0 / tick
        self.buckets: dict[int, Any] = {}

    def bucket_in(self, delay: float) -> Any:
        """The bucket of items due ``delay`` seconds from now (made, and its timer set, on first use)."""
        key = int((self.loop.time() + delay) * self._per_tick) + 1  # the next tick boundary: never early
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = self._new_bucket()
            self.loop.call_at(key * self.tick, self._due, key)
        return bucket

    def _due(self, key: int) -> None:
        self._fire(self.buckets.pop(key))

    def _new_bucket(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fire(self, bucket: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
