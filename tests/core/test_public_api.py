"""The top-level public API: ``__all__`` resolves, and ``import swarmgym`` stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
import swarmgym

HEAVY = ("aiohttp", "docker", "math_verify", "reasoning_gym", "torch", "scipy", "rich", "transformers", "bm25s", "rapidfuzz")


def _loaded_heavy(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-W", "error", "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [m for m in out.stdout.strip().split(",") if m]


@pytest.mark.parametrize("name", swarmgym.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(swarmgym, name) is not None


def test_all_is_sorted_and_dir_matches() -> None:
    assert swarmgym.__all__ == sorted(swarmgym.__all__)
    assert len(set(swarmgym.__all__)) == len(swarmgym.__all__)
    assert set(dir(swarmgym)) == set(swarmgym.__all__)
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        swarmgym.NoSuchThing  # noqa: B018


def test_public_names_come_from_their_home_modules() -> None:
    from swarmgym import envs, loop, wire

    assert swarmgym.Message is wire.Message and swarmgym.Trajectory is wire.Trajectory
    assert swarmgym.AgentEnv is envs.core.AgentEnv
    assert swarmgym.run_episode is loop.run_episode
    assert swarmgym.make is envs.registry.make


def test_import_swarmgym_is_light() -> None:
    assert _loaded_heavy("import swarmgym") == []


def test_core_api_is_light() -> None:
    # building and running an env with the core parts must not pull in optional heavy modules either
    code = (
        "import anyio, swarmgym\n"
        "from swarmgym import AgentEnv, EpisodeLimits, ScriptedPolicy, Task, run_episode, tool, Toolset\n"
        "from swarmgym.toolsets.calculator import CalculatorToolset\n"
        "env = AgentEnv([Task(id='t', prompt='1+1?')], toolsets=[CalculatorToolset()])\n"
        "traj = anyio.run(run_episode, env, ScriptedPolicy(['2']))\n"
        "assert traj.status == 'ok', traj.error\n"
    )
    assert _loaded_heavy(code) == []


def test_import_has_no_side_effects_on_logging_or_output() -> None:
    code = (
        "import logging\n"
        "before = list(logging.getLogger().handlers)\n"
        "import swarmgym\n"
        "assert logging.getLogger().handlers == before\n"
        "assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger('swarmgym').handlers)\n"
    )
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""
