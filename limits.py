"""Per-episode limits: a config shared by envs (which enforce them) and toolsets that start child episodes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EpisodeLimits"]


class EpisodeLimits(BaseModel):
    """Per-episode limits. Every limit that can hang has a deadline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_turns: int = Field(10, ge=1)
    """Assistant turns before the episode is truncated."""
    max_tool_calls_per_turn: int = Field(16, ge=0)
    """Calls beyond this in one turn get an error observation instead of running."""
    tool_timeout_s: float = Field(30.0, gt=0)
    """Default per-call deadline (a tool's own ``timeout`` overrides it)."""
    episode_timeout_s: float | None = Field(None, gt=0)
    """Wall-clock deadline for the whole episode (enforced by run_episode); None = no deadline."""
    judge_timeout_s: float | None = Field(None, gt=0)
    """Separate deadline for the judge; None = covered by the episode deadline. Judges that wait on the
    outside world bound their own waits (HTTP timeouts, sandbox exec timeouts), so the default skips a
    cancel scope per episode."""
    max_tool_output_chars: int = Field(65536, ge=256)
    """Tool output longer than this is cut in the middle (head and tail kept, with a marker)."""
    max_total_tool_calls: int | None = Field(None, ge=0)
    """Total tool calls per episode (sub-agent step budgets); None = unlimited."""
    max_steps: int | None = Field(None, ge=1)
    """The agent's own steps (the K2.5 report's step budgets per role): every tool invocation is one step,
    a turn without tool calls (an answer) is one, and ``assign_task`` calls count nothing here (their
    sub-agents' steps count in the critical steps). Calls beyond the budget are not run; once it is used
    up the episode is truncated. None = unlimited."""
    max_critical_steps: int | None = Field(None, ge=1)
    """Critical steps of the episode tree (training and evaluation budgets of the K2.5 report): per turn,
    the agent's own steps plus the largest critical-step count among the sub-agents that turn ran in
    parallel (see :mod:`swarmgym.toolsets.swarm_metrics`). Sub-agents are launched with at most what is
    left; once it is used up the episode is truncated (``info["budget"]`` says which budget). None =
    unlimited."""
