"""Test helpers shipped with swarmgym: a fake OpenAI-compatible / SGLang model server and its toy tokenizer.

Loaded lazily (the server needs aiohttp, which ``import swarmgym`` must not pull in).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY = {
    "FakeOpenAIServer": ".fake_server",
    "FakeServerProcess": ".process",
    "Reply": ".fake_server",
    "DROP": ".fake_server",
    "RecordedRequest": ".fake_server",
    "start_fake_server_process": ".process",
    "serve": ".fake_server",
    "ToyChatTokenizer": ".toy_tokenizer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'swarmgym.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from .fake_server import DROP, FakeOpenAIServer, RecordedRequest, Reply, serve
    from .process import FakeServerProcess, start_fake_server_process
    from .toy_tokenizer import ToyChatTokenizer
