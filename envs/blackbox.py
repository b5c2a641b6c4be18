"""``BlackBoxEnv``: an episode is one run of an outside agent program, recorded through the LLM gateway.

The program is anything that talks to an OpenAI-compatible URL (a script using the official ``openai``
client, a shell script using curl, a coding CLI). Per episode it gets:

* the task prompt on stdin and in ``SWARMGYM_TASK`` (``SWARMGYM_TASK_ID`` names the task);
* ``OPENAI_BASE_URL``/``OPENAI_API_KEY``/``OPENAI_MODEL`` pointing at the env's :class:`~swarmgym.gateway.Gateway`
  with a key of its own, so concurrent episodes never mix (``SWARMGYM_GATEWAY_URL`` repeats the URL);
* a fresh working directory (a temporary folder on the host, or the sandbox's workspace).

Every model call the program makes is answered by the run's policy (the one ``run_episode`` or the rollout
manager hands the episode, with its pauses, budgets and version stamps) and recorded by the gateway; when
the program ends, the episode's trajectory is rebuilt from that recording: the conversation the model saw
last, one :class:`~swarmgym.wire.Completion` per call with the upstream's token ids and logprobs where it
has them, and the gateway's history segments (``info["segments"]``, see :func:`swarmgym.gateway.split_segments`).

A program that starts sub-agents gives each the key ``$OPENAI_API_KEY~NAME`` (``~NAME~SUB`` one level down):
their calls are answered by the same policy and come back as a tree of ``role="subagent"`` trajectories in
``info["subagent_trajectories"]`` (read them with :func:`subagent_trajectories`).

The judge then scores the program's **output** (by default its stdout stands in as the final assistant
message the judge reads, on a copy: the stored conversation stays what the model said) or its **workspace**
(``judge_on="messages"`` leaves the trajectory as it is; a judge finds the host workspace in
``ctx.state["workspace"]`` or the sandbox in ``ctx.sandbox``).

How a program ends decides the status: exit 0 is ``ok``; a non-zero exit, a signal or a program that cannot
start is ``error``; a program still running at ``timeout_s`` is killed with its whole process group and the
episode is ``truncated`` (and still judged). The error names the exit and ends with the program's stderr
tail; ``info["program"]`` keeps exit code, duration and both output tails. The run goes on either way.

Sandboxed programs (``sandbox="docker"``/``"local"``) run in a sandbox from the sandbox layer with no
network at all: the gateway also listens on a unix socket bound read-only into the sandbox, and a small
stdlib forwarder started next to the program serves it on the sandbox's own loopback, so the program's
``OPENAI_BASE_URL`` is a ``127.0.0.1`` address that reaches the gateway and nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio
import anyio.to_thread

from ..errors import ConfigError, PolicyError
from ..judges.base import Judge, JudgeContext
from ..policies.base import PolicyContext
from ..toolsets.sandbox.base import ExecResult, SandboxConfig
from ..wire import Completion, JudgeResult, Message, SamplingParams, Task, ToolSpec, Trajectory
from ._blackbox_gateway import FORWARDER, SANDBOX_SOCKET_DIR, _Binding, _SharedGateway
from ._program import describe_exit, run_program
from .core import AgentEnv

__all__ = ["BlackBoxEnv", "ProgramOutputJudge", "make_math_env", "subagent_trajectories"]

TASK_FILE = ".swarmgym-task"
"""The file holding the task in the program's working folder (its stdin is read from it)."""
_STDERR_TAIL = 2000
_HOST_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR")


class ProgramOutputJudge:
    """Scores a black-box episode on the program's stdout: the wrapped judge sees a copy of the trajectory
    whose last message is an assistant message holding that output (stripped)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        prog = trajectory.info.get("program") or {}
        out = str(prog.get("stdout", "")).strip()
        view = trajectory.model_copy(
            update={"messages": [*trajectory.messages, Message(role="assistant", content=out)]}
        )
        return await self.judge.score(task, view, ctx)


class BlackBoxEnv(AgentEnv):
    """An env whose episode runs an outside agent program against the LLM gateway (see the module doc).

    Args:
        tasks: the tasks (a list or any sized, indexable task source).
        command: the program, as an argv list (run directly) or a shell command string (run with
            ``/bin/sh -c``; in a sandbox every command runs with bash).
        judge: scores the episode (default: reward 0).
        judge_on: ``"output"`` (default) scores the program's stdout as the final answer; ``"messages"``
            scores the trajectory as recorded (and a workspace judge reads ``ctx.state["workspace"]`` or
            ``ctx.sandbox``).
        timeout_s: wall-clock limit of one program run; past it the program's process group is killed and
            the episode is ``truncated``.
        env: extra environment variables for the program (the host's environment is not passed, except
            ``PATH``, ``LANG``, ``LC_ALL``, ``TZ`` and the CA-certificate variables for host programs).
        files: ``{relative path: content}`` written into the working directory before the program starts.
        model: the model name the gateway serves (``OPENAI_MODEL``); calls naming another model get a 404.
        sampling_from: ``"agent"`` (default) answers each call with the sampling parameters the program sent;
            ``"run"`` uses the run's ``SamplingParams`` instead (the program's ``tool_choice`` and similar
            extras are kept), so a trainer controls temperature and length whatever the agent asks for.
        sandbox: ``None`` (a host subprocess in a temporary folder), a backend name (``"docker"``,
            ``"local"``) for a sandbox with no network but the gateway, or ``"unsafe"``.
        sandbox_config: configuration of those sandboxes (``binds`` and ``network`` are set by the env).
        sandbox_pool_size: how many sandboxes may be open at once.
        output_limit: bytes of stdout (and of stderr) kept per run, head and tail.
        host: interface the gateway binds for host programs.
        policy_timeout_s: bound on one model call (the program gets a 504 after it).
        **kwargs: passed to :class:`AgentEnv` (``env_id``, ``limits``, ``enhancers`` …).

    Raises:
        ConfigError: an empty command, an unknown ``judge_on``/``sampling_from``, or ``toolsets`` given (the
            program brings its own tools).
    """

    def __init__(
        self,
        tasks: Any,
        command: str | Sequence[str],
        *,
        judge: Judge | None = None,
        judge_on: Literal["output", "messages"] = "output",
        timeout_s: float = 300.0,
        env: Mapping[str, str] | None = None,
        files: Mapping[str, str | bytes] | None = None,
        model: str = "swarmgym",
        sampling_from: Literal["agent", "run"] = "agent",
        sandbox: str | None = None,
        sandbox_config: SandboxConfig | None = None,
        sandbox_pool_size: int = 8,
        output_limit: int = 64 * 1024,
        host: str = "127.0.0.1",
        policy_timeout_s: float | None = 600.0,
        **kwargs: Any,
    ) -> None:
        if not command or (not isinstance(command, str) and not all(isinstance(a, str) for a in command)):
            raise ConfigError("command must be a non-empty shell string or a list of program arguments")
        if judge_on not in ("output", "messages"):
            raise ConfigError(f"judge_on must be 'output' or 'messages', got {judge_on!r}")
        if sampling_from not in ("agent", "run"):
            raise ConfigError(f"sampling_from must be 'agent' or 'run', got {sampling_from!r}")
        if kwargs.get("toolsets"):
            raise ConfigError("a BlackBoxEnv's program brings its own tools; toolsets are not used")
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {timeout_s}")
        if sandbox is not None:
            from ..toolsets.sandbox.factory import BACKENDS

            if sandbox not in BACKENDS:
                raise ConfigError(f"unknown sandbox backend {sandbox!r}; choose one of {', '.join(BACKENDS)}")
        super().__init__(tasks, judge=judge, **kwargs)
        if judge_on == "output":
            self.judge = ProgramOutputJudge(self.judge)
        self.command = command if isinstance(command, str) else list(command)
        self.judge_on = judge_on
        self.timeout_s = float(timeout_s)
        self.program_env = dict(env or {})
        self.files = dict(files or {})
        self.model = model
        self.sampling_from = sampling_from
        self.output_limit = output_limit
        self.backend = sandbox
        # The socket folder's host path is only known once the gateway starts: the pool is made then.
        box = (sandbox, sandbox_config or SandboxConfig(), sandbox_pool_size) if sandbox is not None else None
        self._shared = _SharedGateway(host, model, policy_timeout_s, box)
        self._gym: tuple[_GymBridge, Any] | None = None
        self._binding: _Binding | None = None  # of the running program, while drive_episode runs

    @property
    def _per_episode_setup(self) -> bool:
        return True  # every episode needs the gateway

    # ------------------------------------------------------------------ episode

    async def _setup(self, ep: Any) -> None:
        await self._shared.acquire()
        try:
            if self.backend is not None:
                self.sandbox = self._shared.pool
            await super()._setup(ep)
        except BaseException:
            await self._shared.release()
            raise
        # The gateway (and the pool) go last, after the episode's own resources: a fresh outer stack.
        outer = contextlib.AsyncExitStack()
        outer.push_async_callback(self._shared.release)
        if ep.stack is not None:
            outer.push_async_callback(ep.stack.aclose)
        ep.stack = outer

    # ------------------------------------------------------------------ Gym API
    # With reset/step the caller *is* the model: reset starts the program and returns its first model call
    # (the messages and tools it sent) as the observation; each step answers the pending call with the
    # action and returns the next call, until the program exits and the judged episode terminates. The
    # program runs in a background task on the env's event loop (asyncio: the sync API's loop).

    def fork(self) -> BlackBoxEnv:
        new = super().fork()
        new._gym = None  # type: ignore[attr-defined]
        new._binding = None  # type: ignore[attr-defined]
        return new  # type: ignore[return-value]

    async def areset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start the program; the observation is its first model call (see the Gym notes above)."""
        import asyncio

        obs, info = await super().areset(**kwargs)
        ep = self._ep
        assert ep is not None
        bridge = _GymBridge()
        pctx = PolicyContext(task=ep.task, env=self, role=ep.traj.role, episode_id=ep.traj.id)

        async def drive() -> None:
            try:
                await self.drive_episode(ep, bridge, SamplingParams(), pctx, None)
            except Exception as e:
                await AgentEnv.aclose_episode(self, "error", f"{type(e).__name__}: {e}")
            finally:
                bridge.events.put_nowait(None)

        self._gym = (bridge, asyncio.get_running_loop().create_task(drive()))
        obs, _, _, step_info = await self._gym_next()
        return obs, {**info, **step_info}

    async def astep(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Answer the program's pending model call with ``action`` (str, dict, Message or Completion).

        Raises:
            ConfigError: no call is waiting (reset first; or the episode is over) or the action is invalid.
        """
        from ..wire import coerce_action

        gym = getattr(self, "_gym", None)
        if gym is None or gym[0].pending is None:
            raise ConfigError("no model call of the program is waiting: call reset() first (or the episode is over)")
        try:
            completion = coerce_action(action)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid action: {e}") from e
        fut, gym[0].pending = gym[0].pending, None
        if not fut.done():
            fut.set_result(completion)
        obs, terminated, truncated, info = await self._gym_next()
        reward = self._ep.traj.reward if (terminated or truncated) and self._ep is not None else 0.0
        return obs, reward, terminated, truncated, info

    async def _gym_next(self) -> tuple[dict[str, Any], bool, bool, dict[str, Any]]:
        bridge = self._gym[0]
        ev = await bridge.events.get()
        if ev is not None:
            messages, tools, bridge.pending = ev
            return {"messages": tuple(messages), "tools": tuple(tools)}, False, False, {"call": bridge.calls}
        traj = self._ep.traj if self._ep is not None else None
        assert traj is not None
        info: dict[str, Any] = {"status": traj.status, "calls": bridge.calls}
        if traj.error:
            info["error"] = traj.error
        obs = {"messages": tuple(traj.messages), "tools": tuple(traj.tools)}
        return obs, traj.status != "truncated", traj.status == "truncated", info

    async def aclose_episode(self, status: Any = "cancelled", error: str | None = None) -> None:
        import asyncio

        b = self._binding
        if b is not None and b.in_before_call:
            # The run ends the episode from inside one of the program's model calls (a budget, staleness):
            # finishing here would tear down the gateway and workspace under the running program and the
            # call's own request. The program is stopped first; drive_episode then finishes with this.
            b.close_request = (status, error)
            return
        gym = getattr(self, "_gym", None)
        if gym is not None:
            self._gym = None
            gym[0].close()  # the program's waiting call gets an error answer instead of hanging
            task = gym[1]
            if not task.done():
                task.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait([task])
        await super().aclose_episode(status, error)

    async def drive_episode(
        self, ep: Any, policy: Any, sampling: SamplingParams, pctx: PolicyContext, before_call: Any
    ) -> None:
        """Run the program once against the gateway and finish the episode (called by ``run_episode``)."""
        gw = self._shared.gateway
        traj: Trajectory = ep.traj
        task: Task = ep.task
        key = gw.open_episode(task=task, role=traj.role, sample_index=traj.sample_index)
        gkey_traj = gw.episode(key).traj
        stop_scope = anyio.CancelScope()
        binding = _Binding(policy, pctx, sampling if self.sampling_from == "run" else None, before_call, traj,
                           stop_scope.cancel)
        self._shared.dispatch.bindings[gkey_traj.id] = binding
        self._binding = binding
        prompt = _prompt_text(task)
        env = {
            **self.program_env,
            "OPENAI_API_KEY": key,
            "OPENAI_MODEL": self.model,
            "SWARMGYM_TASK": prompt,
            "SWARMGYM_TASK_ID": task.id,
        }
        res: ExecResult | None = None
        failure: str | None = None
        try:
            with stop_scope:
                if ep.ctx.sandbox is not None:
                    res = await self._run_in_sandbox(ep.ctx.sandbox, env, prompt, gw, key)
                else:
                    res = await self._run_on_host(ep, env, prompt, gw)
        except OSError as e:
            failure = f"the agent program could not be started: {type(e).__name__}: {e}"
        finally:
            with anyio.CancelScope(shield=True):
                self._shared.dispatch.bindings.pop(gkey_traj.id, None)
                self._binding = None
                gtraj, *subs = await gw.close_tree(key, wait_s=1.0)
                _adopt(traj, gtraj, subs)
        status, error = "ok", failure
        if res is not None:
            traj.info["program"] = {
                "exit_code": res.exit_code,
                "timed_out": res.timed_out,
                "duration_s": round(res.duration_s, 4),
                "stdout": res.stdout,
                "stderr_tail": res.stderr[-_STDERR_TAIL:],
                "stdout_truncated": res.stdout_truncated,
            }
            traj.metrics["program_s"] = res.duration_s
            note = res.note or describe_exit(res.exit_code, res.timed_out, self.timeout_s)
            if res.timed_out or res.exit_code != 0:
                tail = res.stderr[-_STDERR_TAIL:].strip() or "(empty)"
                error = f"agent program {note or 'failed'}; stderr tail:\n{tail}"
                status = "truncated" if res.timed_out else "error"
        else:
            status = "error"
        if binding.close_request is not None:
            status, error = binding.close_request
        await self._finish(ep, status, error)  # type: ignore[arg-type]
        if binding.stop is not None:
            raise binding.stop  # what the run's before_call raised, as the plain loop would see it

    async def _run_on_host(self, ep: Any, env: dict[str, str], prompt: str, gw: Any) -> ExecResult:
        # Folder and file syscalls off the event loop: under load an rmdir alone took ~10 ms here.
        work = await anyio.to_thread.run_sync(self._make_workspace, prompt)
        assert ep.stack is not None
        # removed after the judge, which may read the workspace
        ep.stack.push_async_callback(anyio.to_thread.run_sync, functools.partial(shutil.rmtree, work, True))
        ep.ctx.state["workspace"] = work
        full = {k: os.environ[k] for k in _HOST_ENV_KEYS if k in os.environ}
        full.setdefault("PATH", os.defpath)
        full.update(HOME=work, PYTHONUNBUFFERED="1")
        full.update(env)
        full["OPENAI_BASE_URL"] = full["SWARMGYM_GATEWAY_URL"] = gw.base_url
        argv = ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else self.command
        return await run_program(argv, cwd=work, env=full, stdin_path=os.path.join(work, TASK_FILE),
                                 timeout_s=self.timeout_s, output_limit=self.output_limit)

    def _make_workspace(self, prompt: str) -> str:
        """A fresh folder holding the task file (the program's stdin) and ``files``."""
        work = tempfile.mkdtemp(prefix="swarmgym-bb-")
        for rel, data in {TASK_FILE: prompt, **self.files}.items():
            path = os.path.join(work, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
        return work

    async def _run_in_sandbox(self, sb: Any, env: dict[str, str], prompt: str, gw: Any, key: str) -> ExecResult:
        await sb.write_file(TASK_FILE, prompt)
        for rel, data in self.files.items():
            await sb.write_file(rel, data)
        cmd = self.command if isinstance(self.command, str) else shlex.join(self.command)
        if self.backend == "unsafe":  # a host process: the gateway's TCP address works as it is
            env = {**env, "OPENAI_BASE_URL": gw.base_url, "SWARMGYM_GATEWAY_URL": gw.base_url}
            line = f"( {cmd} ) < {TASK_FILE}"
        else:
            sock = f"{SANDBOX_SOCKET_DIR}/gateway.sock"
            py = sb.config.python if hasattr(sb, "config") else "python3"
            line = (f"{shlex.quote(py)} -S -c {shlex.quote(FORWARDER)} {shlex.quote(sock)} "
                    f"/bin/bash -c {shlex.quote(cmd)} < {TASK_FILE}")
        return await sb.exec(line, timeout=self.timeout_s, env=env)

# run_episode needs only areset's _start/_setup (it drives the program itself), not the Gym bridge.
BlackBoxEnv._areset_overridden = False


class _GymBridge:
    """The policy of a Gym-driven episode: each model call of the program waits for ``step``'s action."""

    model = None

    def __init__(self) -> None:
        import asyncio

        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.pending: Any = None
        self.calls = 0
        self.closed = False

    async def complete(self, messages: Sequence[Message], tools: Sequence[ToolSpec], sampling: SamplingParams, *,
                       ctx: PolicyContext | None = None) -> Completion:
        import asyncio

        if self.closed:
            raise PolicyError("the episode was closed")
        fut: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self.calls += 1
        self.events.put_nowait((list(messages), list(tools), fut))
        return await fut

    def close(self) -> None:
        """Fail every call still waiting for an action (the episode ends without answering them)."""
        self.closed = True
        futs = [self.pending] if self.pending is not None else []
        while not self.events.empty():
            ev = self.events.get_nowait()
            if ev is not None:
                futs.append(ev[2])
        for fut in futs:
            if not fut.done():
                fut.set_exception(PolicyError("the episode was closed before this call was answered"))


def _prompt_text(task: Task) -> str:
    if isinstance(task.prompt, str):
        return task.prompt
    import json

    return json.dumps([m.to_openai() for m in task.prompt])


def _adopt(traj: Trajectory, gtraj: Trajectory, subs: Sequence[Trajectory] = ()) -> None:
    """Rebuild the env's trajectory from the gateway's recording of the same episode (and of the sub-agents
    the program started, kept in ``info["subagent_trajectories"]``: see :func:`subagent_trajectories`)."""
    traj.completions = list(gtraj.completions)
    if gtraj.completions and gtraj.messages:
        traj.messages = list(gtraj.messages)
    if gtraj.tools:
        traj.tools = list(gtraj.tools)
    for k, v in gtraj.info.items():
        if k != "gateway_key":
            traj.info[k] = v
    traj.metrics["calls"] = float(len(gtraj.completions))
    if subs:
        ids = {gtraj.id: traj.id}
        kept = []
        for t in subs:
            t.parent_id = ids.get(t.parent_id or "", t.parent_id)
            t.env_id, t.group_id = traj.env_id, traj.group_id
            t.info.pop("gateway_key", None)
            t.metrics["calls"] = float(len(t.completions))
            kept.append(t.model_dump(mode="json"))
        traj.info["subagent_trajectories"] = kept
        traj.metrics["subagent_calls"] = float(sum(len(t.completions) for t in subs))


def subagent_trajectories(traj: Trajectory) -> list[Trajectory]:
    """The sub-agent trajectories of a black-box episode (a program that gave its sub-agents keys
    ``$OPENAI_API_KEY~NAME``), as Trajectories whose ``parent_id`` points into the tree."""
    return [Trajectory.model_validate(d) for d in traj.info.get("subagent_trajectories", ())]


def make_math_env(*, command: str | Sequence[str] | None = None, size: int = 1000, seed: int = 0,
                  **kwargs: Any) -> BlackBoxEnv:
    """``swarmgym/BlackBoxMath-v0``: arithmetic solved by an outside program (default: the shipped agent
    written with the official ``openai`` client and a calculator tool), scored on its printed answer."""
    from .agents import agent_path
    from .math import DEFAULT_CONFIG, TOOL_DATASETS, ReasoningGymJudge, ReasoningGymTasks, _tool_oracle

    src = ReasoningGymTasks(TOOL_DATASETS, size=size, seed=seed, config=DEFAULT_CONFIG)
    if command is None:
        import importlib.util

        if importlib.util.find_spec("openai") is None:  # the shipped agent is written with the openai client
            raise ConfigError(
                "swarmgym/BlackBoxMath-v0's default agent needs the openai client: pip install 'swarmgym[agents]' "
                "(or pass command=[...] for your own program)"
            )
        command = [sys.executable, agent_path("openai_tools_agent.py")]
    kwargs.setdefault("oracle", _tool_oracle)  # calls the agent's calculator, then boxes its result
    return BlackBoxEnv(src, command, judge=kwargs.pop("judge", None) or ReasoningGymJudge(src), **kwargs)

