"""``__all__`` of swarmgym.judges and swarmgym.prompts lists exactly what they export, and importing them is
light (no scipy, math_verify, rapidfuzz, shapely)."""

from __future__ import annotations

import subprocess
import sys

from swarmgym import judges, prompts


def test_judges_all_resolves() -> None:
    for name in judges.__all__:
        assert getattr(judges, name) is not None, name
    assert sorted(judges.__all__) == judges.__all__


def test_prompts_all_resolves() -> None:
    for name in prompts.__all__:
        assert getattr(prompts, name) is not None, name
    public = {n for n in vars(prompts) if not n.startswith("_")} - {"annotations", "base", "compose", "constraints",
                                                                      "diversify", "instructions"}
    assert public == set(prompts.__all__)


def test_imports_stay_light() -> None:
    code = (
        "import sys, swarmgym.judges, swarmgym.prompts, swarmgym.judges.rules, swarmgym.judges.visual, "
        "swarmgym.judges.f1, swarmgym.judges.math_answer, swarmgym.judges.code, swarmgym.judges.rubric\n"
        "heavy = [m for m in ('scipy', 'math_verify', 'rapidfuzz', 'shapely', 'sympy', 'aiohttp') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
