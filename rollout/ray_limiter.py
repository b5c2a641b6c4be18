"""Cluster-wide model-call limits for ``backend="ray"``: one small Ray actor holds the slots.

``RolloutLimits.max_model_calls`` and ``max_model_calls_per_role`` are global: "at most N calls to the model
server at once", whichever worker makes them. An even split between workers (N // workers each) holds the
total but wastes slots whenever the load is uneven (one worker waits while another's share sits idle), and
cannot express a limit below the number of workers. So every limited call asks one :class:`CallLimiter`
actor for a slot (one round trip) and gives it back (a one-way message). Calls without a limit never talk to
it. ``swarmgym bench ray`` measures what the round trip costs per episode.

Slots held by a worker process that dies would be lost for good; each worker incarnation registers under
its worker index when it starts, which frees whatever an earlier incarnation of that index held (Ray
restarts a dead worker at once, so this happens without the driver).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import deque
from typing import Any

import anyio

__all__ = ["CallLimiter", "RemoteSemaphore"]

GLOBAL = "*"  # the key of max_model_calls (role keys are role names)


class CallLimiter:
    """A Ray actor holding model-call slots: ``{key: limit}``, key ``"*"`` for the global limit."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.free = dict(limits)
        self.limits = dict(limits)
        self.waiters: dict[str, deque[tuple[str, str, asyncio.Future[None]]]] = {k: deque() for k in limits}
        self.held: dict[str, tuple[str, str]] = {}  # ticket -> (owner, key)
        self.gone: set[str] = set()  # tickets released before (or while) they were granted
        self.owners: dict[int, str] = {}  # worker index -> its live incarnation
        self.retired: set[str] = set()
        self.in_use = dict.fromkeys(limits, 0)
        self.peak = dict.fromkeys(limits, 0)
        self.granted = 0

    def register(self, index: int, owner: str) -> None:
        """A worker (re)started: what an earlier incarnation of this index held is free again."""
        old = self.owners.get(index)
        if old is not None and old != owner:
            self.retired.add(old)
            for ticket, (who, _) in list(self.held.items()):
                if who == old:
                    self.release(ticket)
            for q in self.waiters.values():
                for _, who, fut in q:
                    if who == old and not fut.done():
                        fut.cancel()
        self.owners[index] = owner

    async def acquire(self, key: str, ticket: str, owner: str) -> bool:
        """Wait for a slot of ``key``; False for a retired owner (a dead worker's late message)."""
        if owner in self.retired or ticket in self.gone:
            self.gone.discard(ticket)
            return False
        if self.free[key] > 0 and not self.waiters[key]:
            self._grant(key, ticket, owner)
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters[key].append((ticket, owner, fut))
        try:
            await fut
        except asyncio.CancelledError:
            return False
        return True

    def release(self, ticket: str) -> None:
        """Give a slot back (or withdraw a ticket still waiting)."""
        got = self.held.pop(ticket, None)
        if got is None:
            for q in self.waiters.values():
                for item in q:
                    if item[0] == ticket and not item[2].done():
                        item[2].cancel()
                        return
            self.gone.add(ticket)  # not seen yet: refuse it when it comes
            return
        key = got[1]
        self.in_use[key] -= 1
        q = self.waiters[key]
        while q:
            t, owner, fut = q.popleft()
            if not fut.done():
                self.held[t] = (owner, key)
                self._count(key)
                fut.set_result(None)
                return
        self.free[key] += 1

    def _grant(self, key: str, ticket: str, owner: str) -> None:
        self.free[key] -= 1
        self.held[ticket] = (owner, key)
        self._count(key)

    def _count(self, key: str) -> None:
        self.granted += 1
        self.in_use[key] += 1
        if self.in_use[key] > self.peak[key]:
            self.peak[key] = self.in_use[key]

    def stats(self) -> dict[str, Any]:
        """Limits, slots in use, the most ever in use at once, and slots granted (tests, diagnostics)."""
        import time

        return {"limits": self.limits, "in_use": self.in_use, "peak": self.peak, "granted": self.granted,
                "cpu_s": time.process_time()}  # fmt: skip


class RemoteSemaphore:
    """Stands in for an ``anyio.Semaphore`` of the manager: ``acquire``/``release`` on the limiter actor.

    Releases are one-way messages; a cancelled acquire withdraws its ticket (the actor serves calls from
    one caller in order, so the withdrawal never overtakes the request).
    """

    _ids = itertools.count()

    def __init__(self, actor: Any, key: str, owner: str) -> None:
        self.actor = actor
        self.key = key
        self.owner = owner
        self.tickets: list[str] = []  # held, oldest first (release order does not matter: slots are equal)

    async def acquire(self) -> None:
        ticket = f"{self.owner}/{next(self._ids)}"
        ref = self.actor.acquire.remote(self.key, ticket, self.owner)
        try:
            ok = await ref
        except anyio.get_cancelled_exc_class():
            self.actor.release.remote(ticket)
            raise
        if not ok:  # this process was retired by a newer incarnation: should not happen in a live worker
            raise RuntimeError("the model-call limiter no longer accepts this worker (it was restarted)")
        self.tickets.append(ticket)

    def release(self) -> None:
        self.actor.release.remote(self.tickets.pop())


def new_owner() -> str:
    """An id for this process incarnation."""
    return f"{os.getpid()}-{os.urandom(4).hex()}"
