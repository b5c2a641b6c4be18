"""Every call to a Docker daemon goes through one gate: a concurrency limit, a deadline, a health state.

Why: a daemon can wedge (seen here with Docker 20.10 on fuse-overlayfs: after ~150 parallel container
removals, ``docker kill``/``rm``/``inspect`` hung for minutes while ``docker ps`` still answered). The SDK's
own HTTP timeout is long and per request, and a blocked worker thread cannot be cancelled, so without a
gate one wedged daemon hangs the whole program in its cleanup.

How:

* **One limiter for all operations** (create, start, attach, kill, remove, list) on a daemon. dockerd falls
  over at 32+ parallel starts; 8 at once kept 256 sandboxes starting here.
* **A deadline per call.** The call runs in a thread of its own; when the deadline passes the caller gets a
  :class:`SandboxError` and the thread is *abandoned*, not joined (it keeps its limiter slot until the
  daemon answers, which is right: the daemon is still busy with it).
* **Health.** A missed deadline marks the daemon unhealthy: later calls fail at once with an error naming
  the daemon, instead of each waiting out its own deadline (256 sandboxes × 30 s at exit would be two
  hours). A cheap ping, at most every ``probe_interval_s``, brings it back when it answers again.
* **A daemon that is gone** (its socket refuses connections or drops them: dockerd stopped or crashed) is
  unhealthy too: the connection error becomes a :class:`SandboxError` naming the daemon, and later calls
  fail fast in the same way. An error the daemon *answered* with (404, 409, ...) is passed on unchanged.
* ``SWARMGYM_DOCKER_DEADLINE_S`` sets every deadline at once (a test that wedges a daemon, a user who
  knows theirs is slow).
* Containers that could not be removed are appended to a file (:func:`unremoved_path`) so that
  ``swarmgym sandbox gc`` removes them once the daemon answers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ...errors import SandboxError

__all__ = ["DaemonGate", "docker_gate", "unremoved_path", "record_unremoved", "take_unremoved"]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_LIMIT = 8
"""Concurrent operations per daemon (see the module docstring)."""
DEFAULT_DEADLINES = {"ping": 10.0, "create": 90.0, "start": 90.0, "remove": 60.0}
"""Seconds per operation; anything else gets ``"default"``. Generous: a busy daemon is slow, not dead."""
DEFAULT_DEADLINE = 60.0


class DaemonGate:
    """The gate for one daemon (see the module docstring). Thread-safe; usable from any thread.

    Args:
        name: how errors name the daemon (its ``DOCKER_HOST``).
        limit: operations in flight at once.
        deadlines: per-operation deadlines in seconds, merged over :data:`DEFAULT_DEADLINES`.
        probe: a function that raises unless the daemon answers (a ping), used to recover health.
        probe_interval_s: how often an unhealthy gate may probe.
    """

    def __init__(
        self,
        name: str,
        *,
        limit: int = DEFAULT_LIMIT,
        deadlines: dict[str, float] | None = None,
        probe: Callable[[], Any] | None = None,
        probe_interval_s: float = 5.0,
    ) -> None:
        self.name = name
        self.limit = limit
        self.deadlines = {**DEFAULT_DEADLINES, **(deadlines or {})}
        env = os.environ.get("SWARMGYM_DOCKER_DEADLINE_S")
        if env:
            try:
                every = float(env)
            except ValueError:
                raise SandboxError(f"SWARMGYM_DOCKER_DEADLINE_S must be a number of seconds, got {env!r}") from None
            self.deadlines = {op: every for op in {*self.deadlines, "default"}}
        self._slots = threading.BoundedSemaphore(limit)
        self._probe = probe
        self.probe_interval_s = probe_interval_s
        self._lock = threading.Lock()
        self._unhealthy: str | None = None
        self._last_probe = 0.0
        self.abandoned = 0
        """Calls whose thread was abandoned at their deadline."""

    @property
    def healthy(self) -> bool:
        return self._unhealthy is None

    def mark_unhealthy(self, why: str) -> None:
        with self._lock:
            if self._unhealthy is None:
                log.error("docker daemon %s marked unhealthy: %s", self.name, why)
            self._unhealthy = why
            self._last_probe = time.monotonic()

    def _check_health(self) -> None:
        if self._unhealthy is None:
            return
        with self._lock:
            due = time.monotonic() - self._last_probe >= self.probe_interval_s
            if due:
                self._last_probe = time.monotonic()
            why = self._unhealthy
        if due and self._probe is not None:
            try:
                self._run("ping", self._probe, (), {}, self.deadlines["ping"], probing=True)
            except Exception:
                with self._lock:  # the next probe waits a full interval after this one ended
                    self._last_probe = time.monotonic()
            else:
                with self._lock:
                    self._unhealthy = None
                log.warning("docker daemon %s answers again", self.name)
                return
        raise SandboxError(
            f"the Docker daemon at {self.name} is not answering ({why}); failing fast instead of waiting on it. "
            "Check `docker info`, restart dockerd if it hangs, then run `swarmgym sandbox gc`"
        )

    def check(self) -> None:
        """Raise :class:`SandboxError` when the daemon is unhealthy (probing it when a probe is due, which
        blocks up to the ping deadline: call from a thread)."""
        self._check_health()

    def call(self, op: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` (a blocking daemon call) under the limit and ``op``'s deadline.

        Raises:
            SandboxError: the daemon is unhealthy, or this call missed its deadline (the daemon is then
                marked unhealthy). Exceptions of ``fn`` itself propagate unchanged.
        """
        self._check_health()
        deadline = self.deadlines.get(op, self.deadlines.get("default", DEFAULT_DEADLINE))
        return self._run(op, fn, args, kwargs, deadline)

    def _run(
        self, op: str, fn: Callable[..., T], args: tuple, kwargs: dict, deadline: float, probing: bool = False
    ) -> T:
        start = time.monotonic()
        if not self._slots.acquire(timeout=deadline):
            why = f"all {self.limit} operation slots busy for {deadline:g} s (waiting to {op})"
            if not probing:
                self.mark_unhealthy(why)
            raise SandboxError(f"the Docker daemon at {self.name} did not answer: {why}")
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["value"] = fn(*args, **kwargs)
            except BaseException as e:  # handed to the caller, who re-raises it
                box["error"] = e
            finally:
                self._slots.release()
                done.set()

        threading.Thread(target=work, name=f"docker-{op}", daemon=True).start()
        if not done.wait(max(0.0, deadline - (time.monotonic() - start))):
            self.abandoned += 1
            why = f"{op} took longer than {deadline:g} s"
            if not probing:
                self.mark_unhealthy(why)
            raise SandboxError(f"the Docker daemon at {self.name} did not answer: {why} (call abandoned)")
        if "error" in box:
            err = box["error"]
            if _daemon_gone(err):
                why = f"{op} failed: {type(err).__name__}: {str(err)[:200]}"
                if not probing:
                    self.mark_unhealthy(why)
                raise SandboxError(f"the Docker daemon at {self.name} is not answering: {why}") from err
            raise err
        return box["value"]


def _daemon_gone(e: BaseException) -> bool:
    """True for a connection-level failure (refused, reset, socket missing, read timeout): the daemon did not
    answer. An HTTP error response (``docker.errors.APIError``) means it did, and is not this."""
    if not isinstance(e, OSError):  # requests' and urllib3's connection errors are OSErrors too
        return False
    try:
        from requests.exceptions import HTTPError
    except ImportError:  # no requests: no docker SDK either, so this is a plain socket error
        return True
    return not isinstance(e, HTTPError)


_gate: DaemonGate | None = None
_gate_lock = threading.Lock()


def docker_gate(probe: Callable[[], Any] | None = None) -> DaemonGate:
    """The process's gate for the daemon at ``DOCKER_HOST`` (one, shared, like the client); ``probe`` (used
    when the gate is first made) raises unless the daemon answers a ping."""
    global _gate
    with _gate_lock:
        if _gate is None:
            name = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
            _gate = DaemonGate(name, probe=probe)
        return _gate


def _reset_gate() -> None:
    """Forget the shared gate (tests that point DOCKER_HOST elsewhere)."""
    global _gate
    with _gate_lock:
        _gate = None


def unremoved_path() -> str:
    """File listing containers a run could not remove (``$SWARMGYM_STATE_DIR`` overrides the folder)."""
    base = os.environ.get("SWARMGYM_STATE_DIR") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state"), "swarmgym"
    )
    return os.path.join(base, "unremoved-containers.txt")


def record_unremoved(container_id: str) -> None:
    """Remember a container that could not be removed (one id per line, appended)."""
    path = unremoved_path()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            f.write(container_id + "\n")
    except OSError as e:  # never let bookkeeping hide the original failure
        log.warning("could not record unremoved container %s in %s: %s", container_id[:12], path, e)


def take_unremoved() -> list[str]:
    """The recorded container ids (the file is emptied; callers re-record what still fails)."""
    path = unremoved_path()
    try:
        with open(path) as f:
            ids = [line.strip() for line in f if line.strip()]
        os.unlink(path)
    except FileNotFoundError:
        return []
    return list(dict.fromkeys(ids))
