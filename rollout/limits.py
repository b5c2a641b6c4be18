"""``RolloutLimits``: every limit and policy knob of a rollout run, as one frozen, picklable model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RolloutLimits"]


class RolloutLimits(BaseModel):
    """Limits of a :class:`~swarmgym.rollout.manager.RolloutManager` run (None = unlimited).

    Concurrency limits are enforced by one limiter; recursion never deadlocks on them (a parent waiting on
    its children lends them its episode and sandbox slots, see :mod:`swarmgym.rollout.limiter`).

    Example:
        >>> RolloutLimits(max_episodes=64, max_model_calls_per_role={"judge": 8}).max_episodes
        64
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_episodes: int | None = Field(1024, ge=1)
    """Episodes in flight at once, top-level and children together."""
    max_model_calls: int | None = Field(None, ge=1)
    """Concurrent model calls, all roles together."""
    max_model_calls_per_role: dict[str, int] = Field(default_factory=dict)
    """Concurrent model calls per role, e.g. ``{"judge": 8}``."""
    max_sandboxes: int | None = Field(None, ge=1)
    """Sandboxes held at once (acquired through the env's sandbox source)."""
    max_depth: int = Field(4, ge=0)
    """Deepest spawn level (top-level episodes are depth 0); a deeper spawn is a tool error."""
    max_children_per_episode: int | None = Field(256, ge=0)
    """Children one episode may spawn; more is a tool error for the model."""
    max_turns_per_episode: int | None = Field(None, ge=1)
    """Caps the env's own ``max_turns`` (the episode is truncated at the cap)."""
    max_critical_steps: int | None = Field(None, ge=1)
    """Caps the env's ``max_critical_steps``: a critical-step budget for every episode tree of the run
    (training or evaluation), whatever the env sets (see :class:`~swarmgym.limits.EpisodeLimits`)."""
    max_tokens_per_episode: int | None = Field(None, ge=1)
    """Completion tokens per episode (from ``Completion.usage``); past it the episode is truncated."""
    episode_timeout_s: float | None = Field(None, gt=0)
    """Wall-clock deadline per episode (overrides the env's ``episode_timeout_s`` when set)."""
    model_call_timeout_s: float | None = Field(None, gt=0)
    """Deadline per model call (a timeout is a transient error, retried within the budget)."""
    policy_retries: int = Field(2, ge=0)
    """Extra attempts per model call after a transient policy error (connection, timeout, 408/429/5xx)."""
    retry_backoff_s: float = Field(0.5, ge=0)
    """First retry delay (doubles per attempt, with jitter)."""
    admission_burst: int = Field(128, ge=1)
    """Episodes started per event-loop turn; admission then yields so running episodes keep flowing."""
    turns_per_tick: int | None = Field(16, ge=1)
    """Episode turns that go on per event-loop iteration once their model call returned; the rest wait their
    turn (first come, first served) for the next iterations. CPU-heavy turns (parsing, tools, judges) then
    never keep timers and network I/O waiting long, however many model calls return at once. None: no cap."""
    breaker_error_rate: float | None = Field(0.9, gt=0, le=1)
    """Stop the run when this fraction of recent top-level episodes failed (None disables the breaker)."""
    breaker_window: int = Field(200, ge=1)
    """Number of recent top-level episodes the breaker looks at."""
    breaker_min_episodes: int = Field(20, ge=1)
    """The breaker needs this many finished episodes before it may trip."""
    max_staleness: int | None = Field(None, ge=0)
    """Largest allowed ``current policy version - version of the episode's first completion``."""
    stale_action: Literal["restart", "drop"] = "restart"
    """What to do with a too-stale episode: start it over, or drop it (stored as ``cancelled``)."""
