"""Test-suite layout rules pytest's default (prepend) import mode depends on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_module_basenames_are_unique() -> None:
    # test dirs have no __init__.py, so two test_x.py in different dirs collide at collection time
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
