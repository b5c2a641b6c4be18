"""The Sandbox protocol, its result types and the configuration shared by every backend.

A sandbox is a place where untrusted, model-written code runs: shell commands (:meth:`Sandbox.exec`), a
stateful Python namespace (:meth:`Sandbox.run_python`, variables persist between calls like a notebook)
and files under a private workspace. Backends (``local`` = bubblewrap, ``docker``, ``unsafe`` = plain
subprocess) only differ in how they start the in-sandbox agent; see :mod:`.agent`.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Sandbox",
    "ExecResult",
    "PythonResult",
    "SandboxState",
    "SandboxLimits",
    "SandboxConfig",
    "BackendName",
    "DEFAULT_OUTPUT_LIMIT",
]

BackendName = Literal["local", "docker", "unsafe"]
DEFAULT_OUTPUT_LIMIT = 64 * 1024


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExecResult(_Result):
    """Outcome of :meth:`Sandbox.exec`."""

    exit_code: int | None
    """Exit status; negative = killed by that signal; None when the command timed out."""
    stdout: str = ""
    """Standard output, capped (head and tail kept, a marker says how much was cut)."""
    stderr: str = ""
    """Standard error, capped the same way."""
    stdout_truncated: int = 0
    """Bytes of stdout dropped by the cap."""
    stderr_truncated: int = 0
    """Bytes of stderr dropped by the cap."""
    timed_out: bool = False
    """The command hit its timeout and its whole process group was killed."""
    note: str = ""
    """Why the command ended when that is not obvious (a signal, out of memory, a limit)."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0

    @property
    def output(self) -> str:
        """stdout followed by stderr (what a terminal would show)."""
        if self.stdout and self.stderr:
            sep = "" if self.stdout.endswith("\n") else "\n"
            return self.stdout + sep + self.stderr
        return self.stdout or self.stderr


class PythonResult(_Result):
    """Outcome of :meth:`Sandbox.run_python` (one notebook cell)."""

    stdout: str = ""
    stderr: str = ""
    stdout_truncated: int = 0
    stderr_truncated: int = 0
    value: str | None = None
    """``repr`` of the cell's last expression (None when it is not an expression or evaluates to None)."""
    error: str | None = None
    """Traceback of the exception the cell raised, trimmed to the cell's own frames."""
    timed_out: bool = False
    note: str = ""
    """E.g. that the python state was lost because the process was killed."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the cell ran to the end without an exception or timeout."""
        return self.error is None and not self.timed_out


class SandboxState(_Result):
    """A sandbox's fingerprint, used to verify a reset."""

    workspace_hash: str
    """sha256 over the workspace tree (names, contents, symlink targets)."""
    strays: list[dict[str, Any]] = Field(default_factory=list)
    """Processes running besides the agent (pid and command line)."""
    errors: list[str] = Field(default_factory=list)


class SandboxLimits(BaseModel):
    """Resource limits of one sandbox (every backend enforces what it can; see each backend's notes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    memory_mb: int = 1024
    """Memory of the whole sandbox (cgroup / container limit) and address space of each process."""
    pids: int = 256
    """Processes and threads in the sandbox (cgroup pids.max / RLIMIT_NPROC / container pids limit)."""
    cpu_time_s: int = 600
    """CPU seconds per process (RLIMIT_CPU); a wall-clock timeout is per call."""
    cpus: float = 1.0
    """CPU share of the sandbox (docker ``nano_cpus``; cgroup cpu quota when available)."""
    file_size_mb: int = 512
    """Largest file a process may write (RLIMIT_FSIZE)."""
    tmp_size_mb: int = 256
    """Size of /tmp (docker tmpfs; the local backend's /tmp is bounded by the memory cgroup)."""
    workspace_size_mb: int = 1024
    """Size of /workspace where the backend can bound it (docker tmpfs)."""


class SandboxConfig(BaseModel):
    """How to build a sandbox. Every field has a safe default.

    Example:
        >>> SandboxConfig(limits=SandboxLimits(memory_mb=512)).limits.memory_mb
        512
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    """Bytes of stdout (and, separately, stderr) kept per call; head and tail halves are kept."""
    default_timeout_s: float = 30.0
    """Timeout of exec/run_python calls that do not pass one."""
    workspace: str = "/workspace"
    """Path of the writable workspace inside the sandbox."""
    python: str = "/usr/bin/python3"
    """The interpreter inside the sandbox that runs the agent (and the user's Python)."""
    env: dict[str, str] = Field(
        default_factory=lambda: {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/workspace",
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            "TERM": "dumb",
        }
    )
    """Environment of commands run in the sandbox (the host's environment is never passed in)."""
    files: dict[str, str | bytes] = Field(default_factory=dict)
    """Workspace template: ``{relative path: content}`` written at start and restored by every reset."""
    binds: dict[str, str] = Field(default_factory=dict)
    """Host paths made visible read-only inside the sandbox, ``{host path: sandbox path}`` (docker and local;
    the unsafe backend sees the host anyway). E.g. the folder of the LLM gateway's unix socket, which lets a
    sandbox without network reach the gateway and nothing else."""
    network: bool = False
    """Allow network access (docker: the bridge network; local: share the host network). Off by default."""
    image: str | None = None
    """Docker image (default: the image ``swarmgym sandbox build`` made)."""
    runtime: str | None = None
    """Docker runtime, e.g. ``"runsc"`` for gVisor (checked to be installed)."""
    start_timeout_s: float = 30.0
    """How long a sandbox may take to start and answer its first request."""


@runtime_checkable
class Sandbox(Protocol):
    """What tools and judges may do with a sandbox. Every method is safe to call concurrently.

    Untrusted input never raises: a command that fails, times out or is killed is an ``ExecResult`` saying
    so. :class:`~swarmgym.errors.SandboxError` means the sandbox itself broke (its agent died); a pool then
    discards it.
    """

    id: str
    workspace: str

    async def exec(
        self, cmd: str, timeout: float | None = None, *, cwd: str | None = None, env: dict[str, str] | None = None
    ) -> ExecResult:
        """Run ``cmd`` with bash in the workspace; on timeout kill its whole process group."""
        ...

    async def run_python(self, code: str, timeout: float | None = None) -> PythonResult:
        """Run a cell in the sandbox's persistent Python namespace."""
        ...

    async def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        """Read a file (relative paths are under the workspace)."""
        ...

    async def write_file(self, path: str, data: str | bytes, *, mode: int | None = None) -> None:
        """Write a file, creating parent directories (relative paths are under the workspace)."""
        ...

    async def reset(self) -> SandboxState:
        """Kill every process but the agent, restore the workspace template, clear /tmp."""
        ...

    async def close(self) -> None:
        """Stop the sandbox and remove everything it created on the host. Safe to call twice."""
        ...

    @property
    def alive(self) -> bool:
        """False once the agent has died or the sandbox was closed."""
        ...
