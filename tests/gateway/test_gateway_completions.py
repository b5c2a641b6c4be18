"""The gateway's ``/v1/completions`` with the official ``openai`` client (plain, streaming, token ids),
in front of the fake server; a chat-only policy gets a clear 501."""

from __future__ import annotations

import openai
import pytest
from swarmgym.gateway import Gateway
from swarmgym.policies import OpenAIPolicy, ScriptedPolicy
from swarmgym.testing import FakeOpenAIServer
from swarmgym.testing import toy_tokenizer as tok

pytestmark = pytest.mark.anyio


async def test_text_completions_plain_streamed_and_recorded() -> None:
    async with FakeOpenAIServer(default_text="a text reply") as up:
        async with OpenAIPolicy(up.base_url, "fake-model", max_retries=0) as pol, Gateway(pol) as gw:
            key = gw.open_episode(task_id="txt")
            async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as c:
                r = await c.completions.create(model="fake-model", prompt="Once upon a time", max_tokens=16)
                assert r.choices[0].text == "a text reply" and r.object == "text_completion"
                assert r.usage is not None and r.usage.completion_tokens > 0
                stream = await c.completions.create(model="fake-model", prompt=tok.encode("ids"), stream=True,
                                                    stream_options={"include_usage": True})
                chunks = [x async for x in stream]
                assert "".join(x.choices[0].text for x in chunks if x.choices) == "a text reply"
                assert chunks[-1].usage is not None
                chat = await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}])
                assert chat.choices[0].message.content == "a text reply"
                with pytest.raises(openai.BadRequestError, match="one string or one list of token ids"):
                    await c.completions.create(model="fake-model", prompt=["a", "b"])
            traj = await gw.close_episode(key)
    sent = [r.json for r in up.requests if r.path == "/v1/completions"]
    assert sent[0]["prompt"] == "Once upon a time" and sent[1]["prompt"] == tok.encode("ids")
    text = traj.info["text_completions"]
    assert [t["prompt"] for t in text] == ["Once upon a time", tok.encode("ids")]
    assert text[0]["completion"]["message"]["content"] == "a text reply"
    assert text[1]["completion"]["completion_ids"] == [*tok.encode("a text reply"), tok.IM_END]
    assert len(traj.completions) == 1  # the chat turn; text completions stay out of the conversation


async def test_chat_only_policy_answers_501() -> None:
    async with Gateway(ScriptedPolicy(["x"])) as gw:
        key = gw.open_episode()
        async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as c:
            with pytest.raises(openai.APIStatusError, match="chat completions only") as e:
                await c.completions.create(model="swarmgym", prompt="x")
            assert e.value.status_code == 501
