"""``RolloutManager``: runs many episodes (and their child episodes) concurrently on one event loop.

Every episode, top-level or child, goes through :func:`swarmgym.loop.run_episode` (the only episode loop);
the manager only decides *when* episodes start and what surrounds them:

- **Admission** is paced: episodes start in bursts of ``RolloutLimits.admission_burst`` per event-loop turn,
  waiting for a free episode slot, and back off while the loop lags, so starting 100,000 episodes never
  stalls the ones already running.
- **One limiter** (:mod:`~swarmgym.rollout.limiter`) bounds episodes in flight and sandboxes held; model
  calls are bounded globally and per role by wrapping each role's policy. A parent blocked in ``spawn``
  lends its slots to its children, so recursion to any depth never deadlocks.
- **spawn** (``await ctx.spawn(env_or_id, task, role="subagent", limits=None)``, for tools and judges) runs a
  child episode under its parent: the child is stored as soon as it ends (linked by ``parent_id``; the
  parent's ``children`` lists it) and the manager keeps no reference to it.
- **Groups**: K samples per task share ``group_id``; when a group is complete an optional group judge scores
  its members with ``JudgeContext.group``, group statistics go into ``Trajectory.info["group"]``, and
  zero-variance groups can be filtered out of what the run returns (they are still stored).
- **Failures** stay inside their episode (``error`` with the reason); transient policy errors are retried;
  an error-rate breaker stops a run that mostly fails with a :class:`~swarmgym.errors.RolloutError` that
  names the most common error. Cancelling a run (Ctrl-C or cancelling the awaiting task) cancels every
  episode and child, returns their sandboxes and stores the partial trajectories as ``cancelled``.
- **Partial rollout**: :meth:`RolloutManager.pause` stops episodes before their next model call;
  :meth:`RolloutManager.resume` continues them, optionally with a new policy (version + 1). Completions carry
  the version that produced them; ``max_staleness`` restarts or drops episodes that got too off-policy.

Example:
    >>> import anyio
    >>> from swarmgym import AgentEnv, Task, ScriptedPolicy
    >>> env = AgentEnv([Task(id="t0", prompt="Say hi", answer="hi")])
    >>> manager = RolloutManager(ScriptedPolicy(["hi"]))
    >>> trajs = anyio.run(manager.run, env)
    >>> [(t.task_id, t.status) for t in trajs]
    [('t0', 'ok')]
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sys
import time
import warnings
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio

from ..errors import (
    ConfigError,
    PolicyConnectionError,
    PolicyError,
    PolicyHTTPError,
    PolicyTimeoutError,
    RolloutError,
    ToolError,
)
from ..judges.base import JudgeContext, safe_score
from ..loop import run_episode
from ..policies.base import Policy, PolicyContext, PolicyRouter
from ..wire import Completion, Message, SamplingParams, Task, ToolSpec, Trajectory, coerce_action, new_id
from .groups import Group, group_stats
from .limiter import Lease, SlotPool
from .limits import RolloutLimits
from .metrics import LoopLagMonitor, RolloutMetrics
from .timeline import TimelineWriter

__all__ = ["RolloutManager", "RolloutLimits", "rollout"]

_TRANSIENT_HTTP = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_SPAWN_KW = frozenset({"sampling", "seed"})
_LAG_BACKOFF_S = 0.02  # admission pauses while the event loop lags more than this


def _is_transient(e: PolicyError) -> bool:
    if isinstance(e, (PolicyConnectionError, PolicyTimeoutError)):
        return True
    return isinstance(e, PolicyHTTPError) and (e.status in _TRANSIENT_HTTP or e.status >= 500)


class _TurnGate:
    """Time slicing of episode turns: at most ``per_tick`` turns go on per event-loop iteration after their model
    call returned; the others wait in a FIFO queue and are let through at the start of later iterations.

    Without it, when thousands of model calls return together (a burst of timers or responses), asyncio runs
    all their continuations in one loop iteration: with ~50 µs of work each (parsing, tool calls, judging),
    timers and socket reads then wait hundreds of milliseconds. With it, an iteration holds at most
    ~``per_tick`` turns, so the loop stays responsive and the CPU-bound backlog waits here, measured
    (``turn_wait_s``), instead of in asyncio's ready queue, unmeasured.
    """

    __slots__ = ("loop", "per_tick", "used", "waiters", "scheduled", "metrics")

    def __init__(self, per_tick: int, metrics: RolloutMetrics) -> None:
        self.loop = asyncio.get_running_loop()
        self.per_tick = per_tick
        self.used = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.scheduled = False
        self.metrics = metrics

    def enter(self) -> asyncio.Future[None] | None:
        """None when the turn may go on now, else a future to await (its place in the queue)."""
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._tick)  # runs next iteration: a new slice
        if self.used < self.per_tick and not self.waiters:
            self.used += 1
            return None
        fut = self.loop.create_future()
        self.waiters.append(fut)
        g = self.metrics.gauges
        if len(self.waiters) > g.get("peak_turn_queue", 0.0):
            g["peak_turn_queue"] = float(len(self.waiters))
        return fut

    def _tick(self) -> None:
        self.scheduled = False
        self.used = 0
        waiters = self.waiters
        while waiters and self.used < self.per_tick:
            fut = waiters.popleft()
            if not fut.done():  # a cancelled waiter's future is done already
                fut.set_result(None)
                self.used += 1
        if waiters or self.used:
            self.scheduled = True
            self.loop.call_soon(self._tick)


class _StopEpisode(Exception):
    """Raised from ``before_call`` after the manager ended the episode itself (budget, staleness)."""


class _ManagedPolicy:
    """One role's policy inside a run: call limits, deadline, retries, latency metrics, version stamp."""

    __slots__ = ("inner", "sems", "run", "version", "timeout", "retries", "backoff")

    def __init__(self, inner: Policy, sems: tuple[Any, ...], run: _Run, version: int) -> None:
        self.inner = inner
        self.sems = sems
        self.run = run
        self.version = version
        self.timeout = run.limits.model_call_timeout_s
        self.retries = run.limits.policy_retries
        self.backoff = run.limits.retry_backoff_s

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        metrics = self.run.metrics
        if not self.sems and self.timeout is None:
            # The common case inlined (no call limits, no per-call deadline): one coroutine frame per call
            # instead of three. A transient error falls through to the retrying path.
            t0 = time.perf_counter()
            try:
                c = await self.inner.complete(messages, tools, sampling, ctx=ctx)
            except PolicyError as e:
                if not self.retries or not _is_transient(e):
                    raise
                metrics.counters["model_retries"] += 1
                await anyio.sleep(self.backoff * random.uniform(0.5, 1.0))
                c = await self._retrying(messages, tools, sampling, ctx, 1)
            else:
                metrics.counters["model_calls"] += 1
                metrics.hist["model_latency_s"].observe(time.perf_counter() - t0)
                if self.version and not c.policy_version:
                    c = c.model_copy(update={"policy_version": self.version})
        else:
            c = await self._retrying(messages, tools, sampling, ctx, 0)
        gate = self.run.gate
        if gate is not None:  # the rest of this turn may have to wait for its slice of the loop
            wait = gate.enter()
            if wait is not None:
                t1 = time.perf_counter()
                await wait
                metrics.hist["turn_wait_s"].observe(time.perf_counter() - t1)
        return c

    async def _retrying(self, messages: Any, tools: Any, sampling: Any, ctx: Any, attempt: int) -> Completion:
        metrics = self.run.metrics
        while True:
            try:
                if self.sems:
                    c = await self._limited(messages, tools, sampling, ctx)
                else:
                    c = await self._call(messages, tools, sampling, ctx)
                break
            except PolicyError as e:
                if attempt >= self.retries or not _is_transient(e):
                    raise
                attempt += 1
                metrics.counters["model_retries"] += 1
                await anyio.sleep(self.backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1.0))
        if self.version and not c.policy_version:
            c = c.model_copy(update={"policy_version": self.version})
        return c

    async def _limited(self, messages: Any, tools: Any, sampling: Any, ctx: Any) -> Completion:
        held = 0
        try:
            for s in self.sems:  # always in the same order (global, then role): no lock-order deadlock
                await s.acquire()
                held += 1
            return await self._call(messages, tools, sampling, ctx)
        finally:
            for s in self.sems[:held]:
                s.release()

    async def _call(self, messages: Any, tools: Any, sampling: Any, ctx: Any) -> Completion:
        t0 = time.perf_counter()
        try:
            if self.timeout is None:
                c = await self.inner.complete(messages, tools, sampling, ctx=ctx)
            else:
                with anyio.fail_after(self.timeout):
                    c = await self.inner.complete(messages, tools, sampling, ctx=ctx)
        except TimeoutError as e:
            if isinstance(e, PolicyError):
                raise
            raise PolicyTimeoutError(
                f"model call exceeded {self.timeout:g} s (RolloutLimits.model_call_timeout_s)"
            ) from None
        m = self.run.metrics
        m.counters["model_calls"] += 1
        m.hist["model_latency_s"].observe(time.perf_counter() - t0)
        return c


class _ManagedRouter(PolicyRouter):
    """The router run_episode sees: each role's policy wrapped for the current run and policy version."""

    def __init__(self, run: _Run) -> None:  # deliberately not PolicyRouter.__init__: nothing of its own
        self._run = run
        base = run.mgr._router
        self.frozen = base.frozen
        self.default = base.default
        self.strict = base.strict

    def get(self, role: str = "main") -> Policy:
        return self._run.policy_for(role)  # type: ignore[return-value]

    def is_trainable(self, role: str) -> bool:
        return self._run.mgr._router.is_trainable(role)

    def roles(self) -> list[str]:
        return self._run.mgr._router.roles()


class _SandboxCM:
    """Async context manager around the env's sandbox acquisition: counts it in the sandbox pool."""

    __slots__ = ("inner", "st", "cm")

    def __init__(self, inner: Any, st: _EpState) -> None:
        self.inner = inner
        self.st = st
        self.cm: Any = None

    async def __aenter__(self) -> Any:
        st = self.st
        run = st.run
        t0 = time.perf_counter()
        parent_lease = st.parent.sb_lease if st.parent is not None else None
        lease = await run.sandboxes.acquire(parent_lease)
        try:
            self.cm = self.inner.acquire()
            sb = await self.cm.__aenter__()
        except BaseException:
            run.sandboxes.release(lease)
            raise
        st.sb_lease = lease
        run.metrics.hist["sandbox_wait_s"].observe(time.perf_counter() - t0)
        return sb

    async def __aexit__(self, *exc: Any) -> Any:
        st = self.st
        try:
            return await self.cm.__aexit__(*exc)
        finally:
            if st.sb_lease is not None:
                st.run.sandboxes.release(st.sb_lease)
                st.sb_lease = None


class _LimitedSandboxes:
    """Stands in for ``env.sandbox`` in one episode (see :class:`_SandboxCM`)."""

    __slots__ = ("inner", "st")

    def __init__(self, inner: Any, st: _EpState) -> None:
        self.inner = inner
        self.st = st

    def acquire(self) -> _SandboxCM:
        return _SandboxCM(self.inner, self.st)


class _EpState:
    """The manager's view of one running episode: its slots, budgets, children, and its hooks."""

    __slots__ = (
        "run", "role", "depth", "lease", "sb_lease", "parent", "env", "fixed_traj",
        "n_children", "tokens", "seen", "first_version", "stop",
    )  # fmt: skip

    def __init__(
        self, run: _Run, role: str, depth: int, lease: Lease | None, parent: _EpState | None, env: Any
    ) -> None:
        self.run = run
        self.role = role
        self.depth = depth
        self.lease = lease
        self.sb_lease: Lease | None = None
        self.parent = parent
        self.env = env
        self.fixed_traj: Trajectory | None = None
        self.n_children = 0
        self.tokens = 0
        self.seen = 0
        self.first_version: int | None = None
        self.stop: str | None = None

    @property
    def traj(self) -> Trajectory | None:
        return self.env.trajectory if self.env is not None else self.fixed_traj

    async def before_call(self, pctx: PolicyContext) -> Policy:
        run = self.run
        mgr = run.mgr
        while mgr._paused:
            await mgr._wait_resumed()
        limits = run.limits
        if limits.max_tokens_per_episode is not None or limits.max_staleness is not None:
            await self._check_budgets(limits)
        return run.policy_for(self.role)  # type: ignore[return-value]

    async def _check_budgets(self, limits: RolloutLimits) -> None:
        traj = self.env.trajectory
        comps = traj.completions
        if self.seen < len(comps):
            if self.first_version is None:
                self.first_version = comps[0].policy_version
            for c in comps[self.seen :]:
                self.tokens += c.usage.completion_tokens
            self.seen = len(comps)
        cap = limits.max_tokens_per_episode
        if cap is not None and self.tokens >= cap:
            await self.env.aclose_episode("truncated", f"token budget of {cap} completion tokens per episode used up")
            raise _StopEpisode
        if (limits.max_staleness is not None and self.first_version is not None
                and self.run.mgr._router.version_of(self.role) is None):  # pinned roles are off-policy by design
            behind = self.run.mgr.version - self.first_version
            if behind > limits.max_staleness:
                why = f"policy version {self.first_version} is {behind} versions behind (max_staleness={limits.max_staleness})"
                self.stop = limits.stale_action
                if self.stop == "restart":
                    self.run.metrics.counters["restarts"] += 1
                    await self.env.aclose_episode("cancelled", f"restarted: {why}")
                else:
                    self.run.metrics.counters["dropped_stale"] += 1
                    await self.env.aclose_episode("cancelled", f"dropped: {why}")
                raise _StopEpisode

    async def side_call(
        self, role: str, messages: Any, tools: Any, sampling: Any, pctx: PolicyContext, policy: Any = None
    ) -> Completion:
        """A model call besides the episode's turns (a context strategy's summariser), made like a turn's:
        it waits while paused, goes through the role's call limits, retries and version stamp, and is stored
        as a child trajectory of this episode (``role``; trainable only if the role is)."""
        run = self.run
        mgr = run.mgr
        while mgr._paused:
            await mgr._wait_resumed()
        if policy is None:
            pol: Any = run.policy_for(role)
        else:  # the strategy's own policy, wrapped like the role's would be
            sems = tuple(s for s in (run.model_sem, run.role_sems.get(role)) if s is not None)
            pinned = mgr._router.version_of(role)
            pol = _ManagedPolicy(policy, sems, run, mgr.version if pinned is None else pinned)
        c = await pol.complete(messages, tools, sampling, ctx=pctx)
        if type(c) is not Completion:
            c = coerce_action(c)
        self.tokens += c.usage.completion_tokens  # the episode's token budget pays for its summaries too
        run.metrics.counters["side_calls"] += 1
        parent = self.traj
        if parent is not None and run.store is not None:
            child = Trajectory(
                task_id=f"{parent.task_id}/{role}",
                env_id=parent.env_id,
                parent_id=parent.id,
                group_id=parent.group_id,
                sample_index=parent.sample_index,
                role=role,
                trainable=mgr._router.is_trainable(role),
                messages=[*messages, c.message],
                completions=[c],
                tools=list(tools),
                status="ok",
                metrics={"turns": 1.0, "tool_calls": 0.0},
                info={"side_call": True, "turn": pctx.turn},
            )
            parent.children.append(child.id)
            run.store.append(child)
        return c

    async def spawn(
        self, env: Any, task: Task | dict[str, Any] | str, role: str = "subagent", limits: Any = None, **kw: Any
    ) -> Trajectory:
        """Run a child episode under this one and return its trajectory (see the module docstring).

        Raises:
            ToolError: the spawn depth or the children-per-episode limit is exceeded (the model sees it).
            ConfigError: unknown keyword arguments or an unusable env/task.
        """
        run = self.run
        rl = run.limits
        depth = self.depth + 1
        if depth > rl.max_depth:
            raise ToolError(f"cannot spawn: sub-episodes may nest at most {rl.max_depth} levels deep")
        if rl.max_children_per_episode is not None and self.n_children >= rl.max_children_per_episode:
            raise ToolError(
                f"cannot spawn: this episode already started its limit of {rl.max_children_per_episode} sub-episodes"
            )
        bad = set(kw) - _SPAWN_KW
        if bad:
            raise ConfigError(f"spawn() got unexpected keyword arguments {sorted(bad)}; it accepts {sorted(_SPAWN_KW)}")
        self.n_children += 1
        parent_traj = self.traj
        child_env = run.child_env(env, limits)
        child_task = _as_task(task, parent_traj, self.n_children)
        child_id = new_id("traj_")
        # Lend our slots while we wait: the child (or a sibling) may use them, so recursion never deadlocks.
        lease, sb_lease = self.lease, self.sb_lease
        if lease is not None:
            lease.lend()
        if sb_lease is not None:
            sb_lease.lend()
        try:
            child_lease = await run.episodes.acquire(lease)
            if parent_traj is not None:  # listed as soon as it exists: a cancelled child is stored too
                parent_traj.children.append(child_id)
            run.metrics.in_flight_up()
            try:
                return await run.episode(
                    child_env,
                    child_task,
                    role=role,
                    depth=depth,
                    parent=self,
                    lease=child_lease,
                    sampling=kw.get("sampling"),
                    seed=kw.get("seed"),
                    trajectory_id=child_id,
                )
            finally:
                run.metrics.gauges["in_flight"] -= 1
                run.episodes.release(child_lease)
        finally:
            if lease is not None:
                lease.unlend()
            if sb_lease is not None:
                sb_lease.unlend()


def _as_task(task: Any, parent: Trajectory | None, n: int) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        base = parent.task_id if parent is not None else "task"
        return Task(id=f"{base}/sub{n}", prompt=task)
    if isinstance(task, dict):
        return Task.model_validate(task)
    raise ConfigError(f"spawn task must be a Task, a dict or a prompt string, got {type(task).__name__}")


_OUTBOX_SIZE = 4096


class _Outbox:
    """Finished trajectories on their way to the ``stream`` consumer: a bounded FIFO (producers wait while it
    is full, so a slow consumer holds episodes back instead of letting memory grow).

    Cheaper than an anyio memory stream, whose ``send`` and ``receive`` each yield to the event loop once per
    item (two scheduling round trips per finished episode): here a producer only appends and, when the
    consumer sleeps, wakes it once for however many trajectories arrive in the same loop iteration.
    """

    __slots__ = ("items", "limit", "closed", "_readable", "_writable")

    def __init__(self, limit: int) -> None:
        self.items: deque[Trajectory] = deque()
        self.limit = limit
        self.closed = False
        self._readable: anyio.Event | None = None
        self._writable: anyio.Event | None = None

    async def put(self, t: Trajectory) -> None:
        while len(self.items) >= self.limit:
            if self._writable is None:
                self._writable = anyio.Event()
            await self._writable.wait()
        self.items.append(t)
        self._wake_reader()

    def pop(self) -> Trajectory | None:
        """The oldest trajectory, or None when there is none right now."""
        if not self.items:
            return None
        t = self.items.popleft()
        ev = self._writable
        if ev is not None:
            self._writable = None
            ev.set()
        return t

    async def readable(self) -> None:
        """Wait until there is something to pop or the outbox is closed."""
        if self.items or self.closed:
            return
        if self._readable is None:
            self._readable = anyio.Event()
        await self._readable.wait()

    def close(self) -> None:
        self.closed = True
        self._wake_reader()

    def _wake_reader(self) -> None:
        ev = self._readable
        if ev is not None:
            self._readable = None
            ev.set()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    # Under trio (or any other anyio backend) there is no running asyncio loop, so reaching here means
    # asyncio itself is running the episodes. (sniffio is no longer an anyio dependency: not imported.)
    return True


class _NativeTasks:
    """Top-level episodes as plain asyncio tasks, each inside its own anyio cancel scope.

    anyio's ``TaskGroup.start_soon`` costs ~26 µs per task on asyncio (measured: spawning and running 50,000
    empty tasks, 36 µs each through anyio vs 7 µs through ``loop.create_task``, 14 µs with the scope below),
    a large share of a short episode. Cancellation stays anyio's: :meth:`cancel` cancels each task's scope,
    so shielded cleanup (storing partial trajectories, returning sandboxes) still runs to its end, which a
    raw ``Task.cancel()`` would interrupt.
    """

    __slots__ = ("loop", "scopes", "pending", "error", "cancelled", "on_error", "_idle")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.scopes: set[anyio.CancelScope] = set()
        self.pending = 0
        self.error: BaseException | None = None
        self.cancelled = False
        self.on_error: Any = None
        self._idle: asyncio.Future[None] | None = None

    def start_soon(self, fn: Any, *args: Any) -> None:
        self.pending += 1
        self.loop.create_task(self._run(fn, args))

    async def _run(self, fn: Any, args: tuple[Any, ...]) -> None:
        scope = anyio.CancelScope()
        if self.cancelled:
            scope.cancel()  # started after cancel(): runs cancelled, so its finally blocks still run
        # (the scope holds its host task: kept in self.scopes, it keeps the task alive while it runs, as a
        # task group would; asyncio itself only keeps weak references to tasks)
        self.scopes.add(scope)
        try:
            with scope:
                await fn(*args)
        except BaseException as e:  # the scope swallows its own cancellation; anything else stops the run
            if self.error is None and not isinstance(e, asyncio.CancelledError):
                self.error = e
                self.cancel()
                if self.on_error is not None:
                    self.on_error()
        finally:
            self.scopes.discard(scope)
            self.pending -= 1
            idle = self._idle
            if not self.pending and idle is not None and not idle.done():
                idle.set_result(None)

    def cancel(self) -> None:
        self.cancelled = True
        for scope in list(self.scopes):
            scope.cancel()

    async def join(self) -> None:
        while self.pending:
            self._idle = self.loop.create_future()
            await self._idle


class _Run:
    """Runtime state of one ``run``/``stream`` call (event-loop objects: never pickled)."""

    def __init__(
        self, mgr: RolloutManager, env: Any, sampling: SamplingParams | None, seed: int, group_size: int
    ) -> None:
        limits = mgr.limits
        self.mgr = mgr
        self.limits = limits
        self.metrics = mgr.metrics
        self.store = mgr.store
        self.sampling = sampling or mgr.sampling
        self.seed = seed
        self.group_size = group_size
        self.episodes = SlotPool(limits.max_episodes)
        self.sandboxes = SlotPool(limits.max_sandboxes)
        self.model_sem = anyio.Semaphore(limits.max_model_calls) if limits.max_model_calls else None
        self.role_sems = {r: anyio.Semaphore(n) for r, n in limits.max_model_calls_per_role.items()}
        self.policies: dict[str, _ManagedPolicy] = {}
        self.policies_version = mgr.version
        self.router = _ManagedRouter(self)
        self.env = self.prepare(env)
        self.envs_by_id: dict[str, Any] = {}
        self.groups: dict[str, Group] = {}
        self.recent: deque[bool] = deque(maxlen=limits.breaker_window)
        self.recent_errors = 0
        self.error: BaseException | None = None
        self.scope: anyio.CancelScope | None = None
        self.outbox = _Outbox(_OUTBOX_SIZE)
        self.lag = LoopLagMonitor(self.metrics)
        self.timeline = (
            TimelineWriter(mgr.timeline, self.metrics, self.lag, mgr.timeline_interval_s) if mgr.timeline else None
        )
        self.gate: _TurnGate | None = None  # made on the running loop (asyncio only), in _run_native
        if not self.metrics.counters["episodes_started"]:  # a fresh metrics object: time from here
            self.metrics.started_at = time.monotonic()
        self.metrics.finished_at = None

    # ------------------------------------------------------------------ envs and policies

    def prepare(self, env: Any) -> Any:
        """A fork of ``env`` with the run's caps applied to its limits and the manager's sandbox pool."""
        from ..envs.registry import make

        if isinstance(env, str):
            env = make(env)
        if not hasattr(env, "fork") or not hasattr(env, "areset"):
            raise ConfigError(f"expected an AgentEnv or a registered env id, got {type(env).__name__}")
        rl = self.limits
        update: dict[str, Any] = {}
        lim = env.limits
        if rl.max_turns_per_episode is not None and rl.max_turns_per_episode < lim.max_turns:
            update["max_turns"] = rl.max_turns_per_episode
        cap = rl.max_critical_steps
        if cap is not None and (lim.max_critical_steps is None or cap < lim.max_critical_steps):
            update["max_critical_steps"] = cap
        if rl.episode_timeout_s is not None:
            update["episode_timeout_s"] = rl.episode_timeout_s
        pool = self.mgr.pool
        if not update and pool is None:
            return env
        env = env.fork()
        if update:
            env.limits = lim.model_copy(update=update)
        if pool is not None:
            env.sandbox = pool
        return env

    def child_env(self, env: Any, limits: Any) -> Any:
        if isinstance(env, str):
            cached = self.envs_by_id.get(env)
            if cached is None:
                cached = self.envs_by_id[env] = self.prepare(env)
            env = cached
        else:
            env = self.prepare(env)
        if limits is not None:
            from ..envs.core import EpisodeLimits

            env = env.fork()
            env.limits = limits if isinstance(limits, EpisodeLimits) else EpisodeLimits.model_validate(limits)
        return env

    def policy_for(self, role: str) -> _ManagedPolicy:
        mgr = self.mgr
        if self.policies_version != mgr.version or mgr._router_changed:
            self.policies.clear()
            self.policies_version = mgr.version
            mgr._router_changed = False
        p = self.policies.get(role)
        if p is None:
            sems = tuple(s for s in (self.model_sem, self.role_sems.get(role)) if s is not None)
            pinned = mgr._router.version_of(role)  # a frozen role keeps its pinned version
            version = mgr.version if pinned is None else pinned
            p = self.policies[role] = _ManagedPolicy(mgr._router.get(role), sems, self, version)
        return p

    # ------------------------------------------------------------------ episodes

    async def episode(
        self,
        env: Any,
        task: Task,
        *,
        role: str,
        depth: int,
        parent: _EpState | None,
        lease: Lease | None,
        group_id: str | None = None,
        sample_index: int = 0,
        seed: int | None = None,
        sampling: SamplingParams | None = None,
        trajectory_id: str | None = None,
    ) -> Trajectory:
        """Run one episode through run_episode (restarting it when it got too stale)."""
        parent_traj = parent.traj if parent is not None else None
        parent_id = parent_traj.id if parent_traj is not None else None
        while True:
            ep_env = env.fork()
            ep_env.step_source = self.mgr.get_judge_step  # every judge reads the trainer's step when it runs
            st = _EpState(self, role, depth, lease, parent, ep_env)
            sb = ep_env.sandbox
            if sb is not None:
                if isinstance(sb, _LimitedSandboxes):  # spawned with a running episode's env (ctx.env)
                    sb = sb.inner
                ep_env.sandbox = _LimitedSandboxes(sb, st)
            try:
                traj = await run_episode(
                    ep_env,
                    self.router,
                    task,
                    sampling=sampling or self.sampling,
                    role=role,
                    seed=seed,
                    group_id=group_id,
                    sample_index=sample_index,
                    parent_id=parent_id,
                    spawn=st.spawn,
                    depth=depth,
                    trajectory_id=trajectory_id,
                    before_call=st.before_call,
                    side_call=st.side_call,
                    fork=False,
                )
            except anyio.get_cancelled_exc_class():
                traj = ep_env.trajectory
                if traj is not None:
                    if traj.status != "cancelled":  # cancelled before the loop could mark it
                        traj.status = "cancelled"
                        traj.error = traj.error or "cancelled"
                    self.metrics.record_episode(traj, parent is None)
                    if self.store is not None:
                        self.store.append(traj)
                raise
            finally:
                # env -> episode -> context -> (env, st.spawn) and env -> sandbox wrapper -> st -> env are
                # reference cycles; cutting them frees each episode by refcount at once (the run freezes
                # the collector's view periodically, so cyclic garbage would otherwise wait for the end)
                ep_env._ep = None
                ep_env.sandbox = None
            if st.stop == "restart":
                continue
            if parent is not None:  # a child: stored now, then only the caller holds it
                self.metrics.record_episode(traj, False)
                if self.store is not None:
                    self.store.append(traj)
                    if self.store.needs_flush:
                        await self.store.aflush()
            return traj

    async def top(self, task: Task, group: Group | None, sample_index: int, seed: int, lease: Lease) -> None:
        """A top-level episode: run, release its slot, then account it (groups, breaker, store, stream)."""
        try:
            traj = await self.episode(
                self.env,
                task,
                role="main",
                depth=0,
                parent=None,
                lease=lease,
                group_id=group.group_id if group is not None else None,
                sample_index=sample_index,
                seed=seed,
            )
        finally:
            self.metrics.gauges["in_flight"] -= 1
            self.episodes.release(lease)
        self.metrics.record_episode(traj, True)
        self._breaker(traj)
        if traj.status == "cancelled":  # dropped (too stale): stored, not returned, not in its group
            if self.store is not None:
                self.store.append(traj)
            if group is not None:
                group.expected -= 1
                if group.trajectories and len(group.trajectories) >= group.expected:
                    await self._finish_group(group)
            return
        if group is None:
            await self._finish([traj], task, None)
        elif group.add(traj):
            await self._finish_group(group)

    async def _finish_group(self, group: Group) -> None:
        self.groups.pop(group.group_id, None)
        await self._finish(group.trajectories, group.task, group.group_id)

    async def _finish(self, trajs: list[Trajectory], task: Task, group_id: str | None) -> None:
        mgr = self.mgr
        if mgr.group_judge is not None:
            await self._group_judge(trajs, task)
        stats = group_stats([t.reward for t in trajs], mgr.success_threshold)
        c = self.metrics.counters
        g = self.metrics.groups
        g["done"] += 1
        c["samples_in_groups"] += stats.size
        c["samples_passed"] += stats.passed
        if stats.passed:
            g["passed"] += 1
        filtered = mgr.filter_zero_variance and stats.zero_variance and len(trajs) > 1
        if stats.zero_variance:
            g["zero_variance"] += 1
        if group_id is not None and len(trajs) > 1:
            info = stats.as_dict()
            info["filtered"] = float(filtered)
            for t in trajs:
                t.info["group"] = info
        if filtered:
            g["filtered"] += 1
        store = self.store
        if store is not None:
            for t in trajs:
                store.append(t)
            if store.needs_flush:
                await store.aflush()
        if not filtered:
            for t in trajs:
                await self.outbox.put(t)

    async def _group_judge(self, trajs: list[Trajectory], task: Task) -> None:
        judge = self.mgr.group_judge
        st = _EpState(self, "judge", 0, None, None, None)
        st.fixed_traj = trajs[0]
        ctx = JudgeContext(spawn=st.spawn, group=trajs, step=self.mgr.judge_step)

        async def one(t: Trajectory) -> None:
            res = await safe_score(judge, task, t, ctx)
            if t.judge is not None:
                t.info["episode_judge"] = t.judge.model_dump(mode="json")
            t.judge = res
            t.reward = res.reward
            if res.outcome != "ok":
                self.metrics.counters["judge_" + res.outcome] += 1
                self._breaker_judge_failure(t)
                if not getattr(self.env, "train_on_judge_failure", False):
                    t.trainable = False

        scored = [t for t in trajs if t.status in ("ok", "truncated")]
        async with anyio.create_task_group() as tg:
            for t in scored:
                tg.start_soon(one, t)

    def _breaker(self, traj: Trajectory) -> None:
        rl = self.limits
        if rl.breaker_error_rate is None or traj.status == "cancelled":
            return
        j = traj.judge
        # a judge that fails or times out is a failing run as much as a policy that does
        failed = traj.status == "error" or (j is not None and j.outcome != "ok")
        self._breaker_record(traj, failed)

    def _breaker_judge_failure(self, traj: Trajectory) -> None:
        """A group judge failed on an episode the breaker already counted as fine: count it as failed."""
        if self.limits.breaker_error_rate is None or not self.recent:
            return
        # the episode was recorded as a success when it finished; turn that record into a failure
        for i in range(len(self.recent) - 1, -1, -1):
            if not self.recent[i]:
                self.recent[i] = True
                self.recent_errors += 1
                break
        self._breaker_check(traj)

    def _breaker_record(self, traj: Trajectory, failed: bool) -> None:
        if len(self.recent) == self.recent.maxlen and self.recent[0]:
            self.recent_errors -= 1
        self.recent.append(failed)
        self.recent_errors += failed
        if failed:
            self._breaker_check(traj)

    def _breaker_check(self, traj: Trajectory) -> None:
        rl = self.limits
        n = len(self.recent)
        if n >= rl.breaker_min_episodes and self.recent_errors >= rl.breaker_error_rate * n:  # type: ignore[operator]
            if self.error is None:
                j = traj.judge
                why = traj.error or (f"judge {j.outcome}: {j.info.get('judge_error', '')}" if j is not None else "")
                first = why.strip().splitlines()
                reason = first[0] if first else "unknown error"
                self.error = RolloutError(
                    f"stopped the run: {self.recent_errors} of the last {n} episodes failed; latest error: {reason}. "
                    "Fix the cause (is the model server running and reachable?) and run again; with a store, "
                    "resume skips what finished"
                )
                self.metrics.counters["breaker_trips"] += 1
            if self.scope is not None:
                self.scope.cancel()

    # ------------------------------------------------------------------ admission

    def plan(self, tasks: Sequence[Task] | int | None) -> Iterator[tuple[Task, str, range]]:
        """(task, group id, sample indices) for every task of the run, in order."""
        k = self.group_size
        if tasks is None or isinstance(tasks, int):
            source = self.env.tasks
            n = len(source) if tasks is None else tasks
        else:
            source = tasks
            n = len(source)
        m = len(source)
        if n and m == 0:
            raise ConfigError("no tasks to run: the env has no tasks and none were given")
        for i in range(n):
            task = source[i % m]
            if not isinstance(task, Task):
                task = Task.model_validate(task)
            r = i // m
            gid = task.id if r == 0 else f"{task.id}~{r}"
            yield task, gid, range(r * k, (r + 1) * k)

    async def admit(self, tasks: Sequence[Task] | int | None, tg: Any) -> None:
        done = self.store.done_keys() if self.store is not None else set()
        burst = self.limits.admission_burst
        metrics = self.metrics
        gauges = metrics.gauges
        started = 0
        mgr = self.mgr
        for i, (task, gid, samples) in enumerate(self.plan(tasks)):
            todo = [s for s in samples if (task.id, s) not in done] if done else samples
            if not todo:
                metrics.counters["skipped_done"] += len(samples)
                continue
            metrics.counters["skipped_done"] += len(samples) - len(todo)
            group = Group(task, gid, len(todo)) if self.group_size > 1 else None
            if group is not None:
                self.groups[gid] = group
            for s in todo:
                while mgr._paused:
                    await mgr._wait_resumed()
                lease = self.episodes.try_acquire(None)
                if lease is None:
                    gauges["queue_depth"] = 1 + self.episodes.queued
                    lease = await self.episodes.acquire(None)
                    gauges["queue_depth"] = self.episodes.queued
                metrics.in_flight_up()
                metrics.counters["episodes_started"] += 1
                seed = (self.seed * 1_000_003 + i * 7919 + s) & 0x7FFFFFFF
                tg.start_soon(self.top, task, group, s, seed, lease)
                started += 1
                if started % burst == 0:
                    # Let the episodes just started (and everything else) run before starting more; back off
                    # while the loop is already late, so admission never starves running episodes.
                    await anyio.sleep(0)
                    while self.lag.last_s > _LAG_BACKOFF_S:
                        self.lag.last_s = 0.0
                        await anyio.sleep(_LAG_BACKOFF_S)

    async def _run_native(self, tasks: Sequence[Task] | int | None) -> None:
        """Admission with top-level episodes as :class:`_NativeTasks` (asyncio), like a task group would."""
        eps = _NativeTasks()
        if self.limits.turns_per_tick is not None:
            self.gate = _TurnGate(self.limits.turns_per_tick, self.metrics)
        with anyio.CancelScope() as scope:
            eps.on_error = scope.cancel  # a failing episode stops admission, as in a task group
            try:
                await self.admit(tasks, eps)
                await eps.join()
            finally:
                if eps.pending:  # cancelled or failed: cancel the rest and let their cleanup finish
                    eps.cancel()
                    with anyio.CancelScope(shield=True):
                        await eps.join()
        if eps.error is not None:
            raise eps.error

    async def background(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.lag.run)
            if self.timeline is not None:
                self.sample_timeline()
                tg.start_soon(self.write_timeline)
            if self.mgr.tune_gc:
                tg.start_soon(_freeze_young_objects)
            if self.store is not None:
                while True:
                    await anyio.sleep(self.mgr.flush_interval_s)
                    await self.store.aflush()

    async def write_timeline(self) -> None:
        t0 = time.monotonic()
        while self.timeline is not None:
            # denser at the start (about 30 samples over the run so far, at least 50 ms apart) so a run of
            # a few seconds still has a shape; every interval_s once the run is long
            await anyio.sleep(min(self.timeline.interval_s, max(0.05, (time.monotonic() - t0) / 30)))
            self.sample_timeline()

    def sample_timeline(self) -> None:
        """One timeline sample; a file that cannot be written stops the timeline (warned), never the run."""
        if self.timeline is None:
            return
        try:
            self.timeline.sample()
        except OSError as e:
            warnings.warn(f"timeline {self.timeline.path} stopped: {e}", RuntimeWarning, stacklevel=2)
            self.timeline = None

    async def main(self, tasks: Sequence[Task] | int | None) -> None:
        try:
            if tasks is None or isinstance(tasks, int):
                # A lazy task source may import and build its generators on first access (reasoning-gym:
                # ~2 s, found with --profile): do that in a worker thread, not on the loop every run shares.
                with contextlib.suppress(Exception):  # admission raises the same error where it always did
                    await anyio.to_thread.run_sync(_warm_tasks, self.env.tasks, tasks)
            await self._main(tasks)
        except Exception as e:  # reported by stream() as itself, not wrapped in an exception group
            if self.error is None:
                self.error = _unwrap(e)

    async def _main(self, tasks: Sequence[Task] | int | None) -> None:
        try:
            with anyio.CancelScope() as scope:
                self.scope = scope
                async with anyio.create_task_group() as outer:
                    outer.start_soon(self.background)
                    try:
                        if _on_asyncio():
                            await self._run_native(tasks)
                        else:
                            async with anyio.create_task_group() as eps:
                                await self.admit(tasks, eps)
                    finally:
                        outer.cancel_scope.cancel()
        finally:
            g = self.metrics.gauges
            g["peak_episode_slots"] = max(g.get("peak_episode_slots", 0.0), float(self.episodes.peak))
            self.metrics.finished_at = time.monotonic()
            self.sample_timeline()  # the end state: every finished episode counted
            try:
                if self.store is not None:
                    with anyio.CancelScope(shield=True):
                        await self.store.aflush()
            except Exception as e:  # e.g. a full disk: reported by stream(), never a consumer left waiting
                if self.error is None:
                    self.error = _unwrap(e)
            finally:
                self.outbox.close()


def _warm_tasks(source: Any, n: int | None, most: int = 64) -> None:
    """Touch the first tasks of ``source`` (every lazily built part behind them gets built here)."""
    m = len(source)
    for i in range(min(m, m if n is None else n, most)):
        source[i]


_GC_THRESHOLD = (100_000, 50, 1000)
_GC_FREEZE_S = 0.023  # not a divisor of 0.1 s: anyio.wait_all_tasks_blocked polls every 0.1 s and would never
# see this task blocked if both woke in the same loop iteration every time (tests use it)


async def _freeze_young_objects() -> None:
    """Move the objects that survived the last ``_GC_FREEZE_S`` seconds out of the cyclic collector's view.

    A young-generation collection scans every object allocated since the previous one that is still alive;
    with tens of thousands of episodes in flight that is most of the run's live data (each object rescanned
    as it ages through the generations). Measured at 20,000 concurrent 3-turn episodes with the raised
    thresholds alone: 1.25 s of collector CPU (~60 µs per episode) and pauses up to 0.4 s (loop lag p99
    83 ms); freezing every 0.1 s: 0.17 s, longest pause 25 ms, lag p99 11 ms (every 0.05 s: 0.10 s). ``gc.freeze()`` is O(1): after
    it, collections only see what was allocated since. Frozen objects are still freed by reference counting
    (episode data is acyclic); cyclic garbage among them waits until the run ends (``_restore_gc``
    unfreezes), like the old-generation garbage the raised thresholds already deferred.
    """
    while True:
        await anyio.sleep(_GC_FREEZE_S)
        gc.freeze()


def _tune_gc() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Raise the collector's thresholds for a run; returns (old, new) for :func:`_restore_gc`.

    Tens of thousands of live episodes make CPython's default thresholds (700, 10, 10) run full collections
    over the whole heap every few seconds: measured at 20,000 concurrent episodes, GC was half the CPU time
    and pushed event-loop lag p99 from ~50 ms to ~400 ms. Episode data is acyclic and freed by reference
    counting, so collecting less often costs little memory.
    """
    old = gc.get_threshold()
    new = (max(old[0], _GC_THRESHOLD[0]), old[1], max(old[2], _GC_THRESHOLD[2]))
    gc.set_threshold(*new)
    return old, new  # type: ignore[return-value]


def _restore_gc(tuned: tuple[tuple[int, int, int], tuple[int, int, int]]) -> None:
    old, new = tuned
    # What the run froze (see _freeze_young_objects) goes back to the oldest generation, so the next full
    # collection reclaims any cyclic garbage left among it.
    gc.unfreeze()
    if gc.get_threshold() == new:  # unless someone changed it meanwhile
        gc.set_threshold(*old)


def _unwrap(e: BaseException) -> BaseException:
    """The error itself rather than a group around it: a group of one, or of errors that are all of one type
    (episodes failing on the same cause in the same moment, e.g. a full disk), gives its first error."""
    while isinstance(e, BaseExceptionGroup):
        subs = e.exceptions
        if len(subs) == 1 or all(type(x) is type(subs[0]) for x in subs):
            e = subs[0]
        else:
            break
    return e


class RolloutManager:
    """Runs episodes of an env concurrently under one set of limits (see the module docstring).

    Args:
        router_or_policy: a Policy, or a PolicyRouter mapping roles ("main", "subagent", "judge") to policies.
        limits: concurrency limits, budgets, retries, breaker and staleness settings.
        store: a :class:`~swarmgym.rollout.store.TrajectoryStore` (or ``MemoryStore``); every finished
            trajectory, children included, is appended, and a resumed store's finished pairs are skipped.
        metrics: a :class:`~swarmgym.rollout.metrics.RolloutMetrics` to update (default: a fresh one).
        pool: a sandbox source (``acquire()`` → async context manager) used instead of the env's own.
        sampling: default sampling parameters for every model call.
        group_judge: a Judge run on every member of a finished group with ``JudgeContext.group`` set (its
            result replaces the episode judge's; the episode judge's is kept in ``info["episode_judge"]``).
        filter_zero_variance: leave groups whose rewards are all equal out of what runs return.
        success_threshold: reward at which a sample counts as passed (pass@k).
        judge_step: the training step every judge sees (``JudgeContext.step``): per-episode judges read it
            when they run, group judges when the group is scored. Advance it with :meth:`set_judge_step` or
            ``resume(step=…)`` as training proceeds (PARL's λ and Toggle's phase follow it).
        freeze_gc: ``gc.freeze()`` once a run is set up: everything alive then (modules, envs, tasks) leaves
            the cyclic collector's view, which otherwise rescans it on every full collection.
        tune_gc: raise the cyclic collector's thresholds and freeze surviving objects every 0.07 s while a
            run is going (thresholds restored and objects unfrozen afterwards); see ``_tune_gc`` and
            ``_freeze_young_objects`` for the measurements behind it. Both GC settings are process-wide.
        flush_interval_s: the store is flushed at least this often.
        backend: ``"local"`` (this process) or ``"ray"``: top-level episodes on Ray actors, the store, groups,
            breaker and admission here (see :mod:`~swarmgym.rollout.ray_backend`; needs ``swarmgym[ray]``).
            Policies must then be :class:`~swarmgym.rollout.specs.Spec` descriptions and the env a
            registered id (or made by ``swarmgym.make``).
        ray_address: where Ray runs: None starts a local instance, ``"auto"`` joins the running cluster, or
            any ``ray.init`` address.
        ray_workers: worker actors (default: one per CPU of the cluster).
        ray_spawn: ``"local"`` (child episodes on their parent's worker) or ``"spread"`` (on the other
            workers in turn; see :class:`~swarmgym.rollout.ray_backend.RayBackend`).
        timeline: append a sample of concurrency, throughput and loop lag to this JSONL file every
            ``timeline_interval_s`` while a run goes on, and one at its end (see
            :mod:`~swarmgym.rollout.timeline`; ``swarmgym plot`` and the viewer draw it). Local backend only.
        timeline_interval_s: seconds between timeline samples.

    Not thread-safe: call ``pause``/``resume`` from the event loop running the manager.
    """

    def __init__(
        self,
        router_or_policy: Policy | PolicyRouter,
        limits: RolloutLimits | None = None,
        store: Any = None,
        metrics: RolloutMetrics | None = None,
        *,
        pool: Any = None,
        sampling: SamplingParams | None = None,
        group_judge: Any = None,
        filter_zero_variance: bool = False,
        success_threshold: float = 1.0,
        judge_step: int = 0,
        freeze_gc: bool = True,
        tune_gc: bool = True,
        flush_interval_s: float = 1.0,
        backend: str = "local",
        ray_address: str | None = None,
        ray_workers: int | None = None,
        ray_spawn: str = "local",
        timeline: str | Path | None = None,
        timeline_interval_s: float = 1.0,
    ) -> None:
        if not isinstance(router_or_policy, PolicyRouter) and not hasattr(router_or_policy, "complete"):
            raise ConfigError(f"expected a Policy or PolicyRouter, got {type(router_or_policy).__name__}")
        self._router = PolicyRouter.of(router_or_policy)
        self._router_changed = False
        self.limits = limits or RolloutLimits()
        self.store = store
        self.metrics = metrics or RolloutMetrics()
        self.pool = pool
        self.sampling = sampling or SamplingParams()
        self.group_judge = group_judge
        self.filter_zero_variance = filter_zero_variance
        self.success_threshold = success_threshold
        self.judge_step = judge_step
        self.freeze_gc = freeze_gc
        self.tune_gc = tune_gc
        self.flush_interval_s = flush_interval_s
        if timeline_interval_s <= 0:
            raise ConfigError(f"timeline_interval_s must be > 0, got {timeline_interval_s}")
        self.timeline = timeline
        self.timeline_interval_s = timeline_interval_s
        self.version = 0
        """Current policy version (stamped on completions that carry none; bumped by ``resume(policy=…)``)."""
        self._paused = False
        self._resume_event: Any = None
        self._ray: Any = None
        if backend == "ray":
            from .ray_backend import RayBackend
            from .specs import router_spec

            if pool is not None:
                raise ConfigError("pool= is not supported with backend='ray': each worker uses the env's sandboxes")
            if timeline is not None:
                raise ConfigError("timeline= is not supported with backend='ray' (the loops to sample are the workers')")
            router_spec(self._router)  # a live policy is an error now, not on the first run
            self._ray = RayBackend(ray_address, ray_workers, ray_spawn)
        elif backend != "local":
            raise ConfigError(f"backend must be 'local' or 'ray', got {backend!r}")

    @property
    def router(self) -> PolicyRouter:
        return self._router

    # ------------------------------------------------------------------ partial rollout

    def pause(self) -> None:
        """Stop starting episodes; in-flight episodes stop before their next model call (calls in progress
        finish). Call :meth:`resume` to continue."""
        self._paused = True
        self.metrics.gauges["paused"] = 1.0
        if self._ray is not None:
            self._ray.sync(self)

    def get_judge_step(self) -> int:
        """The training step judges see now."""
        return self.judge_step

    def set_judge_step(self, step: int) -> None:
        """Set the training step every judge sees from now on, including episodes already running.

        Raises:
            ConfigError: a negative or non-integer step.
        """
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ConfigError(f"the training step must be an int >= 0, got {step!r}")
        self.judge_step = step
        if self._ray is not None:
            self._ray.sync(self)

    def resume(
        self,
        policy: Policy | PolicyRouter | None = None,
        *,
        version: int | None = None,
        roles: Mapping[str, Policy] | None = None,
        step: int | None = None,
    ) -> None:
        """Continue after :meth:`pause`, optionally with new policy weights.

        Frozen roles (``"subagent"``, ``"judge"``, ``"summarizer"`` by default) stay pinned to their policy
        and version unless ``roles`` names them: a new ``main`` never reaches them.

        Args:
            policy: the new policy (replaces role "main") or router (replaces the trainable roles; a frozen
                role it only pins by default keeps its current pin); every later model call of a trainable
                role uses it, including those of episodes that started before.
            version: the new policy version (default: current + 1 when ``policy`` or ``roles`` is given).
            roles: roles to re-assign explicitly (a frozen role named here is re-pinned to the new version).
            step: the new training step judges see (:meth:`set_judge_step`).
        """
        if step is not None:
            self.set_judge_step(step)
        if policy is not None or roles:
            old = self._router
            if isinstance(policy, PolicyRouter):
                new = policy.copy()
                for r in new.defaulted & old.frozen:  # asked for nothing about r: its pin stays
                    if r in old.roles():
                        new.set(r, old.get(r), version=old.version_of(r))
                        if r in old.defaulted:
                            new.defaulted.add(r)
            else:
                new = old.copy()
                if policy is not None:
                    new.set("main", policy)
            self.version = version if version is not None else self.version + 1
            for r, p in (roles or {}).items():
                new.set(r, p, version=self.version)
            self._router = new
            self._router_changed = True
        elif version is not None:
            self.version = version
        self._paused = False
        self.metrics.gauges["paused"] = 0.0
        ev, self._resume_event = self._resume_event, None
        if ev is not None:
            ev.set()
        if self._ray is not None:
            self._ray.sync(self)

    async def _wait_resumed(self) -> None:
        if self._resume_event is None:
            self._resume_event = anyio.Event()
        await self._resume_event.wait()

    # ------------------------------------------------------------------ running

    async def stream(
        self,
        env: Any,
        tasks: Sequence[Task] | int | None = None,
        *,
        group_size: int = 1,
        sampling: SamplingParams | None = None,
        seed: int = 0,
    ) -> AsyncIterator[Trajectory]:
        """Run episodes and yield finished top-level trajectories as they complete (a group's members
        together, once the group is complete). Children are in the store, not yielded.

        Args:
            env: an AgentEnv or a registered env id.
            tasks: None (every task of the env), an int n (the env's first n tasks, cycling when n exceeds
                them), or a list of Tasks.
            group_size: samples per task (K); they share ``group_id`` and have ``sample_index`` 0..K-1.
            sampling: sampling parameters (default: the manager's).
            seed: seeds the episodes' reset seeds.

        Raises:
            RolloutError: the error-rate breaker stopped the run.
            ConfigError: bad arguments.
            StoreError: the store could not be written.

        Break out early with ``async with contextlib.aclosing(manager.stream(...)) as s`` so the run is
        cancelled (and its partial trajectories stored) right away.
        """
        if group_size < 1:
            raise ConfigError(f"group_size must be >= 1, got {group_size}")
        if self._ray is not None:
            from .ray_backend import _RayRun

            run: _Run = _RayRun(self, env, sampling, seed, group_size)
        else:
            run = _Run(self, env, sampling, seed, group_size)
        if self.store is not None:
            self.store.write_manifest(_manifest(run, tasks))
        if self.freeze_gc:
            gc.collect()
            gc.freeze()
        gc_tuned = _tune_gc() if self.tune_gc else None
        outbox = run.outbox
        closed = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(run.main, tasks)
                try:
                    while True:
                        t = outbox.pop()
                        if t is None:
                            if outbox.closed:
                                break
                            await outbox.readable()
                            continue
                        yield t
                except GeneratorExit:  # the consumer stopped early: cancel the rest (partials are stored)
                    closed = True
                    tg.cancel_scope.cancel()
        finally:
            if gc_tuned is not None:
                _restore_gc(gc_tuned)
        if closed:
            return
        if run.error is not None:
            raise run.error

    async def run(
        self,
        env: Any,
        tasks: Sequence[Task] | int | None = None,
        *,
        group_size: int = 1,
        sampling: SamplingParams | None = None,
        seed: int = 0,
    ) -> list[Trajectory]:
        """Run episodes and return the finished top-level trajectories (same arguments as :meth:`stream`)."""
        out: list[Trajectory] = []
        async with aclosing(self.stream(env, tasks, group_size=group_size, sampling=sampling, seed=seed)) as s:
            async for t in s:
                out.append(t)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_resume_event"] = None  # event-loop objects stay behind
        state["_ray"] = None  # so do actor handles
        state["_paused"] = False
        return state


def _manifest(run: _Run, tasks: Any) -> dict[str, Any]:
    import platform

    import pydantic

    from .. import __version__

    env = run.env
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "env_id": getattr(env, "env_id", "") or type(env).__name__,
        "args": {
            "tasks": tasks if isinstance(tasks, int) or tasks is None else f"{len(tasks)} tasks",
            "group_size": run.group_size,
            "sampling": run.sampling.model_dump(mode="json"),
            "limits": run.limits.model_dump(mode="json"),
            "roles": run.mgr._router.roles(),
            "policy_version": run.mgr.version,
            "backend": "ray" if run.mgr._ray is not None else "local",
        },
        "seed": run.seed,
        "resumed": bool(getattr(run.store, "resumed", False)),
        "versions": {
            "swarmgym": __version__,
            "python": platform.python_version(),
            "pydantic": pydantic.VERSION,
            "anyio": anyio.__version__ if hasattr(anyio, "__version__") else "",
        },
        "argv": list(sys.argv),
    }


def rollout(
    env: Any,
    policy: Policy | PolicyRouter,
    n: int | None = None,
    *,
    tasks: Sequence[Task] | None = None,
    group_size: int = 1,
    limits: RolloutLimits | None = None,
    store: Any = None,
    resume: bool = False,
    sampling: SamplingParams | None = None,
    seed: int = 0,
    **manager_kwargs: Any,
) -> list[Trajectory]:
    """Run a rollout synchronously (scripts, notebooks without a running loop) and return the trajectories.

    Args:
        env: an AgentEnv or a registered env id.
        policy: a Policy or PolicyRouter.
        n: number of tasks (default: all of the env's, or ``tasks``).
        tasks: explicit tasks instead of the env's.
        group_size: samples per task.
        limits: RolloutLimits.
        store: a store object or a path (a TrajectoryStore is opened there and closed at the end).
        resume: with a path: continue that store, skipping finished (task, sample) pairs.
        sampling: sampling parameters.
        seed: run seed.
        **manager_kwargs: further RolloutManager arguments (group_judge, filter_zero_variance, …).

    Example:
        >>> from swarmgym import AgentEnv, Task, ScriptedPolicy
        >>> env = AgentEnv([Task(id=f"t{i}", prompt="hi") for i in range(3)])
        >>> len(rollout(env, ScriptedPolicy(["hello"]), n=2, group_size=2))
        4
    """
    import functools
    import os

    own_store = None
    if isinstance(store, (str, os.PathLike)):
        from .store import TrajectoryStore

        store = own_store = TrajectoryStore(store, resume=resume)
    try:
        mgr = RolloutManager(policy, limits=limits, store=store, **manager_kwargs)
        what: Any = tasks if tasks is not None else n
        return anyio.run(functools.partial(mgr.run, env, what, group_size=group_size, sampling=sampling, seed=seed))
    finally:
        if own_store is not None:
            own_store.close()
