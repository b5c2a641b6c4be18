"""Run synchronous judges off the event loop: in a worker thread, or in a worker process that can be killed.

A judge whose ``score`` does its work synchronously (math-verify, shapely rasters, langdetect) blocks every
episode of the event loop while it runs, and a cancel scope cannot interrupt it. Such a judge says so with a
class attribute, and :func:`run_judge` honours it:

- ``offload = "thread"``: ``score`` runs in a worker thread. At the timeout the episode stops waiting (the
  result is a judge timeout); the thread cannot be killed and finishes in the background.
- ``offload = "process"``: ``score`` runs in a worker process (a small pool per event loop, started with
  ``forkserver`` so no thread state is inherited). At the timeout the worker is killed, so a pathological
  input (a sympy simplification that never ends) costs nothing after it. The judge, task and trajectory
  are pickled; the worker's context has ``step`` only (no sandbox, spawn, group or state).

``offload_timeout_s`` (attribute, default :data:`DEFAULT_TIMEOUT_S`) bounds an offloaded call even when the
env sets no judge timeout. The judge's ``score`` coroutine must not await anything (it is driven to
completion in one step in the worker); one that does gets a clear error.
"""

from __future__ import annotations

import multiprocessing
import os
import weakref
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from ..wire import JudgeResult, Task, Trajectory

__all__ = ["DEFAULT_TIMEOUT_S", "run_judge"]

DEFAULT_TIMEOUT_S = 60.0
"""Bound of an offloaded judge call when neither the judge nor the env sets one."""

_POOL: RunVar[_ProcessPool] = RunVar("swarmgym_judge_process_pool")


def drive(judge: Any, task: Task, trajectory: Trajectory, ctx: Any) -> JudgeResult:
    """Run a synchronous judge's ``score`` coroutine to completion without an event loop."""
    coro = judge.score(task, trajectory, ctx)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise TypeError(
        f"judge {type(judge).__name__} has offload={judge.offload!r} but its score() awaits something; "
        "only judges that are synchronous inside may be offloaded (remove the offload attribute)"
    )


async def run_judge(judge: Any, task: Task, trajectory: Trajectory, ctx: Any) -> JudgeResult:
    """``judge.score(...)``, off the event loop when the judge asks for it (see the module docstring).

    Raises:
        TimeoutError: an offloaded call exceeded its ``offload_timeout_s``.
    """
    how = getattr(judge, "offload", None)
    if how is None:
        return await judge.score(task, trajectory, ctx)  # type: ignore[no-any-return]
    timeout = float(getattr(judge, "offload_timeout_s", None) or DEFAULT_TIMEOUT_S)
    if how == "thread":
        with anyio.fail_after(timeout):
            return await anyio.to_thread.run_sync(drive, judge, task, trajectory, ctx, abandon_on_cancel=True)
    if how == "process":
        return await _pool().run(judge, task, trajectory, getattr(ctx, "step", 0), timeout)
    raise ValueError(f"judge {type(judge).__name__}: offload must be None, 'thread' or 'process', got {how!r}")


# ------------------------------------------------------------------------------------------ process pool


def _worker(conn: Any) -> None:
    from .base import JudgeContext

    while True:
        try:
            judge, task, traj, step = conn.recv()
        except (EOFError, OSError):
            return
        try:
            out: tuple[str, Any] = ("ok", drive(judge, task, traj, JudgeContext(step=step)))
        except BaseException as e:  # the judge's failure is the answer; the worker lives on
            out = ("error", f"{type(e).__name__}: {e}")
        try:
            conn.send(out)
        except Exception as e:  # an unpicklable result
            conn.send(("error", f"the judge's result cannot be sent back: {type(e).__name__}: {e}"))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True, name="swarmgym-judge")
        self.proc.start()
        child.close()

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.join(5)
        except Exception:
            pass
        self.conn.close()


class _ProcessPool:
    """Worker processes reused across calls; a worker that timed out or was cancelled is killed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.limiter = anyio.CapacityLimiter(size)
        self.idle: list[_Worker] = []
        # the pool lives as long as its event loop (a RunVar); its idle workers go with it
        weakref.finalize(self, _kill_all, self.idle)
        self.mp = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                              else "spawn")

    async def run(self, judge: Any, task: Task, trajectory: Trajectory, step: int, timeout: float) -> JudgeResult:
        async with self.limiter:
            w = self.idle.pop() if self.idle else await anyio.to_thread.run_sync(_Worker, self.mp)
            ok = False
            try:
                w.conn.send((judge, task, trajectory, step))
                with anyio.fail_after(timeout):
                    kind, value = await anyio.to_thread.run_sync(w.conn.recv, abandon_on_cancel=True)
                ok = True
            except TimeoutError:  # (an OSError subclass: re-raised as what it is)
                raise
            except (EOFError, OSError) as e:
                raise RuntimeError(f"the judge's worker process died ({type(e).__name__})") from None
            finally:
                if ok:
                    self.idle.append(w)
                else:  # timed out, cancelled or broken: the worker may still be computing; kill it
                    w.kill()
        if kind == "error":
            raise RuntimeError(f"judge {type(judge).__name__} failed in its worker process: {value}")
        return value  # type: ignore[no-any-return]


def _kill_all(workers: list[_Worker]) -> None:
    for w in workers:
        w.kill()
    workers.clear()


def _pool() -> _ProcessPool:
    try:
        return _POOL.get()
    except LookupError:
        pool = _ProcessPool(max(1, os.cpu_count() or 1))
        _POOL.set(pool)
        return pool
