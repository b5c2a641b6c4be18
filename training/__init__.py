"""Token-exact training data: token-in-token-out prompts, masks, mismatch correction, exports.

Names load on first use (``swarmgym.training.to_batch`` imports only what it needs; nothing here imports
torch or transformers until a function that needs them runs).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "TokenizedConversation",
    "TokenState",
    "ChatRenderer",
    "parse_hermes",
    "TokenSample",
    "trajectory_samples",
    "tree_samples",
    "Batch",
    "to_batch",
    "log_ratio",
    "token_clip_mask",
    "truncated_importance_weights",
    "corrected_pg_loss",
    "mismatch_stats",
    "group_advantages",
    "sequence_logprobs",
    "to_trl_rollout",
    "make_rollout_func",
    "env_reward",
    "to_verl_output",
    "to_agent_loop_output",
    "make_tiny_tokenizer",
    "make_tiny_model",
]

_WHERE = {
    "TokenizedConversation": "tito",
    "TokenState": "tito",
    "ChatRenderer": "chat",
    "parse_hermes": "parse",
    "TokenSample": "samples",
    "trajectory_samples": "samples",
    "tree_samples": "samples",
    "Batch": "batch",
    "to_batch": "batch",
    "log_ratio": "mismatch",
    "token_clip_mask": "mismatch",
    "truncated_importance_weights": "mismatch",
    "corrected_pg_loss": "mismatch",
    "mismatch_stats": "mismatch",
    "group_advantages": "mismatch",
    "sequence_logprobs": "logprobs",
    "to_trl_rollout": "export_trl",
    "make_rollout_func": "export_trl",
    "env_reward": "export_trl",
    "to_verl_output": "export_verl",
    "to_agent_loop_output": "export_verl",
    "make_tiny_tokenizer": "tiny",
    "make_tiny_model": "tiny",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'swarmgym.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
