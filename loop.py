"""The core agent loop: one async episode, driving ``AgentEnv.areset``/``astep`` with a policy.

This is the only loop in swarmgym: the rollout manager calls it for every episode and child episode, and
the Gym ``reset``/``step`` API runs the same ``areset``/``astep`` underneath.

Failure handling: a policy error, an env bug or the episode deadline never propagates out of
:func:`run_episode`; the trajectory comes back with ``status`` ``error``/``truncated`` and the reason in
``error``. Cancellation (Ctrl-C, a cancelled run) marks it ``cancelled``, releases its sandbox, and
re-raises so the caller's cancel scope works.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import anyio

from .errors import PolicyError
from .policies.base import Policy, PolicyContext, PolicyRouter
from .wire import coerce_action
from .wire import Completion, Message, SamplingParams, Task, Trajectory

__all__ = ["run_episode", "ContextStrategy"]

_DEFAULT_SAMPLING = SamplingParams()
_DEFAULT_FROZEN = PolicyRouter().frozen


@runtime_checkable
class ContextStrategy(Protocol):
    """Decides what the policy sees each turn; the trajectory always keeps the full record.

    ``view`` gets the full conversation and the policy context (``ctx.state`` persists per episode) and
    returns the messages to send. It may call other policies (a summariser). An env without a strategy
    (``context_strategy=None``, the default) shows the policy the whole conversation.
    """

    async def view(self, messages: Sequence[Message], ctx: PolicyContext) -> list[Message]: ...


async def run_episode(
    env: Any,
    policy: Policy | PolicyRouter,
    task: Task | None = None,
    *,
    sampling: SamplingParams | None = None,
    role: str = "main",
    seed: int | None = None,
    group_id: str | None = None,
    sample_index: int = 0,
    parent_id: str | None = None,
    spawn: Any = None,
    depth: int = 0,
    trajectory_id: str | None = None,
    before_call: Any = None,
    side_call: Any = None,
    fork: bool = True,
) -> Trajectory:
    """Run one episode of ``env`` with ``policy`` and return its trajectory (never raises for episode
    failures; see the module docstring).

    Args:
        env: an AgentEnv (forked first unless ``fork=False``, so the caller's env is untouched).
        policy: a Policy, or a PolicyRouter (``role`` selects the policy; frozen roles → trainable=False).
        task: the task (default: drawn by the env from ``seed``).
        sampling: sampling parameters for every model call.
        role: policy role of this episode ("main", "subagent", "judge", …).
        seed: env reset seed.
        group_id, sample_index, parent_id, depth, trajectory_id: recorded in the trajectory / context.
        spawn: child-episode launcher exposed to tools and judges (default: inline child episodes).
        before_call: optional ``async f(ctx: PolicyContext) -> Policy | None`` run before every model call
            (the rollout manager uses it for pausing, per-role limits and swapping policy versions).
        side_call: exposed as ``PolicyContext.side_call`` for model calls besides the episode's turns
            (context strategies); the rollout manager routes them through its limits and store.
        fork: run on ``env.fork()`` (default) instead of ``env`` itself.
    """
    if isinstance(policy, PolicyRouter):
        pol = policy.get(role)
        trainable = policy.is_trainable(role)
    else:  # a bare policy: no router object per episode
        pol, trainable = policy, role not in _DEFAULT_FROZEN
    ep = env.fork() if fork else env
    if fork and ep.policies is None:
        ep.policies = policy  # inline spawns (sub-agents, agent judges) fall back to this run's policies
    sampling = sampling or _DEFAULT_SAMPLING
    # One coroutine for the whole episode (setup, turns, failure handling): every await layer is another
    # frame each resumption passes through and another object for the cyclic GC, per episode.
    try:
        try:
            if ep._areset_overridden or not ep.done:  # a custom areset, or a running episode to end first
                await ep.areset(
                    seed=seed,
                    task=task,
                    role=role,
                    trainable=trainable,
                    parent_id=parent_id,
                    group_id=group_id,
                    sample_index=sample_index,
                    spawn=spawn,
                    depth=depth,
                    trajectory_id=trajectory_id,
                )
            else:  # areset's own steps, without its observation and, when nothing needs setup, no coroutine
                ep._start(seed, None, task, role, trainable, parent_id, group_id, sample_index, spawn, depth,
                          trajectory_id)
                if ep._per_episode_setup:
                    await ep._setup(ep._ep)
        except Exception:
            # Setup failed after the trajectory existed (no sandbox, a toolset's setup raised): an error
            # episode like any other, so a run reports it (and its breaker can trip) instead of crashing.
            # Failures before that (no such task) are the caller's error and propagate.
            failed = ep.trajectory
            if failed is None or failed.status != "error":
                raise
            return failed
        state = ep._ep
        traj: Trajectory = state.traj
        pctx = PolicyContext(task=state.task, env=ep, role=role, episode_id=traj.id, side_call=side_call)
        deadline = ep.limits.episode_timeout_s
        strategy = ep.context_strategy
        specs = ep.tool_specs
        drive = getattr(ep, "drive_episode", None)  # an env that runs the whole episode itself (BlackBoxEnv)
        try:
            with anyio.move_on_after(deadline) if deadline else _NO_DEADLINE as scope:
                if drive is not None:
                    await drive(state, pol, sampling, pctx, before_call)
                while drive is None:
                    if before_call is not None:
                        swapped = await before_call(pctx)
                        if swapped is not None:
                            pol = swapped
                    msgs = traj.messages if strategy is None else await strategy.view(traj.messages, pctx)
                    completion = await pol.complete(msgs, specs, sampling, ctx=pctx)
                    pctx.turn += 1
                    if type(completion) is not Completion:  # a user policy returning a str/dict/Message
                        completion = coerce_action(completion)
                    terminated, truncated, _ = await ep._take_turn(state, completion)
                    if terminated or truncated:
                        break
            if scope.cancelled_caught:  # the episode deadline: a truncation; what was produced is judged
                if state.judging:  # it passed while the judge ran: a judge timeout, never "ok"
                    ep._judge_deadline(deadline)
                else:
                    await ep.aclose_episode("truncated", f"episode deadline of {deadline:g} s exceeded")
        except PolicyError as e:
            await ep.aclose_episode("error", f"{type(e).__name__}: {e}")
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await ep.aclose_episode("cancelled", "cancelled")
            raise
        except Exception as e:
            await ep.aclose_episode("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}")
        return traj
    finally:
        if fork:
            # env -> episode -> tool context -> env is a reference cycle; cutting it lets refcounting free
            # the episode at once instead of leaving ~30 objects per episode to the cyclic GC, which at
            # hundreds of episodes in flight was a large share of the loop's CPU.
            ep._ep = None


class _NoDeadline:
    """Stands in for ``anyio.move_on_after`` when the episode has no deadline (no cancel scope to pay for)."""

    cancelled_caught = False

    def __enter__(self) -> _NoDeadline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NO_DEADLINE = _NoDeadline()
