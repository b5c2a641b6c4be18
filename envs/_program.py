"""Run an outside agent program as a host subprocess: bounded output, a wall-clock timeout, no orphans.

The program runs in its own session (process group), so a timeout or a cancelled episode kills everything it
started, not only its first process; after the program exits, whatever it left running in its group is
killed too (an agent's background helper must not outlive its episode). A grandchild that escaped the group
and still holds the output pipes cannot hang the episode either: pipes are drained for at most ``grace_s``
after the exit. The result is the sandbox layer's :class:`~swarmgym.toolsets.sandbox.base.ExecResult`, so a
host program and a sandboxed one report the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence

import anyio
import anyio.to_thread

from ..toolsets.sandbox.base import ExecResult

__all__ = ["run_program", "describe_exit"]


class _Capped:
    """Keeps the first and last ``limit // 2`` bytes of a stream and counts what it dropped."""

    __slots__ = ("head", "tail", "half", "dropped")

    def __init__(self, limit: int) -> None:
        self.half = max(1, limit // 2)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            extra = len(self.tail) - self.half
            if extra > 0:
                del self.tail[:extra]
                self.dropped += extra

    def text(self) -> str:
        head = self.head.decode(errors="replace")
        tail = self.tail.decode(errors="replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes cut ...]\n{tail}"
        return head + tail


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def run_program(
    argv: Sequence[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    stdin_path: str | None = None,
    timeout_s: float,
    output_limit: int = 64 * 1024,
    grace_s: float = 2.0,
) -> ExecResult:
    """Run ``argv`` to completion (or until ``timeout_s``) and return what it did.

    The program's stdin is the file ``stdin_path`` (empty when None): a file, not a pipe, so the event loop
    never writes or closes a pipe per program (each took milliseconds on a loaded machine). The program is
    started from a worker thread: ``fork``/``exec`` blocks its caller until the child runs, 15 ms and more
    on a busy machine, which on the event loop would stall every other episode. Its exit is awaited on a
    pidfd and its output read from non-blocking pipes, all without a thread per program.

    On timeout the group gets SIGTERM, then SIGKILL after ``grace_s``; the result then has
    ``timed_out=True`` and ``exit_code=None``. Cancelling the caller kills the group at once.

    Raises:
        OSError: the program could not be started (no such file, not executable).
    """
    t0 = time.perf_counter()
    with anyio.CancelScope(shield=True):  # a started program is always owned by the try below
        proc = await anyio.to_thread.run_sync(_spawn, list(argv), cwd, dict(env), stdin_path)
    out, err = _Capped(output_limit), _Capped(output_limit)
    timed_out = False
    fds = [proc.stdout.fileno(), proc.stderr.fileno()]  # type: ignore[union-attr]
    pidfd = -1
    drained = [anyio.Event(), anyio.Event()]

    async def pump(fd: int, buf: _Capped, done: anyio.Event) -> None:
        try:
            while True:
                await anyio.wait_readable(fd)
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    break
                buf.add(data)
        finally:
            done.set()

    async def exited() -> None:
        await anyio.wait_readable(pidfd)
        proc.wait()  # already over: reaps at once

    try:
        pidfd = os.pidfd_open(proc.pid)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, fds[0], out, drained[0])
            tg.start_soon(pump, fds[1], err, drained[1])
            with anyio.move_on_after(timeout_s) as scope:
                await exited()
            if scope.cancelled_caught:
                timed_out = True
                _kill_group(proc.pid, signal.SIGTERM)
                with anyio.move_on_after(grace_s):
                    await exited()
            _kill_group(proc.pid, signal.SIGKILL)  # what the program left running dies with the episode
            if proc.returncode is None:
                await exited()
            with anyio.move_on_after(grace_s):
                for ev in drained:
                    await ev.wait()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:
                _kill_group(proc.pid, signal.SIGKILL)
                await anyio.to_thread.run_sync(proc.wait)
            for f in (proc.stdout, proc.stderr):
                if f is not None:
                    f.close()
            if pidfd >= 0:
                os.close(pidfd)
    code = proc.returncode
    return ExecResult(
        exit_code=None if timed_out else code,
        stdout=out.text(),
        stderr=err.text(),
        stdout_truncated=out.dropped,
        stderr_truncated=err.dropped,
        timed_out=timed_out,
        note=describe_exit(None if timed_out else code, timed_out, timeout_s),
        duration_s=time.perf_counter() - t0,
    )


def _spawn(argv: list[str], cwd: str, env: dict[str, str], stdin_path: str | None) -> subprocess.Popen[bytes]:
    with open(stdin_path or os.devnull, "rb") as stdin:
        proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                                env=env, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    os.set_blocking(proc.stdout.fileno(), False)
    os.set_blocking(proc.stderr.fileno(), False)
    return proc


def describe_exit(code: int | None, timed_out: bool, timeout_s: float | None) -> str:
    """A short human reason for how a program ended ('' for a clean exit)."""
    if timed_out:
        return f"ran past its timeout of {timeout_s:g} s and was killed" if timeout_s else "timed out and was killed"
    if code is None or code == 0:
        return ""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if code == 137:
        return "exited with status 137 (killed by SIGKILL: out of memory or killed from outside)"
    return f"exited with status {code}"
