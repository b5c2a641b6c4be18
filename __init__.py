"""swarmgym: agentic RL environments at scale.

Public names are loaded lazily (PEP 562 ``__getattr__``) so ``import swarmgym`` stays fast: only pydantic,
anyio and gymnasium load at import; model clients, sandboxes, judges and the rollout manager load when first
used. Importing swarmgym registers the built-in envs with gymnasium (ids only: nothing heavy is imported).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

# name -> module (relative) that defines it
_LAZY: dict[str, str] = {
    # types
    "Message": ".wire",
    "TextPart": ".wire",
    "ImagePart": ".wire",
    "ToolCall": ".wire",
    "ToolSpec": ".wire",
    "ToolResult": ".wire",
    "SamplingParams": ".wire",
    "Completion": ".wire",
    "Task": ".wire",
    "JudgeResult": ".wire",
    "Trajectory": ".wire",
    # errors
    "SwarmgymError": ".errors",
    # env contract and registry
    "AgentEnv": ".envs.core",
    "EpisodeLimits": ".limits",
    "register": ".envs.registry",
    "make": ".envs.registry",
    "registered_envs": ".envs.registry",
    # loop
    "run_episode": ".loop",
    "ContextStrategy": ".loop",
    "HideToolResults": ".context",
    "DiscardAll": ".context",
    "Summary": ".context",
    # policies
    "Policy": ".policies.base",
    "PolicyRouter": ".policies.base",
    "OpenAIPolicy": ".policies.openai_http",
    "ScriptedPolicy": ".policies.scripted",
    "OraclePolicy": ".policies.scripted",
    "ReplayPolicy": ".policies.scripted",
    # toolsets and judges
    "Toolset": ".toolsets.base",
    "ToolContext": ".toolsets.base",
    "tool": ".toolsets.base",
    "Judge": ".judges.base",
    "Weighted": ".judges.base",
    # rollout
    "RolloutManager": ".rollout.manager",
    "RolloutLimits": ".rollout.manager",
    "rollout": ".rollout",  # the subpackage itself: callable, runs rollout.manager.rollout
    "TrajectoryStore": ".rollout.store",
}

__all__ = sorted([*_LAZY, "__version__"])
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=("__version__",))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .envs.core import AgentEnv, EpisodeLimits
    from .envs.registry import make, register, registered_envs
    from .errors import SwarmgymError
    from .judges.base import Judge, Weighted
    from .context import DiscardAll, HideToolResults, Summary
    from .loop import ContextStrategy, run_episode
    from .policies.base import Policy, PolicyRouter
    from .policies.openai_http import OpenAIPolicy
    from .policies.scripted import OraclePolicy, ReplayPolicy, ScriptedPolicy
    from .rollout.manager import RolloutLimits, RolloutManager, rollout
    from .rollout.store import TrajectoryStore
    from .toolsets.base import ToolContext, Toolset, tool
    from .wire import (
        Completion,
        ImagePart,
        JudgeResult,
        Message,
        SamplingParams,
        Task,
        TextPart,
        ToolCall,
        ToolResult,
        ToolSpec,
        Trajectory,
    )

from .envs import registry as _registry  # noqa: E402  (registers built-in env ids; light)

_registry.register_builtins()
