"""``swarmgym/WideSearch-v0`` and ``swarmgym/WideSearch-Swarm-v0``: wide information seeking, offline.

A task asks for one table: every entity of one (or more) registries × 3–5 attributes, found with ``search``
and ``open`` over a generated corpus of ~11,000 entity pages (see :mod:`~swarmgym.envs.widesearch_data`).
The judge is item-level F1 (the reward) with row-level F1 and precision/recall as facets, rows paired by
the ``Name`` column.

The Swarm variant gives the orchestrator the core toolset — ``search`` and ``open`` (browse) over the corpus
and ``python`` (code, in the env's sandbox: pass ``sandbox=SandboxPool(...)``; without one the tool answers
with an error observation saying so) — plus the two swarm tools ``create_subagent`` / ``assign_task``, as in
appendix E.8 of the K2.5 report. Its sub-agents run in a WideSearch env with the search tools
(:func:`make_subagent_env`) under the frozen ``"subagent"`` role. Both share one corpus and one search index
per seed across every env and episode in the process.

Oracles (SCRIPTED BASELINES, :mod:`~swarmgym.envs.widesearch_scripted`): the single-agent env's oracle looks
entities up one by one; the swarm env's oracle is the scripted orchestrator; the sub-agent env's oracle is
the single-agent logic on its chunk.

Example:
    >>> import swarmgym
    >>> env = swarmgym.make("swarmgym/WideSearch-v0")
    >>> len(env.tasks) >= 200
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from ..judges.f1 import ItemF1
from ..toolsets.python import PythonToolset
from ..toolsets.search import SearchToolset
from ..toolsets.swarm import StepLimits, SwarmToolset, step_limits
from ..wire import Message, Task
from .core import AgentEnv, EpisodeLimits
from .widesearch_data import WideSearchTasks, get_world
from .widesearch_scripted import (
    ORCHESTRATOR_SYSTEM,
    SINGLE_SYSTEM,
    orchestrator_step,
    single_agent_step,
)

__all__ = ["make_env", "make_subagent_env", "make_swarm_env", "widesearch_judge"]


def widesearch_judge() -> ItemF1:
    """Item-F1 judge (reward = item F1; facets: item/row precision, recall, F1), rows keyed by ``Name``."""
    return ItemF1(level="item", key="Name", name="widesearch")


def _single_oracle(task: Task, messages: list[Message]) -> Any:
    return single_agent_step(messages)


def make_env(
    *,
    seed: int = 0,
    size: int | None = None,
    steps: StepLimits | str = "widesearch",
    limits: EpisodeLimits | None = None,
    system_prompt: str = SINGLE_SYSTEM,
    **kwargs: Any,
) -> AgentEnv:
    """``swarmgym/WideSearch-v0``: a single agent with ``search``/``open`` (kwargs go to AgentEnv).

    Args:
        seed: world and task seed.
        size: number of tasks (default: all 252).
        steps: step-limit preset; the single agent gets the sub-agent budget (turns and tool calls).
        limits: explicit EpisodeLimits (overrides ``steps``).
        system_prompt: the agent's system prompt.
    """
    world = get_world(seed)
    return AgentEnv(
        WideSearchTasks(seed, size),
        toolsets=kwargs.pop("toolsets", None) or [SearchToolset(world.index)],
        judge=kwargs.pop("judge", None) or widesearch_judge(),
        system_prompt=system_prompt,
        limits=limits or step_limits(steps).for_subagent(),
        oracle=kwargs.pop("oracle", _single_oracle),
        env_id=kwargs.pop("env_id", "swarmgym/WideSearch-v0"),
        **kwargs,
    )


def make_subagent_env(*, seed: int = 0, steps: StepLimits | str = "widesearch", **kwargs: Any) -> AgentEnv:
    """The env sub-agents run in: search tools over the same shared index, no tasks of its own (the
    orchestrator's ``assign_task`` gives them), scripted sub-agent logic as its oracle."""
    world = get_world(seed)
    return AgentEnv(
        [],
        toolsets=[SearchToolset(world.index)],
        limits=step_limits(steps).for_subagent(),
        oracle=kwargs.pop("oracle", _single_oracle),
        env_id=kwargs.pop("env_id", "swarmgym/WideSearch-Subagent-v0"),
        **kwargs,
    )


def make_swarm_env(
    *,
    seed: int = 0,
    size: int | None = None,
    steps: StepLimits | str = "widesearch",
    limits: EpisodeLimits | None = None,
    reward: Literal["f1", "parl", "parl_staged"] = "f1",
    entities_per_agent: int = 2,
    max_subagents: int = 100,
    sink: Callable[..., Any] | None = None,
    subagent_env: Any = None,
    system_prompt: str = ORCHESTRATOR_SYSTEM,
    **kwargs: Any,
) -> AgentEnv:
    """``swarmgym/WideSearch-Swarm-v0``: an orchestrator with the core toolset (``search``, ``open``,
    ``python``) and ``create_subagent``/``assign_task``.

    Args:
        seed: world and task seed.
        size: number of tasks (default: all 252).
        steps: step limits per role (preset name or StepLimits).
        limits: explicit orchestrator EpisodeLimits (overrides ``steps`` for the orchestrator).
        reward: ``"f1"`` (item F1), ``"parl"`` (:class:`~swarmgym.judges.parl.PARLReward` over item F1) or
            ``"parl_staged"`` (:class:`~swarmgym.judges.parl.PARLStagedReward`); the step comes from
            ``judge_step``.
        entities_per_agent: chunk size of the scripted orchestrator (the oracle).
        max_subagents: sub-agent launches allowed per episode.
        sink: receives every finished sub-agent trajectory (otherwise they are released).
        subagent_env: the env sub-agents run in (default :func:`make_subagent_env`).
        system_prompt: the orchestrator's system prompt.
        **kwargs: AgentEnv arguments (``policies=PolicyRouter(...)`` for inline sub-agents, ``judge_step`` …).
    """
    sl = step_limits(steps)
    sub_env = subagent_env if subagent_env is not None else make_subagent_env(seed=seed, steps=sl)
    judge = kwargs.pop("judge", None)
    if judge is None:
        judge = widesearch_judge()
        if reward in ("parl", "parl_staged"):
            from ..judges.parl import PARLReward, PARLStagedReward

            judge = PARLReward(judge) if reward == "parl" else PARLStagedReward(judge)
        elif reward != "f1":
            from ..errors import ConfigError

            raise ConfigError(f"reward must be 'f1', 'parl' or 'parl_staged', got {reward!r}")
    swarm = SwarmToolset(sub_env, steps=sl, max_subagents=max_subagents, sink=sink)
    core = [SearchToolset(get_world(seed).index), PythonToolset()]

    def oracle(task: Task, messages: list[Message]) -> Any:
        return orchestrator_step(messages, entities_per_agent=entities_per_agent, max_agents=max_subagents)

    return AgentEnv(
        WideSearchTasks(seed, size),
        toolsets=kwargs.pop("toolsets", None) or [*core, swarm],
        judge=judge,
        system_prompt=system_prompt,
        limits=limits or sl.for_orchestrator(),
        oracle=kwargs.pop("oracle", oracle),
        env_id=kwargs.pop("env_id", "swarmgym/WideSearch-Swarm-v0"),
        **kwargs,
    )
