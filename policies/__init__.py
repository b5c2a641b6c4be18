"""Policies: the Policy protocol, the role router, and backends (loaded on first use)."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Policy": ".base",
    "PolicyContext": ".base",
    "PolicyRouter": ".base",
    "ScriptedPolicy": ".scripted",
    "OraclePolicy": ".scripted",
    "ReplayPolicy": ".scripted",
    "OpenAIPolicy": ".openai_http",
    "SGLangPolicy": ".sglang",
    "HFPolicy": ".hf",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'swarmgym.policies' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod, __name__), name)
    globals()[name] = value
    return value
