"""Docker backend: one hardened container per sandbox, the agent as its main process.

Hardened by default (most RL sandboxes run containers with Docker's permissive defaults; we do not):

* ``network_mode="none"`` (only ``lo``) unless ``SandboxConfig(network=True)`` opts into the bridge;
* read-only root filesystem, a tmpfs ``/tmp`` and a tmpfs ``/workspace`` owned by the sandbox user, both
  size-bounded;
* ``cap_drop=["ALL"]``, ``no-new-privileges``, uid/gid 65534 (never root), Docker's init as pid 1 (reaps
  zombies, forwards signals);
* pids, memory (= memory + swap: no swap) and CPU limits, RLIMIT_FSIZE;
* labels naming the owner (pid + start time + boot id) and run, so ``swarmgym sandbox gc`` can remove
  containers a kill -9 left behind; ``runtime="runsc"`` (gVisor) when asked for and installed.

Every daemon call goes through one gate (:mod:`.daemon`): a shared concurrency limit, a deadline per call, and
fail-fast once the daemon stops answering, so a wedged daemon fails the sandboxes it holds instead of hanging
the program.

The host talks to the agent over the container's attach stream (stdin in, multiplexed stdout/stderr out):
no ``docker exec`` per call, no docker CLI process per sandbox. The Docker socket is never mounted into a
container.
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
import threading
from typing import Any

import anyio

from ...errors import SandboxError
from ...wire import new_id
from . import reaper
from .base import SandboxConfig
from .daemon import docker_gate, record_unremoved, take_unremoved
from .client import AgentSandbox, bootstrap_code

__all__ = ["DockerSandbox", "start_docker", "gc_containers", "docker_client", "list_containers", "RUN_ID"]

log = logging.getLogger(__name__)

LABEL_OWNER = "swarmgym.owner"
LABEL_BOOT = "swarmgym.boot"
LABEL_RUN = "swarmgym.run"
LABEL_KIND = "swarmgym.kind"
RUN_ID = new_id("run-")
"""Id of this process's run (a label on every container it creates)."""

_client_lock = threading.Lock()


@functools.lru_cache(maxsize=1)
def _cached_client() -> Any:
    import docker

    # A large connection pool: hundreds of sandboxes start and stop concurrently from worker threads.
    c = docker.from_env(timeout=120, max_pool_size=64)
    _gate().call("ping", c.ping)
    return c


def _probe() -> None:
    """Ping the daemon with a fresh short-lived client: the shared one may not exist yet (its creation pings
    through the gate, so probing with it would recurse into an unhealthy gate and never recover)."""
    import docker

    c = docker.from_env(timeout=10)
    try:
        c.ping()
    finally:
        c.close()


def _gate() -> Any:
    return docker_gate(_probe)


def docker_client() -> Any:
    """The process's docker client (one, shared).

    Raises:
        SandboxError: the docker extra is missing or the engine cannot be reached.
    """
    try:
        import docker  # noqa: F401
    except ImportError:
        raise SandboxError("the docker backend needs the docker extra: pip install 'swarmgym[docker]'") from None
    with _client_lock:
        try:
            return _cached_client()
        except Exception as e:
            _cached_client.cache_clear()
            raise SandboxError(
                f"cannot reach the Docker engine ({type(e).__name__}: {e}); start dockerd or set DOCKER_HOST, "
                "or use the local (bubblewrap) backend"
            ) from None


class DockerSandbox(AgentSandbox):
    """A hardened container (see the module docstring). Create it with ``create_sandbox("docker")``."""

    backend = "docker"

    def __init__(self, config: SandboxConfig, sandbox_id: str) -> None:
        super().__init__(config, sandbox_id)
        self.container_id: str | None = None
        self._sock: Any = None  # the SDK's attach socket wrapper (kept alive: it owns the fd)
        self._raw: socket.socket | None = None
        self._frames = bytearray()
        self.stderr_tail = bytearray()

    def _process_alive(self) -> bool:
        return self._raw is not None

    def _read_raw(self) -> bytes:
        """Demultiplex Docker's attach stream: 8-byte headers (stream type, big-endian length) + payload."""
        assert self._raw is not None
        while True:
            out = bytearray()
            while len(self._frames) >= 8:
                kind = self._frames[0]
                (size,) = struct.unpack(">I", self._frames[4:8])
                if len(self._frames) < 8 + size:
                    break
                payload = self._frames[8 : 8 + size]
                del self._frames[: 8 + size]
                if kind == 1:
                    out += payload
                else:  # the agent's own stderr: keep a little for diagnostics
                    self.stderr_tail = (self.stderr_tail + payload)[-4096:]
            if out:
                return bytes(out)
            data = self._raw.recv(1 << 20)  # BlockingIOError propagates to the caller, which waits
            if not data:
                return b""
            self._frames += data

    def _kill_sync(self) -> None:
        reaper.untrack(self.id)
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.close()
            except OSError:
                pass
        if self._sock is not None:
            try:
                self._sock.close()
            except Exception:
                pass
            self._sock = None
        if self.container_id is not None:
            cid, self.container_id = self.container_id, None
            try:
                client = docker_client()
                _gate().call("remove", client.api.remove_container, cid, force=True, v=True)
            except SandboxError as e:  # daemon not answering: leave it to `swarmgym sandbox gc`
                record_unremoved(cid)
                log.warning("could not remove container %s (recorded for `swarmgym sandbox gc`): %s", cid[:12], e)
            except Exception as e:
                if "No such container" not in str(e) and "is already in progress" not in str(e):
                    log.warning("could not remove container %s: %s", cid[:12], e)

    def _create_sync(self) -> None:
        import docker

        cfg = self.config
        lim = cfg.limits
        client = docker_client()
        gate = _gate()
        image = cfg.image
        if image is None:
            from .image import default_image

            image = default_image()
        try:
            gate.call("inspect", client.images.get, image)
        except docker.errors.ImageNotFound:
            raise SandboxError(
                f"docker image {image!r} is not available locally; build it with `swarmgym sandbox build` "
                "(python -m swarmgym.toolsets.sandbox.image build) or pass SandboxConfig(image=...) with a local "
                "image that has /usr/bin/python3"
            ) from None
        if cfg.runtime:
            runtimes = gate.call("info", client.info).get("Runtimes", {})
            if cfg.runtime not in runtimes:
                raise SandboxError(
                    f"docker runtime {cfg.runtime!r} is not installed (available: {', '.join(runtimes)}); "
                    "install gVisor (runsc) and register it with dockerd, or leave runtime unset"
                )
        mb = 1024 * 1024
        host_config = client.api.create_host_config(
            network_mode="bridge" if cfg.network else "none",
            read_only=True,
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={lim.tmp_size_mb}m,mode=1777",
                cfg.workspace: f"rw,nosuid,nodev,size={lim.workspace_size_mb}m,uid=65534,gid=65534,mode=0755",
            },
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=lim.pids,
            mem_limit=lim.memory_mb * mb,
            memswap_limit=lim.memory_mb * mb,
            nano_cpus=int(lim.cpus * 1e9),
            init=True,
            ipc_mode="private",
            ulimits=[docker.types.Ulimit(name="fsize", soft=lim.file_size_mb * mb, hard=lim.file_size_mb * mb)],
            runtime=cfg.runtime,
            binds={src: {"bind": dst, "mode": "ro"} for src, dst in cfg.binds.items()} or None,
        )
        c = gate.call(
            "create",
            client.api.create_container,
            image,
            command=[cfg.python, "-S", "-u", "-c", bootstrap_code()],
            stdin_open=True,
            tty=False,
            user="65534:65534",
            working_dir=cfg.workspace,
            environment=dict(cfg.env),
            hostname="sandbox",
            labels={
                LABEL_OWNER: reaper.owner_tag(),
                LABEL_BOOT: reaper.boot_id(),
                LABEL_RUN: RUN_ID,
                LABEL_KIND: "sandbox",
                "swarmgym.sandbox_id": self.id,
            },
            host_config=host_config,
            name=f"swarmgym-{self.id}",
        )
        self.container_id = c["Id"]
        reaper.track(self.id, self._kill_sync)
        self._sock = gate.call(
            "attach",
            client.api.attach_socket,
            self.container_id,
            params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1},
        )
        raw = getattr(self._sock, "_sock", self._sock)
        if not isinstance(raw, socket.socket):
            raise SandboxError("unsupported docker transport for attach (use a unix socket DOCKER_HOST)")
        self._raw = raw
        gate.call("start", client.api.start, self.container_id)

    async def _start(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._create_sync)
            assert self._raw is not None
            self._raw.setblocking(False)
            fd = self._raw.fileno()
            await self._handshake(fd, fd, self._agent_config())
        except BaseException as e:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._kill_sync)
            if isinstance(e, Exception) and not isinstance(e, SandboxError):
                if isinstance(e, TimeoutError):
                    raise SandboxError(
                        f"docker sandbox did not answer within {self.config.start_timeout_s:g} s "
                        f"(agent stderr: {bytes(self.stderr_tail[-500:]).decode(errors='replace')!r})"
                    ) from None
                raise SandboxError(f"docker sandbox failed to start: {type(e).__name__}: {e}") from e
            raise


async def start_docker(config: SandboxConfig) -> DockerSandbox:
    """Start one docker sandbox."""
    sb = DockerSandbox(config, new_id("sb-"))
    await sb._start()
    return sb


def list_containers(*, all_owners: bool = True) -> list[dict[str, Any]]:
    """Containers labelled by swarmgym on this engine: ``[{"id", "owner", "alive", "status", "name"}]``."""
    client = docker_client()
    me = reaper.owner_tag()
    boot = reaper.boot_id()
    out = []
    for c in _gate().call("list", client.api.containers, all=True, filters={"label": LABEL_OWNER}):
        labels = c.get("Labels") or {}
        owner = labels.get(LABEL_OWNER, "")
        same_host = labels.get(LABEL_BOOT) == boot
        alive = (not same_host) or reaper.owner_alive(owner)  # another machine's owner: assume alive
        if not all_owners and owner != me:
            continue
        out.append(
            {
                "id": c["Id"][:12],
                "owner": owner,
                "alive": alive,
                "status": c.get("State", ""),
                "name": (c.get("Names") or [""])[0].lstrip("/"),
                "run": labels.get(LABEL_RUN, ""),
            }
        )
    return out


def gc_containers() -> int:
    """Remove containers whose owner process (on this machine) is dead, and those a run recorded as
    unremovable (its daemon was not answering); returns how many were removed."""
    try:
        client = docker_client()
    except SandboxError:
        return 0
    gate = _gate()
    n = 0
    recorded = take_unremoved()
    for cid in recorded:
        try:
            gate.call("remove", client.api.remove_container, cid, force=True, v=True)
            n += 1
        except SandboxError as e:
            record_unremoved(cid)
            log.warning("gc: daemon still not answering for %s: %s", cid[:12], e)
        except Exception as e:
            if "No such container" not in str(e):
                log.warning("gc: could not remove container %s: %s", cid[:12], e)
    done = {cid[:12] for cid in recorded}
    for c in list_containers():
        if not c["alive"] and c["id"] not in done:
            try:
                gate.call("remove", client.api.remove_container, c["id"], force=True, v=True)
                n += 1
            except Exception as e:
                log.warning("gc: could not remove container %s: %s", c["id"], e)
    return n

