"""SGLangPolicy (``/generate`` with ``input_ids``) against the fake server over real HTTP."""

from __future__ import annotations

import pytest
from swarmgym.errors import ConfigError, PolicyHTTPError
from swarmgym.policies.base import Policy, PolicyContext
from swarmgym.policies.sglang import SGLangPolicy
from swarmgym.testing import FakeOpenAIServer, Reply, ToyChatTokenizer
from swarmgym.testing import toy_tokenizer as tok
from swarmgym.testing.fake_server import _logprob
from swarmgym.wire import Message, SamplingParams, ToolSpec

pytestmark = pytest.mark.anyio

MSGS = [Message(role="user", content="what is 1+2?")]
TOOLS = [ToolSpec(name="add")]
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}


async def test_generate_token_in_token_out() -> None:
    replies = [Reply.tool("add", {"a": 1, "b": 2}), "3"]
    async with FakeOpenAIServer(replies) as srv, SGLangPolicy(srv.base_url, ToyChatTokenizer(), **FAST) as p:
        assert isinstance(p, Policy) and p.base_url == srv.url  # a trailing /v1 is dropped
        ctx = PolicyContext()
        sp = SamplingParams(temperature=0.5, seed=3, stop=["\n\n"], extra={"top_k": 5})
        c1 = await p.complete(MSGS, TOOLS, sp, ctx=ctx)
        req = srv.requests[-1]
        assert req.path == "/generate"
        assert req.json["input_ids"] == c1.prompt_ids
        assert req.json["sampling_params"] == {
            "temperature": 0.5,
            "top_p": 1.0,
            "max_new_tokens": None,
            "stop": ["\n\n"],
            "sampling_seed": 3,
            "top_k": 5,
        }
        assert req.json["return_logprob"] is True and req.json["logprob_start_len"] == -1
        assert c1.token_exact and c1.completion_ids is not None and c1.completion_ids[-1] == tok.IM_END
        assert c1.logprobs == [_logprob(t, k) for k, t in enumerate(c1.completion_ids)]
        assert c1.finish_reason == "stop"
        calls = c1.message.tool_calls
        assert calls is not None and calls[0].arguments == {"a": 1, "b": 2}

        history = [*MSGS, c1.message, Message(role="tool", content="3", tool_call_id=calls[0].id)]
        c2 = await p.complete(history, TOOLS, SamplingParams(logprobs=False), ctx=ctx)
        assert "return_logprob" not in srv.requests[-1].json
    assert c2.message.content == "3" and c2.logprobs is None
    assert c2.prompt_ids is not None and c1.prompt_ids is not None
    assert c2.prompt_ids[: len(c1.prompt_ids) + len(c1.completion_ids)] == c1.prompt_ids + c1.completion_ids


async def test_length_finish_and_usage() -> None:
    async with FakeOpenAIServer(["abcdef"]) as srv, SGLangPolicy(srv.url, ToyChatTokenizer(), **FAST) as p:
        c = await p.complete(MSGS, (), SamplingParams(max_tokens=3))
    assert c.finish_reason == "length"
    assert c.completion_ids == tok.encode("abc")
    assert c.usage.completion_tokens == 3 and c.usage.prompt_tokens == len(c.prompt_ids or [])


async def test_retries_and_errors() -> None:
    async with FakeOpenAIServer(["ok"]) as srv, SGLangPolicy(srv.url, ToyChatTokenizer(), max_retries=3, **FAST) as p:
        srv.fail_next(1, 503)
        srv.fail_next(1, 0)
        assert (await p.complete(MSGS, (), SamplingParams())).message.content == "ok"
        srv.push(Reply.error(400, "input too long"))
        with pytest.raises(PolicyHTTPError, match="input too long"):
            await p.complete(MSGS, (), SamplingParams())


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="must define prompt_ids"):
        SGLangPolicy("http://h:1", object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="http"):
        SGLangPolicy("h:1", ToyChatTokenizer())
