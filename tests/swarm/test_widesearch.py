"""WideSearch-v0 / WideSearch-Swarm-v0: seeded corpus and tasks, oracles, swarm vs single, fake server."""

from __future__ import annotations

import pytest
import swarmgym  # noqa: F401  (registers the built-in ids)
from swarmgym.envs.registry import make
from swarmgym.envs.widesearch import make_env, make_swarm_env
from swarmgym.envs.widesearch_data import (
    WideSearchTasks,
    generate_world,
    get_world,
    parse_request,
    scale_task,
)
from swarmgym.envs.widesearch_scripted import fake_server_responder, single_agent_step
from swarmgym.loop import run_episode
from swarmgym.policies.base import PolicyRouter
from swarmgym.policies.scripted import OraclePolicy

pytestmark = pytest.mark.anyio


def test_corpus_and_tasks_are_wide_and_seeded():
    w = get_world(0)
    pages = [d for d in w.docs if not d["title"].startswith("Registry: ")]
    assert len(pages) >= 10_000 and len({d["id"] for d in w.docs}) == len(w.docs)
    assert {e.kind for e in w.entities.values()} == {"company", "person", "city", "university"}
    tasks = WideSearchTasks(0)
    assert len(tasks) >= 200
    t = tasks[3]
    assert t.metadata["n_entities"] == len(t.answer) >= 12 and t.answer[0]["Name"]
    assert len(t.metadata["table_columns"]) >= 4
    regs, ents, cols = parse_request(t.prompt)
    assert regs == t.metadata["registries"] and not ents and cols == t.metadata["table_columns"]
    # attributes are spread over two pages: a profile and a history page
    name = t.answer[0]["Name"]
    titles = {d["title"] for d in w.docs if d["title"].startswith(name)}
    assert {name, f"{name} (history)"} <= titles
    # same seed, same world; another seed, another world
    assert generate_world(0, countries=2).docs == generate_world(0, countries=2).docs
    assert generate_world(1, countries=2).docs[5] != generate_world(0, countries=2).docs[5]
    assert WideSearchTasks(0)[7] == tasks[7]


def test_one_shared_index():
    a, b = make_env(), make_swarm_env()
    assert a.toolsets[0].index is get_world(0).index
    assert b.toolsets[-1].subagent_env.toolsets[0].index is a.toolsets[0].index
    assert b.toolsets[0].index is a.toolsets[0].index  # the orchestrator's own search tool too


@pytest.mark.parametrize("env_id", ["swarmgym/WideSearch-v0", "swarmgym/WideSearch-Swarm-v0"])
def test_check_env(env_id):
    from gymnasium.utils.env_checker import check_env

    env = make(env_id)
    check_env(env, skip_render_check=True)
    env.close()


async def test_oracles_solve_and_swarm_cuts_critical_steps():
    single_env = make_env()
    router = PolicyRouter(OraclePolicy())
    kids = []
    swarm_env = make_swarm_env(policies=router, sink=kids.append)
    for i in (0, 1):
        task = single_env.tasks[i]
        single = await run_episode(single_env, OraclePolicy(), task)
        swarm = await run_episode(swarm_env, router, task)
        assert single.status == swarm.status == "ok"
        assert single.reward == swarm.reward == 1.0
        assert single.judge.facets["row_f1"] == swarm.judge.facets["row_f1"] == 1.0
        assert swarm.metrics["critical_steps"] * 3 <= single.metrics["steps"]
        assert swarm.metrics["total_steps"] >= single.metrics["steps"]  # the swarm costs more in total
        # the orchestrator found the registry itself and left the entities to its sub-agents
        names = [c.name for m in swarm.messages for c in m.tool_calls or ()]
        assert set(names) == {"search", "open", "create_subagent", "assign_task"}
        assert names.count("search") == names.count("open") == 1
    assert kids and all(not k.trainable and k.role == "subagent" for k in kids)


def test_orchestrator_has_the_core_toolset_plus_the_swarm_tools():
    from swarmgym.toolsets.swarm import ASSIGN_TASK_SPEC, CREATE_SUBAGENT_SPEC

    env = make_swarm_env()
    assert [s.name for s in env.tool_specs] == ["search", "open", "python", "create_subagent", "assign_task"]
    specs = {s.name: s for s in env.tool_specs}
    assert specs["create_subagent"] == CREATE_SUBAGENT_SPEC and specs["assign_task"] == ASSIGN_TASK_SPEC
    # sub-agents keep the search tools only
    assert [s.name for s in make_env().tool_specs] == ["search", "open"]


async def test_orchestrator_code_tool_runs_in_the_env_sandbox_or_says_how_to_get_one():
    from swarmgym.policies.scripted import ScriptedPolicy
    from swarmgym.wire import ToolCall

    def orch(messages, tools, ctx):
        if ctx.turn == 0:
            return {"role": "assistant", "content": None,
                    "tool_calls": [ToolCall(id="p", name="python", arguments={"code": "6*7"})]}
        return "done"

    env = make_swarm_env()
    traj = await run_episode(env, ScriptedPolicy(orch), env.tasks[0])
    (res,) = [m for m in traj.messages if m.role == "tool"]
    assert "needs a sandbox" in res.text and "SandboxPool" in res.text


async def test_parl_reward_option():
    router = PolicyRouter(OraclePolicy())
    env = make_swarm_env(policies=router, reward="parl", judge_step=0)
    traj = await run_episode(env, router, env.tasks[5])
    f = traj.judge.facets
    assert f["r_perf"] == 1.0 and f["r_finish"] == 1.0 and 0 < f["r_parallel"] <= 1.0
    assert traj.reward > 1.0


async def test_scale_episode_holds_100_subagents():
    task = scale_task(get_world(0), 500)
    router = PolicyRouter(OraclePolicy())
    env = make_swarm_env(policies=router, entities_per_agent=1, max_subagents=100)
    traj = await run_episode(env, router, task)
    m = traj.metrics
    assert traj.status == "ok" and traj.reward == 1.0
    assert m["subagents"] == 100 == m["subagents_finished"]
    assert m["tool_calls"] + m["subagent_tool_calls"] >= 1500
    assert all(r["tool_calls"] <= 100 for r in traj.info["subagents"])  # the sub-agent budget held


async def test_fake_server_plays_the_same_baselines():
    from swarmgym.policies.openai_http import OpenAIPolicy
    from swarmgym.testing.fake_server import FakeOpenAIServer

    async with FakeOpenAIServer(responder=fake_server_responder()) as srv, OpenAIPolicy(srv.base_url, "fake-model") as model:
        router = PolicyRouter(model, roles={"subagent": model})
        env = make_swarm_env(policies=router)
        swarm = await run_episode(env, router, env.tasks[2])
        single = await run_episode(make_env(), model, env.tasks[2])
    assert swarm.status == single.status == "ok", (swarm.error, single.error)
    assert swarm.reward == single.reward == 1.0
    assert swarm.metrics["critical_steps"] * 3 <= single.metrics["turns"]


def test_scripted_agent_reads_pages_not_answers():
    # with no tool results yet, the agent can only search
    from swarmgym.wire import Message

    t = WideSearchTasks(0)[0]
    step = single_agent_step([Message(role="user", content=t.prompt)])
    assert [c["name"] for c in step["tool_calls"]] == ["search"]
