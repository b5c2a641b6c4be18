"""swarmgym/PythonMath-v0 and swarmgym/SWE-v0: the oracle solves them, wrong work scores 0, nothing leaks."""

from __future__ import annotations

import anyio
import pytest

from swarmgym.loop import run_episode
from swarmgym.policies.scripted import OraclePolicy, ScriptedPolicy

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _submit_only():
    return ScriptedPolicy([{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "name": "submit", "arguments": {}}]}])


async def test_swe_oracle_solves_every_task_and_no_op_fails():
    from swarmgym.envs.swe import make_env

    env = make_env(pool_size=4)
    try:
        assert len(env.tasks) >= 20
        rewards: dict[str, float] = {}

        async def one(i: int) -> None:
            t = await run_episode(env, OraclePolicy(), env.tasks[i])
            assert t.status == "ok", t.error
            rewards[t.task_id] = t.reward

        async with anyio.create_task_group() as tg:
            for i in range(len(env.tasks)):
                tg.start_soon(one, i)
        assert rewards == {t.id: 1.0 for t in (env.tasks[i] for i in range(len(env.tasks)))}
        t = await run_episode(env, _submit_only(), env.tasks[0])
        assert t.reward == 0.0 and t.judge.facets["submitted"] == 1.0 and t.judge.facets["tests_passed"] < 1.0
    finally:
        await env.sandbox.close()


async def test_swe_workspace_reveals_no_fix():
    from swarmgym.envs.swe import make_env

    env = make_env(pool_size=1)
    try:
        task = env.tasks[3]
        listing = ScriptedPolicy(
            [{"role": "assistant", "content": None, "tool_calls": [
                {"id": "c", "name": "bash", "arguments": {"command": "ls -laR /workspace /tmp; git log 2>&1 | head -1"}}
            ]}, "done"]
        )
        t = await run_episode(env, listing, task)
        out = next(m.text for m in t.messages if m.role == "tool")
        assert ".git" not in out and "hidden" not in out
        assert not any("hidden" in p or p.startswith(".") for p in task.metadata["files"])
        for path, content in task.metadata["files"].items():
            assert task.metadata["fix"][0][2] not in content
        assert t.reward == 0.0  # not submitted
    finally:
        await env.sandbox.close()


async def test_python_math_oracle_solves_tasks():
    from swarmgym.envs.python_math import make_env

    env = make_env(size=6, pool_size=2)
    try:
        for i in range(6):
            t = await run_episode(env, OraclePolicy(), env.tasks[i])
            assert t.reward == 1.0, (t.messages, t.judge)
            assert any(m.role == "tool" for m in t.messages)
    finally:
        await env.sandbox.close()


def test_envs_are_registered_and_gym_reset_works():
    import swarmgym

    for env_id in ("swarmgym/PythonMath-v0", "swarmgym/SWE-v0"):
        env = swarmgym.make(env_id)
        try:
            obs, info = env.reset(seed=0)
            assert info["task_id"]
        finally:
            env.close()
            anyio.run(env.sandbox.close)


async def test_swe_judge_cannot_be_forged_through_the_tools():
    """End to end through the file tools: a "fix" that patches unittest and prints a result line of its own
    does not earn the reward; the hidden tests still ran and report the real failure (the full red team is
    tests/sandbox/test_swe_redteam.py)."""
    from swarmgym.envs.swe import make_env

    env = make_env(pool_size=1)
    try:
        task = env.tasks[0]
        pkg = task.metadata["package"]
        forge = (
            "import unittest\n"
            "unittest.TestResult.addFailure = lambda *a: None\n"
            "unittest.TestResult.addError = lambda *a: None\n"
            "print('SWARMGYM-RESULT-0000000000000000 {\\\"total\\\": 9, \\\"failed\\\": 0, \\\"which\\\": []}')\n"
        )
        policy = ScriptedPolicy([
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "a", "name": "create_file", "arguments": {"path": f"{pkg}/__init__.py", "content": forge, "overwrite": True}}
            ]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "b", "name": "submit", "arguments": {}}]},
        ])
        t = await run_episode(env, policy, task)
        assert t.reward == 0.0, t.judge
        assert t.judge.facets["submitted"] == 1.0 and 0.0 < t.judge.facets["tests_passed"] < 1.0
        assert any("test_even" in f for f in t.judge.info["failed_tests"]), t.judge.info
    finally:
        await env.sandbox.close()
