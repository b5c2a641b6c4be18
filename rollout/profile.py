"""``swarmgym run --profile FILE``: where a run's CPU goes, and which event-loop callbacks held the loop.

Two views, one report:

- **pyinstrument** (statistical, 1 ms) over the whole run — the manager, the envs, the policy client — as a
  call tree in text (``FILE``) and as pyinstrument's interactive HTML page (``FILE`` + ``.html``);
- **the slowest event-loop callbacks**: every callback the asyncio loop runs is timed (``Handle._run``
  wrapped for the duration of the run: one ``perf_counter`` pair per callback, no asyncio debug mode, whose
  checks would change what is measured) and the ``top`` longest are listed with what they ran. A callback
  that runs long delays every other episode's timers and I/O: this is the list to read when loop lag is high.
"""

from __future__ import annotations

import asyncio.events
import heapq
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["RunProfiler"]


def _describe(handle: asyncio.events.Handle) -> str:
    """What a callback ran: for a task's step or wake-up, the coroutine the task runs (a bare
    ``Task.task_wakeup`` says nothing about which episode or part of the manager held the loop)."""
    cb = getattr(handle, "_callback", None)
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        where = getattr(coro, "__qualname__", None) or type(coro).__name__
        frame = getattr(coro, "cr_frame", None)
        at = f" at {frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}" if frame is not None else ""
        return f"task {owner.get_name()} running {where}{at}"[:300]
    return repr(handle)[:300]


class RunProfiler:
    """Context manager profiling the code run inside it; writes the report on exit.

    Args:
        path: the text report; pyinstrument's HTML goes next to it (``path + ".html"``).
        top: how many of the slowest callbacks to list.
        interval_s: pyinstrument's sampling interval.

    Raises:
        ConfigError: pyinstrument is not installed (``pip install 'swarmgym[profile]'``).
    """

    def __init__(self, path: str | Path, *, top: int = 20, interval_s: float = 0.001) -> None:
        try:
            from pyinstrument import Profiler
        except ImportError:
            raise ConfigError("--profile needs pyinstrument: pip install 'swarmgym[profile]'") from None
        self.path = Path(path)
        self.top = top
        self._profiler = Profiler(interval=interval_s, async_mode="disabled")  # every frame, loop included
        self._slow: list[tuple[float, int, str]] = []  # min-heap of the `top` longest callbacks
        self._count = 0
        self._total = 0.0
        self._orig: Any = None

    def _wrap(self) -> None:
        orig = self._orig = asyncio.events.Handle._run
        slow, top, clock = self._slow, self.top, time.perf_counter
        me = self

        def _run(handle: asyncio.events.Handle) -> None:
            t0 = clock()
            try:
                orig(handle)
            finally:
                dt = clock() - t0
                me._count += 1
                me._total += dt
                if len(slow) < top:
                    heapq.heappush(slow, (dt, me._count, _describe(handle)))
                elif dt > slow[0][0]:
                    heapq.heapreplace(slow, (dt, me._count, _describe(handle)))

        asyncio.events.Handle._run = _run  # type: ignore[method-assign]

    def __enter__(self) -> RunProfiler:
        self._wrap()
        self._profiler.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        session = self._profiler.stop()
        asyncio.events.Handle._run = self._orig  # type: ignore[method-assign]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = self._profiler.output_text(unicode=True, color=False, show_all=False)
        lines = [
            text.rstrip(),
            "",
            f"Slowest event-loop callbacks ({self._count:,} callbacks ran, {self._total:.3f} s in all):",
        ]
        for dt, _, what in sorted(self._slow, reverse=True):
            lines.append(f"  {dt * 1000:9.2f} ms  {what}")
        self.path.write_text("\n".join(lines) + "\n")
        Path(str(self.path) + ".html").write_text(self._profiler.output_html())
        del session

    @property
    def callbacks(self) -> int:
        """Event-loop callbacks timed so far."""
        return self._count
