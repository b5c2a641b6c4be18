"""Slot pools with lending: the limiter behind every "at most N at once" of the rollout manager.

A :class:`SlotPool` counts slots (episodes in flight, sandboxes held). Plain counting deadlocks under
recursion: with a limit of 1, a parent holding the only slot waits for a child that waits for the slot.
The rule that removes the deadlock is *lending*: while an episode is blocked on its children (inside
``spawn``) it lends its own slot to them. A child first takes a free slot from the pool; if there is none it
may take its parent's lent slot (one child at a time). By induction on depth the deepest waiting episode can
always run a child, so the tree always makes progress, and the number of slots in use never exceeds the limit
(a lent slot is the parent's own slot, used by one child while the parent cannot use it).

Rejected alternative: separate pools per depth. It also avoids the deadlock but splits the budget into fixed
shares that sit idle when a run has no recursion.

Waiters are served first-in, first-out from the pool; a lent slot serves only the lender's children.
Everything here runs on the event-loop thread (no locks).
"""

from __future__ import annotations

from collections import deque

import anyio

__all__ = ["SlotPool", "Lease"]


class Lease:
    """One held slot. ``lend``/``unlend`` bracket the time its holder waits on children.

    Not meant to be subclassed or built directly: :meth:`SlotPool.acquire` returns it.
    """

    __slots__ = ("pool", "borrowed_from", "lending", "lent_free", "local_waiters")

    def __init__(self, pool: SlotPool, borrowed_from: Lease | None) -> None:
        self.pool = pool
        self.borrowed_from = borrowed_from
        """The parent lease this slot is borrowed from, or None for a slot of the pool."""
        self.lending = 0
        """Number of this holder's outstanding spawns (its slot is lendable while > 0)."""
        self.lent_free = False
        """True while the slot is lendable and no child holds it."""
        self.local_waiters: deque[_Waiter] | None = None

    def lend(self) -> None:
        """The holder starts waiting on a child: make its slot available to its children."""
        self.lending += 1
        if self.lending == 1:
            self.lent_free = True
            self.pool._serve_lent(self)

    def unlend(self) -> None:
        """A child of the holder finished; the last one ends the lending (the slot is back with the holder)."""
        self.lending -= 1
        if self.lending == 0:
            # Every child returned what it borrowed before its spawn ended, so the slot is free here.
            self.lent_free = False


class _Waiter:
    __slots__ = ("event", "lease", "parent", "done")

    def __init__(self, parent: Lease | None) -> None:
        self.event = anyio.Event()
        self.lease: Lease | None = None
        self.parent = parent
        self.done = False


class SlotPool:
    """A counting limiter whose holders can lend their slot to their children (see the module docstring).

    Args:
        limit: number of slots; None means unlimited (only the in-use count is kept).
    """

    __slots__ = ("limit", "free", "in_use", "peak", "waiters")

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"a slot limit must be >= 1 or None, got {limit}")
        self.limit = limit
        self.free = limit if limit is not None else 0
        self.in_use = 0
        self.peak = 0
        """Most slots ever in use at once (a lent slot counts once: it is its lender's)."""
        self.waiters: deque[_Waiter] = deque()

    @property
    def queued(self) -> int:
        """Number of acquirers waiting (approximate: includes waiters already served by a lent slot)."""
        return len(self.waiters)

    def try_acquire(self, parent: Lease | None = None) -> Lease | None:
        """A lease if one is available right now (a pool slot, else the parent's lent slot), else None."""
        if self.limit is None:
            self._use()
            return Lease(self, None)
        waiters = self.waiters
        while waiters and waiters[0].done:  # served elsewhere (a lent slot) or cancelled
            waiters.popleft()
        if self.free > 0 and not waiters:
            self.free -= 1
            self._use()
            return Lease(self, None)
        if parent is not None and parent.lent_free:
            parent.lent_free = False
            return Lease(self, parent)
        return None

    async def acquire(self, parent: Lease | None = None) -> Lease:
        """Wait for a slot. ``parent`` is the caller's parent lease (children may use its lent slot)."""
        lease = self.try_acquire(parent)
        if lease is not None:
            return lease
        w = _Waiter(parent)
        self.waiters.append(w)
        if parent is not None:
            if parent.local_waiters is None:
                parent.local_waiters = deque()
            parent.local_waiters.append(w)
        try:
            await w.event.wait()
        except BaseException:
            w.done = True
            if w.lease is not None:  # served and cancelled in the same breath: give it back
                self.release(w.lease)
            raise
        assert w.lease is not None
        return w.lease

    def _use(self) -> None:
        self.in_use += 1
        if self.in_use > self.peak:
            self.peak = self.in_use

    def release(self, lease: Lease) -> None:
        """Return a slot: to the first waiter that can use it, else to the pool (or the lender)."""
        parent = lease.borrowed_from
        if parent is not None:
            parent.lent_free = True
            self._serve_lent(parent)
            return
        self.in_use -= 1
        if self.limit is None:
            return
        while self.waiters:
            w = self.waiters.popleft()
            if not w.done:
                self._grant(w, Lease(self, None))
                return
        self.free += 1

    def _serve_lent(self, parent: Lease) -> None:
        q = parent.local_waiters
        while q and parent.lent_free:
            w = q.popleft()
            if not w.done:
                parent.lent_free = False
                self._grant(w, Lease(self, parent))

    def _grant(self, w: _Waiter, lease: Lease) -> None:
        if lease.borrowed_from is None:
            self._use()
        w.done = True
        w.lease = lease
        w.event.set()
