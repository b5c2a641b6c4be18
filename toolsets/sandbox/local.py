"""Local backend: each sandbox is a bubblewrap (``bwrap``) jail around the agent. The default backend.

What a sandbox gets:

* new user, pid, network, ipc, uts and cgroup namespaces (``--unshare-all``): only ``lo`` inside, so no
  outbound connection, not even to the host's 127.0.0.1; ``--die-with-parent`` so nothing survives the
  owner; ``--new-session`` (no terminal injection).
* read-only binds of system paths only (``/usr`` and the merged-/usr symlinks, a short list of harmless
  ``/etc`` files: never ``/etc/shadow``, ``/root``, ``/home`` or the project checkout), ``/proc`` of its own
  pid namespace, a minimal ``/dev``, a private tmpfs ``/tmp`` and a private writable ``/workspace``.
* an unprivileged identity. As root, bubblewrap without ``--unshare-user --uid N`` leaves the child uid 0
  with full capabilities inside, so writable binds become host-root writes (FACTS.md); we go further and
  drop to uid/gid 65534 on the host *before* bwrap (``setpriv``), so even a kernel bug that escapes the
  namespaces lands as ``nobody``, and root-owned files that happen to be bound are "other" to the sandbox.
* limits: RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE on every process the agent starts, and, when
  this process may create cgroup v1 groups (root on a v1/hybrid host), per-sandbox ``pids.max`` (stops a
  fork bomb even for root) and ``memory.limit_in_bytes`` (OOM-kills a memory bomb, counts /tmp too).

Where user namespaces cannot be created, :func:`check_bwrap` fails with a message naming the docker
backend. Rejected alternatives: podman/crun (failed here: no CAP_SYS_RESOURCE, hybrid cgroups), gVisor's
``runsc do`` (0.19 s per start with ptrace), a fresh bwrap per call (5 ms per call vs 0.06 ms to a running
agent).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from typing import Any

import anyio

from ...errors import SandboxError
from ...wire import new_id
from . import reaper
from .base import SandboxConfig
from .client import AgentSandbox, bootstrap_code

__all__ = ["LocalSandbox", "check_bwrap", "start_local"]

SANDBOX_UID = 65534
"""The host uid sandboxes run as when swarmgym runs as root (``nobody``)."""

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = (
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/bash.bashrc",
    "/etc/inputrc",
    "/etc/mime.types",
    "/etc/ssl/certs",
    "/etc/debian_version",
    "/etc/os-release",
)


@functools.lru_cache(maxsize=1)
def check_bwrap() -> str:
    """Path of a bwrap that can create namespaces here.

    Raises:
        SandboxError: bwrap is missing or cannot create namespaces; the message names the fix and the
            docker backend.
    """
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxError(
            "the local sandbox needs bubblewrap: install it (Debian/Ubuntu: apt-get install -y bubblewrap), "
            "or use the docker backend: SandboxPool(backend='docker')"
        )
    argv = [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", *_merged_usr_args(), "true"]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        argv = _drop_privs_prefix() + argv
    try:
        p = subprocess.run(argv, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SandboxError(f"bwrap could not run ({e}); use the docker backend: SandboxPool(backend='docker')") from e
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace").strip()
        raise SandboxError(
            f"bubblewrap cannot create namespaces on this host ({err or 'exit ' + str(p.returncode)}). "
            "Enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 / "
            "user.max_user_namespaces > 0; inside a container run it with --privileged or a seccomp profile "
            "that allows unshare), or use the docker backend: SandboxPool(backend='docker')"
        )
    return path


def _merged_usr_args() -> list[str]:
    """Recreate /bin, /lib, … as the host has them (symlinks into /usr on merged-/usr systems)."""
    args: list[str] = []
    for d in SYSTEM_DIRS[1:]:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    return args


def _drop_privs_prefix() -> list[str]:
    return [
        shutil.which("setpriv") or "setpriv",
        f"--reuid={SANDBOX_UID}",
        f"--regid={SANDBOX_UID}",
        "--clear-groups",
    ]


@functools.lru_cache(maxsize=1)
def _cgroups_available() -> dict[str, str]:
    """cgroup v1 controllers this process can create groups in (``{"pids": path, "memory": path}``)."""
    out: dict[str, str] = {}
    if os.geteuid() != 0 or os.environ.get("SWARMGYM_SANDBOX_NO_CGROUPS"):
        return out
    for ctl in ("pids", "memory"):
        root = f"/sys/fs/cgroup/{ctl}"
        parent = os.path.join(root, reaper.CGROUP_PARENT)
        try:
            os.makedirs(parent, exist_ok=True)
            probe = os.path.join(parent, f"probe-{os.getpid()}")
            os.mkdir(probe)
            os.rmdir(probe)
        except OSError:
            continue
        out[ctl] = parent
    return out


class LocalSandbox(AgentSandbox):
    """A bubblewrap sandbox (see the module docstring). Create it with ``create_sandbox("local")``."""

    backend = "local"

    def __init__(self, config: SandboxConfig, sandbox_id: str) -> None:
        super().__init__(config, sandbox_id)
        self.host_dir = ""
        self.cgroups: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Host pid of the bwrap process."""
        return self._proc.pid if self._proc else None

    def _process_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill_sync(self) -> None:
        reaper.untrack(self.id)
        p = self._proc
        if p is not None:
            if p.poll() is None:
                try:
                    p.kill()  # bwrap's pid-1 child dies with it (--die-with-parent), taking the namespace down
                except OSError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
            for f in (p.stdin, p.stdout):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
        for cg in self.cgroups:
            reaper.remove_cgroup(cg)
            _rmdir_quiet(os.path.dirname(cg))  # the owner's group, once its last sandbox is gone
        self.cgroups = []
        if self.host_dir:
            shutil.rmtree(self.host_dir, ignore_errors=True)
            _rmdir_quiet(os.path.dirname(self.host_dir))
            self.host_dir = ""

    def _argv(self, ws_host: str) -> list[str]:
        cfg = self.config
        bwrap = check_bwrap()
        args = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if cfg.network:
            args.append("--share-net")
        args += ["--ro-bind", "/usr", "/usr", *_merged_usr_args()]
        for p in ETC_FILES:
            args += ["--ro-bind-try", p, p]
        args += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--bind", ws_host, cfg.workspace,
            *[a for src, dst in cfg.binds.items() for a in ("--ro-bind", src, dst)],
            "--remount-ro", "/",  # the skeleton bwrap builds (/, /etc, …) is a private tmpfs: make it read-only too
            "--chdir", cfg.workspace,
            "--hostname", "sandbox",
            "--clearenv",
        ]  # fmt: skip
        for k, v in cfg.env.items():
            args += ["--setenv", k, v]
        args += [cfg.python, "-S", "-u", "-c", bootstrap_code()]
        prefix: list[str] = []
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                raise SandboxError("running as root needs setpriv (util-linux) to drop to an unprivileged uid")
            prefix = _drop_privs_prefix()
        if self.cgroups:
            # A tiny sh joins the cgroups *before* exec'ing bwrap, so every process of the sandbox is
            # accounted from its first instruction (moving bwrap's pid afterwards would miss its children).
            joins = "; ".join(f'echo $$ > "{cg}/cgroup.procs"' for cg in self.cgroups)
            prefix = ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *prefix]
        return prefix + args

    def _setup_cgroups(self, owner: str) -> None:
        lim = self.config.limits
        for ctl, parent in _cgroups_available().items():
            path = os.path.join(parent, owner, self.id)
            try:
                _makedirs(path)
                if ctl == "pids":
                    _write(path, "pids.max", str(lim.pids))
                elif ctl == "memory":
                    _write(path, "memory.limit_in_bytes", str(lim.memory_mb * 1024 * 1024))
                    try:  # no swap either, when the kernel accounts it
                        _write(path, "memory.memsw.limit_in_bytes", str(lim.memory_mb * 1024 * 1024))
                    except OSError:
                        pass
            except OSError:
                reaper.remove_cgroup(path)
                continue
            self.cgroups.append(path)

    def _spawn_sync(self) -> None:
        owner = reaper.owner_tag()
        self.host_dir = os.path.join(reaper.sandbox_root(), owner, self.id)
        ws = os.path.join(self.host_dir, "workspace")
        _makedirs(ws, mode=0o700)
        os.chmod(os.path.dirname(self.host_dir), 0o711)
        os.chmod(reaper.sandbox_root(), 0o711)
        if os.geteuid() == 0:
            os.chown(ws, SANDBOX_UID, SANDBOX_UID)
            os.chmod(self.host_dir, 0o711)
        self._setup_cgroups(owner)
        argv = self._argv(ws)
        reaper.track(self.id, self._kill_sync)
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            # bwrap's own process stays visible as pid 1 inside (/proc/1/environ): never hand it the host's
            # environment, which may hold API keys.
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
            cwd="/",
            start_new_session=True,  # a ^C on the host terminal reaches swarmgym, which then closes us
        )

    def _agent_config(self) -> dict[str, Any]:
        cfg = super()._agent_config()
        cfg["rlimits"]["RLIMIT_NPROC"] = self.config.limits.pids  # binds: the agent runs as uid 65534, not root
        return cfg

    async def _start(self) -> None:
        try:
            self._spawn_sync()
            assert self._proc is not None and self._proc.stdin and self._proc.stdout
            await self._handshake(self._proc.stdout.fileno(), self._proc.stdin.fileno(), self._agent_config())
        except BaseException as e:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._kill_sync)
            if isinstance(e, SandboxError | anyio.get_cancelled_exc_class() | KeyboardInterrupt):
                raise
            if isinstance(e, TimeoutError):
                raise SandboxError(
                    f"local sandbox did not start within {self.config.start_timeout_s:g} s "
                    f"(is {self.config.python} present and runnable?)"
                ) from None
            raise SandboxError(f"local sandbox failed to start: {type(e).__name__}: {e}") from e

    async def _aclose_backend(self) -> None:
        p = self._proc
        if p is not None and p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
            # Wait without a thread when we can: the process usually dies within a millisecond.
            for _ in range(200):
                if p.poll() is not None:
                    break
                await anyio.sleep(0.005)
        await anyio.to_thread.run_sync(self._kill_sync)


def _makedirs(path: str, mode: int = 0o777) -> None:
    """makedirs that survives a concurrent close removing the (empty) owner directory in between."""
    for attempt in range(5):
        try:
            os.makedirs(path, mode=mode)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def _rmdir_quiet(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:  # not empty (other sandboxes of this owner) or already gone
        pass


def _write(d: str, name: str, value: str) -> None:
    with open(os.path.join(d, name), "w") as f:
        f.write(value)


async def start_local(config: SandboxConfig) -> LocalSandbox:
    """Start one local sandbox (check_bwrap runs once per process)."""
    if config.python == sys.executable and not config.python.startswith("/usr/"):
        raise SandboxError(f"{config.python} is not visible inside the sandbox: use a system python under /usr")
    sb = LocalSandbox(config, new_id("sb-"))
    await sb._start()
    return sb

