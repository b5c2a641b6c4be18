"""Run synchronous judges off the event loop: in a worker thread, or in a worker process that can be killed.

A judge whose ``score`` does its work synchronously (math-verify, shapely rasters, langdetect) blocks every
episode of the event loop while it runs, and a cancel scope cannot interrupt it. Such a judge says so with a
class attribute, and :func:`run_judge` honours it:

- ``offload = "thread"``: ``score`` runs in a worker thread. At the timeout the episode stops waiting (the
  result is a judge timeout); the thread cannot be killed and finishes in the background.
- ``offload = "process"``: ``score`` runs in a worker process (a small pool per event loop of fresh
  ``python`` subprocesses). At the timeout the worker is killed, so a pathological input (a sympy
  simplification that never ends) costs nothing after it. The judge, task and trajectory are pickled (the
  judge's class must live in an importable module); the worker's context has ``step`` only (no sandbox,
  spawn, group or state).

``offload_timeout_s`` (attribute, default :data:`DEFAULT_TIMEOUT_S`) bounds an offloaded call even when the
env sets no judge timeout. The judge's ``score`` coroutine must not await anything (it is driven to
completion in one step in the worker); one that does gets a clear error.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
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
# Workers are plain ``python -c`` subprocesses speaking length-prefixed pickle frames over stdin/stdout, not
# multiprocessing's: its spawn/forkserver children re-import the parent's ``__main__``, which re-runs a user's
# training script that lacks an ``if __name__ == "__main__"`` guard. A judge class defined in ``__main__``
# therefore cannot be sent to a worker (a clear error says so); define it in a module.

_HEADER = struct.Struct("!Q")


def _send(f: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HEADER.pack(len(data)) + data)
    f.flush()


def _recv(f: Any) -> Any:
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        raise EOFError("the worker closed its pipe")
    (n,) = _HEADER.unpack(head)
    data = f.read(n)
    if len(data) < n:
        raise EOFError("the worker closed its pipe")
    return pickle.loads(data)


def serve() -> None:
    """A worker's main loop (``python -c "from swarmgym.judges.offload import serve; serve()"``)."""
    from .base import JudgeContext

    inp, out = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a judge's prints must not corrupt the frames
    while True:
        try:
            judge, task, traj, step = _recv(inp)
        except EOFError:
            return
        except BaseException as e:  # e.g. a judge class the worker cannot import
            _send(out, ("error", f"cannot load the judge in the worker: {type(e).__name__}: {e}"))
            continue
        try:
            res: tuple[str, Any] = ("ok", drive(judge, task, traj, JudgeContext(step=step)))
        except BaseException as e:  # the judge's failure is the answer; the worker lives on
            res = ("error", f"{type(e).__name__}: {e}")
        try:
            _send(out, res)
        except Exception as e:  # an unpicklable result
            _send(out, ("error", f"the judge's result cannot be sent back: {type(e).__name__}: {e}"))


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)  # import what the parent imports
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from swarmgym.judges.offload import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True,
        )

    def call(self, data: bytes) -> Any:
        f = self.proc.stdin
        f.write(_HEADER.pack(len(data)) + data)  # type: ignore[union-attr]
        f.flush()  # type: ignore[union-attr]
        return _recv(self.proc.stdout)

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(5)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except Exception:
                pass


class _ProcessPool:
    """Worker processes reused across calls; a worker that timed out or was cancelled is killed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.limiter = anyio.CapacityLimiter(size)
        self.idle: list[_Worker] = []
        # the pool lives as long as its event loop (a RunVar); its idle workers go with it
        weakref.finalize(self, _kill_all, self.idle)

    async def run(self, judge: Any, task: Task, trajectory: Trajectory, step: int, timeout: float) -> JudgeResult:
        try:
            data = pickle.dumps((judge, task, trajectory, step), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            raise TypeError(f"judge {type(judge).__name__} has offload='process' but cannot be pickled "
                            f"({type(e).__name__}: {e}); define it in a module, not in __main__ or a closure") from e
        async with self.limiter:
            w = self.idle.pop() if self.idle else await anyio.to_thread.run_sync(_Worker)
            ok = False
            try:
                with anyio.fail_after(timeout):
                    kind, value = await anyio.to_thread.run_sync(w.call, data, abandon_on_cancel=True)
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
