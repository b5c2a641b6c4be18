"""``OpenAIPolicy``: any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp, OpenAI) over aiohttp.

Two modes:

- ``mode="chat"`` (default) posts ``/chat/completions`` with the conversation as messages; the server applies
  its chat template. Token ids and logprobs are passed through when the server returns them (vLLM with
  ``return_token_ids``); ``Completion.token_exact`` is True only then. Servers that cannot return ids
  (Ollama, llama.cpp, OpenAI) work the same, flagged not token-exact.
- ``mode="token"`` posts ``/completions`` with a **token-id prompt** built by a :class:`ChatTokenizer` and
  asks for the sampled ids and logprobs back (vLLM's ``return_token_ids`` and ``logprobs``; llama.cpp's own
  server returns the ids inside the logprobs entries, so token mode always asks for logprobs). Earlier turns'
  sampled ids are reused verbatim by the tokenizer, so the ids a trainer sees are exactly the sampled ones.
  Servers whose ``/completions`` refuses token-id prompts (llama-cpp-python's, OpenAI's) cannot do token mode:
  use chat mode there, whose completions say ``token_exact=False``.

Example:
    >>> from swarmgym.policies.openai_http import OpenAIPolicy
    >>> policy = OpenAIPolicy("http://localhost:8000/v1", "Qwen/Qwen3-8B", timeout=120)
    >>> policy.model
    'Qwen/Qwen3-8B'

The hot path is kept close to a bare aiohttp POST (see :mod:`swarmgym.policies._http`): one shared session,
a pre-parsed URL, compact JSON, plain dict access on the answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ..errors import ConfigError, PolicyError, PolicyHTTPError
from ..wire import Completion, Message, SamplingParams, ToolCall, ToolSpec, Usage
from ._http import HTTPClient, HTTPPolicyBase, json_dumps

if TYPE_CHECKING:
    from .base import PolicyContext

__all__ = ["OpenAIPolicy", "ChatTokenizer", "normalize_base_url"]

_DEFAULT_SAMPLING = SamplingParams()


@runtime_checkable
class ChatTokenizer(Protocol):
    """Turns a conversation into prompt token ids and sampled ids back into a message (token mode).

    ``state`` is the episode's ``PolicyContext.state`` (a fresh dict when the caller gives no context), so an
    implementation can keep the ids of earlier turns there and extend them instead of re-tokenising.

    Implementations may also define ``record(state, messages, prompt_ids, completion_ids)``; when present the
    policy calls it after every completion with the prompt's messages and the ids exactly as the server saw
    and sampled them — the hook an incremental (token-exact) tokenizer needs for the next turn.
    """

    def prompt_ids(self, messages: Sequence[Message], tools: Sequence[ToolSpec], state: dict[str, Any]) -> list[int]:
        """Prompt ids for the next assistant turn (generation prompt included)."""
        ...

    def parse(self, completion_ids: Sequence[int], text: str) -> Message:
        """The assistant message for the sampled ids (tool calls parsed; malformed arguments kept raw)."""
        ...


def normalize_base_url(base_url: str) -> str:
    """``base_url`` without a trailing slash, with ``/v1`` appended when it has no path at all.

    OpenAI-compatible servers all live under ``/v1``; people often pass the bare server root.
    """
    url = base_url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"base_url must be an http(s) URL like 'http://localhost:8000/v1', got {base_url!r}")
    if parts.path in ("", "/"):
        url += "/v1"
    return url


_SENT = "openai_http.sent"  # PolicyContext.state key: (messages sent so far, their request dicts)


def _wire_messages(messages: Sequence[Message], state: dict[str, Any]) -> list[dict[str, Any]]:
    """``[m.to_openai() for m in messages]``, converting only the messages not sent before in this episode.

    The episode's previous request is remembered by message identity (messages are frozen): the longest common
    prefix is reused, the rest converted. A context strategy that rewrites the history just shortens the
    reused prefix.
    """
    sent = state.get(_SENT)
    if sent is None:
        sent = state[_SENT] = ([], [])
    refs, dicts = sent
    n, common = 0, min(len(refs), len(messages))
    while n < common and refs[n] is messages[n]:
        n += 1
    if n < len(refs):
        del refs[n:], dicts[n:]
    for m in messages[n:]:
        refs.append(m)
        dicts.append(m.to_openai())
    return list(dicts)


class OpenAIPolicy(HTTPPolicyBase):
    """A policy served by an OpenAI-compatible HTTP server.

    One aiohttp session (one connection pool) per policy, created lazily inside the running event loop and
    shared by all concurrent calls. Close it with :meth:`aclose` or ``async with``.

    Args:
        base_url: e.g. ``http://localhost:8000/v1`` (``/v1`` is added when the URL has no path).
        model: model name as the server knows it (``GET /v1/models`` lists them).
        api_key: sent as a bearer token when given (local servers usually need none).
        mode: ``"chat"`` (messages in, text/tool calls out) or ``"token"`` (token ids in and out; needs
            ``tokenizer``).
        tokenizer: a :class:`ChatTokenizer` for token mode.
        timeout: seconds per attempt; None for no limit.
        max_retries: extra attempts on 408/429/5xx and reset or dropped connections (connection refused is
            not retried: the server is not running).
        backoff_base: first retry delay bound, seconds (doubles per attempt, full jitter).
        backoff_max: cap of one retry delay, seconds.
        max_connections: connection pool size (requests beyond it wait for a free connection).
        return_token_ids: chat mode: ask for token ids (vLLM's ``return_token_ids``). None = ask, and stop
            asking if the server rejects the field (OpenAI's API does).
        policy_version: stamped on every Completion; update it when the server's weights change.
        extra_body: extra request fields sent with every call (``SamplingParams.extra`` wins on conflicts).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        mode: Literal["chat", "token"] = "chat",
        tokenizer: ChatTokenizer | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        max_connections: int = 256,
        return_token_ids: bool | None = None,
        policy_version: int = 0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if mode not in ("chat", "token"):
            raise ConfigError(f"mode must be 'chat' or 'token', got {mode!r}")
        if mode == "token" and tokenizer is None:
            raise ConfigError(
                "mode='token' needs tokenizer=… (an object with prompt_ids(messages, tools, state) and "
                "parse(completion_ids, text)); use mode='chat' for servers that cannot take token ids"
            )
        if tokenizer is not None and not isinstance(tokenizer, ChatTokenizer):
            raise ConfigError(
                f"tokenizer must define prompt_ids(messages, tools, state) and parse(completion_ids, text); "
                f"got {type(tokenizer).__name__}"
            )
        url = normalize_base_url(base_url)
        self.model = model
        self.mode = mode
        self.tokenizer = tokenizer
        self.policy_version = policy_version
        self.extra_body = dict(extra_body or {})
        self._ask_ids = return_token_ids is not False
        self._auto_ids = return_token_ids is None
        self._client = HTTPClient(
            url,
            api_key=api_key,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_connections=max_connections,
        )
        self.base_url = self._client.base_url  # the URL with any password masked (reprs, errors)
        self._record = getattr(tokenizer, "record", None)
        # Single-entry caches: rollouts reuse the same SamplingParams and tool list on every call.
        self._sampling_key: tuple[SamplingParams, bool] | None = None
        self._sampling_fields: dict[str, Any] = {}
        self._tools_key: tuple[ToolSpec, ...] | None = None
        self._tools_json: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        return f"OpenAIPolicy({self.base_url!r}, model={self.model!r}, mode={self.mode!r})"

    # -- lifecycle ---------------------------------------------------------------------------------


    async def list_models(self) -> list[str]:
        """Model names the server serves (``GET /models``)."""
        data = await self._client.get("/models")
        return [str(m.get("id")) for m in data.get("data", []) if isinstance(m, dict)]

    # -- the Policy protocol -----------------------------------------------------------------------

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec] = (),
        sampling: SamplingParams | None = None,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        """Ask the server for the next assistant message.

        Raises:
            PolicyConnectionError: server unreachable, or connections dropped on every attempt.
            PolicyHTTPError: an error status (a wrong model name lists the served models).
            PolicyTimeoutError: an attempt exceeded ``timeout``.
            PolicyError: token mode and the server returned no token ids.
        """
        sampling = sampling or _DEFAULT_SAMPLING
        try:
            if self.mode == "chat":  # the chat request inline: one coroutine less per call on the hot path
                state = ctx.state if ctx is not None else None
                payload = self.build_request(messages, tools, sampling, state)
                t0 = time.perf_counter()
                try:
                    data = await self._client.post("/chat/completions", json_dumps(payload))
                except PolicyHTTPError as e:
                    data = await self._chat_again_without_ids(e, messages, tools, sampling, state)
                return self._parse_chat(data, time.perf_counter() - t0)
            return await self._complete_tokens(messages, tools, sampling, ctx)
        except PolicyHTTPError as e:
            if e.status == 404:
                better = await self._explain_404(e)
                if better is not e:
                    raise better from e
            raise

    async def complete_text(
        self,
        prompt: str | list[int],
        sampling: SamplingParams | None = None,
        *,
        ctx: PolicyContext | None = None,
    ) -> Completion:
        """A plain text completion (``POST /completions``) of ``prompt`` (text or token ids), e.g. for the
        gateway's ``/v1/completions``; the reply is an assistant message holding the generated text, with
        the server's token ids and logprobs when it returns them.

        Raises:
            PolicyError: as :meth:`complete` (connection, status, timeout), or a reply without choices.
        """
        sampling = sampling or _DEFAULT_SAMPLING
        payload: dict[str, Any] = {"model": self.model, "prompt": prompt, "return_token_ids": True}
        payload.update(self._sampling(sampling, chat=False))
        t0 = time.perf_counter()
        data = await self._client.post("/completions", json_dumps(payload))
        latency = time.perf_counter() - t0
        choice = self._first_choice(data)
        ids = choice.get("token_ids")
        lp = choice.get("logprobs") or {}
        prompt_ids = choice.get("prompt_token_ids") or (prompt if isinstance(prompt, list) else None)
        u = data.get("usage") or {}
        return Completion(
            message=Message(role="assistant", content=choice.get("text") or ""),
            prompt_ids=prompt_ids,
            completion_ids=ids,
            logprobs=lp.get("token_logprobs") if ids is not None else None,
            policy_version=self.policy_version,
            finish_reason=choice.get("finish_reason"),
            usage=Usage(prompt_tokens=u.get("prompt_tokens") or 0, completion_tokens=u.get("completion_tokens") or 0),
            token_exact=ids is not None and prompt_ids is not None,
            latency_s=latency,
        )

    # -- chat mode ---------------------------------------------------------------------------------

    def build_request(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        state: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The chat-completions request body this policy sends (useful to reproduce a call with curl).

        ``state`` is the episode's ``PolicyContext.state``: with it, messages already sent in this episode are
        not converted again (a conversation grows by a few messages per turn; converting all of it every turn
        made a long episode's request building quadratic). Don't modify a body built with ``state``: its
        message dicts are reused by the episode's next calls.
        """
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_openai() for m in messages] if state is None else _wire_messages(messages, state),
        }
        if tools:
            payload["tools"] = self._tool_list(tools)
        payload.update(self._sampling(sampling, chat=True))
        return payload

    async def _chat_again_without_ids(
        self,
        e: PolicyHTTPError,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        state: dict[str, Any] | None,
    ) -> Any:
        """OpenAI's own API rejects vLLM's ``return_token_ids``: stop asking for ids and try once more (any
        other error is re-raised)."""
        if not (self._auto_ids and self._ask_ids and e.status == 400 and "return_token_ids" in str(e)):
            raise e
        self._ask_ids = False
        self._sampling_key = None
        payload = self.build_request(messages, tools, sampling, state)
        return await self._client.post("/chat/completions", json_dumps(payload))

    def _first_choice(self, data: Any) -> Any:
        """``choices[0]`` of a /completions answer, or a PolicyError quoting what the server sent instead."""
        try:
            return data["choices"][0]
        except (KeyError, IndexError, TypeError):
            raise PolicyError(
                f"model server at {self.base_url} sent a completion without choices: {str(data)[:300]}"
            ) from None

    def _parse_chat(self, data: Any, latency: float) -> Completion:
        try:
            choice = data["choices"][0]
            msg = choice["message"]
        except (KeyError, IndexError, TypeError):
            raise PolicyError(
                f"model server at {self.base_url} sent a chat answer without choices: {str(data)[:300]}"
            ) from None
        raw_calls = msg.get("tool_calls")
        tool_calls = [ToolCall.from_openai(tc) for tc in raw_calls] if raw_calls else None
        content = msg.get("content")
        if content is None and not tool_calls:
            content = ""
        logprobs = None
        lp = choice.get("logprobs")
        if lp:
            entries = lp.get("content")
            if entries:
                logprobs = [e["logprob"] for e in entries]
        # vLLM: choices[].token_ids + top-level prompt_token_ids; SGLang: choices[].response_token_ids and
        # choices[].prompt_token_ids.
        completion_ids = choice.get("token_ids") or choice.get("response_token_ids")
        prompt_ids = data.get("prompt_token_ids") or choice.get("prompt_token_ids")
        u = data.get("usage") or {}
        # One validation call with the nested message and usage as dicts: cheaper than three constructors.
        return Completion.model_validate(
            {
                "message": {
                    "role": "assistant",
                    "content": content,
                    "tool_calls": tool_calls,
                    "reasoning_content": msg.get("reasoning_content") or msg.get("reasoning"),
                },
                "prompt_ids": prompt_ids,
                "completion_ids": completion_ids,
                "logprobs": logprobs,
                "policy_version": self.policy_version,
                "finish_reason": choice.get("finish_reason"),
                "usage": {
                    "prompt_tokens": u.get("prompt_tokens") or 0,
                    "completion_tokens": u.get("completion_tokens") or 0,
                },
                "token_exact": completion_ids is not None and prompt_ids is not None,
                "latency_s": latency,
            }
        )

    # -- token mode --------------------------------------------------------------------------------

    async def _complete_tokens(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        sampling: SamplingParams,
        ctx: PolicyContext | None,
    ) -> Completion:
        assert self.tokenizer is not None  # checked in __init__
        state = ctx.state if ctx is not None else {}
        prompt_ids = self.tokenizer.prompt_ids(messages, tools, state)
        payload: dict[str, Any] = {"model": self.model, "prompt": prompt_ids, "return_token_ids": True}
        payload.update(self._sampling(sampling, chat=False))
        t0 = time.perf_counter()
        try:
            data = await self._client.post("/completions", json_dumps(payload))
        except PolicyHTTPError as e:
            # llama-cpp-python rejects a token-id prompt with a 500 listing "Input should be a valid string"
            if e.status not in (400, 422) and "valid string" not in str(e):
                raise
            raise PolicyHTTPError(
                f"{e} — token mode sends the prompt as token ids, which this server's /completions may not take "
                f"(llama-cpp-python's and OpenAI's take strings only): use mode='chat' there (its completions say "
                f"token_exact=False) or a server that takes ids (vLLM, SGLang, llama.cpp's own server)",
                e.status,
            ) from e
        latency = time.perf_counter() - t0
        choice = self._first_choice(data)
        completion_ids = choice.get("token_ids")
        logprobs = None
        lp = choice.get("logprobs")
        if lp and lp.get("token_logprobs") is not None:
            logprobs = lp["token_logprobs"]
        elif lp and lp.get("content"):  # llama.cpp: chat-style entries, each with the sampled token's id
            entries = lp["content"]
            logprobs = [e["logprob"] for e in entries]
            if completion_ids is None and all("id" in e for e in entries):
                completion_ids = [e["id"] for e in entries]
        if completion_ids is None:
            raise PolicyError(
                f"model server at {self.base_url} returned no token ids for a token-id prompt; token mode needs "
                f"vLLM >= 0.10 (return_token_ids) or llama.cpp's server (ids inside logprobs) — use mode='chat' "
                f"for servers that cannot return ids"
            )
        text = choice.get("text") or ""
        served_prompt = choice.get("prompt_token_ids") or prompt_ids
        u = data.get("usage") or {}
        completion = Completion(
            message=self.tokenizer.parse(completion_ids, text),
            prompt_ids=served_prompt,
            completion_ids=completion_ids,
            logprobs=logprobs,
            policy_version=self.policy_version,
            finish_reason=choice.get("finish_reason"),
            usage=Usage(
                prompt_tokens=u.get("prompt_tokens") or len(served_prompt),
                completion_tokens=u.get("completion_tokens") or len(completion_ids),
            ),
            token_exact=True,
            latency_s=latency,
        )
        if self._record is not None:
            self._record(state, messages, served_prompt, completion_ids)
        return completion

    # -- helpers -----------------------------------------------------------------------------------

    def _sampling(self, s: SamplingParams, *, chat: bool) -> dict[str, Any]:
        key = (s, chat)
        if self._sampling_key is not None and self._sampling_key[0] is s and self._sampling_key[1] == chat:
            return self._sampling_fields
        f: dict[str, Any] = dict(self.extra_body)
        f["temperature"] = s.temperature
        f["top_p"] = s.top_p
        if s.max_tokens is not None or not chat:
            # Completions default to 16 tokens on vLLM (the OpenAI default) when the field is absent; an
            # explicit null means "up to the context length", which is what an agent turn wants.
            f["max_tokens"] = s.max_tokens
        if s.stop:
            f["stop"] = list(s.stop)
        if s.seed is not None:
            f["seed"] = s.seed
        if chat and s.logprobs:
            f["logprobs"] = True
            # llama.cpp sends 20 alternatives per token unless told (and none at all for 0); one is portable.
            f["top_logprobs"] = 1
        elif not chat:
            f["logprobs"] = 1  # token mode always: llama.cpp returns the sampled ids only inside logprobs
        if chat and self._ask_ids:
            f["return_token_ids"] = True
        f.update(s.extra)
        self._sampling_key, self._sampling_fields = key, f
        return f

    def _tool_list(self, tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
        key = tuple(tools)
        cached = self._tools_key
        if cached is not None and len(cached) == len(key) and all(a is b for a, b in zip(cached, key, strict=True)):
            return self._tools_json
        self._tools_key, self._tools_json = key, [t.to_openai() for t in key]
        return self._tools_json

    async def _explain_404(self, e: PolicyHTTPError) -> PolicyHTTPError:
        """Turn a 404 into 'model X not served; the server has [...]' when the model name is the cause."""
        try:
            served = await self.list_models()
        except PolicyError:
            served = None
        if served is not None and self.model not in served:
            return PolicyHTTPError(
                f"model {self.model!r} is not served by {self.base_url}; it serves {served} "
                f"(pass one of them as model=)",
                404,
            )
        if served is None:
            return PolicyHTTPError(f"{e} — is {self.base_url} an OpenAI-compatible base URL (ending in /v1)?", 404)
        return e
