"""Chat conversations as tokens: render messages with a chat template, build token-exact multi-turn prompts,
parse sampled completions back into messages.

Below both :mod:`swarmgym.policies` (which build prompts) and :mod:`swarmgym.training` (which exports what was
sampled). Names load on first use; nothing here imports transformers until a tokenizer is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ChatRenderer",
    "message_to_template",
    "tools_to_template",
    "parse_hermes",
    "strip_stop_text",
    "TokenizedConversation",
    "TokenState",
    "STATE_KEY",
]

_WHERE = {
    "ChatRenderer": "render",
    "message_to_template": "render",
    "tools_to_template": "render",
    "parse_hermes": "parse",
    "strip_stop_text": "parse",
    "TokenizedConversation": "tokens",
    "TokenState": "tokens",
    "STATE_KEY": "tokens",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'swarmgym.chat' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
