"""The fake OpenAI/vLLM/SGLang server over real HTTP on 127.0.0.1 (in-process and as a child process)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from swarmgym.testing import FakeOpenAIServer, Reply, start_fake_server_process
from swarmgym.testing import toy_tokenizer as tok
from swarmgym.testing.fake_server import _logprob
from swarmgym.wire import Message, ToolCall

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "hi there"}]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(url, json=body) as r:
        return r.status, await r.json()


async def test_chat_text_with_ids_and_logprobs(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer(["hello"]) as srv:
        body = {"model": "fake-model", "messages": USER, "logprobs": True, "return_token_ids": True}
        status, data = await post(http, srv.base_url + "/chat/completions", body)
    assert status == 200
    choice = data["choices"][0]
    assert choice["message"]["content"] == "hello"
    assert choice["finish_reason"] == "stop"
    # The sampled ids end with the end-of-turn token, which the text does not show.
    assert choice["token_ids"] == tok.encode("hello") + [tok.IM_END]
    assert data["prompt_token_ids"] == tok.encode(tok.render_chat(USER))
    lps = [e["logprob"] for e in choice["logprobs"]["content"]]
    assert lps == [_logprob(t, k) for k, t in enumerate(choice["token_ids"])]
    assert data["usage"] == {
        "prompt_tokens": len(data["prompt_token_ids"]),
        "completion_tokens": 6,
        "total_tokens": len(data["prompt_token_ids"]) + 6,
    }
    assert srv.requests[0].path == "/v1/chat/completions"
    assert srv.requests[0].json == body


async def test_chat_without_ids_or_logprobs_omits_them(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer(["x"]) as srv:
        _, data = await post(http, srv.base_url + "/chat/completions", {"model": "fake-model", "messages": USER})
    assert "token_ids" not in data["choices"][0]
    assert "prompt_token_ids" not in data
    assert data["choices"][0]["logprobs"] is None


async def test_chat_tool_calls_and_malformed_arguments(http: aiohttp.ClientSession) -> None:
    replies = [Reply.calls(("add", {"a": 1, "b": 2}), ("mul", '{"a": 3,'), content="let me compute")]
    async with FakeOpenAIServer(replies) as srv:
        _, data = await post(http, srv.base_url + "/chat/completions", {"messages": USER, "return_token_ids": True})
    choice = data["choices"][0]
    calls = choice["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["add", "mul"]
    assert calls[0]["function"]["arguments"] == '{"a": 1, "b": 2}'
    assert calls[1]["function"]["arguments"] == '{"a": 3,'  # sent verbatim, malformed on purpose
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "let me compute"
    # The ids are the Hermes-style text the "model" generated.
    content, parsed = tok.parse_assistant(tok.decode(choice["token_ids"], skip_special=True))
    assert content == "let me compute"
    assert parsed == [("add", {"a": 1, "b": 2}), ("mul", '{"a": 3,')]


async def test_replies_from_messages_dicts_and_ints(http: aiohttp.ClientSession) -> None:
    msg = Message(role="assistant", content=None, tool_calls=[ToolCall(id="c1", name="f", arguments={"x": 1})])
    async with FakeOpenAIServer([msg, {"content": "from dict"}, 503]) as srv:
        url = srv.base_url + "/chat/completions"
        _, a = await post(http, url, {"messages": USER})
        _, b = await post(http, url, {"messages": USER})
        status, c = await post(http, url, {"messages": USER})
    assert a["choices"][0]["message"]["tool_calls"][0]["id"] == "c1"
    assert a["choices"][0]["message"]["content"] is None
    assert b["choices"][0]["message"]["content"] == "from dict"
    assert status == 503 and c["error"]["code"] == 503


async def test_default_echo_responder_and_default_text(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer() as srv:
        _, data = await post(http, srv.base_url + "/chat/completions", {"messages": USER})
        assert data["choices"][0]["message"]["content"] == "hi there"

        seen: list[dict[str, Any]] = []

        def responder(req: dict[str, Any]) -> str:
            seen.append(req)
            return "from responder"

        srv.responder = responder
        srv.push("queued first")
        url = srv.base_url + "/chat/completions"
        texts = [(await post(http, url, {"messages": USER}))[1]["choices"][0]["message"]["content"] for _ in range(2)]
        assert texts == ["queued first", "from responder"]
        assert len(seen) == 1 and seen[0]["messages"] == USER

        async def async_responder(req: dict[str, Any]) -> Reply:
            return Reply.tool("f", {"q": req["messages"][-1]["content"]})

        srv.responder = async_responder
        _, data = await post(http, url, {"messages": USER})
        assert data["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"q": "hi there"}'

    async with FakeOpenAIServer(default_text="42") as srv:
        _, data = await post(http, srv.base_url + "/chat/completions", {"messages": USER})
        assert data["choices"][0]["message"]["content"] == "42"


async def test_max_tokens_and_stop(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer(["abcdef", "one. two. three", Reply.tool("f", {"a": 1})]) as srv:
        url = srv.base_url + "/chat/completions"
        _, a = await post(http, url, {"messages": USER, "max_tokens": 3, "return_token_ids": True})
        _, b = await post(http, url, {"messages": USER, "stop": [". t", "two"]})
        _, c = await post(http, url, {"messages": USER, "max_tokens": 4})
    assert a["choices"][0]["message"]["content"] == "abc"
    assert a["choices"][0]["token_ids"] == tok.encode("abc")
    assert a["choices"][0]["finish_reason"] == "length"
    assert b["choices"][0]["message"]["content"] == "one"
    assert b["choices"][0]["stop_reason"] == ". t"
    # A tool call cut off by the token limit comes back as partial text, never as a parsed call.
    assert c["choices"][0]["message"]["tool_calls"] == []
    assert c["choices"][0]["finish_reason"] == "length"


async def test_completions_token_in_token_out(http: aiohttp.ClientSession) -> None:
    prompt = tok.encode(tok.render_chat(USER))
    async with FakeOpenAIServer(["the answer is 42"]) as srv:
        body = {"model": "fake-model", "prompt": prompt, "return_token_ids": True, "logprobs": 1, "max_tokens": None}
        status, data = await post(http, srv.base_url + "/completions", body)
        # Like vLLM, an absent max_tokens means the OpenAI default of 16 tokens; the echo is the user text.
        _, short = await post(http, srv.base_url + "/completions", {"prompt": prompt})
        _, as_ids = await post(
            http, srv.base_url + "/completions", {"prompt": "x", "logprobs": 0, "return_tokens_as_token_ids": True}
        )
    assert status == 200
    choice = data["choices"][0]
    assert choice["text"] == "the answer is 42"
    assert choice["prompt_token_ids"] == prompt
    assert choice["token_ids"] == tok.encode("the answer is 42") + [tok.IM_END]
    assert choice["logprobs"]["token_logprobs"] == [_logprob(t, k) for k, t in enumerate(choice["token_ids"])]
    assert choice["logprobs"]["tokens"][:3] == ["t", "h", "e"]
    assert short["choices"][0]["text"] == "hi there" and short["choices"][0]["finish_reason"] == "stop"
    assert as_ids["choices"][0]["logprobs"]["tokens"][0] == f"token_id:{tok.encode('x')[0]}"
    assert as_ids["choices"][0]["logprobs"]["top_logprobs"] is None


async def test_completions_default_max_tokens_is_16(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer(["a" * 40]) as srv:
        _, data = await post(http, srv.base_url + "/completions", {"prompt": [5, 6, 7], "return_token_ids": True})
    assert len(data["choices"][0]["token_ids"]) == 16
    assert data["choices"][0]["finish_reason"] == "length"


async def test_completions_rejects_bad_token_ids(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer() as srv:
        status, data = await post(http, srv.base_url + "/completions", {"prompt": [1, 2, 10**6]})
    assert status == 400 and "token ids" in data["error"]["message"]


async def test_sglang_generate(http: aiohttp.ClientSession) -> None:
    ids = tok.encode(tok.render_chat(USER))
    async with FakeOpenAIServer(["ok", "abcdef"]) as srv:
        body = {"input_ids": ids, "sampling_params": {"max_new_tokens": None}, "return_logprob": True}
        status, data = await post(http, srv.url + "/generate", body)
        _, short = await post(http, srv.url + "/generate", {"text": "q", "sampling_params": {"max_new_tokens": 2}})
    assert status == 200
    assert data["text"] == "ok"
    assert data["output_ids"] == tok.encode("ok") + [tok.IM_END]
    meta = data["meta_info"]
    assert meta["finish_reason"] == {"type": "stop", "matched": tok.IM_END}
    assert meta["prompt_tokens"] == len(ids) and meta["completion_tokens"] == 3
    assert meta["output_token_logprobs"] == [[_logprob(t, k), t, None] for k, t in enumerate(data["output_ids"])]
    assert short["meta_info"]["finish_reason"] == {"type": "length", "length": 2}
    assert "output_token_logprobs" not in short["meta_info"]


async def test_models_tokenize_detokenize(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer(models=["a", "b"]) as srv:
        async with http.get(srv.base_url + "/models") as r:
            models = await r.json()
        _, t = await post(http, srv.url + "/tokenize", {"model": "a", "prompt": "héllo<|im_end|>"})
        _, chat = await post(http, srv.url + "/tokenize", {"model": "a", "messages": USER})
        _, d = await post(http, srv.url + "/detokenize", {"model": "a", "tokens": t["tokens"]})
        async with http.get(srv.url + "/health") as r:
            assert r.status == 200
    assert [m["id"] for m in models["data"]] == ["a", "b"]
    assert t["tokens"][-1] == tok.IM_END and t["count"] == len(t["tokens"])
    assert chat["tokens"] == tok.encode(tok.render_chat(USER))
    assert d["prompt"] == "héllo<|im_end|>"


async def test_wrong_model_is_404_like_vllm(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer() as srv:
        status, data = await post(http, srv.base_url + "/chat/completions", {"model": "nope", "messages": USER})
    assert status == 404
    assert data["error"]["message"] == "The model `nope` does not exist."
    assert data["error"]["type"] == "NotFoundError"


async def test_error_injection_fail_next_and_drop(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer(["after"]) as srv:
        url = srv.base_url + "/chat/completions"
        srv.fail_next(1, 429)
        srv.fail_next(1, 0)
        status, data = await post(http, url, {"messages": USER})
        assert status == 429 and data["error"]["type"] == "RateLimitError"
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(http, url, {"messages": USER})
        status, data = await post(http, url, {"messages": USER})
        assert status == 200 and data["choices"][0]["message"]["content"] == "after"
        srv.push(Reply.dropped(), Reply.error(400, "bad things"))
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(http, url, {"messages": USER})
        status, data = await post(http, url, {"messages": USER})
        assert status == 400 and data["error"]["message"] == "bad things"
        # Utility endpoints never fail.
        srv.fail_next(1, 500)
        async with http.get(srv.base_url + "/models") as r:
            assert r.status == 200


async def test_fail_rate_is_seeded(http: aiohttp.ClientSession) -> None:
    async def statuses(seed: int) -> list[int]:
        async with FakeOpenAIServer(fail_rate=0.5, fail_status=500, seed=seed) as srv:
            return [(await post(http, srv.base_url + "/chat/completions", {"messages": USER}))[0] for _ in range(16)]

    a, b = await statuses(3), await statuses(3)
    assert a == b
    assert set(a) == {200, 500}


async def test_bad_requests(http: aiohttp.ClientSession) -> None:
    async with FakeOpenAIServer() as srv:
        async with http.post(srv.base_url + "/chat/completions", data=b"{not json") as r:
            assert r.status == 400
        status, _ = await post(http, srv.base_url + "/chat/completions", {"messages": []})
        assert status == 400
        status, _ = await post(http, srv.base_url + "/completions", {"prompt": "x", "stream": True})
        assert status == 400
        status, _ = await post(http, srv.base_url + "/nowhere", {})
        assert status == 404
        status, _ = await post(http, srv.base_url + "/chat/completions", {"messages": ["not an object"]})
        assert status == 400

        def broken(req: dict[str, Any]) -> str:
            raise ValueError("responder bug")

        srv.responder = broken
        status, data = await post(http, srv.base_url + "/chat/completions", {"messages": USER})
        assert status == 500 and "ValueError: responder bug" in data["error"]["message"]


def test_separate_process() -> None:
    with start_fake_server_process(models=["m1"], default_text="pong") as srv:
        import json
        import urllib.request

        req = urllib.request.Request(
            srv.base_url + "/chat/completions",
            data=json.dumps({"model": "m1", "messages": USER}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            data = json.loads(r.read())
        assert data["choices"][0]["message"]["content"] == "pong"
        assert srv.process.poll() is None
    assert srv.process.returncode == 0  # SIGTERM is a clean shutdown


def test_separate_process_start_failure_reports_stderr() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RuntimeError, match="fake server did not start.*(in use|Errno)"):
            start_fake_server_process(port=port)


def test_module_cli_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "swarmgym.testing.fake_server", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    assert "--latency" in out.stdout and "--fail-rate" in out.stdout


def test_child_exits_when_its_parent_dies() -> None:
    # The parent is a short-lived Python process that starts a server, prints the child's pid and is killed.
    code = (
        "from swarmgym.testing import start_fake_server_process\n"
        "import os\n"
        "p = start_fake_server_process()\n"
        "print(p.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split()[2] == "Z":  # exited, waiting for its new parent to reap it
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    raise AssertionError("the fake server outlived its parent")
