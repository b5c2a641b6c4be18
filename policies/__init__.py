"""Policies: the Policy protocol, the role router, and backends (loaded on first use)."""

from __future__ import annotations

from .._lazy import lazy_exports


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
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
