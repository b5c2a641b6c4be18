"""Shared HTTP plumbing for model-server policies: one aiohttp session per client, retries, clear errors.

Why one hand-written client instead of the ``openai`` package: on a 2-core machine the official client spends
~2.3 ms of CPU per call (its pool scans every connection per request), 15x a plain aiohttp POST. Rollouts are
client-CPU-bound, so the hot path here is kept to what a bare aiohttp loop does: a pre-parsed URL, a
pre-serialised body, fixed headers, ``read()`` + one JSON parse. Everything else (retries, error messages)
only runs on the failure path.

aiohttp is imported on first use (it costs ~0.13 s, and ``import swarmgym`` must stay light).
"""

from __future__ import annotations

import asyncio
import errno
import json
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, PolicyConnectionError, PolicyHTTPError, PolicyTimeoutError

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["HTTPClient", "HTTPPolicyBase", "json_dumps", "json_loads", "RETRY_STATUSES"]

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
        base_url: server root the paths are joined to (kept verbatim in error messages).
        api_key: sent as ``Authorization: Bearer …`` when given.
        timeout: seconds allowed per attempt (connect + send + wait + read); None for no limit.
        max_retries: extra attempts after a retryable failure (429/408/5xx, reset or dropped connection).
        backoff_base: first backoff in seconds; attempt ``k`` waits uniform(0, min(backoff_max, base·2^k))
            ("full jitter", so thousands of clients retrying together do not stampede in lockstep).
        backoff_max: cap of one backoff, seconds.
        max_connections: size of the connection pool; requests beyond it queue inside aiohttp.
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
    ) -> None:
        if max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {max_retries}")
        if max_connections < 1:
            raise ConfigError(f"max_connections must be >= 1, got {max_connections}")
        if timeout is not None and timeout <= 0:
            raise ConfigError(f"timeout must be a positive number of seconds or None, got {timeout}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_connections = max_connections
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._urls: dict[str, URL] = {}
        self._rng = random.Random()

    # -- session lifecycle -------------------------------------------------------------------------

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is not None:
            self._discard_stale_session()
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),  # model servers set no cookies; skip the per-response jar
            trust_env=False,
            skip_auto_headers=("User-Agent",),
        )
        self._loop = asyncio.get_running_loop()
        return self._session

    def session(self) -> aiohttp.ClientSession:
        """The shared session for the running loop (created on first use)."""
        s = self._session
        if s is None or s.closed or self._loop is not asyncio.get_running_loop():
            s = self._new_session()
        return s

    def url(self, path: str) -> URL:
        """``base_url + path`` as a parsed URL (cached: yarl parsing is a measurable cost per call)."""
        u = self._urls.get(path)
        if u is None:
            from yarl import URL

            u = self._urls[path] = URL(self.base_url + path)
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
            try:
                async with session.post(url, data=body, headers=self._headers) as resp:
                    raw = await resp.read()
                    status = resp.status
                    if status == 200:
                        try:
                            return json_loads(raw)
                        except ValueError:
                            raise PolicyHTTPError(
                                f"model server at {self.base_url} answered 200 on {path} with a body that is "
                                f"not JSON: {raw[:200]!r} — is base_url pointing at an OpenAI-compatible server?",
                                status,
                            ) from None
                    retry_after = resp.headers.get("Retry-After")
            except TimeoutError:
                raise PolicyTimeoutError(
                    f"model server at {self.base_url} did not answer {path} within {self.timeout} s "
                    f"(raise timeout= if generations are long)"
                ) from None
            except aiohttp.ClientConnectorError as e:
                raise _connect_error(self.base_url, e) from e
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as e:
                if attempt >= self.max_retries:
                    raise PolicyConnectionError(
                        f"model server at {self.base_url} dropped the connection on {path} "
                        f"({type(e).__name__}: {e}) after {attempt + 1} attempt(s)"
                    ) from e
                await self._backoff(attempt, None)
                attempt += 1
                continue
            # An error status.
            if status in RETRY_STATUSES and attempt < self.max_retries:
                await self._backoff(attempt, retry_after)
                attempt += 1
                continue
            detail = _error_detail(raw)
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise PolicyHTTPError(
                f"model server at {self.base_url} answered {status} on {path}{tries}: {detail}", status
            )

    async def get(self, path: str) -> Any:
        """GET ``path`` once (no retries) and decode its JSON; errors as in :meth:`post`."""
        import aiohttp

        try:
            async with self.session().get(self.url(path), headers=self._headers) as resp:
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
