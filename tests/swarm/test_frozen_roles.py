"""Frozen roles are pinned: a policy update (``RolloutManager.resume``) never reaches sub-agents unless asked."""

from __future__ import annotations

import logging

import anyio
import pytest
from swarmgym.envs.widesearch import make_swarm_env
from swarmgym.errors import ConfigError
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import OraclePolicy
from swarmgym.rollout.manager import RolloutManager
from swarmgym.rollout.store import MemoryStore

pytestmark = pytest.mark.anyio


class Tagged:
    """The oracle, recording (tag, role) for every call it answers."""

    def __init__(self, tag: str, log: list[tuple[str, str]], on_call=None) -> None:
        self.tag = tag
        self.log = log
        self.inner = OraclePolicy()
        self.on_call = on_call

    async def complete(self, messages, tools, sampling, *, ctx=None):
        self.log.append((self.tag, ctx.role))
        if self.on_call is not None:
            await self.on_call(ctx)
        return await self.inner.complete(messages, tools, sampling, ctx=ctx)


async def _run_with_update(router_for_v0, resume_kwargs):
    """Run 2 swarm tasks; pause at the first sub-agent call, resume with v1; return (log, store, marks)."""
    log: list[tuple[str, str]] = []
    paused = anyio.Event()
    mark: dict[str, int] = {}

    async def on_call(ctx):
        if ctx.role == "subagent" and not paused.is_set():
            mgr.pause()
            paused.set()

    v0 = Tagged("v0", log, on_call)
    store = MemoryStore()
    mgr = RolloutManager(router_for_v0(v0), store=store)
    env = make_swarm_env(size=2)
    out: list = []

    async def go() -> None:
        out.extend(await mgr.run(env))

    async with anyio.create_task_group() as tg:
        tg.start_soon(go)
        await paused.wait()
        await anyio.wait_all_tasks_blocked()
        mark["at_resume"] = len(log)
        mgr.resume(Tagged("v1", log), **resume_kwargs(log))
    return log, store, mark, out


async def test_subagents_keep_their_policy_and_version_across_an_update(caplog):
    with caplog.at_level(logging.WARNING, logger="swarmgym.policies.base"):
        log, store, mark, out = await _run_with_update(lambda v0: PolicyRouter(v0), lambda log: {})
    assert any("pinned to the 'main' policy" in r.message for r in caplog.records)  # the default is loud
    after = log[mark["at_resume"]:]
    sub_after = [tag for tag, role in after if role == "subagent"]
    main_after = [tag for tag, role in after if role == "main"]
    assert sub_after and set(sub_after) == {"v0"}  # sub-agents ran after the update, still on v0
    assert main_after and set(main_after) == {"v1"}
    children = [t for t in store.trajectories if t.parent_id is not None]
    assert children and all(not t.trainable for t in children)
    assert {v for t in children for v in t.policy_versions} == {0}
    tops = [t for t in out]
    assert len(tops) == 2 and all(t.status == "ok" for t in tops)
    assert all(t.policy_versions[-1] == 1 for t in tops)
    assert all(t.reward == 1.0 for t in tops)


async def test_explicit_subagent_policy_keeps_its_version_and_resume_can_repin_when_asked():
    log, store, mark, _ = await _run_with_update(
        lambda v0: PolicyRouter(v0, roles={"subagent": v0}, versions={"subagent": 7}),
        lambda log: {"roles": {"subagent": Tagged("v1-sub", log)}},
    )
    after = log[mark["at_resume"]:]
    assert {tag for tag, role in after if role == "subagent"} == {"v1-sub"}  # asked: re-pinned
    children = [t for t in store.trajectories if t.parent_id is not None]
    versions = {v for t in children for v in t.policy_versions}
    assert versions == {7, 1}  # before the update: the pinned 7; after: the new version 1


def test_a_new_router_does_not_silently_repin_frozen_roles():
    mgr = RolloutManager(PolicyRouter(Tagged("a", [])))
    old_sub = mgr.router.get("subagent")
    mgr.resume(PolicyRouter(Tagged("b", [])))
    assert mgr.router.get("subagent") is old_sub and mgr.router.get("main").tag == "b"
    assert mgr.router.version_of("subagent") == 0 and mgr.version == 1


def test_strict_router_refuses_a_frozen_role_without_a_policy():
    r = PolicyRouter(OraclePolicy(), strict=True)
    with pytest.raises(ConfigError, match="frozen role needs its own policy"):
        r.get("subagent")
    # a trainable role without its own policy follows main as it changes
    r2 = PolicyRouter(OraclePolicy())
    new = OraclePolicy()
    first_sub = r2.get("subagent")
    r2.set("main", new)
    assert r2.get("critic") is new and r2.get("subagent") is first_sub
