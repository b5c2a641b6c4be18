"""The LLM gateway: an OpenAI-compatible server that records any agent's calls as swarmgym trajectories."""

from .server import Episode, Gateway

__all__ = ["Gateway", "Episode"]
