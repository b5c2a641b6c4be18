"""Cleanup of sandboxes: on normal exit, on SIGINT/SIGTERM, and after a kill -9 (``gc``).

Every live sandbox registers a synchronous kill function here. The first registration (never an import)
installs an ``atexit`` hook and, when SIGTERM still has its default action, a SIGTERM handler that runs the
kill functions and then re-delivers the signal. SIGINT needs no handler: Python turns it into
``KeyboardInterrupt``, the stack unwinds through the pools' ``async with`` blocks, and ``atexit`` catches
whatever is left.

A kill -9 of the owner leaves things no in-process hook can remove. Local sandboxes die with their owner
(bubblewrap's ``--die-with-parent``) but leave their host directory and cgroups; docker containers keep
running. Both carry the owner's identity (pid + process start time, so a recycled pid is not mistaken for
the owner), and :func:`gc` removes whatever belongs to a dead owner.

The table of live sandboxes is the one piece of process-wide mutable state in this package: a signal
handler has no other way to find them.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable

__all__ = ["track", "untrack", "cleanup_all", "owner_tag", "owner_alive", "gc", "sandbox_root", "live_count"]

log = logging.getLogger(__name__)

_live: dict[str, Callable[[], None]] = {}
_installed = False
_lock = threading.Lock()


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_tag(pid: int | None = None) -> str:
    """``PID-STARTTIME`` of this (or the given) process: unique over the machine's uptime."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}-{_start_time(pid) or 0}"


def owner_alive(tag: str) -> bool:
    """True when the process that ``owner_tag`` named is still running."""
    try:
        pid_s, start = tag.split("-", 1)
        pid = int(pid_s)
    except ValueError:
        return False
    st = _start_time(pid)
    return st is not None and st == start


def boot_id() -> str:
    """This machine's boot id (labels docker containers, so gc never judges another host's owners)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def sandbox_root() -> str:
    """Host directory holding the local sandboxes' workspaces (``$SWARMGYM_SANDBOX_DIR`` overrides)."""
    return os.environ.get("SWARMGYM_SANDBOX_DIR") or os.path.join(tempfile.gettempdir(), "swarmgym-sandboxes")


def track(key: str, kill: Callable[[], None]) -> None:
    """Register a live sandbox's synchronous kill function."""
    global _installed
    with _lock:
        _live[key] = kill
        if not _installed:
            _installed = True
            atexit.register(cleanup_all)
            if threading.current_thread() is threading.main_thread():
                try:
                    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                        signal.signal(signal.SIGTERM, _on_sigterm)
                except ValueError:  # not the main thread of the main interpreter
                    pass


def untrack(key: str) -> None:
    """Forget a sandbox that was closed normally."""
    with _lock:
        _live.pop(key, None)


def live_count() -> int:
    """Number of sandboxes of this process not yet closed."""
    return len(_live)


def cleanup_all() -> int:
    """Kill every live sandbox of this process (synchronously); returns how many."""
    with _lock:
        items = list(_live.items())
        _live.clear()
    for key, kill in items:
        try:
            kill()
        except Exception as e:  # cleanup must go on for the others
            log.warning("cleanup of sandbox %s failed: %s", key, e)
    return len(items)


def _on_sigterm(signum: int, frame: object) -> None:
    cleanup_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


# ---------------------------------------------------------------------------------------------- gc

CGROUP_ROOTS = ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpu")
CGROUP_PARENT = "swarmgym"


def remove_cgroup(path: str) -> bool:
    """Kill the tasks of a cgroup (v1) and remove it with its children; True if it is gone."""
    if not os.path.isdir(path):
        return True
    for name in sorted(os.listdir(path)):
        sub = os.path.join(path, name)
        if os.path.isdir(sub):
            remove_cgroup(sub)
    for _ in range(200):
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = [int(x) for x in f.read().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError:
            import time

            time.sleep(0.01)
    return False


def _gc_local() -> int:
    removed = 0
    root = sandbox_root()
    if os.path.isdir(root):
        for tag in os.listdir(root):
            if not owner_alive(tag):
                shutil.rmtree(os.path.join(root, tag), ignore_errors=True)
                removed += 1
    for cg in CGROUP_ROOTS:
        parent = os.path.join(cg, CGROUP_PARENT)
        if os.path.isdir(parent):
            for tag in os.listdir(parent):
                p = os.path.join(parent, tag)
                if os.path.isdir(p) and not owner_alive(tag):
                    remove_cgroup(p)
    return removed


def gc(*, docker: bool = True) -> int:
    """Remove sandboxes whose owner process is dead; returns how many (local dirs + containers)."""
    n = _gc_local()
    if docker:
        try:
            from .docker import gc_containers
        except ImportError:  # the docker extra is not installed: nothing of ours can be running there
            return n
        n += gc_containers()
    return n
