"""The gateway in front of a real model: the official ``openai`` client talks to SmolLM2 (HFPolicy) through
``Gateway``, and the recorded trajectory holds the model's own token ids, one sequence across the turns."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

openai = pytest.importorskip("openai")


def test_openai_client_through_the_gateway_to_smollm2(smollm2: tuple[Any, Any]) -> None:
    from swarmgym.gateway import Gateway
    from swarmgym.policies.hf import HFPolicy

    model, tok = smollm2

    async def main() -> tuple[list[str], Any]:
        policy = HFPolicy(model, tok)
        async with Gateway(policy) as gw:
            key = gw.open_episode(task_id="arith")
            async with openai.AsyncOpenAI(base_url=gw.base_url, api_key=key) as client:
                name = (await client.models.list()).data[0].id  # what the gateway serves, as an agent asks
                msgs: list[Any] = [{"role": "user", "content": "What is 2+3? Answer with a number."}]
                r1 = await client.chat.completions.create(model=name, messages=msgs, temperature=0.0,
                                                          max_tokens=16)  # fmt: skip
                msgs += [{"role": "assistant", "content": r1.choices[0].message.content},
                         {"role": "user", "content": "And 4+4?"}]  # fmt: skip
                r2 = await client.chat.completions.create(model=name, messages=msgs, temperature=0.0,
                                                          max_tokens=16)  # fmt: skip
            texts = [r1.choices[0].message.content or "", r2.choices[0].message.content or ""]
            return texts, await gw.close_episode(key)

    texts, traj = anyio.run(main)
    assert "5" in texts[0] and "8" in texts[1]  # the real model answered, through HTTP and back
    c1, c2 = traj.completions
    assert [c1.message.content, c2.message.content] == texts
    assert c1.token_exact and c2.token_exact
    # the ids are the model's: they decode to what the client got, and they are SmolLM2's template's
    assert tok.decode(c1.completion_ids, skip_special_tokens=True).strip() == texts[0].strip()
    ref = tok.apply_chat_template([{"role": "user", "content": "What is 2+3? Answer with a number."}],
                                  add_generation_prompt=True, tokenize=True, return_dict=False)  # fmt: skip
    assert c1.prompt_ids == list(ref)
    # turn 2 extends turn 1's ids (prompt + what was sampled), never a re-tokenised history
    assert c2.prompt_ids[: len(c1.prompt_ids) + len(c1.completion_ids)] == c1.prompt_ids + c1.completion_ids
    assert traj.info.get("segments") == [0] and all(lp <= 0 for lp in c2.logprobs)
