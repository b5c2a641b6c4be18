"""An OpenAI-compatible server in front of any swarmgym policy that records each agent's calls as a Trajectory.

Agents that can only be pointed at a chat-completions URL (programs using the official ``openai`` client,
coding CLIs, LangChain) run unchanged: give each episode its own API key (or its own base URL,
``/e/KEY/v1``), and every call made with that key is answered by the policy and recorded as a
:class:`~swarmgym.wire.Completion` of that episode's :class:`~swarmgym.wire.Trajectory`::

    async with Gateway(OpenAIPolicy(url, "m")) as gw:
        key = gw.open_episode(task_id="t1")
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=key)
        ...                                   # the agent runs
        traj = await gw.close_episode(key)

A request the gateway cannot tie to an open episode (no key, unknown key, closed episode) gets an HTTP error
with an OpenAI-style body; it is never recorded anywhere. The upstream is always called without streaming;
a ``stream: true`` request gets the finished answer as SSE chunks (the agent sees a normal stream).

History rewrites: an agent may edit its own past (drop turns, summarise) between calls. When a request's
messages are not the previous request's messages plus the previous reply, the gateway starts a new *segment*
(``traj.info["segments"]`` lists the index of each segment's first completion) and gives the policy a fresh
per-episode state, so a token-mode policy re-renders the prompt instead of extending ids that no longer
match the conversation.

Sub-agents: an agent that starts sub-agents gives each the key ``KEY~NAME`` (its own key, a tilde, any
name). The first call with such a key opens a child episode under the episode of ``KEY`` (``role
"subagent"``, ``parent_id`` set, listed in the parent's ``children``), so the calls of one agent tree come
back as a tree of trajectories (:meth:`Gateway.close_tree`). Only a holder of the parent's key can do this.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from ..errors import PolicyError, PolicyHTTPError, PolicyTimeoutError
from ..policies._http import json_dumps, json_loads
from ..policies.base import Policy, PolicyContext
from ..wire import Completion, Message, SamplingParams, Task, ToolCall, ToolSpec, Trajectory, new_id
from ._openai import SSE_HEADERS, error_body, sse_body, text_sse_body

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["Gateway", "Episode", "split_segments"]

_JSON_CT = {"Content-Type": "application/json"}
SUBAGENT_SEP = "~"
"""A key ``PARENT~NAME`` opens a sub-agent episode under the open episode of ``PARENT`` on its first call."""
_MESSAGE_KEYS = ("role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content")
# Request fields forwarded to the policy as SamplingParams.extra (the rest are handled or ignored).
_EXTRA_KEYS = (
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "min_p",
    "repetition_penalty",
)

OnClose = Callable[[Trajectory], Union[None, Awaitable[None]]]


@dataclass(slots=True)
class Episode:
    """One open episode: its key, the trajectory being built and what the rewrite check compares with."""

    key: str
    traj: Trajectory
    task: Task | None = None
    state: dict[str, Any] = field(default_factory=dict)
    last_seen: float = 0.0
    expected: list[tuple[Any, ...]] | None = None  # normalised previous messages + reply
    inflight: int = 0
    closed: bool = False
    root_id: str = ""  # trajectory id of the top episode of this episode's tree
    child_keys: list[str] = field(default_factory=list)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, type_: str, param: str | None = None, code: Any = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


class Gateway:
    """An OpenAI-compatible HTTP server on ``host`` recording each episode's calls to ``policy``.

    Args:
        policy: any swarmgym :class:`~swarmgym.policies.Policy` (``OpenAIPolicy`` in chat or token mode,
            ``HFPolicy``, ``ScriptedPolicy`` …).
        models: model names the gateway accepts and lists on ``/v1/models`` (default: the policy's ``model``
            attribute, else ``"swarmgym"``). A request naming another model gets a 404.
        host: interface to bind (keep the default ``127.0.0.1`` unless agents run elsewhere).
        port: TCP port; 0 picks a free one.
        auto_open: open an episode for any key not seen before (what ``swarmgym gateway`` does); closed keys
            are still refused.
        idle_s: with ``on_close``, close an episode whose key made no call for this many seconds.
        on_close: called (sync or async) with each trajectory closed by the idle reaper or by :meth:`close`.
        policy_timeout_s: bound on one upstream call (the agent gets a 504 after it).
        unix_path: also serve on this unix socket (mode 0666), e.g. for a sandbox without network that
            gets the socket bound in (see :mod:`swarmgym.envs.blackbox`).
    """

    def __init__(
        self,
        policy: Policy,
        *,
        models: Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_open: bool = False,
        idle_s: float | None = None,
        on_close: OnClose | None = None,
        policy_timeout_s: float | None = None,
        unix_path: str | None = None,
    ) -> None:
        self.policy = policy
        if models is None:
            m = getattr(policy, "model", None)
            models = [m] if isinstance(m, str) and m else ["swarmgym"]
        self.models = list(models)
        self._model_set = frozenset(self.models)
        self.host = host
        self._port = port
        self.auto_open = auto_open
        self.idle_s = idle_s
        self.on_close = on_close
        self.policy_timeout_s = policy_timeout_s
        self.unix_path = unix_path
        self._episodes: dict[str, Episode] = {}
        self._roots: dict[str, str] = {}  # trajectory id of an open episode -> its tree's root trajectory id
        self._closed_keys: set[str] = set()
        self._runner: web.BaseRunner | None = None
        self._reaper: asyncio.Task[None] | None = None
        self.errors = 0
        """HTTP errors answered (bad requests, unknown keys, upstream failures)."""

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        """Server root, e.g. ``http://127.0.0.1:43817``."""
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (pass the episode's key as the API key)."""
        return self.url + "/v1"

    def episode_base_url(self, key: str) -> str:
        """A base URL tied to one episode, for agents whose API key cannot be set (any key is then ignored)."""
        return f"{self.url}/e/{key}/v1"

    async def start(self) -> Gateway:
        """Bind and start serving (returns self)."""
        from aiohttp import web

        sock = socket.create_server((self.host, self._port), backlog=2048)
        self._port = sock.getsockname()[1]
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.SockSite(runner, sock, backlog=2048).start()
        if self.unix_path is not None:
            import os

            await web.UnixSite(runner, self.unix_path).start()
            os.chmod(self.unix_path, 0o666)  # sandboxes run as an unprivileged user
        self._runner = runner
        if self.idle_s is not None and self.on_close is not None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())
        return self

    async def close(self) -> list[Trajectory]:
        """Stop serving, close every open episode (passing each to ``on_close``) and return them."""
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        out = []
        for key in list(self._episodes):
            traj = await self.close_episode(key)
            await self._emit(traj)
            out.append(traj)
        return out

    async def __aenter__(self) -> Gateway:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- episodes ----------------------------------------------------------------------------------

    def open_episode(
        self,
        task_id: str = "",
        *,
        key: str | None = None,
        task: Task | None = None,
        parent_key: str | None = None,
        role: str = "main",
        sample_index: int = 0,
        info: dict[str, Any] | None = None,
    ) -> str:
        """Open an episode and return its API key.

        Args:
            task_id: stored as the trajectory's ``task_id`` (defaults to ``task.id``).
            key: the key to use (default: a fresh random one).
            task: passed to the policy in its context (an oracle policy reads it).
            parent_key: an open episode this one is a sub-agent of: the child's trajectory gets
                ``parent_id`` and the parent lists it in ``children``.
            role: the trajectory's role (``"subagent"`` for a child).
            sample_index: the trajectory's index within its group.
            info: copied into ``traj.info``.

        Raises:
            ValueError: the key is in use or was used by a closed episode, or ``parent_key`` is not open.
        """
        key = key or new_id("sk-gw-")
        if key in self._episodes or key in self._closed_keys:
            raise ValueError(f"key {key!r} is already used by an episode of this gateway")
        traj = Trajectory(
            task_id=task_id or (task.id if task is not None else ""),
            sample_index=sample_index,
            env_id="gateway",
            role=role,
            info={**(info or {}), "gateway_key": key, "segments": [0]},
        )
        root_id = traj.id
        if parent_key is not None:
            parent = self._episodes.get(parent_key)
            if parent is None:
                raise ValueError(f"parent key {parent_key!r} is not an open episode")
            traj.parent_id = parent.traj.id
            traj.trainable = role == "main"
            parent.traj.children.append(traj.id)
            parent.child_keys.append(key)
            root_id = parent.root_id
        self._episodes[key] = Episode(key, traj, task, last_seen=time.monotonic(), root_id=root_id)
        self._roots[traj.id] = root_id
        return key

    def root_of(self, trajectory_id: str) -> str | None:
        """The root trajectory id of the open episode whose trajectory has this id (None when not open)."""
        return self._roots.get(trajectory_id)

    async def close_tree(self, key: str, *, wait_s: float = 5.0) -> list[Trajectory]:
        """Close the episode of ``key`` and every sub-agent episode under it; returns ``[its trajectory,
        *descendants]`` (children before grandchildren).

        Raises:
            KeyError: no open episode has this key.
        """
        ep = self._episodes.get(key)
        if ep is None:
            raise KeyError(f"no open episode with key {key!r}")
        keys, i = [key], 0
        while i < len(keys):
            e = self._episodes.get(keys[i])
            keys.extend(k for k in (e.child_keys if e is not None else ()) if k in self._episodes)
            i += 1
        return [await self.close_episode(k, wait_s=wait_s) for k in keys]

    def episode(self, key: str) -> Episode | None:
        """The open episode of ``key`` (None when unknown or closed)."""
        return self._episodes.get(key)

    @property
    def open_keys(self) -> list[str]:
        return list(self._episodes)

    async def close_episode(self, key: str, *, wait_s: float = 5.0) -> Trajectory:
        """Close the episode of ``key`` and return its trajectory; later calls with the key are refused.

        Waits up to ``wait_s`` for the episode's calls in flight, so a reply the agent is receiving is in the
        trajectory; a call still running after that is refused when it ends (and the trajectory says so).

        Raises:
            KeyError: no open episode has this key.
        """
        ep = self._episodes.get(key)
        if ep is None:
            raise KeyError(f"no open episode with key {key!r}")
        deadline = time.monotonic() + wait_s
        while ep.inflight and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        del self._episodes[key]
        self._roots.pop(ep.traj.id, None)
        self._closed_keys.add(key)
        ep.closed = True
        if ep.inflight:
            ep.traj.info["calls_in_flight_at_close"] = ep.inflight
        t = ep.traj
        t.metrics["calls"] = float(len(t.completions))
        if len(t.info["segments"]) > 1:
            t.info["history_rewritten"] = True
        return t

    async def _emit(self, traj: Trajectory) -> None:
        if self.on_close is not None:
            r = self.on_close(traj)
            if inspect.isawaitable(r):
                await r

    async def _reap(self) -> None:
        assert self.idle_s is not None
        period = max(0.05, min(self.idle_s / 4, 5.0))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for key, ep in list(self._episodes.items()):
                if not ep.inflight and now - ep.last_seen >= self.idle_s and key in self._episodes:
                    await self._emit(await self.close_episode(key))

    # -- HTTP --------------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        try:
            path = request.path
            key = None
            if path.startswith("/e/"):
                key, sep, rest = path[3:].partition("/")
                if not sep or not key:
                    raise _HTTPError(404, f"no route {request.method} {path}", "invalid_request_error")
                path = "/" + rest
            if path == "/v1/models" and request.method == "GET":
                return web.Response(body=json_dumps(self._models_body()), headers=_JSON_CT)
            if path == "/v1/chat/completions" and request.method == "POST":
                if key is None:
                    key = _bearer(request.headers.get("Authorization"))
                return await self._chat(request, key)
            if path == "/v1/completions" and request.method == "POST":
                if key is None:
                    key = _bearer(request.headers.get("Authorization"))
                return await self._text(request, key)
            raise _HTTPError(404, f"no route {request.method} {path}", "invalid_request_error")
        except _HTTPError as e:
            self.errors += 1
            return web.Response(status=e.status, body=error_body(e.message, e.type, e.param, e.code), headers=_JSON_CT)
        except Exception as e:  # a policy bug: answer it, keep serving
            self.errors += 1
            return web.Response(
                status=500,
                body=error_body(f"gateway error: {type(e).__name__}: {e}", "server_error"),
                headers=_JSON_CT,
            )

    def _models_body(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": m, "object": "model", "created": 0, "owned_by": "swarmgym"} for m in self.models],
        }

    def _resolve(self, key: str | None) -> Episode:
        if not key:
            raise _HTTPError(
                401,
                "no API key: send 'Authorization: Bearer KEY' with the key of an open episode "
                "(or use the episode's base URL /e/KEY/v1)",
                "invalid_request_error",
                code="missing_api_key",
            )
        ep = self._episodes.get(key)
        if ep is not None:
            return ep
        parent_key, sep, _ = key.rpartition(SUBAGENT_SEP)
        if sep and key not in self._closed_keys and parent_key in self._episodes:
            # A sub-agent of an open episode: its key is the parent's key + "~" + any name (see module doc).
            parent = self._episodes[parent_key]
            self.open_episode(parent.traj.task_id, key=key, task=parent.task, parent_key=parent_key,
                              role="subagent", sample_index=parent.traj.sample_index)
            return self._episodes[key]
        if key in self._closed_keys:
            raise _HTTPError(
                409,
                f"the episode of key {key[:12]}… is closed; nothing is recorded",
                "invalid_request_error",
                code="episode_closed",
            )
        if self.auto_open:
            self.open_episode(key=key)
            return self._episodes[key]
        raise _HTTPError(
            401,
            f"unknown API key {key[:12]}…: no open episode has it",
            "invalid_request_error",
            code="invalid_api_key",
        )

    async def _read(self, request: web.BaseRequest) -> tuple[dict[str, Any], str]:
        """The request's JSON object and its (served) model name, or the OpenAI-style 4xx."""
        try:
            req = json_loads(await request.read())
        except ValueError as e:
            raise _HTTPError(400, f"invalid JSON body: {e}", "invalid_request_error") from None
        if not isinstance(req, dict):
            raise _HTTPError(400, "the request body must be a JSON object", "invalid_request_error")
        model = req.get("model")
        if not isinstance(model, str) or not model:
            raise _HTTPError(400, "'model' is required (a string)", "invalid_request_error", param="model")
        if model not in self._model_set:
            raise _HTTPError(
                404,
                f"The model `{model}` does not exist; this gateway serves {self.models}",
                "invalid_request_error",
                param="model",
                code="model_not_found",
            )
        if (req.get("n") or 1) != 1:
            raise _HTTPError(400, "the gateway answers n=1 only", "invalid_request_error", param="n")
        return req, model

    async def _call(self, ep: Episode, coro: Any) -> Completion:
        """Await the policy for ``ep``, mapping its failures to gateway errors (504 / upstream status / 502)."""
        ep.inflight += 1
        ep.last_seen = time.monotonic()
        try:
            if self.policy_timeout_s is not None:
                return await asyncio.wait_for(coro, self.policy_timeout_s)
            return await coro
        except (PolicyTimeoutError, asyncio.TimeoutError) as e:
            raise _HTTPError(504, f"the upstream model timed out: {e}", "upstream_error") from None
        except PolicyHTTPError as e:
            status = e.status if 400 <= e.status < 600 else 502
            raise _HTTPError(status, f"upstream: {e}", "upstream_error", code=e.status) from None
        except PolicyError as e:
            raise _HTTPError(502, f"upstream: {e}", "upstream_error") from None
        finally:
            ep.inflight -= 1
            ep.last_seen = time.monotonic()

    async def _text(self, request: web.BaseRequest, key: str | None) -> web.StreamResponse:
        """``/v1/completions``: a text completion, kept in ``info["text_completions"]`` (not a chat turn,
        so the conversation's token-exact chain stays as it is)."""

        ep = self._resolve(key)
        req, model = await self._read(request)
        prompt = req.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        ok_ids = isinstance(prompt, list) and prompt and all(type(t) is int for t in prompt)
        if not (isinstance(prompt, str) or ok_ids):
            raise _HTTPError(
                400, "'prompt' must be one string or one list of token ids", "invalid_request_error", param="prompt"
            )
        fn = getattr(self.policy, "complete_text", None)
        if fn is None:
            raise _HTTPError(
                501,
                f"this gateway's policy ({type(self.policy).__name__}) serves chat completions only; "
                "use /v1/chat/completions",
                "invalid_request_error",
            )
        ctx = PolicyContext(task=ep.task, role=ep.traj.role, episode_id=ep.traj.id, turn=len(ep.traj.completions))
        comp = await self._call(ep, fn(prompt, _parse_sampling(req), ctx=ctx))
        if ep.closed:
            raise _HTTPError(409, "the episode was closed while this call ran; nothing is recorded",
                             "invalid_request_error", code="episode_closed")
        ep.traj.info.setdefault("text_completions", []).append(
            {"prompt": prompt, "completion": comp.model_dump(mode="json")}
        )
        u = comp.usage
        choice: dict[str, Any] = {"index": 0, "text": comp.message.text, "logprobs": None,
                                  "finish_reason": comp.finish_reason or "stop"}
        if req.get("return_token_ids") and comp.completion_ids is not None:
            choice["token_ids"] = comp.completion_ids
            choice["prompt_token_ids"] = comp.prompt_ids
        out = {
            "id": new_id("cmpl-"),
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                      "total_tokens": u.prompt_tokens + u.completion_tokens},
        }
        return await _reply(request, req, out, text_sse_body)

    async def _chat(self, request: web.BaseRequest, key: str | None) -> web.StreamResponse:

        ep = self._resolve(key)
        req, model = await self._read(request)
        messages = _parse_messages(req.get("messages"))
        tools = _parse_tools(req.get("tools"))
        sampling = _parse_sampling(req)
        norm = [_norm(m) for m in messages]
        if ep.expected is not None and norm[: len(ep.expected)] != ep.expected:
            # The agent rewrote its own history: a new segment with fresh policy state (see module doc).
            info = ep.traj.info
            info["segments"].append(len(ep.traj.completions))
            info.setdefault("segment_messages", []).append([m.to_openai() for m in ep.traj.messages])
            ep.state = {}
        ctx = PolicyContext(
            task=ep.task, role=ep.traj.role, episode_id=ep.traj.id, state=ep.state, turn=len(ep.traj.completions)
        )
        comp = await self._call(ep, self.policy.complete(messages, tools, sampling, ctx=ctx))
        if ep.closed:
            raise _HTTPError(
                409,
                "the episode was closed while this call ran; nothing is recorded",
                "invalid_request_error",
                code="episode_closed",
            )
        t = ep.traj
        t.completions.append(comp)
        t.messages = [*messages, comp.message]
        if tools:
            t.tools = tools
        ep.expected = [*norm, _norm(comp.message)]
        out = _chat_body(comp, model, req)
        return await _reply(request, req, out, sse_body)


def split_segments(traj: Trajectory) -> list[Trajectory]:
    """One trajectory per history segment of a gateway trajectory (see the module docstring).

    Each part keeps the completions of one segment, its final conversation, and ``info["segment"]`` /
    ``info["source_trajectory"]``; token-exact parts then export on their own (TRL needs one chained
    sequence per row). A trajectory without rewrites comes back as ``[traj]``.
    """
    starts = traj.info.get("segments") or [0]
    if len(starts) < 2:
        return [traj]
    ends = [*starts[1:], len(traj.completions)]
    convs = [*traj.info.get("segment_messages", []), None]
    base = {k: v for k, v in traj.info.items() if k not in ("segments", "segment_messages", "history_rewritten")}
    out = []
    for k, (a, b) in enumerate(zip(starts, ends, strict=True)):
        msgs = traj.messages if convs[k] is None else [Message.model_validate(m) for m in convs[k]]
        part = traj.model_copy(
            update={
                "id": f"{traj.id}-s{k}",
                "completions": traj.completions[a:b],
                "messages": msgs,
                "info": {**base, "segment": k, "source_trajectory": traj.id},
            }
        )
        out.append(part)
    return out


# -- request parsing -------------------------------------------------------------------------------


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _parse_messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise _HTTPError(400, "'messages' must be a non-empty list", "invalid_request_error", param="messages")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict):
            raise _HTTPError(400, f"messages[{i}] is not an object", "invalid_request_error", param="messages")
        # The official client echoes response-only fields (refusal, annotations, audio …) back: drop them.
        d = {k: m[k] for k in _MESSAGE_KEYS if m.get(k) is not None}
        try:
            if "tool_calls" in d:
                d["tool_calls"] = [ToolCall.from_openai(tc) for tc in d["tool_calls"]] or None
            out.append(Message.model_validate(d))
        except (ValueError, TypeError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise _HTTPError(
                400, f"messages[{i}] is invalid: {msg}", "invalid_request_error", param="messages"
            ) from None
    return out


def _parse_tools(raw: Any) -> list[ToolSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _HTTPError(400, "'tools' must be a list", "invalid_request_error", param="tools")
    out = []
    for i, t in enumerate(raw):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise _HTTPError(
                400,
                f"tools[{i}] must be {{'type': 'function', 'function': {{'name': …}}}}",
                "invalid_request_error",
                param="tools",
            )
        spec: dict[str, Any] = {"name": fn["name"], "description": fn.get("description") or ""}
        if fn.get("parameters") is not None:
            spec["parameters"] = fn["parameters"]
        try:
            out.append(ToolSpec.model_validate(spec))
        except ValueError as e:
            raise _HTTPError(400, f"tools[{i}] is invalid: {e}", "invalid_request_error", param="tools") from None
    return out


def _parse_sampling(req: dict[str, Any]) -> SamplingParams:
    d: dict[str, Any] = {}
    for k in ("temperature", "top_p", "seed"):
        if req.get(k) is not None:
            d[k] = req[k]
    mt = req.get("max_completion_tokens", req.get("max_tokens"))
    if mt is not None:
        d["max_tokens"] = mt
    stop = req.get("stop")
    if stop:
        d["stop"] = [stop] if isinstance(stop, str) else stop
    extra = {k: req[k] for k in _EXTRA_KEYS if req.get(k) is not None}
    if extra:
        d["extra"] = extra
    try:
        return SamplingParams.model_validate(d)  # logprobs stay on: the recording wants them
    except ValueError as e:
        msg = str(e).splitlines()
        raise _HTTPError(400, f"invalid sampling parameters: {' '.join(msg[:3])}", "invalid_request_error") from None


def _norm(m: Message) -> tuple[Any, ...]:
    """What must match for a message to count as the same turn again (clients re-serialise tool arguments
    and drop reasoning, so those are compared by value or not at all)."""
    calls = tuple(
        (c.name, c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments, sort_keys=True))
        for c in m.tool_calls or ()
    )
    content = (
        m.content
        if isinstance(m.content, str) or m.content is None
        else json.dumps([p.model_dump() for p in m.content])
    )
    return (m.role, content or "", calls, m.tool_call_id)


# -- response building -----------------------------------------------------------------------------


async def _reply(request: Any, req: dict[str, Any], out: dict[str, Any], sse: Any) -> Any:
    """``out`` as one JSON body, or as server-sent events (``sse(out, req)``) when the request streams."""
    from aiohttp import web

    if req.get("stream"):
        resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await resp.prepare(request)
        await resp.write(sse(out, req))
        await resp.write_eof()
        return resp
    return web.Response(body=json_dumps(out), headers=_JSON_CT)


def _chat_body(comp: Completion, model: str, req: dict[str, Any]) -> dict[str, Any]:
    msg = comp.message
    message: dict[str, Any] = {"role": "assistant", "content": msg.text if msg.content is not None else None}
    if msg.tool_calls:
        message["tool_calls"] = [c.to_openai() for c in msg.tool_calls]
    if msg.reasoning_content:
        message["reasoning_content"] = msg.reasoning_content
    finish = comp.finish_reason or ("tool_calls" if msg.tool_calls else "stop")
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
    if req.get("logprobs") and comp.logprobs is not None:
        ids = comp.completion_ids or [None] * len(comp.logprobs)
        choice["logprobs"] = {
            "content": [
                {"token": f"token_id:{t}" if t is not None else "", "logprob": lp, "bytes": None, "top_logprobs": []}
                for t, lp in zip(ids, comp.logprobs, strict=False)
            ]
        }
    if req.get("return_token_ids") and comp.completion_ids is not None:
        choice["token_ids"] = comp.completion_ids
    u = comp.usage
    out: dict[str, Any] = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
        },
    }
    if req.get("return_token_ids") and comp.prompt_ids is not None:
        out["prompt_token_ids"] = comp.prompt_ids
    return out
