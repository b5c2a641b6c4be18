"""HTTPClient's direct route (aiohttp's pool and parser without ClientSession) against a real aiohttp server on
127.0.0.1 that answers in every way HTTP allows: chunked, gzip, ``Connection: close``, 1xx, garbage, big
bodies. Each behaviour is checked on both routes (``direct=True`` and the ``session.post`` fallback)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from swarmgym.errors import ConfigError, PolicyConnectionError, PolicyHTTPError, PolicyTimeoutError
from swarmgym.policies._direct import supported
from swarmgym.policies._http import HTTPClient

pytestmark = pytest.mark.anyio
ROUTES = pytest.mark.parametrize("direct", [True, False], ids=["direct", "session"])
FAST = {"backoff_base": 0.001, "backoff_max": 0.01}


class Server:
    """An aiohttp app whose handlers record what they saw (peers, headers, bodies)."""

    def __init__(self) -> None:
        self.peers: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.calls = 0
        self.release = asyncio.Event()  # set at teardown: slow handlers end, so the server stops at once
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/echo", self.echo)
        app.router.add_post("/chunked", self.chunked)
        app.router.add_post("/gzip", self.gzipped)
        app.router.add_post("/close", self.close)
        app.router.add_post("/big", self.big)
        app.router.add_post("/flaky", self.flaky)
        app.router.add_post("/slow", self.slow)
        app.router.add_post("/moved", self.moved)
        self.app = app

    def _seen(self, request: web.Request) -> None:
        self.calls += 1
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        self.headers.append(dict(request.headers))

    async def echo(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.read()
        return web.json_response({"len": len(body), "body": json.loads(body)})

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        self._seen(request)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for part in (b'{"parts": [', b'1, 2, ', b"3]}"):
            await resp.write(part)
        await resp.write_eof()
        return resp

    async def gzipped(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.Response(
            body=gzip.compress(b'{"zipped": true}'),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def close(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"n": self.calls}, headers={"Connection": "close"})

    async def big(self, request: web.Request) -> web.Response:
        self._seen(request)
        body = await request.read()
        return web.json_response({"echo": json.loads(body)["text"] * 2})

    async def flaky(self, request: web.Request) -> web.Response:
        self._seen(request)
        if self.calls % 2:
            return web.json_response({"error": "busy"}, status=429, headers={"Retry-After": "0"})
        return web.json_response({"ok": self.calls})

    async def moved(self, request: web.Request) -> web.Response:
        self._seen(request)
        raise web.HTTPTemporaryRedirect("/echo")

    async def slow(self, request: web.Request) -> web.Response:
        self._seen(request)
        await asyncio.wait_for(self.release.wait(), 5)
        return web.json_response({})


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    srv = Server()
    runner = web.AppRunner(srv.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield srv, f"http://127.0.0.1:{port}"
    finally:
        srv.release.set()
        await runner.cleanup()


def test_the_installed_aiohttp_supports_the_direct_route() -> None:
    # If this fails after an aiohttp upgrade, HTTPClient silently falls back to session.post: slower, not wrong.
    assert supported()


@ROUTES
async def test_json_round_trip_headers_and_keep_alive(server: tuple[Server, str], direct: bool) -> None:
    srv, url = server
    client = HTTPClient(url, api_key="k3y", direct=direct, **FAST)
    try:
        for i in range(5):
            out = await client.post("/echo", json.dumps({"i": i, "text": "héllo"}).encode())
            assert out["body"] == {"i": i, "text": "héllo"}
        assert (client._routes is not None) is direct
    finally:
        await client.aclose()
    assert len(set(srv.peers)) == 1  # one pooled connection served all five calls
    h = srv.headers[-1]
    assert h["Host"] == url.removeprefix("http://")
    assert h["Authorization"] == "Bearer k3y" and h["Content-Type"] == "application/json"
    assert int(h["Content-Length"]) == len(json.dumps({"i": 4, "text": "héllo"}).encode())


@ROUTES
async def test_credentials_in_the_url_are_sent_as_basic_auth(server: tuple[Server, str], direct: bool) -> None:
    import base64

    srv, url = server
    async with _client(url.replace("http://", "http://u%40x:p%3Ass@"), direct) as client:
        assert await client.post("/echo", b"{}") == {"len": 2, "body": {}}
    assert srv.headers[-1]["Authorization"] == "Basic " + base64.b64encode(b"u@x:p:ss").decode()
    assert srv.headers[-1]["Host"] == url.removeprefix("http://")


async def test_a_password_in_the_url_is_never_shown() -> None:
    from swarmgym.policies.openai_http import OpenAIPolicy
    from swarmgym.policies.sglang import SGLangPolicy
    from swarmgym.testing import ToyChatTokenizer
    from swarmgym.wire import Message, SamplingParams

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://bob:s3cret@127.0.0.1:{port}/v1"
    async with OpenAIPolicy(url, "m", max_retries=0) as p:
        assert "s3cret" not in repr(p) and p.base_url == f"http://bob:***@127.0.0.1:{port}/v1"
        with pytest.raises(PolicyConnectionError) as err:
            await p.complete([Message(role="user", content="hi")], (), SamplingParams())
        assert "s3cret" not in str(err.value) and "bob:***@" in str(err.value)
    assert "s3cret" not in SGLangPolicy(url, ToyChatTokenizer()).base_url


@ROUTES
async def test_chunked_and_gzip_responses(server: tuple[Server, str], direct: bool) -> None:
    _, url = server
    async with _client(url, direct) as client:
        assert await client.post("/chunked", b"{}") == {"parts": [1, 2, 3]}
        assert await client.post("/gzip", b"{}") == {"zipped": True}
        assert await client.post("/echo", b'{"after": 1}') == {"len": 12, "body": {"after": 1}}


@ROUTES
async def test_connection_close_is_honoured(server: tuple[Server, str], direct: bool) -> None:
    srv, url = server
    async with _client(url, direct) as client:
        outs = [await client.post("/close", b"{}") for _ in range(3)]
    assert [o["n"] for o in outs] == [1, 2, 3]
    assert len(set(srv.peers)) == 3  # each answer closed its connection: a new one per call


@ROUTES
async def test_big_request_and_response_bodies(server: tuple[Server, str], direct: bool) -> None:
    _, url = server
    text = "x" * (3 * 2**20)
    async with _client(url, direct) as client:
        out = await client.post("/big", json.dumps({"text": text}).encode())
    assert out["echo"] == text * 2


@ROUTES
async def test_retry_after_and_retries(server: tuple[Server, str], direct: bool) -> None:
    srv, url = server
    async with _client(url, direct) as client:
        assert await client.post("/flaky", b"{}") == {"ok": 2}
    assert srv.calls == 2


@ROUTES
async def test_error_status_and_timeout_then_the_pool_still_works(server: tuple[Server, str], direct: bool) -> None:
    srv, url = server
    async with _client(url, direct, timeout=0.2) as client:
        with pytest.raises(PolicyHTTPError, match="answered 404"):
            await client.post("/missing", b"{}")
        with pytest.raises(PolicyTimeoutError):
            await client.post("/slow", b"{}")
        # the timed-out exchange's connection was closed, not returned half-read to the pool
        assert await client.post("/echo", b'{"a": 1}') == {"len": 8, "body": {"a": 1}}


@ROUTES
async def test_a_redirect_is_reported_with_its_target_not_followed(server: tuple[Server, str], direct: bool) -> None:
    srv, url = server
    async with _client(url, direct) as client:
        with pytest.raises(PolicyHTTPError, match="answered 307 on /moved: redirected to /echo; use that address"):
            await client.post("/moved", b"{}")
    assert srv.calls == 1


@ROUTES
async def test_cancelled_calls_leave_the_pool_usable(server: tuple[Server, str], direct: bool) -> None:
    _, url = server
    async with _client(url, direct, max_connections=2) as client:
        tasks = [asyncio.create_task(client.post("/slow", b"{}")) for _ in range(4)]
        await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        outs = await asyncio.gather(*(client.post("/echo", b'{"b": 2}') for _ in range(4)))
    assert all(o == {"len": 8, "body": {"b": 2}} for o in outs)


@contextlib.asynccontextmanager
async def _raw_server(reply: bytes) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 that reads a request, answers ``reply`` verbatim and closes; yields its URL."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(reply)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@ROUTES
async def test_a_server_that_does_not_speak_http(direct: bool) -> None:
    async with _raw_server(b"SSH-2.0-OpenSSH_9.2\r\n\r\n") as url, _client(url, direct) as client:
        with pytest.raises(PolicyHTTPError, match="invalid HTTP response"):
            await client.post("/x", b"{}")


@ROUTES
async def test_a_server_that_closes_without_answering(direct: bool) -> None:
    async with _raw_server(b"") as url, _client(url, direct, max_retries=1) as client:
        with pytest.raises(PolicyConnectionError, match="dropped the connection .* after 2 attempt"):
            await client.post("/x", b"{}")


@ROUTES
async def test_a_truncated_body_is_a_dropped_connection(direct: bool) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\": "
    async with _raw_server(reply) as url, _client(url, direct, max_retries=0) as client:
        with pytest.raises(PolicyConnectionError, match="dropped the connection"):
            await client.post("/x", b"{}")


@ROUTES
async def test_a_body_without_a_length_ends_at_eof(direct: bool) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"until\": \"eof\"}"
    async with _raw_server(reply) as url, _client(url, direct) as client:
        assert await client.post("/x", b"{}") == {"until": "eof"}


@ROUTES
async def test_connection_refused(direct: bool) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with _client(f"http://127.0.0.1:{port}", direct) as client:
        with pytest.raises(PolicyConnectionError, match="connection refused"):
            await client.post("/x", b"{}")


def test_an_api_key_with_a_line_break_is_refused() -> None:
    with pytest.raises(ConfigError, match="line break"):
        HTTPClient("http://127.0.0.1:1", api_key="k\r\nX-Injected: 1")


class _client:
    """``async with _client(url, direct, **kw) as client``: an HTTPClient closed on exit."""

    def __init__(self, url: str, direct: bool, **kw: Any) -> None:
        self.client = HTTPClient(url, direct=direct, **{**FAST, **kw})

    async def __aenter__(self) -> HTTPClient:
        return self.client

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


TLS_CHILD = r"""
import asyncio, ssl, sys
from aiohttp import web
from swarmgym.errors import PolicyConnectionError
from swarmgym.policies._http import HTTPClient

async def echo(request):
    return web.json_response({"got": await request.json()})

async def main(cert, key):
    app = web.Application()
    app.router.add_post("/e", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = runner.addresses[0][1]
    for direct in (True, False):
        client = HTTPClient(f"https://localhost:{port}", direct=direct)
        try:
            out = [await client.post("/e", b'{"x": %d}' % i) for i in range(2)]
            print(direct, out == [{"got": {"x": 0}}, {"got": {"x": 1}}], client._routes is not None)
        except PolicyConnectionError as e:
            print(direct, "refused:", e)
        finally:
            await client.aclose()
    await runner.cleanup()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_tls_on_both_routes(tmp_path: Any) -> None:
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    script = tmp_path / "child.py"
    script.write_text(TLS_CHILD)

    def run(trust: bool) -> list[str]:
        env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_FILE"}
        if trust:
            env["SSL_CERT_FILE"] = str(cert)  # the child's default SSL context trusts our certificate
        r = subprocess.run([sys.executable, str(script), str(cert), str(key)], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=60)  # fmt: skip
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout.splitlines()

    assert run(trust=True) == ["True True True", "False True False"]
    untrusted = run(trust=False)
    assert len(untrusted) == 2 and all("refused:" in line and "certificate verify failed" in line for line in untrusted)
