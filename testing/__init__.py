"""Test helpers shipped with swarmgym: a fake OpenAI-compatible / SGLang model server and its toy tokenizer,
a judge that fails on purpose, and a launcher for llama.cpp's server on a real GGUF model.

Loaded lazily (the server needs aiohttp, which ``import swarmgym`` must not pull in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_LAZY = {
    "FakeOpenAIServer": ".fake_server",
    "FakeServerProcess": ".process",
    "Reply": ".fake_server",
    "DROP": ".fake_server",
    "RecordedRequest": ".fake_server",
    "start_fake_server_process": ".process",
    "serve": ".fake_server",
    "ToyChatTokenizer": ".toy_tokenizer",
    "FaultyJudge": ".judges",
    "LlamaCppServer": ".llamacpp",
    "start_llamacpp_server": ".llamacpp",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from .judges import FaultyJudge
    from .llamacpp import LlamaCppServer, start_llamacpp_server
    from .fake_server import DROP, FakeOpenAIServer, RecordedRequest, Reply, serve
    from .process import FakeServerProcess, start_fake_server_process
    from .toy_tokenizer import ToyChatTokenizer
