"""The environment contract: :class:`AgentEnv`, a gymnasium Env for multi-turn tool-using agents.

An AgentEnv composes a task source, toolsets (optionally in a sandbox), a judge and prompt enhancers. One
episode is: ``areset`` picks and enhances a task and builds the opening conversation; each ``astep`` takes
one assistant turn, runs its tool calls concurrently and appends their results; when the model answers
without tool calls (or a terminal tool succeeds) the episode *terminates*, at the turn limit it is
*truncated*, and either way the judge scores the trajectory and the reward is returned by that last step.

The sync Gym API (``reset``/``step``) runs the very same ``areset``/``astep`` through an anyio blocking
portal (a private event-loop thread, closed by ``close()``), and :func:`swarmgym.loop.run_episode` drives
``areset``/``astep`` with a policy: there is one code path.

Example:
    >>> from swarmgym import AgentEnv, Task
    >>> env = AgentEnv([Task(id="t0", prompt="Say hi", answer="hi")])
    >>> obs, info = env.reset(seed=0)
    >>> obs["messages"][-1].content
    'Say hi'
    >>> obs, reward, terminated, truncated, info = env.step("hi")
    >>> terminated
    True
    >>> env.close()
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import anyio
import gymnasium
from gymnasium.utils import seeding

from ..errors import ConfigError
from ..limits import EpisodeLimits
from ..judges.base import (
    Judge,
    JudgeContext,
    NullJudge,
    Weighted,
    checked_result,
    judge_error_result,
    judge_failure_result,
    safe_score,
)
from ..prompts.base import PromptEnhancer
from ..toolsets.base import ToolContext, run_tool_sync
from ..toolsets.swarm_metrics import DISPATCH_TOOLS as _DISPATCH_TOOLS
from ..toolsets.swarm_metrics import own_steps as _own_steps
from ..wire import (
    truncate_middle,
    Completion,
    Message,
    Task,
    ToolCall,
    ToolResult,
    ToolSpec,
    Trajectory,
    TrajectoryStatus,
    _trusted,
    new_id,
)
from .spaces import AssistantActionSpace, coerce_action, observation_space

__all__ = ["AgentEnv", "EpisodeLimits", "TaskSource", "PromptEnhancer", "truncate_middle"]


class TaskSource(Protocol):
    """Where tasks come from: a sized, indexable, deterministic collection (a list works)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Task: ...


def _overrides(ts: Any, method: str) -> bool:
    """Whether a toolset does real per-episode work in ``setup``/``teardown`` (not the base no-op)."""
    from ..toolsets.base import Toolset

    fn = getattr(type(ts), method, None)
    if fn is None:
        return False
    return not (isinstance(ts, Toolset) and fn is getattr(Toolset, method))


def _sync_function_tool(ts: Any, name: str) -> Any:
    """The FunctionTool behind ``name`` when the loop may run it directly: a sync function of a Toolset
    whose ``call`` is the base one (else None)."""
    from ..toolsets.base import Toolset

    if not isinstance(ts, Toolset) or type(ts).call is not Toolset.call:
        return None
    t = ts.tools.get(name)
    return t if t is not None and not t.is_async else None


_new_trajectory = Trajectory.__pydantic_validator__.validate_python
# A user message's fields at their defaults (for _opening's unvalidated construction).
_USER_MESSAGE = {name: f.default for name, f in Message.model_fields.items()} | {"role": "user"}
_TOOL_MESSAGE = _USER_MESSAGE | {"role": "tool"}
_TOOL_MESSAGE_FIELDS = frozenset({"role", "content", "tool_call_id", "name"})
# What a fork does not share with its origin: the running episode, the sync portal and the rng.
_FRESH_EPISODE_STATE = {"_ep": None, "_portal": None, "_np_random": None, "_np_random_seed": None, "_lazy_seed": None}
# The fields a new trajectory is given (the rest start at their defaults): its __pydantic_fields_set__.
_TRAJECTORY_GIVEN = frozenset(
    {"id", "task_id", "sample_index", "env_id", "group_id", "parent_id", "role", "trainable", "messages", "tools"}
)


class _Episode:
    """Mutable state of one episode (one AgentEnv instance runs one episode at a time; ``fork`` for more)."""

    __slots__ = ("task", "traj", "ctx", "turn", "done", "stack", "t0", "tool_calls", "tool_errors", "judging",
                 "turn_steps", "ran_own")

    def __init__(self, task: Task, traj: Trajectory, ctx: ToolContext) -> None:
        self.task = task
        self.traj = traj
        self.ctx = ctx
        self.turn = 0
        self.done = False
        self.stack: contextlib.AsyncExitStack | None = None  # created only when something must be released
        self.t0 = time.perf_counter()
        self.tool_calls = 0
        self.tool_errors = 0
        self.judging = False  # True while the judge runs (a cancellation then interrupted the judge)
        self.turn_steps: list[int] | None = None  # own steps per turn, kept only under a step budget
        self.ran_own = 0  # tool calls of the current turn that ran, assign_task excluded


class AgentEnv(gymnasium.Env):
    """A multi-turn, tool-using agent environment (gymnasium API, sync and async).

    Args:
        tasks: a list of Tasks or any sized, indexable task source (generated lazily, deterministic).
        toolsets: toolsets whose tools the model may call (tool names must be unique across them).
        judge: scores the finished trajectory (default: reward 0).
        enhancers: prompt enhancers applied to each task at reset, in order (seeded by the reset seed).
        system_prompt: prepended as a system message when the task prompt is a plain string.
        limits: per-episode limits.
        sandbox: an object with ``acquire()`` returning an async context manager that yields a sandbox
            (e.g. a ``SandboxPool``); entered at reset, released after the judge.
        oracle: ``f(task, messages) -> Message | str | dict``, the reference next action (OraclePolicy).
        env_id: registry id, recorded in trajectories.
        policies: a PolicyRouter used when tools or judges ``spawn`` children outside a rollout manager.
        context_strategy: decides what the policy sees each turn (see swarmgym.loop.ContextStrategy).
        render_mode: None or "ansi" (``render()`` returns the conversation as text).
        judge_step: training step handed to judges with schedules (``JudgeContext.step``); a rollout
            manager sets it on every episode from its own counter (``RolloutManager.set_judge_step``).
        train_on_judge_failure: keep trajectories whose judge failed or timed out trainable (default:
            ``trainable=False``, since their reward 0 is not a verdict on the policy's answer).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        tasks: Sequence[Task] | TaskSource,
        *,
        toolsets: Sequence[Any] = (),
        judge: Judge | None = None,
        enhancers: Sequence[PromptEnhancer] = (),
        system_prompt: str | None = None,
        limits: EpisodeLimits | None = None,
        sandbox: Any = None,
        oracle: Callable[[Task, list[Message]], Any] | None = None,
        env_id: str = "",
        policies: Any = None,
        context_strategy: Any = None,
        render_mode: str | None = None,
        judge_step: int = 0,
        train_on_judge_failure: bool = False,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if not hasattr(tasks, "__len__") or not hasattr(tasks, "__getitem__"):
            raise ConfigError(f"tasks must be a sequence of Task (or sized and indexable), got {type(tasks).__name__}")
        self.tasks = tasks
        self.toolsets = list(toolsets)
        self.enhancers = list(enhancers)
        base_judge: Judge = judge if judge is not None else NullJudge()
        extra = [(e.judge, float(getattr(e, "weight", 1.0))) for e in self.enhancers if getattr(e, "judge", None)]
        self.judge: Judge = Weighted([(base_judge, 1.0), *extra]) if extra else base_judge
        self.system_prompt = system_prompt
        self._system_message = Message(role="system", content=system_prompt) if system_prompt else None
        # (task, its user message) of the last episode, shared by every fork: messages are frozen, so the K
        # samples of a group (and an env run on one task) reuse one user message instead of validating K
        self._last_opening: list[tuple[Task, Message] | None] = [None]
        self.limits = limits or EpisodeLimits()
        self.sandbox = sandbox
        self.oracle = oracle
        self.env_id = env_id
        self.policies = policies
        self.context_strategy = context_strategy
        self.render_mode = render_mode
        self.judge_step = judge_step
        self.train_on_judge_failure = train_on_judge_failure
        self.step_source: Callable[[], int] | None = None
        """Where the judge's step is read from at judging time (a rollout manager sets it; else judge_step)."""
        self._tool_index: dict[str, Any] = {}
        specs: list[ToolSpec] = []
        for ts in self.toolsets:
            if not hasattr(ts, "specs") or not hasattr(ts, "call"):
                raise ConfigError(f"{type(ts).__name__} is not a toolset (needs specs() and async call())")
            for spec in ts.specs():
                if spec.name in self._tool_index:
                    raise ConfigError(
                        f"tool name {spec.name!r} is offered by two toolsets "
                        f"({type(self._tool_index[spec.name]).__name__} and {type(ts).__name__}); rename one"
                    )
                self._tool_index[spec.name] = ts
                specs.append(spec)
        self.tool_specs: tuple[ToolSpec, ...] = tuple(specs)
        # Only toolsets that really do per-episode work get setup/teardown calls (and an exit stack).
        self._setups = [ts for ts in self.toolsets if _overrides(ts, "setup")]
        self._teardowns = [ts for ts in self.toolsets if _overrides(ts, "teardown")]
        self._terminal_tools = frozenset(
            name for name, ts in self._tool_index.items() if getattr(ts, "is_terminal", None) and ts.is_terminal(name)
        )
        # Sync tools run inline and cannot be interrupted: called directly, without the per-call cancel
        # scope and the toolset's coroutine layers.
        self._sync_tools = {
            name: t for name, ts in self._tool_index.items() if (t := _sync_function_tool(ts, name)) is not None
        }
        self.observation_space = observation_space()
        self.action_space = AssistantActionSpace()
        self._ep: _Episode | None = None
        self._portal: _SyncRunner | None = None
        self._lazy_seed: int | None = None  # a reset seed whose Generator is built on first use

    # ------------------------------------------------------------------ helpers

    _areset_overridden = False

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        # run_episode does areset's work itself (_start, _setup: no observation) unless a subclass customised it
        cls._areset_overridden = cls.areset is not AgentEnv.areset

    def fork(self) -> AgentEnv:
        """A new env sharing this one's configuration (tasks, toolsets, judge …) with fresh episode state.

        One AgentEnv runs one episode at a time; the rollout manager forks one per concurrent episode.
        """
        new = object.__new__(type(self))  # cheaper than copy.copy; same shallow copy
        state = self.__dict__.copy()
        state.update(_FRESH_EPISODE_STATE)
        object.__setattr__(new, "__dict__", state)
        return new

    @property
    def _per_episode_setup(self) -> bool:
        """Whether an episode needs :meth:`_setup` (a sandbox to acquire, toolsets with setup/teardown)."""
        return self.sandbox is not None or bool(self._setups) or bool(self._teardowns)

    @property
    def np_random(self) -> Any:
        """The env's numpy Generator (seeded from the last reset's seed when first used)."""
        if self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(self._lazy_seed)
        return self._np_random

    @np_random.setter
    def np_random(self, value: Any) -> None:
        self._np_random = value
        self._np_random_seed = -1

    @property
    def np_random_seed(self) -> int:
        if self._np_random_seed is None:
            self.np_random  # noqa: B018 - creates the generator and its seed
        return int(self._np_random_seed)  # type: ignore[arg-type]

    @property
    def trajectory(self) -> Trajectory | None:
        """The trajectory of the current (or last) episode."""
        return self._ep.traj if self._ep else None

    @property
    def task(self) -> Task | None:
        return self._ep.task if self._ep else None

    @property
    def tool_context(self) -> ToolContext | None:
        return self._ep.ctx if self._ep else None

    @property
    def done(self) -> bool:
        return self._ep is None or self._ep.done

    def _observation(self) -> dict[str, Any]:
        assert self._ep is not None
        return {"messages": tuple(self._ep.traj.messages), "tools": self.tool_specs}

    def _select_task(self, options: dict[str, Any]) -> Task:
        if "task" in options and options["task"] is not None:
            t = options["task"]
            return t if isinstance(t, Task) else Task.model_validate(t)
        n = len(self.tasks)
        if n == 0:
            raise ConfigError("this env has no tasks; pass tasks=[Task(...)] or options={'task': ...}")
        if "task_index" in options:
            idx = int(options["task_index"])
            if not 0 <= idx < n:
                raise ConfigError(f"task_index {idx} out of range for {n} tasks")
        else:
            idx = int(self.np_random.integers(n))
        return self.tasks[idx]

    def _opening(self, task: Task) -> list[Message]:
        if isinstance(task.prompt, str):
            last = self._last_opening[0]
            if last is not None and last[0] is task:
                user = last[1]
            else:
                # a validated task's str prompt makes a valid message: no second validation (the system
                # message is built once per env)
                user = _trusted(Message, {**_USER_MESSAGE, "content": task.prompt}, {"role", "content"})
                self._last_opening[0] = (task, user)
            return [self._system_message, user] if self._system_message is not None else [user]
        return list(task.prompt)

    # ------------------------------------------------------------------ async API

    async def areset(
        self,
        *,
        seed: int | None = None,
        options: dict[str, Any] | None = None,
        task: Task | None = None,
        role: str = "main",
        trainable: bool = True,
        parent_id: str | None = None,
        group_id: str | None = None,
        sample_index: int = 0,
        spawn: Callable[..., Any] | None = None,
        depth: int = 0,
        trajectory_id: str | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode; returns ``(observation, info)``.

        Args:
            seed: seeds task selection and enhancers (gymnasium semantics).
            options: ``{"task": Task | dict}`` or ``{"task_index": i}`` to choose the task.
            task: the task to run (same as ``options={"task": task}``).
            role, trainable, parent_id, group_id, sample_index: recorded in the trajectory.
            spawn: the child-episode launcher tools and judges see as ``ctx.spawn``.
            depth: spawn depth of this episode.
            trajectory_id: use this id for the trajectory (default: a fresh random id).
        """
        if self._ep is not None and not self._ep.done:
            await self.aclose_episode("cancelled", "reset before the episode finished")
        ep = self._start(seed, options, task, role, trainable, parent_id, group_id, sample_index, spawn, depth,
                         trajectory_id)
        if self._per_episode_setup:
            await self._setup(ep)
        return self._observation(), {"task_id": ep.task.id, "turn": 0}

    def _start(
        self,
        seed: int | None,
        options: dict[str, Any] | None,
        task: Task | None,
        role: str,
        trainable: bool,
        parent_id: str | None,
        group_id: str | None,
        sample_index: int,
        spawn: Callable[..., Any] | None,
        depth: int,
        trajectory_id: str | None,
    ) -> _Episode:
        """The synchronous part of a reset: pick and enhance the task, open the trajectory (no previous
        episode may be running; per-episode setup follows in :meth:`_setup` when ``_per_episode_setup``)."""
        if task is not None and seed is not None and not self.enhancers:
            # Nothing here draws from the rng when the task is given: seed it lazily on first use, so the
            # rollout path does not build a numpy Generator (~15 µs) per episode for nothing.
            self._np_random = None
            self._np_random_seed = None
            self._lazy_seed = seed
        else:
            self._lazy_seed = None
            if seed is not None:  # (gymnasium's reset does nothing else)
                super().reset(seed=seed)
        if type(task) is Task and not options:  # the rollout path: the task is given
            t = task
        else:
            opts = dict(options or {})
            if task is not None:
                opts["task"] = task
            t = self._select_task(opts)
        if self.enhancers:
            rng = random.Random(int(self.np_random.integers(2**62)))
            for e in self.enhancers:
                t = e.enhance(t, rng)
        tid = trajectory_id or new_id("traj_")
        values = {  # every field, in declaration order (the order of model_dump and the JSON)
            "id": tid,
            "task_id": t.id,
            "sample_index": sample_index,
            "env_id": self.env_id,
            "group_id": group_id,
            "parent_id": parent_id,
            "role": role,
            "trainable": trainable,
            "messages": self._opening(t),
            "completions": [],
            "tools": list(self.tool_specs),
            "reward": 0.0,
            "judge": None,
            "metrics": {},
            "status": "ok",
            "error": None,
            "children": [],
            "info": {},
        }
        if (  # the caller's values have the field types already (always, from the loop): no validation
            type(sample_index) is int
            and type(role) is str
            and type(trainable) is bool
            and (group_id is None or type(group_id) is str)
            and (parent_id is None or type(parent_id) is str)
            and type(tid) is str
        ):
            traj = _trusted(Trajectory, values, set(_TRAJECTORY_GIVEN))
        else:  # validated: a clear error for a wrong type from a user's call
            traj = _new_trajectory({k: values[k] for k in _TRAJECTORY_GIVEN})
        ctx = ToolContext(
            task=t, spawn=spawn or self._default_spawn, env=self, episode_id=traj.id, role=role, depth=depth
        )
        ep = _Episode(t, traj, ctx)
        self._ep = ep
        return ep

    async def _setup(self, ep: _Episode) -> None:
        """Acquire the episode's sandbox and run the toolsets' setup (if this env has any of them)."""
        ctx, traj = ep.ctx, ep.traj
        ep.stack = stack = contextlib.AsyncExitStack()
        try:
            if self.sandbox is not None:
                ctx.sandbox = await stack.enter_async_context(self.sandbox.acquire())
            for ts in self.toolsets:
                if ts in self._setups:
                    await ts.setup(ctx)
                if ts in self._teardowns:
                    stack.push_async_callback(ts.teardown, ctx)
        except BaseException as e:
            with anyio.CancelScope(shield=True):
                await stack.aclose()
            ep.done = True
            # the trajectory records why the episode never started (a sandbox that could not be had, a
            # failing toolset setup); the exception still tells the caller
            traj.status = "cancelled" if isinstance(e, anyio.get_cancelled_exc_class()) else "error"
            traj.error = f"episode setup failed: {type(e).__name__}: {e}"
            raise

    async def astep(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Take one assistant turn; returns ``(obs, reward, terminated, truncated, info)``.

        ``action`` is a str, an OpenAI-style assistant dict, a Message or a Completion (from a policy).

        Raises:
            ConfigError: no episode is running (call reset first) or the action has the wrong type.
        """
        ep = self._ep
        if ep is None or ep.done:
            raise ConfigError("no episode is running: call reset() (or areset()) before step()")
        try:
            completion = coerce_action(action)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"invalid action: {e}") from e
        terminated, truncated, info = await self._take_turn(ep, completion, True)
        reward = ep.traj.reward if (terminated or truncated) else 0.0
        return self._observation(), reward, terminated, truncated, info

    async def _take_turn(
        self, ep: _Episode, completion: Completion, want_info: bool = False
    ) -> tuple[bool, bool, dict[str, Any] | None]:
        """One assistant turn: record it, run its tool calls, decide termination, judge at the end.

        ``astep`` and ``run_episode`` both go through here (run_episode skips building the observation and
        the step info).
        """
        traj = ep.traj
        msg = completion.message
        traj.messages.append(msg)
        traj.completions.append(completion)
        ep.turn += 1
        calls = msg.tool_calls or ()
        terminated = not calls
        n_err = 0
        if calls:
            results = await self._run_calls(ep, calls)
            for call, res in zip(calls, results):
                if res.is_error:
                    n_err += 1
                content = res.content
                if isinstance(content, str):
                    content = truncate_middle(content, self.limits.max_tool_output_chars)
                # from a validated ToolResult and ToolCall: a valid message without a second validation
                traj.messages.append(
                    _trusted(Message, {**_TOOL_MESSAGE, "content": content, "tool_call_id": call.id, "name": call.name},
                             set(_TOOL_MESSAGE_FIELDS))
                )
                if not res.is_error and call.name in self._terminal_tools:
                    terminated = True
        lim = self.limits
        budget = lim.max_total_tool_calls
        truncated = not terminated and (
            ep.turn >= lim.max_turns or (budget is not None and ep.tool_calls >= budget)
        )
        why = None
        if lim.max_steps is not None or lim.max_critical_steps is not None:
            steps = ep.turn_steps
            if steps is None:
                steps = ep.turn_steps = traj.info["turn_steps"] = []
            steps.append(max(1, ep.ran_own) if calls else 1)
            ep.ran_own = 0
            if not terminated:
                why = self._budget_used_up(ep)
                truncated = truncated or why is not None
        if terminated or truncated:
            await self._finish(ep, "truncated" if truncated else "ok", why)
        if not want_info:
            return terminated, truncated, None
        info: dict[str, Any] = {"turn": ep.turn, "tool_calls": len(calls), "tool_errors": n_err}
        if terminated or truncated:
            info["status"] = traj.status
            if traj.judge is not None:
                info["facets"] = dict(traj.judge.facets)
        return terminated, truncated, info

    def _steps_left(self, ep: _Episode) -> int | None:
        """Own steps this episode may still take under its step budgets (None: no budget)."""
        lim = self.limits
        left: int | None = None
        if lim.max_steps is not None:
            left = lim.max_steps - sum(ep.turn_steps or ())
        if lim.max_critical_steps is not None:
            crit = lim.max_critical_steps - self.critical_steps_so_far(ep)
            left = crit if left is None else min(left, crit)
        return left

    def critical_steps_so_far(self, ep: _Episode, before_turn: int | None = None) -> int:
        """Critical steps of this episode's tree so far (turns before ``before_turn``, 1-based, if given)."""
        from ..toolsets.swarm_metrics import steps_from_records

        steps = ep.turn_steps or []
        records = ep.traj.info.get("subagents") or ()
        if before_turn is not None:
            steps = steps[: before_turn - 1]
            records = [r for r in records if int(r.get("turn", 0)) < before_turn]
        return steps_from_records(steps, records).critical

    def _budget_used_up(self, ep: _Episode) -> str | None:
        lim = self.limits
        used = sum(ep.turn_steps or ())
        if lim.max_steps is not None and used >= lim.max_steps:
            ep.traj.info["budget"] = {"kind": "steps", "limit": lim.max_steps, "used": used}
            return f"step budget of {lim.max_steps} steps used up ({used})"
        if lim.max_critical_steps is not None:
            crit = self.critical_steps_so_far(ep)
            if crit >= lim.max_critical_steps:
                ep.traj.info["budget"] = {"kind": "critical_steps", "limit": lim.max_critical_steps, "used": crit}
                return f"critical-step budget of {lim.max_critical_steps} used up ({crit})"
        return None

    async def _run_calls(self, ep: _Episode, calls: list[ToolCall]) -> list[ToolResult]:
        limit = self.limits.max_tool_calls_per_turn
        budget = self.limits.max_total_tool_calls
        left = self._steps_left(ep)
        ran_own = 0
        results: list[ToolResult | None] = [None] * len(calls)
        runnable: list[int] = []
        for i, call in enumerate(calls):
            own = call.name not in _DISPATCH_TOOLS
            if left is not None and own and ran_own >= left:
                results[i] = ToolResult(
                    call_id=call.id,
                    content=f"not run: the step budget is used up ({left} steps were left this turn)",
                    is_error=True,
                )
                continue
            if i >= limit:
                results[i] = ToolResult(
                    call_id=call.id,
                    content=f"not run: at most {limit} tool calls per turn (this turn made {len(calls)})",
                    is_error=True,
                )
            elif budget is not None and ep.tool_calls >= budget:
                results[i] = ToolResult(
                    call_id=call.id, content=f"not run: the episode's budget of {budget} tool calls is used up", is_error=True
                )
            else:
                ep.tool_calls += 1
                ran_own += own
                runnable.append(i)
        ep.ran_own = ran_own
        if len(runnable) == 1:  # the common case: no task group needed
            i = runnable[0]
            results[i] = await self._run_one(ep, calls[i])
        elif runnable:

            async def one(i: int) -> None:
                results[i] = await self._run_one(ep, calls[i])

            async with anyio.create_task_group() as tg:
                for i in runnable:
                    tg.start_soon(one, i)
        out = [r for r in results if r is not None]
        ep.tool_errors += sum(1 for r in out if r.is_error)
        return out

    async def _run_one(self, ep: _Episode, call: ToolCall) -> ToolResult:
        ts = self._tool_index.get(call.name)
        if ts is None:
            names = ", ".join(self._tool_index) or "none"
            return ToolResult(call_id=call.id, content=f"unknown tool '{call.name}'; available tools: {names}", is_error=True)
        timeout_for = getattr(ts, "timeout_for", None)
        timeout = (timeout_for(call.name) if timeout_for else None) or self.limits.tool_timeout_s
        t0 = time.perf_counter()
        res: ToolResult | None = None
        timed_out = False
        try:
            fast = self._sync_tools.get(call.name)
            if fast is not None:
                res = run_tool_sync(fast, call, ep.ctx)
            else:
                with anyio.move_on_after(timeout) as scope:
                    res = await ts.call(call, ep.ctx)
                timed_out = scope.cancelled_caught
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as e:  # a toolset that breaks its own contract still must not kill the episode
            res = ToolResult(call_id=call.id, content=f"tool '{call.name}' failed: {type(e).__name__}: {e}", is_error=True)
        m = ep.traj.metrics
        m["tool_time_s"] = m.get("tool_time_s", 0.0) + (time.perf_counter() - t0)
        if timed_out or res is None:
            return ToolResult(
                call_id=call.id,
                content=f"tool '{call.name}' timed out after {timeout:g} s and was cancelled",
                is_error=True,
                metadata={"timeout": True},
            )
        return res

    async def _finish(self, ep: _Episode, status: TrajectoryStatus, error: str | None = None) -> None:
        """Judge (unless cancelled/error), release the sandbox and toolset state, fill in metrics."""
        if ep.done:
            return
        ep.done = True
        traj = ep.traj
        ctx = ep.ctx
        if error is not None:
            traj._assign(status=status, error=error)
        else:
            traj._assign(status=status)
        if status == "cancelled":  # cut short from outside (Ctrl-C, a stopped run): its reward is no verdict
            traj._assign(trainable=False)
        try:
            if status in ("ok", "truncated"):
                src = self.step_source  # the trainer's counter, read now: the step this sample trains at
                step = src() if src is not None else self.judge_step
                jctx = JudgeContext(sandbox=ctx.sandbox, spawn=ctx.spawn, state=ctx.state, step=step)
                timeout = self.limits.judge_timeout_s
                judge = self.judge
                t0 = time.perf_counter()
                ep.judging = True
                try:
                    if timeout is None and getattr(judge, "offload", None) is None:
                        # safe_score's failure policy inline: one coroutine less per episode
                        try:
                            res = checked_result(judge, await judge.score(ep.task, traj, jctx))
                        except (anyio.get_cancelled_exc_class(), KeyboardInterrupt):
                            raise
                        except BaseException as e:  # sys.exit() in a judge included
                            res = judge_error_result(e)
                    else:
                        res = await safe_score(judge, ep.task, traj, jctx, timeout=timeout)
                except anyio.get_cancelled_exc_class():
                    # The run was cancelled, or the episode deadline passed, while the judge ran: never "ok".
                    # run_episode turns the deadline case into a truncation with a judge timeout.
                    traj._assign(status="cancelled", error="cancelled while judging")
                    raise
                ep.judging = False
                traj.metrics["judge_time_s"] = time.perf_counter() - t0
                traj._assign(judge=res, reward=res.reward)
                if res.outcome != "ok":
                    self._judge_failed(traj)
        finally:
            if ep.stack is not None:
                with anyio.CancelScope(shield=True):
                    try:
                        await ep.stack.aclose()
                    except Exception as e:  # a failed release must not lose the finished trajectory
                        traj.info["teardown_error"] = f"{type(e).__name__}: {e}"
            m = traj.metrics
            m["turns"] = float(ep.turn)
            m["tool_calls"] = float(ep.tool_calls)
            m["tool_errors"] = float(ep.tool_errors)
            m["wall_s"] = time.perf_counter() - ep.t0
            model_time = 0.0
            steps = 0
            for c in traj.completions:  # (a plain loop: a generator per episode costs more here)
                model_time += c.latency_s
                calls = c.message.tool_calls
                steps += _own_steps(c.message) if calls else 1
            m["model_time_s"] = model_time
            m["steps"] = float(sum(ep.turn_steps) if ep.turn_steps is not None else steps)
            if ctx.metrics:
                m.update(ctx.metrics)

    def _judge_failed(self, traj: Trajectory) -> None:
        """The policy for a trajectory whose judge failed or timed out: not trainable unless asked."""
        if not self.train_on_judge_failure:
            traj.trainable = False

    def _judge_deadline(self, deadline: float) -> None:
        """Record that the episode deadline passed while the judge ran (called by run_episode)."""
        ep = self._ep
        if ep is None:
            return
        reason = f"episode deadline of {deadline:g} s exceeded while judging"
        res = judge_failure_result("timeout", reason)
        ep.traj._assign(status="truncated", error=reason, judge=res, reward=0.0)
        ep.judging = False
        self._judge_failed(ep.traj)

    async def aclose_episode(self, status: TrajectoryStatus = "cancelled", error: str | None = None) -> None:
        """End the running episode without judging (cancelled/error), releasing its resources."""
        if self._ep is not None and not self._ep.done:
            await self._finish(self._ep, status, error)

    async def _default_spawn(
        self, env: Any, task: Task, role: str = "subagent", limits: Any = None, **kw: Any
    ) -> Trajectory:
        """Run a child episode inline (used when no rollout manager supplies a spawn)."""
        from ..loop import run_episode
        from .registry import make

        if self.policies is None:
            raise ConfigError(
                "spawn needs a policy for the child: run the episode through a RolloutManager or pass "
                "policies=PolicyRouter(...) to the env"
            )
        child = make(env) if isinstance(env, str) else env
        if limits is not None and hasattr(child, "limits"):
            child = child.fork()
            child.limits = limits
        parent = self._ep
        traj = await run_episode(
            child,
            self.policies,
            task,
            role=role,
            parent_id=parent.traj.id if parent else None,
            depth=(parent.ctx.depth + 1) if parent else 1,
            **kw,
        )
        if parent is not None:
            parent.traj.children.append(traj.id)
        return traj

    # ------------------------------------------------------------------ Gym API

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._portal is None:
            self._portal = _SyncRunner()
        return self._portal.call(fn, *args, **kwargs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Gym reset: ``options`` may hold ``{"task": Task}`` or ``{"task_index": i}``."""
        return self._call(self.areset, seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Gym step: one assistant turn (str, dict, Message or Completion)."""
        return self._call(self.astep, action)

    def render(self) -> str | None:
        """The conversation as text (render_mode "ansi")."""
        if self.render_mode != "ansi" or self._ep is None:
            return None
        lines = []
        for m in self._ep.traj.messages:
            text = m.text
            if m.tool_calls:
                text += "".join(f"\n  -> {c.name}({c.arguments})" for c in m.tool_calls)
            lines.append(f"[{m.role}] {text}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        """End a running episode (as cancelled) and stop the sync runner. Safe to call twice."""
        if self._ep is not None and not self._ep.done:
            if self._portal is not None:
                self._portal.call(self.aclose_episode)
            else:
                anyio.run(self.aclose_episode)
        if self._portal is not None:
            runner, self._portal = self._portal, None
            runner.close()
        super().close()


class _SyncRunner:
    """An event loop on a private daemon thread that runs the async API for the sync Gym API.

    Not anyio's blocking portal: its worker thread is non-daemon, so a user who forgets ``env.close()``
    would hang the interpreter at exit. anyio code runs unchanged on this plain asyncio loop. The loop is
    closed by its own thread when it stops, so a forgotten env (stopped by the finalizer) leaks nothing.
    """

    def __init__(self) -> None:
        import asyncio
        import threading
        import weakref

        self._loop = loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_loop, args=(loop,), name="swarmgym-env", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, _stop_loop, loop)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        import asyncio

        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self._loop).result()

    def close(self) -> None:
        self._finalizer()
        self._thread.join(timeout=5)


def _run_loop(loop: Any) -> None:
    try:
        loop.run_forever()
    finally:
        loop.close()


def _stop_loop(loop: Any) -> None:
    if not loop.is_closed():
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:  # closed in between
            pass
