"""The Docker daemon gate: deadlines, fail-fast when the daemon wedges, recovery, unremoved containers.

The wedged daemon is a real HTTP server on a unix socket speaking just enough of the Engine API for the real
docker SDK: it answers pings and listings and never answers a removal (what a wedged dockerd did here).
"""

from __future__ import annotations

import http.server
import json
import os
import socketserver
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK is a dev dependency")

from swarmgym.errors import SandboxError  # noqa: E402
from swarmgym.toolsets.sandbox import daemon as daemon_mod  # noqa: E402
from swarmgym.toolsets.sandbox.daemon import DaemonGate  # noqa: E402


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hang = threading.Event()  # set = removals hang (until released)
    release = threading.Event()

    def address_string(self) -> str:  # unix sockets have no (host, port)
        return "unix"

    def log_message(self, *a: object) -> None:
        pass

    def _send(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.endswith("/_ping"):
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
        elif "/version" in self.path:
            self._send(200, {"ApiVersion": "1.41", "Version": "20.10.0"})
        elif "/containers/json" in self.path:
            self._send(200, [])
        else:
            self._send(404, {"message": "not here"})

    def do_DELETE(self) -> None:
        if self.hang.is_set():
            self.release.wait(30)
        self._send(204 if False else 200, {})


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture()
def wedged(tmp_path: Path):
    sock = str(tmp_path / "docker.sock")
    _Handler.hang.set()
    _Handler.release.clear()
    srv = _Server(sock, _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    client = docker.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=60)
    yield sock, client
    _Handler.release.set()
    srv.shutdown()
    srv.server_close()
    time.sleep(0.2)  # abandoned calls get their answer and hand their connection back
    client.close()


def test_a_hung_call_misses_its_deadline_and_later_calls_fail_fast(wedged) -> None:
    sock, client = wedged
    gate = DaemonGate(f"unix://{sock}", deadlines={"remove": 0.5}, probe=client.ping, probe_interval_s=60)
    assert gate.call("list", client.api.containers, all=True) == []  # a healthy call goes through
    t0 = time.monotonic()
    with pytest.raises(SandboxError, match="did not answer: remove took longer than 0.5 s"):
        gate.call("remove", client.api.remove_container, "abc", force=True)
    assert time.monotonic() - t0 < 5  # the deadline, not the SDK's 60 s timeout
    assert not gate.healthy and gate.abandoned == 1
    t0 = time.monotonic()
    with pytest.raises(SandboxError, match=f"daemon at unix://{sock} is not answering"):
        gate.call("list", client.api.containers, all=True)
    assert time.monotonic() - t0 < 0.5  # fail fast: no deadline waited out


def test_health_returns_when_the_daemon_answers_a_probe(wedged) -> None:
    sock, client = wedged
    gate = DaemonGate(f"unix://{sock}", deadlines={"remove": 0.3}, probe=client.ping, probe_interval_s=0.2)
    with pytest.raises(SandboxError):
        gate.call("remove", client.api.remove_container, "abc", force=True)
    time.sleep(0.25)
    assert gate.call("list", client.api.containers, all=True) == []  # ping answered: healthy again
    assert gate.healthy


def test_errors_of_the_call_itself_pass_through_unchanged(wedged) -> None:
    sock, client = wedged
    gate = DaemonGate(f"unix://{sock}")
    with pytest.raises(docker.errors.NotFound):
        gate.call("inspect", client.api.inspect_container, "nope")
    assert gate.healthy


def test_the_limit_holds_across_threads() -> None:
    gate = DaemonGate("test", limit=3)
    live, peak, lock = [0], [0], threading.Lock()

    def op() -> None:
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1

    threads = [threading.Thread(target=gate.call, args=("start", op)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3


def test_a_sandbox_whose_removal_hangs_is_recorded_for_gc(wedged, tmp_path, monkeypatch) -> None:
    from swarmgym.toolsets.sandbox import docker as backend
    from swarmgym.toolsets.sandbox.base import SandboxConfig

    sock, client = wedged
    monkeypatch.setenv("SWARMGYM_STATE_DIR", str(tmp_path / "state"))
    gate = DaemonGate(f"unix://{sock}", deadlines={"remove": 0.3}, probe=client.ping, probe_interval_s=60)
    monkeypatch.setattr(backend, "docker_client", lambda: client)
    monkeypatch.setattr(backend, "_gate", lambda: gate)
    boxes = []
    for i in range(5):
        sb = backend.DockerSandbox(SandboxConfig(), f"sb-test{i}")
        sb.container_id = f"{i:064x}"
        boxes.append(sb)
    t0 = time.monotonic()
    for sb in boxes:
        sb._kill_sync()
    assert time.monotonic() - t0 < 3  # one deadline, then fail-fast for the other four
    assert daemon_mod.take_unremoved() == [f"{i:064x}" for i in range(5)]
    assert daemon_mod.take_unremoved() == []  # taken once


def test_a_program_holding_wedged_sandboxes_exits_promptly(wedged, tmp_path) -> None:
    # 30 sandboxes tracked for cleanup at exit, removals hanging: exit takes one deadline, not 30.
    sock, _ = wedged
    code = textwrap.dedent(
        f"""
        import docker
        from swarmgym.toolsets.sandbox import docker as backend, reaper
        from swarmgym.toolsets.sandbox.base import SandboxConfig
        from swarmgym.toolsets.sandbox.daemon import DaemonGate
        client = docker.DockerClient(base_url="unix://{sock}", version="1.41", timeout=60)
        gate = DaemonGate("unix://{sock}", deadlines={{"remove": 1.0}}, probe=client.ping, probe_interval_s=60)
        backend.docker_client = lambda: client
        backend._gate = lambda: gate
        keep = []
        for i in range(30):
            sb = backend.DockerSandbox(SandboxConfig(), f"sb-exit{{i}}")
            sb.container_id = f"{{i:064x}}"
            reaper.track(sb.id, sb._kill_sync)
            keep.append(sb)
        print("ready", flush=True)
        """
    )
    env = {**os.environ, "SWARMGYM_STATE_DIR": str(tmp_path / "state")}
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr[-2000:]
    assert "ready" in r.stdout
    assert took < 20, took  # 30 × 1 s deadlines would be 30 s
    recorded = (tmp_path / "state" / "unremoved-containers.txt").read_text().split()
    assert len(set(recorded)) == 30


def test_a_daemon_that_is_gone_is_a_named_error_and_later_calls_fail_fast(tmp_path) -> None:
    # no server on the socket at all: what a stopped or crashed dockerd looks like
    sock = str(tmp_path / "gone.sock")
    client = docker.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=60)
    probes = []

    def probe() -> None:
        probes.append(time.monotonic())
        client.ping()

    gate = DaemonGate(f"unix://{sock}", probe=probe, probe_interval_s=0.3)
    with pytest.raises(SandboxError, match=f"daemon at unix://{sock} is not answering: list failed"):
        gate.call("list", client.api.containers, all=True)
    assert not gate.healthy
    t0 = time.monotonic()
    for _ in range(50):  # fail fast, and at most one probe per interval however many callers
        with pytest.raises(SandboxError, match="not answering"):
            gate.call("list", client.api.containers, all=True)
    assert time.monotonic() - t0 < 0.3 + 5 and len(probes) <= 2
    client.close()
    # the docker SDK does not close a unix socket whose connect() failed; collect those here, quietly,
    # so the warning does not surface in whichever test runs next
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_the_deadline_can_be_set_for_every_call_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SWARMGYM_DOCKER_DEADLINE_S", "2.5")
    gate = DaemonGate("unix:///nowhere")
    assert set(gate.deadlines.values()) == {2.5} and "remove" in gate.deadlines
    monkeypatch.setenv("SWARMGYM_DOCKER_DEADLINE_S", "soon")
    with pytest.raises(SandboxError, match="SWARMGYM_DOCKER_DEADLINE_S"):
        DaemonGate("unix:///nowhere")


def test_a_pool_whose_daemon_does_not_answer_fails_acquisitions_at_once(monkeypatch) -> None:
    import anyio

    from swarmgym.toolsets.sandbox import docker as backend
    from swarmgym.toolsets.sandbox.pool import SandboxPool

    probes = []
    gate = DaemonGate("unix:///wedged.sock", probe=lambda: probes.append(1) or 1 / 0, probe_interval_s=0)
    gate.mark_unhealthy("remove took longer than 60 s")  # what a hung removal leaves behind
    monkeypatch.setattr(backend, "_gate", lambda: gate)

    async def go() -> float:
        pool = SandboxPool("docker", size=2, acquire_timeout_s=600)
        t0 = time.monotonic()
        with pytest.raises(SandboxError, match="daemon at unix:///wedged.sock is not answering"):
            async with pool.acquire():
                pass
        await pool.close()
        return time.monotonic() - t0

    assert anyio.run(go) < 2  # not the 600 s acquire timeout, not a create deadline
    assert probes  # it asked the daemon (a probe was due) before giving up
