"""The gateway over real HTTP: the official ``openai`` client (sync, async, streaming, tool calls) in front
of the fake server, episodes kept apart by key, OpenAI-style errors, history rewrites, token mode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import openai
import pytest
from swarmgym.errors import TokenDriftError
from swarmgym.gateway import Gateway, split_segments
from swarmgym.policies import OpenAIPolicy
from swarmgym.testing import FakeOpenAIServer, Reply, start_fake_server_process
from swarmgym.testing import toy_tokenizer as tok
from swarmgym.testing.toy_tokenizer import ToyChatTokenizer
from swarmgym.training.export_trl import to_trl_rollout
from swarmgym.training.samples import trajectory_samples

pytestmark = pytest.mark.anyio

ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "add two ints",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}},
    },
}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as srv:
        yield srv


@pytest.fixture
async def gw(upstream: FakeOpenAIServer) -> AsyncIterator[Gateway]:
    async with OpenAIPolicy(upstream.base_url, "fake-model", max_retries=0) as pol, Gateway(pol) as g:
        yield g


async def test_async_client_plain_stream_and_tool_calls_recorded(upstream: FakeOpenAIServer, gw: Gateway) -> None:
    upstream.push("four", Reply.tool("add", {"a": 2, "b": 2}, content="calling"), "the sum is 4")
    key = gw.open_episode(task_id="t-async")
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key) as client:
        msgs: list[Any] = [{"role": "user", "content": "what is 2+2?"}]
        r1 = await client.chat.completions.create(model="fake-model", messages=msgs, tools=[ADD])
        assert r1.choices[0].message.content == "four" and r1.choices[0].finish_reason == "stop"
        msgs += [r1.choices[0].message.model_dump(exclude_none=True), {"role": "user", "content": "use the tool"}]
        stream = await client.chat.completions.create(
            model="fake-model", messages=msgs, tools=[ADD], stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or ()]
        args = "".join(d.function.arguments or "" for d in deltas)
        assert deltas[0].function.name == "add" and json.loads(args) == {"a": 2, "b": 2}
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
        call_id = deltas[0].id
        msgs += [
            {
                "role": "assistant",
                "content": "calling",
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "add", "arguments": args}}],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "4"},
        ]
        r3 = await client.chat.completions.create(model="fake-model", messages=msgs, tools=[ADD])
        assert r3.choices[0].message.content == "the sum is 4"
    traj = await gw.close_episode(key)
    assert traj.task_id == "t-async" and len(traj.completions) == 3
    assert traj.info["segments"] == [0] and "history_rewritten" not in traj.info
    # Token ids come from the upstream (the toy tokenizer's encoding of the reply + end of turn).
    assert traj.completions[0].completion_ids == [*tok.encode("four"), tok.IM_END]
    assert traj.completions[0].token_exact and len(traj.completions[0].logprobs or ()) == 5
    assert traj.completions[1].message.tool_calls[0].arguments == {"a": 2, "b": 2}
    assert [m.role for m in traj.messages] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert traj.messages[-1].content == "the sum is 4" and traj.tools[0].name == "add"
    # What the upstream saw is what the agent sent (the gateway forwards the conversation and the tools).
    last = upstream.requests[-1].json
    assert last["messages"][-1] == {"role": "tool", "content": "4", "tool_call_id": call_id}
    assert last["tools"][0]["function"]["name"] == "add"


async def test_sync_client_through_gateway_to_server_process() -> None:
    with start_fake_server_process(default_text="pong") as proc:
        async with OpenAIPolicy(proc.base_url, "fake-model") as pol, Gateway(pol) as gw:
            key = gw.open_episode(task_id="sync")

            def agent() -> tuple[str, str]:
                with openai.OpenAI(base_url=gw.base_url, api_key=key) as c:
                    r = c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "ping"}])
                    text = "".join(
                        ch.choices[0].delta.content or ""
                        for ch in c.chat.completions.create(
                            model="fake-model", messages=[{"role": "user", "content": "ping"}], stream=True
                        )
                        if ch.choices
                    )
                    models = [m.id for m in c.models.list()]
                    assert models == ["fake-model"]
                    return r.choices[0].message.content or "", text

            plain, streamed = await anyio.to_thread.run_sync(agent)
            traj = await gw.close_episode(key)
    assert plain == streamed == "pong"
    assert [c.message.content for c in traj.completions] == ["pong", "pong"]
    assert traj.completions[1].completion_ids == [*tok.encode("pong"), tok.IM_END]


async def test_concurrent_episodes_never_mix(upstream: FakeOpenAIServer, gw: Gateway) -> None:
    n, turns = 200, 3
    upstream.latency = (0.0, 0.01)  # interleave the episodes' calls
    keys = {i: gw.open_episode(task_id=f"task-{i}") for i in range(n)}
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="none", max_retries=0) as base:

        async def episode(i: int) -> None:
            client = base.with_options(api_key=keys[i])
            msgs: list[Any] = []
            for j in range(turns):
                msgs.append({"role": "user", "content": f"marker task-{i} turn {j}"})
                if (i + j) % 2:
                    stream = await client.chat.completions.create(model="fake-model", messages=msgs, stream=True)
                    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
                else:
                    r = await client.chat.completions.create(model="fake-model", messages=msgs)
                    text = r.choices[0].message.content or ""
                assert text == f"marker task-{i} turn {j}"
                msgs.append({"role": "assistant", "content": text})

        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(episode, i)
    for i in range(n):
        traj = await gw.close_episode(keys[i])
        assert traj.task_id == f"task-{i}"
        assert [c.message.content for c in traj.completions] == [f"marker task-{i} turn {j}" for j in range(turns)]
        assert all(f"task-{i} " in m.text for m in traj.messages)
        assert traj.info["segments"] == [0]
    assert gw.errors == 0


async def _post(url: str, body: Any, key: str | None, raw: bytes | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with (
        aiohttp.ClientSession() as s,
        s.post(url, data=raw if raw is not None else json.dumps(body), headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_malformed_requests_get_openai_errors_and_record_nothing(gw: Gateway) -> None:
    key = gw.open_episode(task_id="t")
    url = gw.base_url + "/chat/completions"
    good = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    closed = gw.open_episode(task_id="closed")
    await gw.close_episode(closed)
    cases = [
        (good, None, None, 401, "missing_api_key"),
        (good, "sk-nobody", None, 401, "invalid_api_key"),
        (good, closed, None, 409, "episode_closed"),
        (None, key, b"{not json", 400, None),
        ({**good, "model": "gpt-9"}, key, None, 404, "model_not_found"),
        ({"messages": good["messages"]}, key, None, 400, None),
        ({**good, "messages": []}, key, None, 400, None),
        ({**good, "messages": [{"role": "wizard", "content": "x"}]}, key, None, 400, None),
        ({**good, "tools": [{"type": "function"}]}, key, None, 400, None),
        ([1, 2], key, None, 400, None),
    ]
    for body, k, raw, status, code in cases:
        got, data = await _post(url, body, k, raw)
        assert got == status, (body, data)
        err = data["error"]
        assert set(err) == {"message", "type", "param", "code"} and err["message"], err
        assert err["code"] == code
    # The official client maps these to its typed errors.
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-nobody", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError, match="unknown API key"):
            await c.chat.completions.create(**good)
    traj = await gw.close_episode(key)
    assert traj.completions == [] and gw.errors == len(cases) + 1


async def test_episode_base_url_and_upstream_errors(upstream: FakeOpenAIServer, gw: Gateway) -> None:
    key = gw.open_episode(task_id="by-url")
    upstream.push(Reply.error(429, "slow down"), "ok")
    async with openai.AsyncOpenAI(base_url=gw.episode_base_url(key), api_key="ignored", max_retries=0) as c:
        with pytest.raises(openai.RateLimitError, match="slow down"):
            await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "a"}])
        r = await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "a"}])
    assert r.choices[0].message.content == "ok"
    traj = await gw.close_episode(key)
    assert [c.message.content for c in traj.completions] == ["ok"]


async def test_subagent_episode_is_a_child(gw: Gateway) -> None:
    parent = gw.open_episode(task_id="p")
    child = gw.open_episode(task_id="p", parent_key=parent, role="subagent")
    async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=child) as c:
        await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "sub"}])
    ct, pt = await gw.close_episode(child), await gw.close_episode(parent)
    assert ct.parent_id == pt.id and pt.children == [ct.id] and not ct.trainable
    assert len(ct.completions) == 1 and pt.completions == []


async def test_token_mode_extends_ids_and_splits_on_history_rewrite(upstream: FakeOpenAIServer) -> None:
    upstream.push("one", "two", "three")
    pol = OpenAIPolicy(upstream.base_url, "fake-model", mode="token", tokenizer=ToyChatTokenizer())
    async with pol, Gateway(pol) as gw:
        key = gw.open_episode(task_id="tok")
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key) as c:
            m: list[Any] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"}]
            r1 = await c.chat.completions.create(model="fake-model", messages=m)
            m += [{"role": "assistant", "content": r1.choices[0].message.content}, {"role": "user", "content": "b"}]
            r2 = await c.chat.completions.create(model="fake-model", messages=m)
            # The agent rewrites its past: drops the first exchange (a summarising/compacting agent).
            m = [
                m[0],
                {"role": "user", "content": "b"},
                {"role": "assistant", "content": r2.choices[0].message.content},
                {"role": "user", "content": "c"},
            ]
            await c.chat.completions.create(model="fake-model", messages=m)
        traj = await gw.close_episode(key)
    c1, c2, c3 = traj.completions
    assert all(x.token_exact for x in (c1, c2, c3))
    # Turn 2 extends turn 1's ids exactly (prompt + sampled completion), as training data needs.
    assert c2.prompt_ids[: len(c1.prompt_ids) + len(c1.completion_ids)] == [*c1.prompt_ids, *c1.completion_ids]
    # Turn 3 is a new segment: its prompt is the rewritten conversation rendered afresh, not drifted ids.
    assert traj.info["segments"] == [0, 2] and traj.info["history_rewritten"] is True
    assert c3.prompt_ids == tok.encode(tok.render_chat(m))
    assert c3.prompt_ids[: len(c2.prompt_ids)] != c2.prompt_ids
    # The trainer's own exporters: the whole trajectory does not chain (TRL refuses it); its segments do.
    with pytest.raises(TokenDriftError):
        to_trl_rollout([traj])
    assert [len(s.turn_spans) for s in trajectory_samples(traj, on_drift="split")] == [2, 1]
    parts = split_segments(traj)
    assert [len(p.completions) for p in parts] == [2, 1] and parts[1].messages == traj.messages
    assert [x.role for x in parts[0].messages] == ["system", "user", "assistant", "user", "assistant"]
    rows = to_trl_rollout(parts)
    assert rows["prompt_ids"][0] == c1.prompt_ids and rows["prompt_ids"][1] == c3.prompt_ids
    assert sum(rows["env_mask"][0]) == len(c1.completion_ids) + len(c2.completion_ids)
    assert split_segments(parts[0]) == [parts[0]]


async def test_idle_episodes_are_closed_and_handed_over(upstream: FakeOpenAIServer) -> None:
    done: list[Any] = []
    async with OpenAIPolicy(upstream.base_url, "fake-model") as pol:
        async with Gateway(pol, auto_open=True, idle_s=0.2, on_close=done.append) as gw:
            async with openai.AsyncOpenAI(base_url=gw.base_url, api_key="agent-1") as c:
                await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
                for _ in range(100):
                    if done:
                        break
                    await asyncio.sleep(0.05)
                assert [t.info["gateway_key"] for t in done] == ["agent-1"]
                with pytest.raises(openai.ConflictError):  # a stored episode's key is not reopened
                    await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "x"}])
                await c.with_options(api_key="agent-2").chat.completions.create(
                    model="fake-model", messages=[{"role": "user", "content": "y"}]
                )
    assert [t.info["gateway_key"] for t in done] == ["agent-1", "agent-2"]  # agent-2 closed at shutdown
    assert [len(t.completions) for t in done] == [1, 1]


def test_cli_stores_idle_episodes_and_the_rest_at_sigterm(tmp_path: Any) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from swarmgym.gateway.cli import READY_PREFIX
    from swarmgym.rollout.store import read_trajectories

    out = tmp_path / "gw.jsonl"
    with start_fake_server_process() as up:
        cmd = [
            sys.executable,
            "-m",
            "swarmgym.cli",
            "gateway",
            "--upstream",
            up.base_url,
            "--port",
            "0",
            "--out",
            str(out),
            "--idle-s",
            "2",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        try:
            line = proc.stdout.readline()
            assert line.startswith(READY_PREFIX), line + proc.stderr.read()
            base = line[len(READY_PREFIX) :].split()[0]
            with openai.OpenAI(base_url=base, api_key="early", max_retries=0) as c:
                for k in ("a", "b"):
                    c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": f"early {k}"}])
                assert proc.stdout.readline().startswith("stored episode early")  # idle for 2 s
                late = c.with_options(api_key="late")
                late.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "late"}])
                with pytest.raises(openai.ConflictError):
                    c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "again"}])
            time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            rest, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert "stored 2 episode(s)" in rest
    trajs = {t.info["gateway_key"]: t for t in read_trajectories(out)}
    assert sorted(trajs) == ["early", "late"]
    assert [c.message.content for c in trajs["early"].completions] == ["early a", "early b"]
    assert [c.message.content for c in trajs["late"].completions] == ["late"]
