"""Runnable docstring examples of the training modules, and the package's public names."""

from __future__ import annotations

import doctest
import importlib

import pytest
import swarmgym.training as training

MODULES = [
    "swarmgym.training.tito",
    "swarmgym.training.parse",
    "swarmgym.training.mismatch",
    "swarmgym.training.batch",
    "swarmgym.training.export_trl",
    "swarmgym.training.export_verl",
    "swarmgym.training.tiny",
    "swarmgym.policies.hf",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_all_names_resolve() -> None:
    for name in training.__all__:
        assert getattr(training, name) is not None
    with pytest.raises(AttributeError):
        training.nope  # noqa: B018
