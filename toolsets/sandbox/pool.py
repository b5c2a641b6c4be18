"""``SandboxPool``: pre-warmed, bounded, verified-reset sandboxes.

Usage::

    async with SandboxPool("local", size=16) as pool:
        async with pool.acquire() as sb:
            await sb.run_python("1 + 1")

A pool is also what an env takes as ``sandbox=``: ``AgentEnv(tasks, sandbox=SandboxPool(...))``; the env
enters ``pool.acquire()`` at reset and leaves it after judging. A pool that was never entered starts on its
first ``acquire`` (and should then be closed with ``await pool.close()``; sandboxes left open are still
killed at interpreter exit).

Design choices:

* **Acquire is a deque pop** when a sandbox is idle: no round trip, no health probe beyond "is the agent
  process alive" (a dead agent is discarded on the spot). Warm acquire costs microseconds.
* **Reset happens on release**, inline and shielded from cancellation, so no background task outlives a
  caller (no orphan tasks), and a sandbox is back in the pool only after its reset was **verified**: no
  stray process and the workspace hash equal to the pristine one. Anything else (a reset error, a dead or
  hung agent) discards the sandbox and starts a replacement, so the pool stays warm; a sandbox is never
  reused unverified.
* **Bounded**: at most ``size`` sandboxes exist; an acquire waits (FIFO) up to ``acquire_timeout_s`` and
  then raises :class:`~swarmgym.errors.SandboxError` naming the fix. Sandboxes are created on demand only:
  a failing backend is reported to the caller instead of being retried in a loop.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from ...errors import SandboxError
from .base import SandboxConfig
from .client import AgentSandbox
from .factory import create_sandbox, make_config

__all__ = ["SandboxPool", "PoolStats"]

log = logging.getLogger(__name__)


@dataclass
class PoolStats:
    """Counters of a pool (for metrics and tests)."""

    created: int = 0
    discarded: int = 0
    replaced: int = 0
    acquired: int = 0
    resets: int = 0
    failed_starts: int = 0


class SandboxPool:
    """A bounded pool of warm sandboxes (see the module docstring). Not meant to be subclassed.

    Args:
        backend: ``"local"`` (bubblewrap), ``"docker"`` or ``"unsafe"`` (no isolation; warns).
        config: configuration of every sandbox.
        size: most sandboxes alive at once (idle + in use).
        prewarm: sandboxes started by :meth:`start` (default: ``size``; a replacement is started whenever a
            discard drops the pool below it).
        acquire_timeout_s: how long :meth:`acquire` waits for a free sandbox.
        start_concurrency: sandboxes started at once while pre-warming (docker's daemon falls over at 32+
            parallel starts, so its default is lower).
        reset_timeout_s: deadline of a reset before the sandbox is declared broken.
        **overrides: fields of :class:`SandboxConfig` (e.g. ``network=True``).
    """

    def __init__(
        self,
        backend: str = "local",
        config: SandboxConfig | None = None,
        *,
        size: int = 8,
        prewarm: int | None = None,
        acquire_timeout_s: float = 60.0,
        start_concurrency: int | None = None,
        reset_timeout_s: float = 30.0,
        **overrides: Any,
    ) -> None:
        from .factory import BACKENDS

        if backend not in BACKENDS:
            from ...errors import ConfigError

            raise ConfigError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if size < 1:
            from ...errors import ConfigError

            raise ConfigError(f"pool size must be >= 1, got {size}")
        self.backend = backend
        self.config = make_config(config, **overrides)
        self.size = size
        self.prewarm = size if prewarm is None else max(0, min(prewarm, size))
        self.acquire_timeout_s = acquire_timeout_s
        self.start_concurrency = start_concurrency or (8 if backend == "docker" else 32)
        self.reset_timeout_s = reset_timeout_s
        self.stats = PoolStats()
        self._idle: deque[AgentSandbox] = deque()
        self._all: set[AgentSandbox] = set()
        self._reserved = 0  # sandboxes being created (counted against ``size``)
        self._waiters: deque[anyio.Event] = deque()
        self._started = False
        self._closed = False
        if backend == "unsafe":
            from .unsafe import warn_unsafe

            warn_unsafe()
        # A pool an env created and nobody closed (``gymnasium.make(...)`` then dropped) must not keep its
        # sandboxes until interpreter exit: when the pool is garbage collected, kill what it still holds.
        # The finalizer gets the set, not the pool, so it does not keep the pool alive.
        weakref.finalize(self, _kill_all_sync, self._all)

    # ------------------------------------------------------------------ lifecycle

    @property
    def total(self) -> int:
        """Sandboxes alive or being started."""
        return len(self._all) + self._reserved

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def in_use(self) -> int:
        return len(self._all) - len(self._idle)

    async def start(self) -> None:
        """Start ``prewarm`` sandboxes (concurrently, ``start_concurrency`` at a time). Idempotent."""
        if self._closed:
            raise SandboxError("this sandbox pool is closed; create a new SandboxPool")
        if self._started:
            return
        self._started = True
        await self._fill(self.prewarm)

    async def _fill(self, target: int) -> None:
        need = min(target, self.size) - self.total
        if need <= 0:
            return
        limiter = anyio.Semaphore(self.start_concurrency)
        errors: list[BaseException] = []

        async def one() -> None:
            async with limiter:
                try:
                    sb = await self._create()
                except SandboxError as e:
                    errors.append(e)
                    return
                self._idle.append(sb)
                self._wake()

        async with anyio.create_task_group() as tg:
            for _ in range(need):
                tg.start_soon(one)
        if errors and not self._idle and not self._all:
            raise errors[0]
        if errors:
            log.warning("sandbox pool: %d of %d sandboxes failed to start: %s", len(errors), need, errors[0])

    async def _create(self) -> AgentSandbox:
        self._reserved += 1
        try:
            sb = await create_sandbox(self.backend, self.config, _warn=False)
        except SandboxError:
            self.stats.failed_starts += 1
            raise
        finally:
            self._reserved -= 1
        if self._closed:
            await sb.close()
            raise SandboxError("the sandbox pool was closed")
        self._all.add(sb)
        self.stats.created += 1
        return sb

    async def close(self) -> None:
        """Close every sandbox of the pool (idle and in use). Safe to call twice."""
        self._closed = True
        while self._waiters:
            self._waiters.popleft().set()
        sbs = list(self._all)
        self._all.clear()
        self._idle.clear()
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for sb in sbs:
                    tg.start_soon(sb.close)

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<SandboxPool {self.backend} size={self.size} idle={self.idle} in_use={self.in_use}>"

    # ------------------------------------------------------------------ acquire / release

    def _wake(self) -> None:
        if self._waiters:
            self._waiters.popleft().set()

    async def _check_backend(self) -> None:
        """Fail fast when the backend's daemon is known not to answer (docker): an acquisition would only
        wait out a deadline, and an idle sandbox's stream goes through the same daemon."""
        if self.backend != "docker":
            return
        from .docker import _gate

        gate = _gate()
        if not gate.healthy:  # a probe may be due: it blocks up to the ping deadline, so not on the loop
            await anyio.to_thread.run_sync(gate.check)

    async def _take(self) -> AgentSandbox:
        await self._check_backend()
        if not self._started:
            await self.start()
        while True:
            if self._closed:
                raise SandboxError("this sandbox pool is closed; create a new SandboxPool")
            while self._idle:
                sb = self._idle.popleft()
                if sb.alive:
                    return sb
                await self._discard(sb, "agent died while idle", replace=False)
            if self.total < self.size:
                return await self._create()
            ev = anyio.Event()
            self._waiters.append(ev)
            try:
                await ev.wait()
            except BaseException:
                # Pass our wake-up on if we were woken and cancelled at once, so nobody starves.
                if ev.is_set():
                    self._wake()
                else:
                    try:
                        self._waiters.remove(ev)
                    except ValueError:
                        pass
                raise

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[AgentSandbox]:
        """Borrow a sandbox: ``async with pool.acquire() as sb``. It is reset and verified on exit.

        Raises:
            SandboxError: no sandbox became free within ``acquire_timeout_s``, the pool is closed, a new
                sandbox could not start, or the backend's daemon is not answering (docker; at once).
        """
        try:
            with anyio.fail_after(self.acquire_timeout_s):
                sb = await self._take()
        except TimeoutError:
            raise SandboxError(
                f"no sandbox became free within {self.acquire_timeout_s:g} s (pool size {self.size}, all in use); "
                "raise SandboxPool(size=…) or acquire_timeout_s, or release sandboxes sooner"
            ) from None
        self.stats.acquired += 1
        try:
            yield sb
        finally:
            await self._release(sb)

    async def _release(self, sb: AgentSandbox) -> None:
        with anyio.CancelScope(shield=True):
            reason: str | None = None
            if self._closed:
                reason = "pool closed"
            elif not sb.alive:
                reason = f"agent is dead ({sb._dead or 'process exited'})"
            else:
                try:
                    with anyio.fail_after(self.reset_timeout_s):
                        state = await sb.reset()
                    reason = sb.verify(state)
                except (SandboxError, TimeoutError) as e:
                    reason = f"reset failed: {e}"
                self.stats.resets += 1
            if reason is None:
                self._idle.append(sb)
                self._wake()
                return
            await self._discard(sb, reason, replace=not self._closed)

    async def _discard(self, sb: AgentSandbox, reason: str, *, replace: bool) -> None:
        if not self._closed:
            log.info("sandbox pool: discarding %s: %s", sb.id, reason)
        self._all.discard(sb)
        self.stats.discarded += 1
        await sb.close()
        if replace and self.total < max(self.prewarm, 1):
            try:
                new = await self._create()
            except SandboxError as e:
                log.warning("sandbox pool: replacement failed: %s", e)
            else:
                self.stats.replaced += 1
                self._idle.append(new)
        self._wake()


def _kill_all_sync(sandboxes: set[AgentSandbox]) -> None:
    for sb in list(sandboxes):
        try:
            sb._closed = True
            sb._kill_sync()
        except Exception as e:  # best effort at garbage collection time
            log.debug("could not kill sandbox %s: %s", sb.id, e)
    sandboxes.clear()
