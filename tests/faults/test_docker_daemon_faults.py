"""A real Docker daemon wedged (SIGSTOP) and then restarted under a run of a docker-backed env.

The test starts a second ``dockerd`` of its own (own socket, data root, exec root and pid file; no bridge, no
iptables), loads the sandbox image into it, and points ``DOCKER_HOST`` of a ``swarmgym run`` at it. The
machine's own daemon is never touched. Midway it stops the daemon with SIGSTOP (the wedge of issue 17: the
socket accepts, nothing answers). The run must then end by itself with the daemon named, keep every episode
that finished, and record the containers it could not remove; after the daemon is restarted
(a restart, as an admin would: continue, stop, start), ``--resume`` completes the run and ``swarmgym sandbox gc`` removes what is
left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarmgym.rollout import read_trajectories

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REQUIRE_DOCKER = os.environ.get("SWARMGYM_REQUIRE_DOCKER") == "1"
CLI = [sys.executable, "-c", "import sys; from swarmgym.cli import main; sys.exit(main())"]


def _unavailable(why: str) -> None:
    if REQUIRE_DOCKER:
        pytest.fail(f"SWARMGYM_REQUIRE_DOCKER=1 but a second dockerd cannot run here: {why}")
    pytest.skip(f"a second dockerd cannot run here: {why}")


class OwnDockerd:
    """A dockerd of this test's own, in a fresh folder under /tmp (unix socket paths must stay short)."""

    def __init__(self, driver: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sgd-", dir="/tmp"))
        self.sock = self.dir / "d.sock"
        self.host = f"unix://{self.sock}"
        self.driver = driver
        (self.dir / "daemon.json").write_text("{}")  # not the machine's /etc/docker/daemon.json
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        (self.dir / "d.pid").unlink(missing_ok=True)  # a killed daemon leaves its pid file behind
        log = open(self.dir / "dockerd.log", "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--config-file", str(self.dir / "daemon.json"), "--host", self.host,
             "--data-root", str(self.dir / "data"), "--exec-root", str(self.dir / "exec"),
             "--pidfile", str(self.dir / "d.pid"), "--bridge=none", "--iptables=false", "--ip-masq=false",
             "--storage-driver", self.driver],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.proc.returncode}): {self.log_tail()}")
            with contextlib.suppress(subprocess.TimeoutExpired):  # restoring containers: busy, not dead
                if self.docker("version", check=False, timeout=15).returncode == 0:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"dockerd did not answer within 180 s: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.dir / "dockerd.log").read_text(errors="replace")[-1500:]

    def docker(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "-H", self.host, *args], capture_output=True, text=True, timeout=timeout,
                              check=check)  # fmt: skip

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL (works on a stopped daemon too) and reap, then kill its containerd and container shims as a
        service manager stopping the whole unit would: with them left behind, the next dockerd's containerd
        did not come up within its 60 s here (it waits on shims whose reader, the old dockerd, was gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        for pid in self._our_pids():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].split(b"/")[-1].startswith(b"containerd"):
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """A graceful stop (SIGTERM: dockerd stops its containers and its containerd), SIGKILL after 60 s."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()

    def _our_pids(self) -> list[int]:
        """Processes left by this daemon (container shims, fuse-overlayfs mounts): their command line names
        our folder."""
        out = []
        needle = str(self.dir).encode()
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():
                with contextlib.suppress(OSError):
                    if needle in Path(f"/proc/{d}/cmdline").read_bytes():
                        out.append(int(d))
        return out

    def destroy(self) -> None:
        """Stop everything of this daemon, unmount, remove the folder."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.terminate()  # a clean stop kills its containers
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.kill()
        for pid in self._our_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith(str(self.dir))), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def own_dockerd() -> Iterator[OwnDockerd]:
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        _unavailable("dockerd/docker are not installed")
    if os.geteuid() != 0:
        _unavailable("starting dockerd needs root")
    from swarmgym.toolsets.sandbox.image import default_image

    image = default_image()
    main = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True)
    if main.returncode != 0:
        _unavailable(f"the sandbox image {image} is not built (python -m swarmgym.toolsets.sandbox.image build)")
    # the storage driver the machine's daemon uses is the one known to work here (overlay2 may not nest)
    driver = subprocess.run(["docker", "info", "--format", "{{.Driver}}"], capture_output=True, text=True)
    d = OwnDockerd(driver.stdout.strip() or "vfs")
    try:
        try:
            d.start()
        except RuntimeError as e:
            _unavailable(str(e))
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(["docker", "-H", d.host, "load"], stdin=save.stdout, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert save.stdout is not None
        save.stdout.close()
        assert save.wait(60) == 0 and load.returncode == 0, load.stderr
        yield d
    finally:
        d.destroy()


def _keys(path: Path) -> Counter[tuple[str, int]]:
    trajs = read_trajectories(path, top_level_only=True)
    return Counter((t.task_id, t.sample_index) for t in trajs if t.status != "cancelled")


def test_a_wedged_then_restarted_daemon_fails_fast_loses_nothing_and_resume_completes(
    own_dockerd: OwnDockerd, tmp_path: Path
) -> None:
    d = own_dockerd
    out = tmp_path / "run.jsonl"
    state = tmp_path / "state"
    env = {**os.environ, "DOCKER_HOST": d.host, "SWARMGYM_STATE_DIR": str(state),
           "SWARMGYM_DOCKER_DEADLINE_S": "5"}  # fmt: skip
    n = 400  # enough that the run cannot finish before the wedge (120 once did, on a quiet machine)
    args = ["run", "swarmgym/PythonMath-v0", "--policy", "oracle", "-n", str(n), "--concurrency", "4",
            "--env-arg", "backend=docker", "--env-arg", "pool_size=4", "--env-arg", "python_timeout_s=5",
            "--out", str(out), "--no-live"]  # fmt: skip
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=tmp_path)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # progress, not a fixed sleep: wait for finished episodes on disk
            if out.exists() and sum(_keys(out).values()) >= 8:
                break
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        ok_before = {
            (t.task_id, t.sample_index) for t in read_trajectories(out, top_level_only=True) if t.status == "ok"
        }
        d.signal(signal.SIGSTOP)  # wedged: the socket still accepts, nothing answers
        t0 = time.monotonic()
        # without the gate this never returns (every thread waits on the daemon); with it the run ends on its
        # own: deadlines of 5 s, then fail-fast. The bound is generous: a hang, not speed, is what fails here.
        stdout, err = proc.communicate(timeout=400)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    why = f"exit {proc.returncode} after {took:.0f} s\n{stdout[-2000:]}\n{err[-3000:]}"
    assert "Traceback" not in err, why
    if proc.returncode != 0:  # the breaker stopped the run (or not, when too few episodes were left): named
        assert f"Docker daemon at {d.host}" in err, why
    stored = list(read_trajectories(out, top_level_only=True))
    errors = [t.error or "" for t in stored if t.status == "error"]
    assert errors and any(f"Docker daemon at {d.host} is not answering" in e for e in errors), errors[:5]
    # every error is about the daemon or a sandbox it wedged, nothing unnamed
    assert all("Docker daemon" in e or "sandbox" in e.lower() for e in errors), Counter(e[:120] for e in errors)
    keys = _keys(out)
    assert max(keys.values()) == 1 and ok_before <= set(keys)  # nothing finished lost, nothing twice
    recorded = (state / "unremoved-containers.txt").read_text().split()
    assert recorded, "containers the run could not remove must be recorded for gc"

    # restart the daemon as `systemctl restart docker` would: a graceful stop (SIGTERM; the stopped daemon is
    # continued first so that it can take it), then a fresh start. (A kill -9 instead left its containerd
    # wedged on this machine and the next dockerd could not start it: see the note in ``kill``.)
    d.signal(signal.SIGCONT)
    d.stop()
    t_restart = time.monotonic()
    d.start()
    restart_s = time.monotonic() - t_restart
    r = subprocess.run([*CLI, *args, "--resume"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    after = _keys(out)
    assert len(after) == n and max(after.values()) == 1 and set(keys) <= set(after)
    ok_after = {(t.task_id, t.sample_index) for t in read_trajectories(out, top_level_only=True) if t.status == "ok"}
    assert ok_before <= ok_after

    # the containers of the wedged run are still on the daemon; gc removes them (and the record)
    left = d.docker("ps", "-aq", "--filter", "label=swarmgym.owner").stdout.split()
    gc = subprocess.run([*CLI, "sandbox", "gc"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert gc.returncode == 0, gc.stderr[-2000:]
    assert d.docker("ps", "-aq", "--filter", "label=swarmgym.owner").stdout.split() == []
    assert not (state / "unremoved-containers.txt").exists()
    print(json.dumps({"exit_after_wedge_s": round(took, 1), "errors": len(errors), "recorded": len(recorded),
                      "left_before_gc": len(left), "restart_s": round(restart_s, 1)}))  # fmt: skip
