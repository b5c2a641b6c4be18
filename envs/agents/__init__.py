"""Example outside agents for :class:`~swarmgym.envs.blackbox.BlackBoxEnv`, shipped as standalone files.

They import nothing from swarmgym: each is what a user would write against any OpenAI-compatible server,
and reads the task from stdin and the server from ``OPENAI_BASE_URL``/``OPENAI_API_KEY``/``OPENAI_MODEL``.

- ``openai_tools_agent.py``: the official ``openai`` client, a ``calculator`` tool, a tool-call loop
  (``--stream`` uses the streaming API).
- ``curl_agent.sh``: a shell agent using curl (and jq when present) for one chat call.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["agent_path", "AGENTS"]

AGENTS = ("openai_tools_agent.py", "curl_agent.sh")


def agent_path(name: str) -> str:
    """Absolute path of a shipped example agent (one of :data:`AGENTS`).

    Raises:
        ValueError: no shipped agent has this name.
    """
    if name not in AGENTS:
        raise ValueError(f"no shipped agent {name!r}; choose one of {', '.join(AGENTS)}")
    return str(Path(__file__).with_name(name))
