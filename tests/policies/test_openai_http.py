"""OpenAIPolicy against the fake server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from swarmgym.errors import ConfigError, PolicyConnectionError, PolicyError, PolicyHTTPError, PolicyTimeoutError
from swarmgym.policies.base import Policy, PolicyContext
from swarmgym.policies.openai_http import OpenAIPolicy, normalize_base_url
from swarmgym.testing import FakeOpenAIServer, Reply, ToyChatTokenizer, start_fake_server_process
from swarmgym.testing import toy_tokenizer as tok
from swarmgym.testing.fake_server import _logprob
from swarmgym.wire import Message, SamplingParams, ToolCall, ToolSpec

pytestmark = pytest.mark.anyio

MSGS = [Message(role="system", content="be brief"), Message(role="user", content="what is 1+2?")]
TOOLS = [ToolSpec(name="add", description="add two ints", parameters={"type": "object", "properties": {}})]
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}


def policy(srv: FakeOpenAIServer, **kw: Any) -> OpenAIPolicy:
    return OpenAIPolicy(srv.base_url, "fake-model", **{**FAST, **kw})


async def test_plain_text_with_ids_and_logprobs() -> None:
    async with FakeOpenAIServer(["3"]) as srv, policy(srv) as p:
        assert isinstance(p, Policy)
        c = await p.complete(MSGS, (), SamplingParams())
    assert c.message.role == "assistant" and c.message.content == "3" and c.message.tool_calls is None
    assert c.finish_reason == "stop"
    assert c.completion_ids == tok.encode("3") + [tok.IM_END]
    assert c.prompt_ids == tok.encode(tok.render_chat([m.to_openai() for m in MSGS]))
    assert c.logprobs == [_logprob(t, k) for k, t in enumerate(c.completion_ids)]
    assert c.token_exact
    assert c.usage.prompt_tokens == len(c.prompt_ids) and c.usage.completion_tokens == 2
    assert c.latency_s > 0


async def test_request_body_maps_sampling_params() -> None:
    sp = SamplingParams(temperature=0.3, top_p=0.9, max_tokens=64, stop=["\n\n"], seed=7, extra={"top_k": 20})
    async with FakeOpenAIServer() as srv, policy(srv, extra_body={"repetition_penalty": 1.1}) as p:
        await p.complete(MSGS, TOOLS, sp)
        body = srv.requests[-1].json
    assert body["model"] == "fake-model"
    assert body["messages"] == [m.to_openai() for m in MSGS]
    assert body["tools"] == [t.to_openai() for t in TOOLS]
    assert {k: body[k] for k in ("temperature", "top_p", "max_tokens", "stop", "seed", "top_k")} == {
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 64,
        "stop": ["\n\n"],
        "seed": 7,
        "top_k": 20,
    }
    assert body["repetition_penalty"] == 1.1
    assert body["logprobs"] is True and body["return_token_ids"] is True


async def test_text_only_server_is_not_token_exact() -> None:
    async with FakeOpenAIServer(["a", "b"]) as srv, policy(srv, return_token_ids=False) as p:
        c = await p.complete(MSGS, (), SamplingParams())
        assert "return_token_ids" not in srv.requests[-1].json
        assert c.completion_ids is None and c.prompt_ids is None and not c.token_exact
        assert c.logprobs is not None  # logprobs still pass through
        c2 = await p.complete(MSGS, (), SamplingParams(logprobs=False))
        assert c2.logprobs is None and "logprobs" not in srv.requests[-1].json


async def test_stops_asking_for_ids_when_the_server_rejects_the_field() -> None:
    rejection = Reply.error(400, "Unrecognized request argument supplied: return_token_ids")
    async with FakeOpenAIServer([rejection, "ok", "again"]) as srv, policy(srv) as p:
        c = await p.complete(MSGS, (), SamplingParams())
        assert c.message.content == "ok"
        await p.complete(MSGS, (), SamplingParams())
        bodies = [r.json for r in srv.requests]
    assert ["return_token_ids" in b for b in bodies] == [True, False, False]


async def test_tool_calls_and_malformed_arguments_kept_raw() -> None:
    replies = [Reply.calls(("add", {"a": 1, "b": 2}), ("add", '{"a": 1, "b": '), content="calling")]
    async with FakeOpenAIServer(replies) as srv, policy(srv) as p:
        c = await p.complete(MSGS, TOOLS, SamplingParams())
    calls = c.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert calls[0].name == "add" and calls[0].arguments == {"a": 1, "b": 2} and not calls[0].is_malformed
    assert calls[1].is_malformed and calls[1].arguments == '{"a": 1, "b": '
    assert calls[0].id == "call_0_add" and calls[1].id == "call_1_add"
    assert c.message.content == "calling"
    assert c.finish_reason == "tool_calls"


async def test_multi_turn_tool_history_is_sent_back() -> None:
    call = ToolCall(id="c1", name="add", arguments={"a": 1, "b": 2})
    history = [
        *MSGS,
        Message(role="assistant", tool_calls=[call]),
        Message(role="tool", content="3", tool_call_id="c1", name="add"),
    ]
    async with FakeOpenAIServer(["it is 3"]) as srv, policy(srv) as p:
        c = await p.complete(history, TOOLS, SamplingParams())
        sent = srv.requests[-1].json["messages"]
    assert c.message.content == "it is 3"
    assert sent[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 2}'}
    assert sent[3] == {"role": "tool", "content": "3", "tool_call_id": "c1", "name": "add"}


async def test_reasoning_content_passes_through() -> None:
    async with FakeOpenAIServer([Reply(content="42", reasoning_content="think")]) as srv, policy(srv) as p:
        c = await p.complete(MSGS, (), SamplingParams())
    assert c.message.reasoning_content == "think" and c.message.content == "42"


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_retries_on_retryable_status(status: int) -> None:
    async with FakeOpenAIServer(["finally"]) as srv, policy(srv) as p:
        srv.fail_next(2, status)
        c = await p.complete(MSGS, (), SamplingParams())
        assert c.message.content == "finally"
        assert len(srv.requests) == 3


async def test_retries_exhausted_raise_http_error() -> None:
    async with FakeOpenAIServer() as srv, policy(srv, max_retries=2) as p:
        srv.fail_next(5, 500)
        with pytest.raises(PolicyHTTPError, match=r"answered 500 .*after 3 attempts: injected error 500") as ei:
            await p.complete(MSGS, (), SamplingParams())
        assert ei.value.status == 500
        assert len(srv.requests) == 3


async def test_client_error_is_not_retried() -> None:
    async with FakeOpenAIServer([Reply.error(400, "prompt too long")]) as srv, policy(srv) as p:
        with pytest.raises(PolicyHTTPError, match="answered 400 on /chat/completions: prompt too long") as ei:
            await p.complete(MSGS, (), SamplingParams())
        assert ei.value.status == 400 and len(srv.requests) == 1


async def test_dropped_connection_is_retried() -> None:
    async with FakeOpenAIServer(["survived"]) as srv, policy(srv) as p:
        srv.fail_next(2, 0)
        c = await p.complete(MSGS, (), SamplingParams())
        assert c.message.content == "survived" and len(srv.requests) == 3


async def test_always_dropping_server_raises_connection_error() -> None:
    async with FakeOpenAIServer(fail_rate=1.0, fail_status=0) as srv, policy(srv, max_retries=1) as p:
        with pytest.raises(PolicyConnectionError, match="dropped the connection .*after 2 attempt"):
            await p.complete(MSGS, (), SamplingParams())


async def test_connection_refused_is_a_clear_error() -> None:
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with OpenAIPolicy(f"http://127.0.0.1:{port}/v1", "m", **FAST) as p:
        with pytest.raises(
            PolicyConnectionError,
            match=rf"cannot reach model server at http://127.0.0.1:{port}/v1: connection refused — is it running\?",
        ):
            await p.complete(MSGS, (), SamplingParams())


async def test_wrong_model_lists_served_models() -> None:
    async with FakeOpenAIServer(models=["qwen", "llama"]) as srv:
        async with OpenAIPolicy(srv.base_url, "gpt-9", **FAST) as p:
            with pytest.raises(
                PolicyHTTPError, match=r"model 'gpt-9' is not served by .*it serves \['qwen', 'llama'\]"
            ) as ei:
                await p.complete(MSGS, (), SamplingParams())
            assert ei.value.status == 404
            assert await p.list_models() == ["qwen", "llama"]


async def test_wrong_path_404_hints_at_base_url() -> None:
    async with FakeOpenAIServer() as srv:
        async with OpenAIPolicy(srv.url + "/api", "fake-model", **FAST) as p:
            with pytest.raises(PolicyHTTPError, match="ending in /v1"):
                await p.complete(MSGS, (), SamplingParams())


async def test_timeout() -> None:
    async with FakeOpenAIServer([Reply(content="late", delay=5.0)]) as srv, policy(srv, timeout=0.2) as p:
        with pytest.raises(PolicyTimeoutError, match="did not answer /chat/completions within 0.2 s"):
            await p.complete(MSGS, (), SamplingParams())


async def test_one_session_shared_by_concurrent_calls() -> None:
    async with FakeOpenAIServer() as srv, policy(srv, max_connections=4) as p:
        results = await asyncio.gather(
            *(p.complete([Message(role="user", content=f"q{i}")], (), SamplingParams()) for i in range(40))
        )
        session = p._client._session
        assert [c.message.content for c in results] == [f"q{i}" for i in range(40)]
        await p.complete(MSGS, (), SamplingParams())
        assert p._client._session is session
        assert session is not None and session.connector is not None and session.connector.limit == 4
    assert session.closed


def test_usable_from_successive_event_loops() -> None:
    with start_fake_server_process() as srv:
        p = OpenAIPolicy(srv.base_url, "fake-model", **FAST)

        async def once(text: str) -> str | None:
            c = await p.complete([Message(role="user", content=text)], (), SamplingParams())
            return c.message.text

        assert asyncio.run(once("first")) == "first"  # the loop closes with the session still open
        assert asyncio.run(once("second")) == "second"

        async def close() -> None:
            await p.aclose()
            await p.aclose()  # idempotent

        asyncio.run(close())


async def test_against_a_separate_server_process() -> None:
    import anyio

    srv = await anyio.to_thread.run_sync(lambda: start_fake_server_process(models=["m"], default_text="pong"))
    async with srv, OpenAIPolicy(srv.base_url, "m", **FAST) as p:
        c = await p.complete(MSGS, (), SamplingParams())
        assert c.message.content == "pong" and c.token_exact


def test_base_url_normalization() -> None:
    assert normalize_base_url("http://localhost:8000") == "http://localhost:8000/v1"
    assert normalize_base_url("http://localhost:8000/v1/") == "http://localhost:8000/v1"
    assert normalize_base_url("https://api.example.com/openai/v1") == "https://api.example.com/openai/v1"
    with pytest.raises(ConfigError, match="must be an http"):
        OpenAIPolicy("localhost:8000", "m")


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="mode must be"):
        OpenAIPolicy("http://h/v1", "m", mode="text")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs tokenizer"):
        OpenAIPolicy("http://h/v1", "m", mode="token")
    with pytest.raises(ConfigError, match="must define prompt_ids"):
        OpenAIPolicy("http://h/v1", "m", mode="token", tokenizer=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_retries"):
        OpenAIPolicy("http://h/v1", "m", max_retries=-1)


# -- token mode ----------------------------------------------------------------------------------------


async def test_token_mode_multi_turn_is_token_exact() -> None:
    replies = [Reply.tool("add", {"a": 1, "b": 2}), "the answer is 3"]
    async with FakeOpenAIServer(replies) as srv, policy(srv, mode="token", tokenizer=ToyChatTokenizer()) as p:
        ctx = PolicyContext(episode_id="e1")
        c1 = await p.complete(MSGS, TOOLS, SamplingParams(), ctx=ctx)
        body1 = srv.requests[-1].json
        assert srv.requests[-1].path == "/v1/completions"
        assert body1["prompt"] == c1.prompt_ids and all(isinstance(t, int) for t in body1["prompt"])
        assert body1["return_token_ids"] is True and body1["logprobs"] == 1
        assert body1["max_tokens"] is None  # explicit null: vLLM would otherwise stop after 16 tokens
        assert c1.token_exact and c1.completion_ids is not None and c1.completion_ids[-1] == tok.IM_END
        assert c1.logprobs == [_logprob(t, k) for k, t in enumerate(c1.completion_ids)]
        calls = c1.message.tool_calls
        assert calls is not None and calls[0].name == "add" and calls[0].arguments == {"a": 1, "b": 2}
        assert c1.finish_reason == "stop"

        history = [*MSGS, c1.message, Message(role="tool", content="3", tool_call_id=calls[0].id, name="add")]
        c2 = await p.complete(history, TOOLS, SamplingParams(), ctx=ctx)
    assert c2.message.content == "the answer is 3"
    # Turn 2's prompt extends turn 1's prompt + the ids exactly as sampled.
    assert c2.prompt_ids is not None and c1.prompt_ids is not None
    assert c2.prompt_ids[: len(c1.prompt_ids) + len(c1.completion_ids)] == c1.prompt_ids + c1.completion_ids


async def test_token_mode_malformed_tool_call_is_data() -> None:
    async with (
        FakeOpenAIServer([Reply.tool("add", '{"a": 1,')]) as srv,
        policy(srv, mode="token", tokenizer=ToyChatTokenizer()) as p,
    ):
        c = await p.complete(MSGS, TOOLS, SamplingParams())
    assert c.message.tool_calls is not None and c.message.tool_calls[0].arguments == '{"a": 1,'


async def test_token_mode_needs_ids_from_the_server() -> None:
    from aiohttp import web

    async def no_ids(request: web.Request) -> web.Response:
        return web.json_response({"choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]})

    app = web.Application()
    app.router.add_post("/v1/completions", no_ids)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with OpenAIPolicy(
            f"http://127.0.0.1:{port}/v1", "m", mode="token", tokenizer=ToyChatTokenizer(), **FAST
        ) as p:
            with pytest.raises(PolicyError, match="returned no token ids.*mode='chat'"):
                await p.complete(MSGS, (), SamplingParams())
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [422, 500])
async def test_token_mode_on_a_server_refusing_token_prompts_says_use_chat(status: int) -> None:
    # llama-cpp-python's /v1/completions validates `prompt` as text; it answers a token-id list with a 500
    # listing "Input should be a valid string" (measured), a stricter server with a 422.
    refusal = Reply.error(status, "Input should be a valid string: body.prompt")
    replies = [refusal] * 8  # a 500 is retried first
    async with FakeOpenAIServer(replies) as srv, policy(srv, mode="token", tokenizer=ToyChatTokenizer()) as p:
        with pytest.raises(PolicyHTTPError, match="token ids.*mode='chat'.*token_exact=False") as e:
            await p.complete(MSGS, (), SamplingParams())
    assert e.value.status == status and "valid string" in str(e.value)


# -- through the agent loop ----------------------------------------------------------------------------


async def test_episode_with_tool_calls_over_http() -> None:
    from swarmgym.envs.core import AgentEnv
    from swarmgym.loop import run_episode
    from swarmgym.toolsets.calculator import CalculatorToolset
    from swarmgym.wire import Task

    replies = [
        Reply.calls(("calculator", {"expression": "17 + 25"}), ("calculator", '{"expression": ')),
        "the answer is 42",
    ]
    env = AgentEnv([Task(id="t", prompt="17+25?", answer="42")], toolsets=[CalculatorToolset()])
    async with FakeOpenAIServer(replies) as srv, policy(srv) as p:
        traj = await run_episode(env, p, env.tasks[0])
        sent = srv.requests[-1].json
    assert traj.status == "ok", traj.error
    assert [m.role for m in traj.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    assert traj.messages[2].content == "42"
    assert traj.messages[3].tool_call_id == "call_1_calculator"  # the malformed call became an error observation
    assert all(c.token_exact for c in traj.completions)
    # The second request carried the tool results back, in call order.
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool", "tool"]
    assert sent["tools"][0]["function"]["name"] == "calculator"


async def test_every_request_of_a_long_episode_carries_the_whole_conversation() -> None:
    # Within an episode the policy converts only new messages (PolicyContext.state); what goes over the wire
    # must still be exactly the conversation of that turn.
    from swarmgym.envs.core import AgentEnv, EpisodeLimits
    from swarmgym.loop import run_episode
    from swarmgym.toolsets.calculator import CalculatorToolset
    from swarmgym.wire import Task

    replies = [Reply.calls(("calculator", {"expression": f"{i} + 1"})) for i in range(6)] + ["done"]
    env = AgentEnv(
        [Task(id="t", prompt="count", answer="x")], toolsets=[CalculatorToolset()], limits=EpisodeLimits(max_turns=9)
    )
    async with FakeOpenAIServer(replies) as srv, policy(srv) as p:
        traj = await run_episode(env, p, env.tasks[0])
        sent = [r.json["messages"] for r in srv.requests]
    assert traj.status == "ok" and len(sent) == 7
    for i, body in enumerate(sent):  # request i: the user message plus i (assistant, tool) pairs
        assert body == [m.to_openai() for m in traj.messages[: 1 + 2 * i]]


def test_build_request_with_state_converts_each_message_once(monkeypatch: pytest.MonkeyPatch) -> None:
    p = OpenAIPolicy("http://127.0.0.1:1/v1", "m")
    converted: list[Message] = []
    to_openai = Message.to_openai

    def counting(self: Message) -> dict[str, Any]:
        converted.append(self)
        return to_openai(self)

    monkeypatch.setattr(Message, "to_openai", counting)
    state: dict[str, Any] = {}
    convo = list(MSGS)
    for i in range(5):
        convo += [Message(role="assistant", content=f"a{i}"), Message(role="user", content=f"u{i}")]
        body = p.build_request(convo, (), SamplingParams(), state)
        assert body["messages"] == [to_openai(m) for m in convo]
    assert len(converted) == len(convo)  # each message converted once, not once per turn
    # a context strategy that rewrites the history: the changed suffix is converted again, the prefix is not
    converted.clear()
    summary = [*convo[:2], Message(role="user", content="summary"), *convo[-2:]]
    assert p.build_request(summary, (), SamplingParams(), state)["messages"] == [to_openai(m) for m in summary]
    assert converted == summary[2:]
    # a body built with state is the caller's own list
    body = p.build_request(summary, (), SamplingParams(), state)
    body["messages"].clear()
    assert len(p.build_request(summary, (), SamplingParams(), state)["messages"]) == len(summary)


async def test_token_mode_episode_keeps_sampled_ids() -> None:
    from swarmgym.envs.core import AgentEnv
    from swarmgym.loop import run_episode
    from swarmgym.toolsets.calculator import CalculatorToolset
    from swarmgym.wire import Task

    env = AgentEnv([Task(id="t", prompt="17+25?", answer="42")], toolsets=[CalculatorToolset()])
    replies = [Reply.tool("calculator", {"expression": "17 + 25"}), "42"]
    async with FakeOpenAIServer(replies) as srv, policy(srv, mode="token", tokenizer=ToyChatTokenizer()) as p:
        traj = await run_episode(env, p, env.tasks[0])
    assert traj.status == "ok", traj.error
    c1, c2 = traj.completions
    assert c1.token_exact and c2.token_exact
    assert c1.prompt_ids is not None and c1.completion_ids is not None and c2.prompt_ids is not None
    assert c2.prompt_ids[: len(c1.prompt_ids) + len(c1.completion_ids)] == c1.prompt_ids + c1.completion_ids
    assert tok.decode(c2.prompt_ids[len(c1.prompt_ids) + len(c1.completion_ids) :]).startswith("\n<|im_start|>tool\n42")
