"""Agent Swarm tools: ``create_subagent`` and ``assign_task`` for a trainable orchestrator.

The two tool schemas are exactly those of the Kimi K2.5 report (appendix E.8). The orchestrator creates
named sub-agent configurations (a system prompt each) and assigns tasks to them; every ``assign_task`` call
runs a **child episode** through ``ctx.spawn`` under the policy role ``"subagent"`` (a frozen role, so the
child trajectory is ``trainable=False``: its tokens are observations, never actions to learn from), and the
child's final message, trimmed, is the tool result. Several ``assign_task`` calls in one assistant turn run
concurrently because the env runs the calls of one turn concurrently.

Memory stays bounded however many sub-agents run: once a child returns, the toolset keeps only its final
message (what the orchestrator sees) and a small record (launch turn, steps, status); the child trajectory
itself goes to ``sink`` (e.g. a store) if one is given and is otherwise released. A rollout manager's
``spawn`` stores children itself.

Step limits per role come from :class:`StepLimits` (presets from the report in :data:`STEP_LIMIT_PRESETS`).

Example:
    >>> [s.name for s in SwarmToolset(subagent_env=None).specs()]
    ['create_subagent', 'assign_task']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError, ToolError
from ..wire import Message, Task, ToolResult, ToolSpec, Trajectory
from .base import ToolContext, Toolset, tool
from .swarm_metrics import steps_from_records, turn_steps

__all__ = [
    "ASSIGN_TASK_SPEC",
    "CREATE_SUBAGENT_SPEC",
    "STEP_LIMIT_PRESETS",
    "StepLimits",
    "SwarmState",
    "SwarmToolset",
    "step_limits",
]

CREATE_SUBAGENT_SPEC = ToolSpec(
    name="create_subagent",
    description="Create a custom subagent with specific system prompt and name for reuse.",
    parameters={
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Unique name for this agent configuration"},
            "system_prompt": {
                "type": "string",
                "description": "System prompt defining the agent's role, capabilities, and boundaries",
            },
        },
        "required": ["name", "system_prompt"],
    },
)
"""The ``create_subagent`` schema, verbatim from the K2.5 report."""

ASSIGN_TASK_SPEC = ToolSpec(
    name="assign_task",
    description=(
        "Launch a new agent.\n"
        "Usage notes:\n"
        " 1. You can launch multiple agents concurrently whenever possible, to maximize performance;\n"
        " 2. When the agent is done, it will return a single message back to you."
    ),
    parameters={
        "type": "object",
        "properties": {
            "agent": {"type": "string", "description": "Specify which created agent to use."},
            "prompt": {"type": "string", "description": "The task for the agent to perform"},
        },
        "required": ["agent", "prompt"],
    },
)
"""The ``assign_task`` schema, verbatim from the K2.5 report as we transcribed it. Not re-verified: the
whitespace before "1." and "2." (one space each here) could not be checked against the report's text."""


class StepLimits(BaseModel):
    """Step budgets per role, and optionally a critical-step budget for the whole episode tree.

    A step is one environment interaction (see :mod:`~swarmgym.toolsets.swarm_metrics`): every tool
    invocation counts one, so a sub-agent that fans out five searches in one turn spends five, and so does
    an orchestrator that searches five times itself; its ``assign_task`` calls cost what their sub-agents
    spend, in the critical steps. Each role's budget is ``EpisodeLimits.max_steps``; the tree's is the
    orchestrator's ``EpisodeLimits.max_critical_steps``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    orchestrator: int = Field(ge=1)
    """The orchestrator's own steps."""
    subagent: int = Field(ge=1)
    """A sub-agent's steps."""
    orchestrator_calls_per_turn: int = Field(128, ge=1)
    """Tool calls the orchestrator may make in one turn (parallel ``assign_task`` calls)."""
    critical: int | None = Field(None, ge=1)
    """Critical steps of the whole episode tree (None: no tree budget)."""

    def for_orchestrator(self, base: Any = None) -> Any:
        """EpisodeLimits for the orchestrator (other fields from ``base``)."""
        from ..limits import EpisodeLimits

        b = base or EpisodeLimits()
        return b.model_copy(update={
            "max_turns": self.orchestrator,
            "max_steps": self.orchestrator,
            "max_critical_steps": self.critical,
            "max_tool_calls_per_turn": self.orchestrator_calls_per_turn,
        })

    def for_subagent(self, base: Any = None) -> Any:
        """EpisodeLimits for a sub-agent (other fields from ``base``)."""
        from ..limits import EpisodeLimits

        b = base or EpisodeLimits()
        return b.model_copy(update={"max_turns": self.subagent, "max_steps": self.subagent})


STEP_LIMIT_PRESETS: dict[str, StepLimits] = {
    "browsecomp": StepLimits(orchestrator=15, subagent=100),
    "widesearch": StepLimits(orchestrator=100, subagent=100),
    "inhouse": StepLimits(orchestrator=100, subagent=50),
}
"""Step limits used in the K2.5 report's swarm evaluations (orchestrator / sub-agent)."""


def step_limits(preset: str | StepLimits) -> StepLimits:
    """A preset by name (``"browsecomp"``, ``"widesearch"``, ``"inhouse"``) or a StepLimits as is."""
    if isinstance(preset, StepLimits):
        return preset
    try:
        return STEP_LIMIT_PRESETS[preset]
    except KeyError:
        raise ConfigError(
            f"unknown step-limit preset {preset!r}; use one of {sorted(STEP_LIMIT_PRESETS)} "
            "or StepLimits(orchestrator=..., subagent=...)"
        ) from None


@dataclass(slots=True)
class SwarmState:
    """Per-episode swarm state (in ``ctx.state["swarm"]``): agent configurations and sub-agent records.

    ``records`` is the same list object as the trajectory's ``info["subagents"]`` (when the episode has a
    trajectory), so judges and later analysis see the records without the toolset.
    """

    agents: dict[str, str] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    launched: int = 0
    running: int = 0
    max_running: int = 0

    @property
    def finished(self) -> int:
        return sum(1 for r in self.records if r.get("finished"))


_NAME_MAX = 64


class SwarmToolset(Toolset):
    """``create_subagent`` / ``assign_task``: an orchestrator runs frozen sub-agents as child episodes.

    Args:
        subagent_env: the env each sub-agent runs in (an AgentEnv or a registered env id): its toolsets
            are the sub-agent's tools, and its judge (if any) scores the child. The child's opening
            conversation is the agent's system prompt plus the assigned prompt.
        steps: step limits per role (a :class:`StepLimits` or a preset name); children get
            ``steps.for_subagent(subagent_limits)``.
        subagent_limits: base EpisodeLimits for children (timeouts etc.; turns/tool calls from ``steps``).
        max_subagents: most ``assign_task`` launches per orchestrator episode.
        max_agents: most agent configurations per episode.
        max_result_chars: a child's final message is cut (middle) to this many characters.
        timeout_s: deadline of one ``assign_task`` call (a whole child episode).
        role: policy role of the children.
        sink: called with each finished child trajectory (e.g. to store it); the toolset keeps none.
    """

    def __init__(
        self,
        subagent_env: Any,
        *,
        steps: StepLimits | str = "widesearch",
        subagent_limits: Any = None,
        max_subagents: int = 100,
        max_agents: int = 32,
        max_result_chars: int = 8000,
        timeout_s: float = 3600.0,
        role: str = "subagent",
        sink: Callable[[Trajectory], Any] | None = None,
    ) -> None:
        super().__init__()
        self.subagent_env = subagent_env
        self.steps = step_limits(steps)
        self.child_limits = self.steps.for_subagent(subagent_limits)
        self.max_subagents = int(max_subagents)
        self.max_agents = int(max_agents)
        self.max_result_chars = int(max_result_chars)
        self.timeout_s = float(timeout_s)
        self.role = role
        self.sink = sink
        # The published schemas verbatim (the @tool-derived ones would add titles/additionalProperties).
        self._tools["create_subagent"].spec = CREATE_SUBAGENT_SPEC
        self._tools["assign_task"].spec = ASSIGN_TASK_SPEC
        self._specs = [CREATE_SUBAGENT_SPEC, ASSIGN_TASK_SPEC]

    def timeout_for(self, name: str) -> float | None:
        # A child episode easily outlives the env's default per-call timeout.
        return self.timeout_s if name == "assign_task" else None

    @staticmethod
    def state(ctx: ToolContext) -> SwarmState:
        """The episode's :class:`SwarmState` (created on first use)."""
        st = ctx.state.get("swarm")
        if not isinstance(st, SwarmState):
            st = SwarmState()
            traj = getattr(ctx.env, "trajectory", None) if ctx.env is not None else None
            if traj is not None:
                traj.info["subagents"] = st.records
            ctx.state["swarm"] = st
        return st

    async def setup(self, ctx: ToolContext) -> None:
        ctx.state.pop("swarm", None)
        self.state(ctx)

    async def teardown(self, ctx: ToolContext) -> None:
        """Record critical/total steps and sub-agent counts in the episode's metrics."""
        st = ctx.state.get("swarm")
        if not isinstance(st, SwarmState):
            return
        traj = getattr(ctx.env, "trajectory", None) if ctx.env is not None else None
        own = turn_steps(traj) if traj is not None else []
        counts = steps_from_records(own, st.records)
        m = ctx.metrics
        m["critical_steps"] = float(counts.critical)
        m["total_steps"] = float(counts.total)
        m["subagents"] = float(len(st.records))
        m["subagents_finished"] = float(st.finished)
        m["subagent_turns"] = float(sum(r["steps"] for r in st.records))
        m["subagent_tool_calls"] = float(sum(r["tool_calls"] for r in st.records))
        m["max_parallel_subagents"] = float(st.max_running)

    @tool
    def create_subagent(self, name: str, system_prompt: str, ctx: ToolContext) -> str:
        """Create a custom subagent with specific system prompt and name for reuse.

        Args:
            name: Unique name for this agent configuration
            system_prompt: System prompt defining the agent's role, capabilities, and boundaries
        """
        # Deliberately no await: calls of one turn start in order, so an assign_task after a
        # create_subagent in the same turn finds the agent already created.
        st = self.state(ctx)
        key = name.strip()
        if not key:
            raise ToolError("name is empty; give the agent a short unique name")
        if len(key) > _NAME_MAX:
            raise ToolError(f"name is {len(key)} characters long; use at most {_NAME_MAX}")
        if key in st.agents:
            raise ToolError(
                f"an agent named {key!r} already exists; choose another name, or assign tasks to {key!r}"
            )
        if not system_prompt.strip():
            raise ToolError("system_prompt is empty; describe the agent's role, capabilities and boundaries")
        if len(st.agents) >= self.max_agents:
            raise ToolError(f"at most {self.max_agents} agents can be created; reuse one of: {', '.join(st.agents)}")
        st.agents[key] = system_prompt
        return f"Created agent {key!r}. Assign tasks to it with assign_task(agent={key!r}, prompt=...)."

    @tool
    async def assign_task(self, agent: str, prompt: str, ctx: ToolContext) -> ToolResult | str:
        """Launch a new agent.

        Args:
            agent: Specify which created agent to use.
            prompt: The task for the agent to perform
        """
        st = self.state(ctx)
        key = agent.strip()
        if key not in st.agents:
            known = ", ".join(repr(a) for a in st.agents)
            hint = f"created agents: {known}" if known else "no agent exists yet: call create_subagent first"
            raise ToolError(f"unknown agent {key!r}; {hint}")
        if not prompt.strip():
            raise ToolError("prompt is empty; say what the agent should do")
        if st.launched >= self.max_subagents:
            raise ToolError(f"the limit of {self.max_subagents} sub-agents per episode is reached")
        if ctx.spawn is None:
            raise ToolError("this episode cannot launch sub-agents (no spawn); run it through run_episode")
        traj = getattr(ctx.env, "trajectory", None) if ctx.env is not None else None
        turn = len(traj.completions) if traj is not None else 0
        limits = self._child_limits(ctx, traj, turn)
        st.launched += 1
        n = st.launched
        parent_task = ctx.task.id if ctx.task is not None else "task"
        task = Task(
            id=f"{parent_task}/{key}-{n}",
            prompt=[Message(role="system", content=st.agents[key]), Message(role="user", content=prompt)],
            metadata={"agent": key, "parent_episode": ctx.episode_id},
        )
        st.running += 1
        st.max_running = max(st.max_running, st.running)
        try:
            child: Trajectory = await ctx.spawn(self.subagent_env, task, role=self.role, limits=limits)
        except ToolError:
            raise
        except Exception as e:  # e.g. no policy for the role: an observation, and the record says so
            st.records.append({"turn": turn, "call": n, "agent": key, "status": "error", "finished": False,
                               "steps": 0, "tool_calls": 0})
            raise ToolError(f"sub-agent {key!r} could not run: {type(e).__name__}: {e}") from e
        finally:
            st.running -= 1
        return self._absorb(ctx, st, child, turn, n, key, traj)

    def _child_limits(self, ctx: ToolContext, traj: Any, turn: int) -> Any:
        """The sub-agent's limits, its critical-step budget cut to what the parent's tree has left.

        Sub-agents of one turn run in parallel, so each may use everything left after the turns before and
        this turn's own steps of the parent; a parent without a tree budget passes its own limits on.
        """
        env = ctx.env
        budget = getattr(getattr(env, "limits", None), "max_critical_steps", None)
        ep = getattr(env, "_ep", None)
        if budget is None or ep is None or traj is None:
            return self.child_limits
        from .swarm_metrics import own_steps

        before = env.critical_steps_so_far(ep, before_turn=turn)
        this_turn = own_steps(traj.completions[-1].message) if traj.completions else 1
        left = budget - before - this_turn
        if left < 1:
            raise ToolError(
                f"the episode's critical-step budget of {budget} leaves no step for a sub-agent "
                f"({before} used before this turn, {this_turn} by this turn); answer with what you have"
            )
        own = self.child_limits.max_critical_steps
        return self.child_limits.model_copy(update={"max_critical_steps": left if own is None else min(own, left)})

    def _absorb(
        self, ctx: ToolContext, st: SwarmState, child: Trajectory, turn: int, n: int, key: str, parent: Any
    ) -> ToolResult:
        """Keep what the orchestrator needs from a finished child and let go of the rest."""
        from ..wire import truncate_middle
        from .swarm_metrics import trajectory_steps

        steps = len(child.completions)
        sub = trajectory_steps(child)
        text = child.final_text.strip()
        finished = child.status == "ok" and bool(text)
        st.records.append({
            "turn": turn,
            "call": n,
            "agent": key,
            "trajectory_id": child.id,
            "status": child.status,
            "finished": finished,
            "steps": steps,
            "critical_steps": sub.critical,
            "total_steps": sub.total,
            "tool_calls": int(child.metrics.get("tool_calls", 0)),
            "reward": child.reward,
        })
        if parent is not None and child.id not in parent.children:
            parent.children.append(child.id)
        if self.sink is not None:
            self.sink(child)
        if child.status in ("error", "cancelled"):
            reason = (child.error or child.status).strip().splitlines()[0][:300]
            body = f"sub-agent {key!r} failed ({child.status}): {reason}"
            if text:
                body += f"\nIts last message:\n{truncate_middle(text, self.max_result_chars)}"
            return ToolResult(call_id="", content=body, is_error=True, metadata={"trajectory_id": child.id})
        if not text:
            why = "hit its step limit" if child.status == "truncated" else "finished"
            return ToolResult(
                call_id="",
                content=f"sub-agent {key!r} {why} without a final message",
                is_error=True,
                metadata={"trajectory_id": child.id},
            )
        body = truncate_middle(text, self.max_result_chars)
        if child.status == "truncated":
            body = f"[sub-agent {key!r} stopped at its step limit; its last message follows]\n{body}"
        return ToolResult(call_id="", content=body, metadata={"trajectory_id": child.id})
