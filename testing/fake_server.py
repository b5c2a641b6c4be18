"""A fake OpenAI-compatible (vLLM-flavoured) and SGLang model server for tests, demos and benchmarks.

Use it in-process::

    async with FakeOpenAIServer(["hello", Reply.tool("add", {"a": 1, "b": 2})]) as srv:
        policy = OpenAIPolicy(srv.base_url, "fake-model")
        ...
        assert srv.requests[0].json["messages"][-1]["content"] == "hi"

or as a separate process (``python -m swarmgym.testing.fake_server --port 8000``, :func:`serve`, or from
Python with :func:`swarmgym.testing.start_fake_server_process`, which waits until it is ready).

Endpoints: ``/v1/chat/completions``, ``/v1/completions`` (prompt as text or token ids), ``/v1/models``,
``/tokenize``, ``/detokenize``, ``/health``, and SGLang's ``/generate`` (``text`` or ``input_ids``). Chat
completions stream (``stream: true``) as the OpenAI API does: SSE chunks, tool-call deltas, the usage chunk
when ``stream_options.include_usage``, then ``data: [DONE]``. Token ids
and logprobs come back in vLLM 0.33's / SGLang's shapes when asked for (``return_token_ids``, ``logprobs``,
``return_logprob``), using the deterministic byte-level toy tokenizer of
:mod:`swarmgym.testing.toy_tokenizer`. A wrong model name gets vLLM's 404.

Replies, in order of precedence: injected failures (:meth:`FakeOpenAIServer.fail_next`, ``fail_rate``), then
the scripted queue (:meth:`FakeOpenAIServer.push`), then ``responder(request_json)``, then the default: the
fixed ``default_text`` if set, else an echo of the last user message. The server is the load generator's
counterpart in throughput benchmarks, so the per-request path is kept to one JSON parse, a few dict builds and
one JSON dump.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import itertools
import json
import os
import random
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Union

from ..policies._http import json_dumps, json_loads
from ..gateway._openai import SSE_HEADERS, sse_body
from . import toy_tokenizer as tok

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "FakeOpenAIServer",
    "Reply",
    "DROP",
    "RecordedRequest",
    "serve",
    "main",
]

DEFAULT_MODEL = "fake-model"
MAX_MODEL_LEN = 32768


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted server reply: an assistant turn, an error status, or a dropped connection.

    Attributes:
        content: assistant text (None for a turn that only calls tools).
        tool_calls: ``(id, name, arguments_json)`` triples; the arguments string is sent verbatim, so it may
            be malformed JSON on purpose. Build them with :meth:`tool` / :meth:`calls`.
        reasoning_content: returned in the chat message's ``reasoning_content`` field when set.
        finish_reason: overrides the computed one ("stop", "tool_calls" or "length").
        status: answer with this HTTP error status instead of a completion (``content`` is then the error
            message).
        drop: close the connection without answering.
        delay: seconds to wait before answering (overrides the server's latency for this reply).
    """

    content: str | None = ""
    tool_calls: tuple[tuple[str, str, str], ...] = ()
    reasoning_content: str | None = None
    finish_reason: str | None = None
    status: int | None = None
    drop: bool = False
    delay: float | None = None

    @classmethod
    def text(cls, content: str, **kw: Any) -> Reply:
        """A plain text answer."""
        return cls(content=content, **kw)

    @classmethod
    def tool(
        cls, name: str, arguments: dict[str, Any] | str | None = None, *, content: str | None = None, call_id: str = ""
    ) -> Reply:
        """A turn with one tool call; a ``str`` ``arguments`` is sent as is (use it for malformed JSON)."""
        return cls.calls((name, arguments), content=content, ids=(call_id,))

    @classmethod
    def calls(
        cls,
        *calls: tuple[str, dict[str, Any] | str | None],
        content: str | None = None,
        ids: Sequence[str] = (),
    ) -> Reply:
        """A turn with several ``(name, arguments)`` tool calls."""
        out = []
        for i, (name, args) in enumerate(calls):
            cid = (ids[i] if i < len(ids) else "") or f"call_{i}_{name}"
            out.append((cid, name, _args_json(args)))
        return cls(content=content, tool_calls=tuple(out))

    @classmethod
    def error(cls, status: int, message: str | None = None) -> Reply:
        """Answer with HTTP ``status`` (e.g. 429, 500) and an OpenAI-style error body carrying ``message``."""
        return cls(status=status, content=message)

    @classmethod
    def dropped(cls) -> Reply:
        """Close the connection without answering (the client sees a server disconnect)."""
        return cls(drop=True)


DROP = Reply(drop=True)
"""A reply that closes the connection without answering."""

ReplyLike = Union[Reply, str, int, dict[str, Any], Any]
"""A Reply, a text (str), an error status (int), an OpenAI message dict or a ``swarmgym.wire.Message``."""


def _args_json(args: Any) -> str:
    if args is None:
        return "{}"
    if isinstance(args, str):
        return args
    return json.dumps(args, ensure_ascii=False)


def to_reply(x: ReplyLike) -> Reply:
    """Coerce anything a script may contain into a :class:`Reply`."""
    if isinstance(x, Reply):
        return x
    if isinstance(x, str):
        return Reply(content=x)
    if isinstance(x, bool):
        raise TypeError("a reply cannot be a bool")
    if isinstance(x, int):
        return Reply(status=x)
    if hasattr(x, "to_openai"):  # swarmgym.wire.Message
        x = x.to_openai()
    if isinstance(x, dict):
        calls = []
        for i, tc in enumerate(x.get("tool_calls") or ()):
            fn = tc.get("function", tc)
            calls.append(
                (tc.get("id") or f"call_{i}_{fn.get('name', '')}", fn.get("name", ""), _args_json(fn.get("arguments")))
            )
        content = x.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return Reply(
            content=content if content is not None or calls else "",
            tool_calls=tuple(calls),
            reasoning_content=x.get("reasoning_content"),
            finish_reason=x.get("finish_reason"),
        )
    raise TypeError(f"cannot use {type(x).__name__} as a fake-server reply (use str, int, dict, Message or Reply)")


class RecordedRequest(NamedTuple):
    """One request the server received: its path and decoded JSON body (``{}`` for GET)."""

    path: str
    json: Any


Responder = Callable[[dict[str, Any]], Union[ReplyLike, Awaitable[ReplyLike]]]

_JSON_CT = {"Content-Type": "application/json"}
_ERROR_TYPES = {400: "BadRequestError", 404: "NotFoundError", 408: "TimeoutError", 429: "RateLimitError"}


def _logprob(token_id: int, pos: int) -> float:
    # Deterministic, in [-0.5, -0.01]; a function of id and position so tests can recompute it.
    return -(((token_id * 7 + pos * 13) % 50) + 1) / 100.0


def _last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return c or ""
    return ""


def _last_user_from_prompt(text: str) -> str:
    i = text.rfind("<|im_start|>user\n")
    if i < 0:
        return text
    rest = text[i + len("<|im_start|>user\n") :]
    j = rest.find("<|im_end|>")
    return rest if j < 0 else rest[:j]


@dataclass(slots=True)
class _Gen:
    """One generated turn after max-token and stop handling."""

    text: str  # the full generated text (tool-call markup included), stop string excluded
    ids: list[int]
    finish: str
    stop_reason: Any
    truncated: bool


class FakeOpenAIServer:
    """An aiohttp server on 127.0.0.1 speaking the OpenAI/vLLM and SGLang generation APIs.

    Args:
        replies: initial scripted replies (see :data:`ReplyLike`), consumed one per generation request.
        responder: ``f(request_json) -> reply`` (sync or async) used when the queue is empty.
        default_text: the answer when neither the queue nor a responder gives one (default: echo the last
            user message).
        models: served model names; requests naming another model get vLLM's 404.
        host: interface to bind (default ``127.0.0.1``).
        port: TCP port; 0 picks a free one (read it back from :attr:`port`).
        latency: seconds before each generation answer, or ``(low, high)`` for a uniform draw.
        fail_rate: probability that a generation request fails with ``fail_status``.
        fail_status: HTTP status of random failures (0 = drop the connection).
        seed: seeds latency and failure draws.
        record: keep :attr:`requests` (the last ``max_recorded`` requests).
        max_recorded: bound on the request log (a long-running server must not grow without limit).
    """

    def __init__(
        self,
        replies: Iterable[ReplyLike] = (),
        *,
        responder: Responder | None = None,
        default_text: str | None = None,
        models: Sequence[str] = (DEFAULT_MODEL,),
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float | tuple[float, float] = 0.0,
        fail_rate: float = 0.0,
        fail_status: int = 500,
        seed: int = 0,
        record: bool = True,
        max_recorded: int = 100_000,
    ) -> None:
        self._queue: deque[Reply] = deque(to_reply(r) for r in replies)
        self.responder = responder
        self.default_text = default_text
        self.models = list(models)
        self._model_set = frozenset(self.models)
        self.host = host
        self._port = port
        self.latency = latency
        self.fail_rate = fail_rate
        self.fail_status = fail_status
        self._rng = random.Random(seed)
        self._pending_failures: deque[int] = deque()
        self.record = record
        self.requests: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self.weight_version = "default"
        self._ids = itertools.count(1)
        self._runner: web.BaseRunner | None = None
        self._routes: dict[tuple[str, str], Callable[[Any, Any], Awaitable[Any]]] = {
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
            ("POST", "/generate"): self._generate,
            ("POST", "/tokenize"): self._tokenize,
            ("POST", "/detokenize"): self._detokenize,
            ("GET", "/v1/models"): self._models,
            ("GET", "/health"): self._health,
        }

    # -- scripting ---------------------------------------------------------------------------------

    def push(self, *replies: ReplyLike) -> None:
        """Append scripted replies to the queue."""
        self._queue.extend(to_reply(r) for r in replies)

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Make the next ``n`` generation requests fail with ``status`` (0 = drop the connection)."""
        self._pending_failures.extend([status] * n)

    @property
    def pending_replies(self) -> int:
        """Scripted replies not consumed yet."""
        return len(self._queue)

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (valid after :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:43817`` (SGLang clients use this)."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """OpenAI base URL, e.g. ``http://127.0.0.1:43817/v1`` (what ``OpenAIPolicy`` takes)."""
        return self.url + "/v1"

    async def start(self) -> FakeOpenAIServer:
        """Bind and start serving (returns self)."""
        from aiohttp import web

        sock = socket.create_server((self.host, self._port), backlog=2048)
        self._port = sock.getsockname()[1]
        # handler_cancellation: a client that gave up (timeout) cancels its pending simulated latency;
        # a short shutdown_timeout: closing a fake server never waits for in-flight fake generations.
        server = web.Server(self._handle, access_log=None, handler_cancellation=True)
        runner = web.ServerRunner(server, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=2048).start()
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop serving and close all connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAIServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- dispatch ----------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        path = request.path
        route = self._routes.get((request.method, path))
        if route is None:
            return _error(404, f"no route {request.method} {path}", "NotFoundError")
        if request.method == "POST":
            try:
                req = json_loads(await request.read())
            except ValueError as e:
                return _error(400, f"invalid JSON body: {e}", "BadRequestError")
            if not isinstance(req, dict):
                return _error(400, "the request body must be a JSON object", "BadRequestError")
        else:
            req = {}
        if self.record:
            self.requests.append(RecordedRequest(path, req))
        model = req.get("model")
        if model is not None and model not in self._model_set and path != "/generate":
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", param="model")
        try:
            out = await route(request, req)
        except Exception as e:  # a responder that raised, or a request shape the fake does not handle
            return _error(500, f"fake server error: {type(e).__name__}: {e}", "InternalServerError")
        if isinstance(out, web.StreamResponse):
            return out
        return web.Response(body=json_dumps(out), headers=_JSON_CT)

    async def _next_reply(self, request: web.BaseRequest, req: dict[str, Any]) -> Reply | web.StreamResponse:
        """Failure injection, then queue / responder / default; applies latency. Returns a Reply or an
        error response to send as is."""
        status: int | None = None
        if self._pending_failures:
            status = self._pending_failures.popleft()
        elif self.fail_rate and self._rng.random() < self.fail_rate:
            status = self.fail_status
        reply: Reply | None = None
        if status is None:
            if self._queue:
                reply = self._queue.popleft()
            elif self.responder is not None:
                r = self.responder(req)
                if inspect.isawaitable(r):
                    r = await r
                reply = to_reply(r)
            if reply is not None and (reply.status is not None or reply.drop):
                status = 0 if reply.drop else reply.status
        delay = reply.delay if reply is not None and reply.delay is not None else self.latency
        if delay:
            if isinstance(delay, tuple):
                delay = self._rng.uniform(*delay)
            await asyncio.sleep(delay)
        if status is not None:
            if status == 0:
                return _drop(request)
            message = reply.content if reply is not None and reply.content else f"injected error {status}"
            return _error(
                status, message, _ERROR_TYPES.get(status, "ServerError" if status >= 500 else "BadRequestError")
            )
        return reply if reply is not None else _DEFAULT

    def _default_text(self, user_text: str) -> str:
        return self.default_text if self.default_text is not None else user_text

    # -- generation --------------------------------------------------------------------------------

    @staticmethod
    def _generate_ids(reply_text: str, max_tokens: int | None, stop: Any) -> _Gen:
        text, finish, stop_reason, truncated = reply_text, "stop", None, False
        if stop:
            cut = len(text) + 1
            for s in [stop] if isinstance(stop, str) else stop:
                i = text.find(s) if s else -1
                if 0 <= i < cut:
                    cut, stop_reason = i, s
            if stop_reason is not None:
                text, truncated = text[:cut], True
        ids = tok.encode(text)
        if stop_reason is None:
            ids.append(tok.IM_END)  # the end-of-turn token is sampled, not shown in the text
        if max_tokens is not None and len(ids) > max_tokens:
            ids = ids[: max(max_tokens, 0)]
            text, finish, truncated = tok.decode(ids, skip_special=True), "length", True
        return _Gen(text, ids, finish, stop_reason, truncated)

    async def _chat(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        messages = req.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            return _error(400, "'messages' must be a non-empty list of message objects", "BadRequestError")
        reply = await self._next_reply(request, req)
        if not isinstance(reply, Reply):
            return reply
        if reply is _DEFAULT:
            reply = Reply(content=self._default_text(_last_user_text(messages)))
        calls = [{"name": n, "arguments": a} for _, n, a in reply.tool_calls]
        gen = self._generate_ids(tok.render_assistant(reply.content, calls), _max_tokens(req), req.get("stop"))
        message: dict[str, Any] = {"role": "assistant", "reasoning_content": reply.reasoning_content}
        if gen.truncated:  # a cut-off turn: whatever text was generated, no parsed calls
            message["content"], message["tool_calls"] = gen.text, []
            finish = gen.finish
        else:
            message["content"] = reply.content if reply.content or not calls else None
            message["tool_calls"] = [
                {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in reply.tool_calls
            ]
            finish = "tool_calls" if calls else "stop"
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": reply.finish_reason or finish,
            "stop_reason": gen.stop_reason,
        }
        if req.get("logprobs"):
            top = req.get("top_logprobs") or 0
            content = []
            for k, t in enumerate(gen.ids):
                s = tok.token_str(t)
                lp = _logprob(t, k)
                b = [t - 3] if 3 <= t < tok.IM_START else list(s.encode())
                entry = {"token": s, "logprob": lp, "bytes": b, "top_logprobs": []}
                if top:
                    entry["top_logprobs"] = [{"token": s, "logprob": lp, "bytes": b}]
                content.append(entry)
            choice["logprobs"] = {"content": content}
        want_ids = req.get("return_token_ids")
        prompt_ids = tok.encode(tok.render_chat(messages, req.get("tools")))
        if want_ids:
            choice["token_ids"] = gen.ids
        n = int(req.get("n") or 1)
        choices = [choice] if n == 1 else [{**choice, "index": i} for i in range(n)]
        out = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model") or self.models[0],
            "choices": choices,
            "usage": {
                "prompt_tokens": len(prompt_ids),
                "completion_tokens": len(gen.ids) * n,
                "total_tokens": len(prompt_ids) + len(gen.ids) * n,
            },
        }
        if want_ids:
            out["prompt_token_ids"] = prompt_ids
        if req.get("stream"):
            return await _stream_chat(request, out, req)
        return out

    async def _completions(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        if req.get("stream"):
            return _error(400, "the fake server does not stream; send stream=false", "BadRequestError")
        prompts = _prompt_batch(req.get("prompt"))
        if prompts is None:
            return _error(400, "'prompt' must be a string, a list of token ids, or a list of those", "BadRequestError")
        # vLLM follows the OpenAI default of 16 tokens when max_tokens is absent (null means "no limit").
        max_tokens = req["max_tokens"] if "max_tokens" in req else 16
        want_ids = req.get("return_token_ids")
        n_logprobs = req.get("logprobs")
        as_ids = req.get("return_tokens_as_token_ids")
        choices, p_total, c_total = [], 0, 0
        for index, p in enumerate(prompts):
            if isinstance(p, str):
                p_ids = tok.encode(p)
            else:
                if any(not isinstance(t, int) or not 0 <= t < tok.VOCAB_SIZE for t in p):
                    return _error(400, f"token ids must be ints in [0, {tok.VOCAB_SIZE})", "BadRequestError")
                p_ids = p
            reply = await self._next_reply(request, req)
            if not isinstance(reply, Reply):
                return reply
            if reply is _DEFAULT:
                reply = Reply(content=self._default_text(_last_user_from_prompt(tok.decode(p_ids))))
            calls = [{"name": n, "arguments": a} for _, n, a in reply.tool_calls]
            gen = self._generate_ids(tok.render_assistant(reply.content, calls), max_tokens, req.get("stop"))
            choice: dict[str, Any] = {
                "index": index,
                "text": gen.text,
                "logprobs": None,
                "finish_reason": reply.finish_reason or gen.finish,
                "stop_reason": gen.stop_reason,
            }
            if n_logprobs is not None and n_logprobs is not False:
                tokens = [f"token_id:{t}" if as_ids else tok.token_str(t) for t in gen.ids]
                lps = [_logprob(t, k) for k, t in enumerate(gen.ids)]
                offsets, pos = [], 0
                for t in gen.ids:
                    offsets.append(pos)
                    pos += len(tok.decode([t], skip_special=True))
                choice["logprobs"] = {
                    "tokens": tokens,
                    "token_logprobs": lps,
                    "top_logprobs": [{s: lp} for s, lp in zip(tokens, lps, strict=True)] if n_logprobs else None,
                    "text_offset": offsets,
                }
            if want_ids:
                choice["token_ids"] = gen.ids
                choice["prompt_token_ids"] = p_ids
            choices.append(choice)
            p_total += len(p_ids)
            c_total += len(gen.ids)
        return {
            "id": f"cmpl-{next(self._ids)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": req.get("model") or self.models[0],
            "choices": choices,
            "usage": {"prompt_tokens": p_total, "completion_tokens": c_total, "total_tokens": p_total + c_total},
        }

    async def _generate(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        if req.get("stream"):
            return _error(400, "the fake server does not stream; send stream=false", "BadRequestError")
        if "input_ids" in req and req["input_ids"] is not None:
            batch, single = req["input_ids"], False
            if batch and isinstance(batch[0], int):
                batch, single = [batch], True
            elif not batch:
                single = True
        elif isinstance(req.get("text"), str):
            batch, single = [tok.encode(req["text"])], True
        elif isinstance(req.get("text"), list):
            batch, single = [tok.encode(t) for t in req["text"]], False
        else:
            return _error(400, "give 'text' or 'input_ids'", "BadRequestError")
        sp = req.get("sampling_params") or {}
        max_new = sp["max_new_tokens"] if "max_new_tokens" in sp else 128  # SGLang's default
        outs = []
        for p_ids in batch:
            if any(not isinstance(t, int) or not 0 <= t < tok.VOCAB_SIZE for t in p_ids):
                return _error(400, f"token ids must be ints in [0, {tok.VOCAB_SIZE})", "BadRequestError")
            reply = await self._next_reply(request, req)
            if not isinstance(reply, Reply):
                return reply
            if reply is _DEFAULT:
                reply = Reply(content=self._default_text(_last_user_from_prompt(tok.decode(p_ids))))
            calls = [{"name": n, "arguments": a} for _, n, a in reply.tool_calls]
            gen = self._generate_ids(tok.render_assistant(reply.content, calls), max_new, sp.get("stop"))
            if gen.finish == "length":
                finish: dict[str, Any] = {"type": "length", "length": len(gen.ids)}
            elif gen.stop_reason is not None:
                finish = {"type": "stop", "matched": gen.stop_reason}
            else:
                finish = {"type": "stop", "matched": tok.IM_END}
            meta: dict[str, Any] = {
                "id": f"{next(self._ids):032x}",
                "finish_reason": finish,
                "prompt_tokens": len(p_ids),
                "completion_tokens": len(gen.ids),
                "cached_tokens": 0,
                "weight_version": self.weight_version,
            }
            if req.get("return_logprob"):
                meta["output_token_logprobs"] = [[_logprob(t, k), t, None] for k, t in enumerate(gen.ids)]
                meta["input_token_logprobs"] = []
            outs.append({"text": gen.text, "output_ids": gen.ids, "meta_info": meta})
        return outs[0] if single else outs

    # -- utility endpoints -------------------------------------------------------------------------

    async def _tokenize(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        if "messages" in req:
            text = tok.render_chat(
                req["messages"], req.get("tools"), add_generation_prompt=req.get("add_generation_prompt", True)
            )
        else:
            text = str(req.get("prompt", ""))
        ids = tok.encode(text)
        return {"count": len(ids), "max_model_len": MAX_MODEL_LEN, "tokens": ids}

    async def _detokenize(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        return {"prompt": tok.decode(req.get("tokens") or [])}

    async def _models(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        return {
            "object": "list",
            "data": [
                {
                    "id": m,
                    "object": "model",
                    "created": 0,
                    "owned_by": "swarmgym",
                    "root": m,
                    "max_model_len": MAX_MODEL_LEN,
                }
                for m in self.models
            ],
        }

    async def _health(self, request: web.BaseRequest, req: dict[str, Any]) -> Any:
        from aiohttp import web

        return web.Response(status=200)


_DEFAULT = Reply()  # sentinel: "no scripted reply, use the default"


def _max_tokens(req: dict[str, Any]) -> int | None:
    v = req.get("max_completion_tokens")
    return v if v is not None else req.get("max_tokens")


def _prompt_batch(prompt: Any) -> list[Any] | None:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(t, int) for t in prompt):
            return [prompt]
        if all(isinstance(p, (str, list)) for p in prompt):
            return prompt
    return None


def _error(status: int, message: str, type_: str, param: str | None = None) -> web.Response:
    from aiohttp import web

    body = {"error": {"message": message, "type": type_, "param": param, "code": status}}
    return web.Response(status=status, body=json_dumps(body), headers=_JSON_CT)


async def _stream_chat(request: web.BaseRequest, out: dict[str, Any], req: dict[str, Any]) -> web.StreamResponse:
    from aiohttp import web

    resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
    await resp.prepare(request)
    await resp.write(sse_body(out, req))
    await resp.write_eof()
    return resp


def _drop(request: web.BaseRequest) -> web.Response:
    from aiohttp import web

    # Closing the transport before a response is written makes the client see a server disconnect; the
    # response returned here is discarded by aiohttp (writes to a closed transport are ignored).
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


# -- separate process ------------------------------------------------------------------------------

READY_PREFIX = "swarmgym fake server listening on "


async def _serve_async(
    server: FakeOpenAIServer, ready: Callable[[FakeOpenAIServer], None] | None, stop_on_stdin_eof: bool
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    if stop_on_stdin_eof:
        # The parent holds the other end of our stdin pipe; EOF means it closed it or died (even by SIGKILL),
        # so a benchmark or test run that is killed never leaves a server behind.
        fd = sys.stdin.fileno()

        def _on_stdin() -> None:
            if not os.read(fd, 4096):
                loop.remove_reader(fd)
                stop.set()

        loop.add_reader(fd, _on_stdin)
    async with server:
        if ready is not None:
            ready(server)
        await stop.wait()


def serve(
    port: int = 8000,
    host: str = "127.0.0.1",
    latency: float | tuple[float, float] = 0.0,
    *,
    models: Sequence[str] = (DEFAULT_MODEL,),
    default_text: str | None = None,
    fail_rate: float = 0.0,
    fail_status: int = 500,
    seed: int = 0,
    ready: Callable[[FakeOpenAIServer], None] | None = None,
    stop_on_stdin_eof: bool = False,
) -> None:
    """Run a fake server in this process until SIGINT/SIGTERM (what ``swarmgym fake-server`` calls).

    Args:
        port: TCP port (0 = pick a free one; the ready line says which).
        host: interface to bind.
        latency: seconds per generation, or ``(low, high)`` for a uniform draw.
        models: served model names.
        default_text: fixed answer (default: echo the last user message).
        fail_rate: probability of an injected failure per generation request.
        fail_status: status of injected failures (0 = drop the connection).
        seed: seeds latency and failure draws.
        ready: called with the started server; by default prints ``READY_PREFIX + base_url`` to stdout.
        stop_on_stdin_eof: also stop when stdin reaches EOF (a parent process holding a pipe to our stdin).

    Raises:
        OSError: the address cannot be bound (e.g. the port is taken).
    """
    server = FakeOpenAIServer(
        models=models,
        host=host,
        port=port,
        latency=latency,
        default_text=default_text,
        fail_rate=fail_rate,
        fail_status=fail_status,
        seed=seed,
        record=False,  # nobody can read the log of another process; don't let it grow
    )

    def _print_ready(srv: FakeOpenAIServer) -> None:
        print(READY_PREFIX + srv.base_url, flush=True)

    asyncio.run(_serve_async(server, ready or _print_ready, stop_on_stdin_eof))


def _latency_arg(s: str) -> float | tuple[float, float]:
    if "," in s:
        lo, hi = (float(x) for x in s.split(",", 1))
        return (lo, hi)
    return float(s)


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of ``python -m swarmgym.testing.fake_server``."""
    p = argparse.ArgumentParser(prog="python -m swarmgym.testing.fake_server", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=8000, help="TCP port (0 = any free port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--latency", type=_latency_arg, default=0.0, help="seconds per generation, or LOW,HIGH")
    p.add_argument("--model", action="append", dest="models", help="served model name (repeatable)")
    p.add_argument("--default-text", default=None, help="fixed answer (default: echo the last user message)")
    p.add_argument("--fail-rate", type=float, default=0.0)
    p.add_argument("--fail-status", type=int, default=500, help="status of injected failures (0 = drop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop-on-stdin-eof", action="store_true", help="also stop when stdin closes (parent died)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m swarmgym.testing.fake_server``."""
    a = build_parser().parse_args(argv)
    try:
        serve(
            a.port,
            a.host,
            a.latency,
            models=a.models or (DEFAULT_MODEL,),
            default_text=a.default_text,
            fail_rate=a.fail_rate,
            fail_status=a.fail_status,
            seed=a.seed,
            stop_on_stdin_eof=a.stop_on_stdin_eof,
        )
    except OSError as e:  # typically: the port is taken
        print(f"fake server: cannot listen on {a.host}:{a.port}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
