"""Sub-agent keys (``KEY~NAME``) over real HTTP with the official ``openai`` client: a tree of episodes."""

from __future__ import annotations

import openai
import pytest
from swarmgym.gateway import Gateway
from swarmgym.policies import OpenAIPolicy
from swarmgym.testing import FakeOpenAIServer

pytestmark = pytest.mark.anyio


async def test_derived_keys_open_children_and_close_as_a_tree() -> None:
    async with FakeOpenAIServer() as up, OpenAIPolicy(up.base_url, "fake-model", max_retries=0) as pol:
        async with Gateway(pol) as gw:
            root = gw.open_episode(task_id="t")

            async def ask(key: str, text: str) -> str:
                async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as c:
                    r = await c.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": text}])
                    return r.choices[0].message.content or ""

            assert await ask(f"{root}~w1", "child one") == "child one"
            assert await ask(f"{root}~w1~n", "grandchild") == "grandchild"
            assert await ask(root, "root") == "root"
            with pytest.raises(openai.AuthenticationError, match="unknown API key"):
                await ask("sk-nobody~w1", "x")  # only a holder of an open episode's key opens children
            top, child, grand = await gw.close_tree(root)
            assert [len(t.completions) for t in (top, child, grand)] == [1, 1, 1]
            assert child.parent_id == top.id and grand.parent_id == child.id
            assert top.children == [child.id] and child.children == [grand.id]
            assert child.role == grand.role == "subagent" and not child.trainable and child.task_id == "t"
            assert gw.open_keys == []
            with pytest.raises(openai.ConflictError):  # a closed tree's keys stay closed
                await ask(f"{root}~w1", "late")
            with pytest.raises(openai.AuthenticationError):  # and a closed parent opens no new child
                await ask(f"{root}~w2", "late")
