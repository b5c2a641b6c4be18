"""The LLM gateway: an OpenAI-compatible server that records any agent's calls as swarmgym trajectories."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Episode, Gateway, split_segments

__all__ = ["Gateway", "Episode", "split_segments"]


def __getattr__(name: str) -> Any:
    # Lazy: ``swarmgym --help`` imports .cli for its options and must not pay for the server's imports.
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
