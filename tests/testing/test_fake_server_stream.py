"""The fake server's streamed chat completions, read by the official ``openai`` client (sync and async)."""

from __future__ import annotations

import json

import openai
import pytest
from swarmgym.testing import FakeOpenAIServer, Reply, start_fake_server_process

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "please stream this reply back"}]


def _join_tool_deltas(chunks: list) -> list[dict]:
    calls: dict[int, dict] = {}
    for ch in chunks:
        for c in ch.choices:
            for d in c.delta.tool_calls or ():
                cur = calls.setdefault(d.index, {"id": None, "name": "", "arguments": ""})
                if d.id:
                    cur["id"] = d.id
                if d.function and d.function.name:
                    cur["name"] += d.function.name
                if d.function and d.function.arguments:
                    cur["arguments"] += d.function.arguments
    return [calls[i] for i in sorted(calls)]


async def test_async_stream_text_and_usage_chunk() -> None:
    async with FakeOpenAIServer() as srv, openai.AsyncOpenAI(base_url=srv.base_url, api_key="unused") as client:
        stream = await client.chat.completions.create(
            model="fake-model", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        plain = await client.chat.completions.create(model="fake-model", messages=USER)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == USER[0]["content"] == plain.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really split up
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


async def test_async_stream_tool_call_deltas_reassemble() -> None:
    args = {"path": "/tmp/some/long/file/name.txt", "mode": "read"}
    reply = Reply.calls(("read", args), ("add", {"a": 1}), content="let me look")
    async with FakeOpenAIServer([reply]) as srv, openai.AsyncOpenAI(base_url=srv.base_url, api_key="u") as client:
        stream = await client.chat.completions.create(model="fake-model", messages=USER, stream=True)
        chunks = [c async for c in stream]
    calls = _join_tool_deltas(chunks)
    assert [c["name"] for c in calls] == ["read", "add"]
    assert json.loads(calls[0]["arguments"]) == args and json.loads(calls[1]["arguments"]) == {"a": 1}
    assert all(c["id"] for c in calls)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "let me look"
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["tool_calls"]
    # Argument fragments after the first delta carry no id/name, as OpenAI's stream does.
    assert sum(1 for ch in chunks for d in ch.choices[0].delta.tool_calls or () if d.id) == 2


def test_sync_client_against_server_process_streams_and_not() -> None:
    with start_fake_server_process() as proc, openai.OpenAI(base_url=proc.base_url, api_key="unused") as client:
        plain = client.chat.completions.create(model="fake-model", messages=USER)
        with client.chat.completions.stream(model="fake-model", messages=USER) as s:  # the helper API
            for _ in s:
                pass
            final = s.get_final_completion()
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="other-model", messages=USER, stream=True)
    assert plain.choices[0].message.content == USER[0]["content"] == final.choices[0].message.content
    assert final.choices[0].finish_reason == "stop"
