"""Shared HTTP plumbing for model-server policies: one aiohttp session per client, retries, clear errors.

Why one hand-written client instead of the ``openai`` package: on a 2-core machine the official client spends
~2.3 ms of CPU per call (its pool scans every connection per request), 15x a plain aiohttp POST. Rollouts are
client-CPU-bound, so the hot path is kept short: a pre-serialised body written with a prepared head on a
pooled aiohttp connection and parsed by aiohttp's parser (:mod:`swarmgym.policies._direct`, about half the
CPU of ``session.post``), then one JSON parse. Everything else (retries, error messages) only runs on the
failure path.

The per-attempt ``timeout`` is not aiohttp's: its ``ClientTimeout(total=…)`` arms a TimerHandle (plus timer
context objects) per request, ~8 µs of CPU per call. Instead :class:`_Deadlines` groups the attempts of one
event loop by deadline, rounded up to a tick, and keeps one timer per tick that cancels whatever of its
attempts is still running; a request then costs two dict operations.

aiohttp is imported on first use (it costs ~0.13 s, and ``import swarmgym`` must stay light).
"""

from __future__ import annotations

import asyncio
import errno
import io
import threading
import json
import random
from asyncio import CancelledError
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PolicyConnectionError, PolicyHTTPError, PolicyTimeoutError
from ._direct import DirectRoute
from ._direct import supported as direct_supported
from ._ticks import TickTimers

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["HTTPClient", "HTTPPolicyBase", "json_dumps", "json_loads", "redact_url", "RETRY_STATUSES"]


def redact_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part (if any) replaced by ``***``."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostport}"))

try:  # orjson is ~5x faster than the stdlib on both sides; optional, the stdlib is the fallback.
    import orjson as _orjson

    def json_dumps(obj: Any) -> bytes:
        """Serialise ``obj`` to compact JSON bytes."""
        return _orjson.dumps(obj)

    json_loads: Callable[[bytes | str], Any] = _orjson.loads
except ImportError:  # pragma: no cover - exercised only where orjson is absent
    _encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

    def json_dumps(obj: Any) -> bytes:
        """Serialise ``obj`` to compact JSON bytes."""
        return _encoder.encode(obj).encode()

    json_loads = json.loads

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses worth another attempt: rate limits, overload, gateway hiccups (not 501/505: those never heal)."""


class HTTPClient:
    """A JSON-over-HTTP client bound to one server, with one lazily created aiohttp session.

    The session (and its connection pool) is created on first use inside the running event loop, reused by
    every call and closed by :meth:`aclose`. If the client is later used from another event loop (e.g. a
    second ``asyncio.run``), the stale session is dropped and a new one is made, instead of failing with
    aiohttp's "attached to a different loop".

    Args:
        base_url: server root the paths are joined to (shown in error messages with any password masked).
        api_key: sent as ``Authorization: Bearer …`` when given.
        timeout: seconds allowed per attempt (connect + send + wait + read); None for no limit. Enforced by
            coalesced timers (:class:`_Deadlines`): an attempt times out at most ``min(timeout/8, 0.25)`` s late.
        max_retries: extra attempts after a retryable failure (429/408/5xx, reset or dropped connection).
        backoff_base: first backoff in seconds; attempt ``k`` waits uniform(0, min(backoff_max, base·2^k))
            ("full jitter", so thousands of clients retrying together do not stampede in lockstep).
        backoff_max: cap of one backoff, seconds.
        max_connections: size of the connection pool; requests beyond it queue inside aiohttp.
        direct: POST through :class:`~swarmgym.policies._direct.DirectRoute` (aiohttp's pool and parser
            without ClientSession's per-request machinery, ~2x less client CPU); False uses ``session.post``.
            Either way one session and one connector serve every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | None = 60.0,
        max_retries: int = 4,
        backoff_base: float = 0.25,
        backoff_max: float = 8.0,
        max_connections: int = 256,
        direct: bool = True,
    ) -> None:
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout}")
        self._request_base = base_url.rstrip("/")
        self.base_url = redact_url(self._request_base)  # for messages: a password in the URL is never shown
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_connections = max_connections
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            if "\r" in api_key or "\n" in api_key:
                raise ConfigError("api_key contains a line break")
            self._headers["Authorization"] = f"Bearer {api_key}"
        self.direct = direct
        self._routes: dict[str, DirectRoute] | None = None  # per path, bound to the session; None: session.post
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: _Deadlines | None = None  # belongs to self._loop, like the session
        self._thread = 0  # the thread running self._loop
        self._BytesPayload: Any = None  # aiohttp's BytesPayload, bound with the session
        self._BytesIOPayload: Any = None
        self._urls: dict[str, URL] = {}
        self._rng = random.Random()

    # -- session lifecycle -------------------------------------------------------------------------

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is not None:
            self._discard_stale_session()
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            # No aiohttp timeout at all (it would arm a timer per request): post() enforces self.timeout
            # through self._deadlines, get() through asyncio.timeout.
            timeout=aiohttp.ClientTimeout(total=None),
            headers=self._headers,  # merged by aiohttp; cheaper than passing headers= on every request
            cookie_jar=aiohttp.DummyCookieJar(),  # model servers set no cookies; skip the per-response jar
            trust_env=False,
            skip_auto_headers=("User-Agent",),
        )
        from aiohttp.payload import BytesIOPayload, BytesPayload

        self._BytesPayload, self._BytesIOPayload = BytesPayload, BytesIOPayload  # (imported once)
        self._routes = {} if self.direct and direct_supported() else None
        self._loop = loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._deadlines = None if self.timeout is None else _Deadlines(loop, self.timeout)
        return self._session

    def session(self) -> aiohttp.ClientSession:
        """The shared session for the running loop (created on first use)."""
        s = self._session
        # Our loop, running in this thread, is the running loop (a thread runs one loop at a time): checked
        # first because asyncio.get_running_loop() costs a getpid() system call per call on CPython 3.11.
        if s is not None and self._thread == threading.get_ident() and self._loop.is_running() and not s.closed:  # type: ignore[union-attr]
            return s
        if s is None or s.closed or self._loop is not asyncio.get_running_loop():
            s = self._new_session()
        return s

    def url(self, path: str) -> URL:
        """``base_url + path`` as a parsed URL (cached: yarl parsing is a measurable cost per call)."""
        u = self._urls.get(path)
        if u is None:
            from yarl import URL

            u = self._urls[path] = URL(self._request_base + path)
        return u

    def _discard_stale_session(self) -> None:
        """Drop a session that belongs to another event loop (used again after ``asyncio.run`` returned).

        If that loop still runs (another thread), the session is closed there. If it is closed, aiohttp's
        ``close()`` cannot run, so the idle sockets are closed directly — otherwise they would only be
        closed by the garbage collector, with a ResourceWarning each.
        """
        old, loop = self._session, self._loop
        self._session = None
        if old is None or old.closed:
            return
        if loop is not None and not loop.is_closed() and loop.is_running():
            loop.call_soon_threadsafe(lambda: loop.create_task(old.close()))
            return
        connector = old.connector
        old.detach()  # the session is now "closed" (no unclosed-session warning)
        if connector is None:
            return
        try:  # aiohttp internals, on this rare path only; any surprise just leaves the sockets to the GC
            for conns in list(connector._conns.values()):
                for proto, *_ in conns:
                    transport: Any = proto.transport
                    sock = getattr(transport, "_sock", None)
                    if sock is not None:
                        sock.close()
                        transport._sock = None
        except Exception:  # pragma: no cover - depends on aiohttp internals
            pass
        connector._close()

    async def aclose(self) -> None:
        """Close the session and its connections (idempotent)."""
        s = self._session
        if s is None or s.closed:
            self._session = None
            return
        if self._loop is asyncio.get_running_loop():
            self._session = None
            await s.close()
        else:
            self._discard_stale_session()

    # -- requests ----------------------------------------------------------------------------------

    async def post(self, path: str, body: bytes) -> Any:
        """POST a JSON body to ``path``, return the decoded JSON answer.

        Raises:
            PolicyConnectionError: the server is unreachable, or dropped/reset the connection on every
                attempt.
            PolicyHTTPError: an error status that is not retryable, or still failing after the retries.
            PolicyTimeoutError: an attempt exceeded ``timeout``.
        """
        import aiohttp

        url = self.url(path)
        attempt = 0
        while True:
            session = self.session()
            deadlines = self._deadlines
            bucket: _Bucket | None = None
            if deadlines is not None:
                task = asyncio.current_task(self._loop)  # (given the loop: no get_running_loop() call)
                assert task is not None  # aiohttp only runs inside asyncio tasks
                bucket = deadlines.enter(task)
            try:
                routes = self._routes
                if routes is not None:
                    route = routes.get(path)
                    if route is None:
                        route = routes[path] = DirectRoute(session, url, self._headers)
                    status, raw, headers = await route.post(body)
                else:
                    # a ready Payload skips aiohttp's payload-registry lookup (~1-2 µs per request)
                    # (aiohttp warns about bytes bodies over 1 MiB: long prompts go as a stream)
                    payload = (
                        self._BytesPayload(body, content_type="application/json")
                        if len(body) <= 2**20
                        else self._BytesIOPayload(io.BytesIO(body), content_type="application/json")
                    )
                    async with session.post(url, data=payload, allow_redirects=False) as resp:
                        raw = await resp.read()
                        status = resp.status
                        headers = None if status == 200 else resp.headers
            except CancelledError:
                if bucket is not None and _Deadlines.expired(bucket, task):
                    await _checkpoint_if_cancelled()  # a cancel scope expiring at the same time wins
                    raise PolicyTimeoutError(
                        f"model server at {self.base_url} did not answer {path} within {self.timeout} s "
                        f"(raise timeout= if generations are long)"
                    ) from None
                raise
            except aiohttp.ClientConnectorError as e:
                raise _connect_error(self.base_url, e) from e
            except aiohttp.ClientResponseError as e:  # not HTTP at all (a wrong port, a broken proxy)
                raise PolicyHTTPError(
                    f"model server at {self.base_url} sent an invalid HTTP response on {path}: {e.message}", e.status
                ) from e
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as e:
                if attempt >= self.max_retries:
                    raise PolicyConnectionError(
                        f"model server at {self.base_url} dropped the connection on {path} "
                        f"({type(e).__name__}: {e}) after {attempt + 1} attempt(s)"
                    ) from e
                status, headers = 0, None  # retried below, after this attempt's deadline is gone
            finally:
                if bucket is not None and bucket.pop(task, None) is not None and bucket.fired:
                    # Our deadline cancelled the task but the CancelledError never reached us (swallowed or
                    # converted below): undo our cancel request, as asyncio.timeout does.
                    task.uncancel()
            if status == 200:
                try:
                    return json_loads(raw)
                except ValueError:
                    raise PolicyHTTPError(
                        f"model server at {self.base_url} answered 200 on {path} with a body that is "
                        f"not JSON: {raw[:200]!r} — is base_url pointing at an OpenAI-compatible server?",
                        status,
                    ) from None
            if status == 0 or (status in RETRY_STATUSES and attempt < self.max_retries):
                await self._backoff(attempt, headers.get("Retry-After") if headers is not None else None)
                attempt += 1
                continue
            detail = _error_detail(raw)
            if 300 <= status < 400 and headers is not None and headers.get("Location"):
                # POSTs are not followed (a 301/302 would turn into a GET): say where the server points
                detail = f"redirected to {headers['Location']}; use that address as base_url. {detail}"
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise PolicyHTTPError(
                f"model server at {self.base_url} answered {status} on {path}{tries}: {detail}", status
            )

    async def get(self, path: str) -> Any:
        """GET ``path`` once (no retries) and decode its JSON; errors as in :meth:`post`."""
        import aiohttp

        try:
            async with asyncio.timeout(self.timeout), self.session().get(self.url(path)) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise PolicyHTTPError(
                        f"model server at {self.base_url} answered {resp.status} on GET {path}: {_error_detail(raw)}",
                        resp.status,
                    )
                return json_loads(raw)
        except TimeoutError:
            raise PolicyTimeoutError(f"model server at {self.base_url} did not answer GET {path}") from None
        except aiohttp.ClientConnectorError as e:
            raise _connect_error(self.base_url, e) from e
        except aiohttp.ClientError as e:
            raise PolicyConnectionError(f"model server at {self.base_url} failed on GET {path}: {e}") from e

    async def _backoff(self, attempt: int, retry_after: str | None) -> None:
        delay = self._rng.uniform(0.0, min(self.backoff_max, self.backoff_base * (2**attempt)))
        if retry_after:
            try:  # honour the server's hint (seconds form only), within our cap
                delay = max(delay, min(self.backoff_max, float(retry_after)))
            except ValueError:
                pass
        await asyncio.sleep(delay)


class _Bucket(dict[asyncio.Task[Any], int]):
    """The attempts whose deadline falls in one tick: task -> its ``cancelling()`` count when the attempt began.

    Once the tick's timer has run (``fired``), it holds exactly the tasks that timer cancelled and that have
    not yet seen the CancelledError.
    """

    __slots__ = ("fired",)

    def __init__(self) -> None:
        super().__init__()
        self.fired = False


class _Deadlines(TickTimers):
    """Per-attempt deadlines of one event loop, coalesced (:class:`~swarmgym.policies._ticks.TickTimers`): one
    ``loop.call_at`` timer per tick, not per request.

    The tick is ``min(timeout/8, 0.25)`` s, so an attempt times out at most one tick late and never early, and
    a loop serving thousands of requests a second keeps ~``timeout/tick`` timers alive instead of one per
    request in flight. Starting and finishing an attempt is a dict insert and a dict pop; a timer whose
    attempts all finished just pops an empty bucket when it runs.

    Cancellation follows ``asyncio.timeout``: the timer calls ``task.cancel()``, and the attempt, on catching
    CancelledError, calls :meth:`expired`, which says whether it was our cancellation alone (then the task is
    uncancelled and the attempt raises PolicyTimeoutError) or another one (an anyio cancel scope, an outer
    ``asyncio.timeout``, ``task.cancel()``) is pending too, which must propagate as a cancellation.
    """

    __slots__ = ("timeout",)

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        super().__init__(loop, min(timeout / 8, 0.25))
        self.timeout = timeout

    def enter(self, task: asyncio.Task[Any]) -> _Bucket:
        """Start an attempt of ``task``; the caller pops ``task`` from the returned bucket when it ends."""
        bucket: _Bucket = self.bucket_in(self.timeout)
        bucket[task] = task.cancelling()
        return bucket

    def _new_bucket(self) -> _Bucket:
        return _Bucket()

    def _fire(self, bucket: _Bucket) -> None:
        bucket.fired = True
        for task, cancelling in list(bucket.items()):
            if task.cancelling() > cancelling:
                # Someone else is already cancelling this task: let that cancellation win alone. (A second
                # cancel() could also replace the message of the pending CancelledError, by which anyio
                # recognises its own.)
                del bucket[task]
            else:
                task.cancel("swarmgym: model call deadline")

    @staticmethod
    def expired(bucket: _Bucket, task: asyncio.Task[Any]) -> bool:
        """After ``task`` caught CancelledError in its attempt: True if our deadline alone cancelled it."""
        if not bucket.fired or task not in bucket:
            return False
        return task.uncancel() <= bucket.pop(task)


async def _checkpoint_if_cancelled() -> None:
    """Raise the cancellation of an enclosing anyio cancel scope that is cancelled but not yet delivered.

    When our deadline and an anyio scope's cancel land in the same loop iteration, anyio may skip its
    ``task.cancel()`` (the task already has a cancelled waiter) and retry on the next iteration; without this
    checkpoint the attempt would report a timeout and the episode would carry on as if not cancelled.
    """
    from anyio.lowlevel import checkpoint_if_cancelled

    await checkpoint_if_cancelled()


def _connect_error(base_url: str, e: Exception) -> PolicyConnectionError:
    """A PolicyConnectionError that says what went wrong and what to check."""
    os_err = getattr(e, "os_error", None)
    if isinstance(os_err, ConnectionRefusedError) or getattr(os_err, "errno", None) == errno.ECONNREFUSED:
        return PolicyConnectionError(f"cannot reach model server at {base_url}: connection refused — is it running?")
    return PolicyConnectionError(
        f"cannot reach model server at {base_url}: {os_err or e} — check the URL and that the server is up"
    )


def _error_detail(raw: bytes) -> str:
    """The server's error message from an OpenAI/vLLM/SGLang error body, else the body's start."""
    try:
        data = json_loads(raw)
    except ValueError:
        return raw[:300].decode(errors="replace").strip() or "(empty body)"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if data.get("message"):
            return str(data["message"])
    return str(data)[:300]


class HTTPPolicyBase:
    """Lifecycle shared by the HTTP policies: one :class:`HTTPClient` (``self._client``), ``aclose`` and
    use as an async context manager."""

    _client: HTTPClient

    async def aclose(self) -> None:
        """Close the connection pool (idempotent; the policy reopens one if used again)."""
        await self._client.aclose()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
