"""Shared fixtures for the training tests: tiny tokenizers (one per chat template) and a tiny model."""

from __future__ import annotations

from typing import Any

import pytest
from swarmgym.training.tiny import make_tiny_model, make_tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizers() -> dict[str, Any]:
    return {name: make_tiny_tokenizer(name) for name in ("chatml_tools", "qwen3_like", "llama_like", "counting")}


@pytest.fixture(scope="session")
def tok(tokenizers: dict[str, Any]) -> Any:
    return tokenizers["chatml_tools"]


@pytest.fixture(scope="session")
def tiny_model(tok: Any) -> Any:
    return make_tiny_model(tok, hidden_size=64, num_layers=2)
