"""The LLM gateway side of :class:`~swarmgym.envs.blackbox.BlackBoxEnv`: one shared gateway per env, the
router that answers each program's calls with its own episode's policy, and the forwarder that lets a
sandbox without network reach the gateway (see the ``blackbox`` module docstring)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import anyio

from ..errors import PolicyError
from ..policies.base import PolicyContext
from ..toolsets.sandbox.base import SandboxConfig
from ..wire import Completion, Message, SamplingParams, ToolSpec, Trajectory

__all__ = ["FORWARDER", "SANDBOX_SOCKET_DIR"]

SANDBOX_SOCKET_DIR = "/run/swarmgym-gateway"
"""Where the gateway's socket folder is bound (read-only) inside a sandbox."""


class _Binding:
    """What a gateway call of one episode is answered with: the run's policy and context for it."""

    __slots__ = ("policy", "pctx", "sampling", "before_call", "traj", "stop", "on_stop", "in_before_call",
                 "close_request")

    def __init__(self, policy: Any, pctx: PolicyContext, sampling: SamplingParams | None, before_call: Any,
                 traj: Trajectory, on_stop: Any) -> None:
        self.policy = policy
        self.pctx = pctx
        self.sampling = sampling  # None: the agent's own sampling parameters
        self.before_call = before_call
        self.traj = traj
        self.stop: BaseException | None = None
        self.on_stop = on_stop
        self.in_before_call = False
        self.close_request: tuple[Any, str | None] | None = None  # an aclose_episode made from before_call


class _Dispatch:
    """The gateway's policy: routes each call to the policy of the episode it belongs to.

    One gateway serves every concurrent episode of an env, but each episode may have its own policy (the
    rollout manager swaps versions and applies limits per episode), so the gateway's upstream is this
    router, keyed by the gateway episode's trajectory id.
    """

    model = None

    def __init__(self) -> None:
        self.bindings: dict[str, _Binding] = {}
        self.gateway: Any = None

    async def complete(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], sampling: SamplingParams, *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        if ctx is None:
            raise PolicyError("the gateway called without a context")
        b = self.bindings.get(ctx.episode_id)
        sub = b is None  # a sub-agent's call: answered for the episode at the root of its tree
        if sub and self.gateway is not None:
            b = self.bindings.get(self.gateway.root_of(ctx.episode_id) or "")
        if b is None:
            raise PolicyError("this gateway episode has no policy bound (its env episode is over)")
        if b.stop is not None:
            raise PolicyError("the run stopped this episode")
        if sub:
            pctx = PolicyContext(task=b.pctx.task, env=b.pctx.env, role=ctx.role, episode_id=ctx.episode_id,
                                 state=ctx.state, turn=ctx.turn, side_call=b.pctx.side_call)
        else:
            pctx = b.pctx
            pctx.state = ctx.state  # the gateway resets it when the agent rewrites its history
            pctx.turn = ctx.turn
        pol = b.policy
        if b.before_call is not None:
            b.in_before_call = True
            try:
                swapped = await b.before_call(pctx)
            except Exception as e:  # the run ended the episode (budget, staleness): stop the program too
                b.stop = e
                b.on_stop()
                raise PolicyError(f"the run stopped this episode: {type(e).__name__}: {e}") from None
            finally:
                b.in_before_call = False
            if swapped is not None:
                pol = b.policy = swapped
        if b.sampling is not None:
            extra = {**sampling.extra, **b.sampling.extra}
            sampling = b.sampling.model_copy(update={"extra": extra}) if extra else b.sampling
        comp = await pol.complete(messages, tools, sampling, ctx=pctx)
        if type(comp) is not Completion:
            from ..wire import coerce_action

            comp = coerce_action(comp)
        if not sub:
            b.traj.completions.append(comp)  # live, so per-episode token budgets see the calls as they happen
        return comp

    async def complete_text(self, prompt: Any, sampling: SamplingParams, *, ctx: PolicyContext | None = None
                            ) -> Completion:
        """``/v1/completions`` for the episode's policy, when it serves text completions (OpenAIPolicy does)."""
        b = self.bindings.get(ctx.episode_id) if ctx is not None else None
        if b is None and ctx is not None and self.gateway is not None:
            b = self.bindings.get(self.gateway.root_of(ctx.episode_id) or "")
        fn = getattr(b.policy, "complete_text", None) if b is not None else None
        if fn is None:
            raise PolicyError("this episode's policy serves chat completions only; use /v1/chat/completions")
        return await fn(prompt, b.sampling or sampling, ctx=ctx)


class _SharedGateway:
    """One gateway (and, for sandboxed programs, one sandbox pool) for all concurrent episodes of an env and
    its forks: started by the first episode, stopped when the last one ends, so nothing outlives a run."""

    def __init__(self, host: str, model: str, policy_timeout_s: float | None,
                 sandbox: tuple[str, SandboxConfig, int] | None) -> None:
        self.host = host
        self.model = model
        self.policy_timeout_s = policy_timeout_s
        self.sandbox = sandbox
        self.dispatch = _Dispatch()
        self.gateway: Any = None
        self.pool: Any = None
        self.socket_dir: str | None = None
        self.users = 0
        self._lock: anyio.Lock | None = None

    async def acquire(self) -> None:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self.gateway is None:
                await self._start()
            self.users += 1

    async def _start(self) -> None:
        from ..gateway import Gateway

        unix_path = None
        if self.sandbox is not None and self.sandbox[0] != "unsafe":
            self.socket_dir = tempfile.mkdtemp(prefix="swarmgym-gw-")
            os.chmod(self.socket_dir, 0o755)  # the sandbox user must reach the socket inside
            unix_path = os.path.join(self.socket_dir, "gateway.sock")
        gw = Gateway(self.dispatch, models=[self.model], host=self.host,  # type: ignore[arg-type]
                     policy_timeout_s=self.policy_timeout_s, unix_path=unix_path)
        try:
            await gw.start()
        except BaseException:
            self._remove_dir()
            raise
        self.gateway = self.dispatch.gateway = gw
        if self.sandbox is not None:
            from ..toolsets.sandbox.pool import SandboxPool

            backend, cfg, size = self.sandbox
            binds = {**cfg.binds, self.socket_dir: SANDBOX_SOCKET_DIR} if self.socket_dir else dict(cfg.binds)
            cfg = cfg.model_copy(update={"binds": binds, "network": False})
            self.pool = SandboxPool(backend, cfg, size=size, prewarm=0)

    async def release(self) -> None:
        assert self._lock is not None
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self.users -= 1
                if self.users == 0 and self.gateway is not None:
                    pool, self.pool = self.pool, None
                    gw, self.gateway = self.gateway, None
                    try:
                        if pool is not None:
                            await pool.close()
                    finally:
                        await gw.close()
                        self._remove_dir()

    def _remove_dir(self) -> None:
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None



# Runs inside a sandbox without network: serves the gateway's unix socket on the sandbox's own loopback and
# runs the program with OPENAI_BASE_URL pointing there (stdlib only; exits with the program's status).
FORWARDER = r"""
import os, socket, subprocess, sys, threading
path, cmd = sys.argv[1], sys.argv[2:]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(256)
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    u = socket.socket(socket.AF_UNIX)
    try:
        u.connect(path)
    except OSError as e:
        print("swarmgym forwarder: cannot reach the gateway socket:", e, file=sys.stderr)
        c.close()
        return
    t = threading.Thread(target=pipe, args=(c, u), daemon=True)
    t.start()
    pipe(u, c)
    t.join()
    c.close()
    u.close()
def accept():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
url = "http://127.0.0.1:%d/v1" % srv.getsockname()[1]
env = dict(os.environ, OPENAI_BASE_URL=url, SWARMGYM_GATEWAY_URL=url)
rc = subprocess.call(cmd, env=env)
sys.exit(128 - rc if rc < 0 else rc)
"""
