"""Run the fake model server in a child process and wait until it is ready (for benchmarks and tests).

The child is ``python -m swarmgym.testing.fake_server`` (see :func:`swarmgym.testing.fake_server.serve`); it
prints one ready line with its URL, which is how the parent learns the port when it asked for port 0, and it
exits when its stdin pipe closes, so it never outlives the parent (even one killed with SIGKILL).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from .fake_server import DEFAULT_MODEL, READY_PREFIX

__all__ = ["FakeServerProcess", "start_fake_server_process"]


class FakeServerProcess:
    """A fake server running in a child process (see :func:`start_fake_server_process`).

    Attributes:
        base_url: OpenAI base URL (``…/v1``).
        url: server root (for SGLang clients).
        port: bound port.
        process: the ``subprocess.Popen`` handle.
    """

    def __init__(self, process: subprocess.Popen[bytes], base_url: str) -> None:
        self.process = process
        self.base_url = base_url
        self.url = base_url.removesuffix("/v1")
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and reap it (idempotent)."""
        p = self.process
        if p.stdin is not None and not p.stdin.closed:
            p.stdin.close()  # the child stops on stdin EOF; SIGTERM below covers a child stuck elsewhere
            try:
                # give the clean EOF shutdown a moment: a SIGTERM landing after the child has removed its
                # signal handlers (mid-shutdown) would kill it with -15 instead of a clean exit 0
                p.wait(min(timeout, 2.0))
            except subprocess.TimeoutExpired:
                pass
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p.stdout is not None:
            p.stdout.close()

    def __enter__(self) -> FakeServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> FakeServerProcess:
        return self

    async def __aexit__(self, *exc: object) -> None:
        import anyio

        await anyio.to_thread.run_sync(self.close)


def start_fake_server_process(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    latency: float | tuple[float, float] = 0.0,
    models: Sequence[str] = (DEFAULT_MODEL,),
    default_text: str | None = None,
    fail_rate: float = 0.0,
    fail_status: int = 500,
    seed: int = 0,
    ready_timeout: float = 30.0,
) -> FakeServerProcess:
    """Start ``python -m swarmgym.testing.fake_server`` and wait until it accepts requests.

    Blocks for the child's start-up (~0.3 s); call it through ``anyio.to_thread.run_sync`` from async code if
    that matters. Use the result as a context manager (sync or async) so the child is always reaped.

    Raises:
        RuntimeError: the server exited or did not report readiness within ``ready_timeout``; the message
            carries its stderr.
    """
    import selectors

    args = [sys.executable, "-m", "swarmgym.testing.fake_server", "--port", str(port), "--host", host]
    args.append("--stop-on-stdin-eof")  # the child exits when we close its stdin or die
    lat = f"{latency[0]},{latency[1]}" if isinstance(latency, tuple) else str(latency)
    args += ["--latency", lat, "--fail-rate", str(fail_rate), "--fail-status", str(fail_status), "--seed", str(seed)]
    for m in models:
        args += ["--model", m]
    if default_text is not None:
        args += ["--default-text", default_text]
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.PIPE)
    assert proc.stdout is not None
    deadline = time.monotonic() + ready_timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None and not sel.select(0):
                break
            if sel.select(min(left, 0.2)):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
    line = buf.decode(errors="replace").split("\n", 1)[0]
    if not line.startswith(READY_PREFIX):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        if proc.stdin is not None:
            proc.stdin.close()
        err.seek(0)
        stderr = err.read().decode(errors="replace")[-2000:]
        err.close()
        raise RuntimeError(f"fake server did not start (exit code {proc.returncode}): {stderr or line or 'no output'}")
    err.close()
    return FakeServerProcess(proc, line[len(READY_PREFIX) :].strip())
