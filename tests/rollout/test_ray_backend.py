"""``RolloutManager(backend="ray")`` on a real local Ray instance (started here, two worker processes)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from swarmgym.envs.core import AgentEnv
from swarmgym.envs.registry import make, register
from swarmgym.errors import ConfigError
from swarmgym.policies import OraclePolicy
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager, Spec, TrajectoryStore, read_trajectories

from swarmgym.wire import Task

from ray_helpers import ENTRY, ENV_ID, POLICY, max_overlap

pytestmark = pytest.mark.anyio

if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
    import ray  # CI installs the ray extra (.ci/install-ray.sh): missing is a failure there
else:
    ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'swarmgym[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    register(ENV_ID, ENTRY, override=True)  # at runtime, as a user would: the workers learn it from the driver
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


def _top(trajs):
    return sorted((t.task_id, t.sample_index, t.group_id, t.status, t.final_text, t.reward) for t in trajs)


def _children(store):
    by_id = {t.id: t for t in store}
    return sorted((by_id[t.parent_id].task_id, by_id[t.parent_id].sample_index, t.task_id, t.final_text)
                  for t in store if t.parent_id)  # fmt: skip


async def test_seeded_run_equals_the_in_process_backend(local_ray) -> None:
    results = {}
    for backend in ("local", "ray"):
        store = MemoryStore()
        mgr = RolloutManager(Spec(POLICY), RolloutLimits(max_episodes=6), store=store, backend=backend, ray_workers=2)
        trajs = await mgr.run(ENV_ID, 6, group_size=2, seed=7)
        results[backend] = (_top(trajs), _children(store.trajectories), len(store.trajectories))
        if backend == "ray":
            infos = await mgr._ray.infos()
            assert len({i["pid"] for i in infos}) == 2 and os.getpid() not in {i["pid"] for i in infos}
            here = Path(__file__).resolve().parents[2]
            assert all(Path(i["swarmgym"]).resolve().parent == here for i in infos)  # this checkout's code
            mgr._ray.shutdown()
    local, remote = results["local"], results["ray"]
    assert len(local[0]) == 12 and len(local[1]) == 12 and local[2] == 24
    assert len({r[4].split(":")[0] for r in local[0]}) > 6  # the answers really depend on the seeds
    assert remote == local


async def test_a_worker_killed_mid_run_loses_nothing_and_stores_nothing_twice(local_ray, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    store = TrajectoryStore(path)
    mgr = RolloutManager(
        Spec(POLICY, latency=0.25, tag_pid=True), RolloutLimits(max_episodes=8), store=store, backend="ray",
        ray_workers=2,
    )  # fmt: skip
    killed = None
    got = []
    async with aclosing(mgr.stream(ENV_ID, 24, seed=1)) as s:
        async for t in s:
            got.append(t)
            if killed is None and len(got) == 2:
                killed = (await mgr._ray.infos())[0]["pid"]
                os.kill(killed, signal.SIGKILL)
    store.close()
    assert killed is not None and mgr.metrics.counters["episodes_rerun"] >= 1  # the kill hit episodes in flight
    assert sorted(t.task_id for t in got) == sorted(f"q{i % 8}" for i in range(24)) and len(got) == 24
    stored = list(read_trajectories(path))
    tops = [t for t in stored if t.parent_id is None]
    kids = [t for t in stored if t.parent_id is not None]
    assert sorted((t.task_id, t.sample_index) for t in tops) == sorted((t.task_id, t.sample_index) for t in got)
    assert len({(t.task_id, t.sample_index) for t in tops}) == 24 and all(t.status == "ok" for t in tops)
    assert sorted(k.parent_id for k in kids) == sorted(t.id for t in tops)  # one child each, of a stored parent
    # the store after the run: resuming it reruns nothing
    again = TrajectoryStore(path, resume=True)
    mgr2 = RolloutManager(Spec(POLICY), store=again, backend="ray", ray_workers=2)
    assert await mgr2.run(ENV_ID, 24, seed=1) == []
    again.close()
    assert mgr2.metrics.counters["skipped_done"] == 24 and len(list(read_trajectories(path))) == len(stored)
    mgr._ray.shutdown()
    mgr2._ray.shutdown()


async def test_the_model_call_limit_holds_across_the_cluster(local_ray, tmp_path: Path) -> None:
    log = str(tmp_path / "calls.log")
    limits = RolloutLimits(max_episodes=8, max_model_calls=3)  # split evenly, 2 workers would get 1 each
    mgr = RolloutManager(Spec(POLICY, latency=0.1, log=log), limits, backend="ray", ray_workers=2)
    trajs = await mgr.run(ENV_ID, 16, seed=3)
    # releases are fire-and-forget messages from the workers: the last ones may reach the limiter after the
    # run returned, so wait (bounded) until every slot is back — a leaked slot never comes back
    for _ in range(100):
        stats = await mgr._ray.limiter.stats.remote()
        if stats["in_use"] == {"*": 0}:
            break
        await anyio.sleep(0.1)
    pids = {i["pid"] for i in await mgr._ray.infos()}
    mgr._ray.shutdown()
    assert len(trajs) == 16 and all(t.status == "ok" for t in trajs)
    assert len({t.final_text.rsplit(":", 1)[-1] for t in trajs}) >= 1 and len(pids) == 2
    # 16 episodes x 3 calls (turn, child, answer), timed by the policy itself in the worker processes
    assert len(Path(log).read_text().splitlines()) == 48 and stats["granted"] == 48 and stats["in_use"] == {"*": 0}
    assert max_overlap(log) <= 3  # never more than the limit at once, whichever worker made the calls
    assert stats["peak"] == {"*": 3}  # and the whole limit was used (not a per-worker share)


async def test_pause_reaches_worker_episodes_and_resume_brings_the_new_policy(local_ray, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    mgr = RolloutManager(
        Spec(POLICY, latency=1.0, log=str(log)), RolloutLimits(max_episodes=4), backend="ray", ray_workers=2
    )  # fmt: skip
    times = {}

    async def pause_after_the_first_call() -> None:
        # the first call just ended: its episode's child call is under way and its last call still to come
        while not (log.exists() and log.read_text().strip()):
            await anyio.sleep(0.01)
        mgr.pause()
        # wait until every worker has applied the pause (the same state again: idempotent)
        await asyncio.gather(*[a.set_state.remote(mgr._ray.state) for a in mgr._ray.actors])
        times["acked"] = time.time()
        await anyio.sleep(1.5)  # room for a call that ignores the pause to show up in the log
        times["resumed"] = time.time()
        mgr.resume(policy=Spec(POLICY, latency=1.0, log=str(log)))

    async with anyio.create_task_group() as tg:
        tg.start_soon(pause_after_the_first_call)
        got = await mgr.run(ENV_ID, 8, seed=5)
    acked, resumed = times["acked"], times["resumed"]
    mgr._ray.shutdown()
    starts = [float(line.split()[0]) for line in log.read_text().splitlines()]
    assert not [t for t in starts if acked < t < resumed]  # no model call started on any worker while paused
    assert len(got) == 8 and all(t.status == "ok" for t in got)
    versions = [[c.policy_version for c in t.completions] for t in got]
    assert all(v == sorted(v) for v in versions)
    assert any(0 in v and 1 in v for v in versions)  # paused mid-episode on a worker, went on with version 1


async def test_a_cancelled_run_stores_worker_partials_and_resume_reruns_only_those(local_ray, tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    store = TrajectoryStore(path)
    mgr = RolloutManager(Spec(POLICY, latency=0.2), RolloutLimits(max_episodes=4), store=store, backend="ray",
                         ray_workers=2)  # fmt: skip
    async with aclosing(mgr.stream(ENV_ID, 12, seed=2)) as s:
        async for _ in s:
            break  # the consumer stops: the run is cancelled with episodes in flight on the workers
    store.close()
    mgr._ray.shutdown()  # frees its CPUs for the next manager's workers
    stored = list(read_trajectories(path))
    tops = [t for t in stored if t.parent_id is None]
    done = {(t.task_id, t.sample_index) for t in tops if t.status == "ok"}
    cancelled = [t for t in tops if t.status == "cancelled"]
    assert done and cancelled and not {(t.task_id, t.sample_index) for t in cancelled} & done
    ids = {t.id for t in stored}
    assert all(t.parent_id in ids for t in stored if t.parent_id)  # children of stored parents only
    assert all(set(t.children) <= ids for t in tops)  # and every child a stopped episode started is stored
    again = TrajectoryStore(path, resume=True)
    mgr2 = RolloutManager(Spec(POLICY), store=again, backend="ray", ray_workers=2)
    rest = await mgr2.run(ENV_ID, 12, seed=2)
    again.close()
    mgr2._ray.shutdown()
    assert mgr2.metrics.counters["skipped_done"] == len(done) and len(rest) == 12 - len(done)
    final = [t for t in read_trajectories(path) if t.parent_id is None and t.status == "ok"]
    assert sorted((t.task_id, t.sample_index) for t in final) == sorted((f"q{i % 8}", i // 8) for i in range(12))


async def test_recursion_across_workers_never_deadlocks(local_ray) -> None:
    store = MemoryStore()
    # two episode slots for three levels of children per episode: without lending (in-process) and children
    # that never wait for a slot on the worker they are sent to, this would deadlock
    mgr = RolloutManager(Spec(POLICY, latency=0.05, tag_pid=True, deep=3), RolloutLimits(max_episodes=2),
                         store=store, backend="ray", ray_workers=2, ray_spawn="spread")  # fmt: skip
    trajs = await mgr.run(ENV_ID, 6, seed=4)
    mgr._ray.shutdown()
    assert len(trajs) == 6 and all(t.status == "ok" for t in trajs)
    by_id = {t.id: t for t in store.trajectories}
    assert len(by_id) == 24 and all(t.status == "ok" for t in by_id.values())

    def pid(t):
        return t.final_text.rsplit(":", 1)[-1]

    for top in trajs:  # each a chain top -> child -> grandchild -> great-grandchild, linked both ways
        chain, t = [top], top
        while t.children:
            (cid,) = t.children
            assert by_id[cid].parent_id == t.id
            t = by_id[cid]
            chain.append(t)
        assert [c.task_id for c in chain] == [top.task_id + "/ask" * d for d in range(4)]
    edges = [(pid(by_id[t.parent_id]), pid(t)) for t in by_id.values() if t.parent_id]
    assert len(edges) == 18 and all(a != b for a, b in edges)  # with 2 workers: each child on the other one
    assert mgr.metrics.counters["children_remote"] == 18


async def test_a_worker_keeps_its_policies_across_runs_and_closes_every_one() -> None:
    """Every run re-sends the policies; a worker that rebuilt them each time leaked an HTTP session per run
    ("Unclosed client session" at shutdown). In-process (the actor class itself), against a fake server process."""
    from swarmgym.policies.base import PolicyRouter
    from swarmgym.rollout.ray_backend import EpisodeWorker
    from swarmgym.rollout.specs import env_spec, router_spec
    from swarmgym.testing import start_fake_server_process
    from swarmgym.wire import SamplingParams

    with start_fake_server_process(default_text="\\boxed{0}", models=("fake-model", "other")) as srv:

        def spec(model):
            return router_spec(PolicyRouter.of(Spec("swarmgym.policies.openai_http:OpenAIPolicy",
                                                    base_url=srv.base_url, model=model)))  # fmt: skip

        env = make("swarmgym/Math-v0")
        w = EpisodeWorker({"env": env_spec(env), "router": spec("fake-model"), "limits": RolloutLimits(),
                           "sampling": SamplingParams()})  # fmt: skip
        sessions = []
        for epoch, model in ((1, "fake-model"), (2, "fake-model"), (3, "other")):  # runs 1, 2 same policies
            state = {"epoch": epoch, "router": spec(model), "version": 0, "judge_step": 0, "paused": False}
            traj, _, _ = await w.episode(env.tasks[0], None, 0, epoch, state, epoch)
            assert traj.status == "ok"
            sessions.append(w.run.mgr._router.get("main")._obj._client._session)
        assert sessions[0] is sessions[1] and sessions[2] is not sessions[0]  # rebuilt only when changed
        await w.aclose()
        assert sessions[0].closed and sessions[2].closed


async def test_what_cannot_be_sent_is_named(local_ray) -> None:
    with pytest.raises(ConfigError, match=r"policy of role 'main' \(OraclePolicy\).*Spec\('swarmgym.policies"):
        RolloutManager(OraclePolicy(), backend="ray")
    with pytest.raises(ConfigError, match=r"keyword arguments\['fn'\] is a builtins.function"):
        Spec(POLICY, fn=lambda: 1)
    mgr = RolloutManager(Spec(POLICY), backend="ray")
    with pytest.raises(ConfigError, match="cannot send env AgentEnv.*not made from an id"):
        await mgr.run(AgentEnv([Task(id="a", prompt="x")]), 1)
    with pytest.raises(ConfigError, match=r"env 'raytest/Seeded-v0' arguments\['note'\] is a builtins.object"):
        await mgr.run(make(ENV_ID, note=object()), 1)


def test_cli_run_on_ray_against_a_fake_server_process(local_ray, tmp_path: Path, capsys) -> None:
    import argparse
    import json

    from swarmgym.rollout.cli import add_run_arguments, run_command
    from swarmgym.testing import start_fake_server_process

    p = argparse.ArgumentParser()
    add_run_arguments(p)
    out = tmp_path / "cli.jsonl"
    argv = [
        "swarmgym/Math-v0",
        "-n",
        "6",
        "--group-size",
        "2",
        "--ray",
        "auto",
        "--ray-workers",
        "2",
        "--ray-spawn",
        "spread",
        "--json",
    ]
    with start_fake_server_process(default_text="\\boxed{0}") as srv:
        assert run_command(p.parse_args([*argv, "--policy", srv.base_url, "--out", str(out)])) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["counters"]["status_ok"] == 12 and s["counters"]["model_calls"] == 12  # counted on the workers
    stored = list(read_trajectories(out))
    assert len(stored) == 12 and {t.messages[-1].text for t in stored} == {"\\boxed{0}"}


def _session_pids(sid: int) -> list[int]:
    """Processes still in session ``sid`` (what a killed driver left behind: its local Ray instance)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == sid:
                    out.append(int(d.name))
            except OSError:
                pass
    return out


def test_the_store_after_a_driver_kill_resumes_with_none_lost_or_twice(tmp_path: Path) -> None:
    import subprocess
    import sys

    from swarmgym.testing import start_fake_server_process

    out = tmp_path / "run.jsonl"
    with start_fake_server_process(default_text="\\boxed{0}", latency=0.1) as srv:
        argv = [sys.executable, "-m", "swarmgym.cli", "run", "swarmgym/Math-v0", "--policy", srv.base_url, "-n", "40",
                "--concurrency", "4", "--out", str(out), "--ray", "local", "--ray-workers", "2", "--no-live"]  # fmt: skip
        proc = subprocess.Popen(
            argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )  # its own session: whatever it starts can be found
        try:
            deadline = time.monotonic() + 240
            while not (out.exists() and len(out.read_bytes().splitlines()) >= 6):
                assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
                assert time.monotonic() < deadline, "the Ray run stored nothing in 240 s"
                time.sleep(0.1)
            os.kill(proc.pid, signal.SIGKILL)  # the driver only: its workers are lost with it
            proc.wait()
        finally:
            for pid in _session_pids(proc.pid):  # the driver's own Ray instance (raylet, GCS, workers)
                os.kill(pid, signal.SIGKILL)
            proc.stdout.close()
        before = list(read_trajectories(out))
        assert 0 < len(before) < 40
        done = subprocess.run(
            [*argv, "--resume"], cwd=tmp_path, capture_output=True, timeout=600, start_new_session=True
        )
        assert done.returncode == 0, done.stdout.decode()[-3000:] + done.stderr.decode()[-3000:]
    after = list(read_trajectories(out))
    assert after[: len(before)] == before  # resume appended; it never rewrote what the killed driver stored
    keys = [(t.task_id, t.sample_index) for t in after if t.parent_id is None and t.status == "ok"]
    assert len(keys) == 40 and len(set(keys)) == 40  # none lost, none stored twice


_TWO_NODE_DRIVER = """
import json, sys, time
import anyio, ray
from swarmgym.envs.registry import register
from swarmgym.rollout import MemoryStore, RolloutLimits, RolloutManager, Spec
from swarmgym.tests.rollout.ray_helpers import ENTRY, ENV_ID, POLICY

register(ENV_ID, ENTRY, override=True)
ray.init(address=sys.argv[1], logging_level="ERROR")
deadline = time.monotonic() + 180
while sum(n["Alive"] for n in ray.nodes()) < 2:
    assert time.monotonic() < deadline, "the second node never joined"
    time.sleep(0.5)

async def main():
    store = MemoryStore()
    mgr = RolloutManager(Spec(POLICY, tag_pid=True), RolloutLimits(max_episodes=4), store=store, backend="ray",
                         ray_workers=2, ray_spawn="spread")
    trajs = await mgr.run(ENV_ID, 8, seed=1)
    infos = await mgr._ray.infos()
    mgr._ray.shutdown()
    print(json.dumps({"ok": sum(t.status == "ok" for t in trajs), "stored": len(store.trajectories),
                      "nodes": [i["node"] for i in infos]}))

anyio.run(main)
"""


def test_a_second_node_started_with_ray_start(tmp_path: Path) -> None:
    import json
    import shutil
    import socket
    import subprocess
    import sys
    import tempfile

    ray_bin = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    assert ray_bin, "the ray extra installs the `ray` command"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # a short temp dir of our own (socket paths have a length limit; nothing lands in /tmp/ray), and no token
    # auth for this throwaway two-node cluster on one machine
    temp = tempfile.mkdtemp(prefix="sgray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    common = ["--num-cpus", "1", "--temp-dir", temp, "--block", "--disable-usage-stats"]
    procs = []
    logs = [(tmp_path / "head.log").open("w"), (tmp_path / "node.log").open("w")]
    try:
        head_log = tmp_path / "head.log"
        procs.append(subprocess.Popen(
            [ray_bin, "start", "--head", "--port", str(port), "--include-dashboard", "false", *common],
            env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in head_log.read_text():
            assert procs[0].poll() is None and time.monotonic() < deadline, head_log.read_text()[-3000:]
            time.sleep(0.2)
        address = head_log.read_text().split("ray start --address='", 1)[1].split("'", 1)[0]
        procs.append(subprocess.Popen(
            [ray_bin, "start", "--address", address, *common], env=env, stdout=logs[1],
            stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
        script = tmp_path / "driver.py"
        script.write_text(_TWO_NODE_DRIVER)
        done = subprocess.run([sys.executable, str(script), address], env=env, cwd=tmp_path, capture_output=True,
                              timeout=400)  # fmt: skip
        assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-3000:]
        res = json.loads(done.stdout.decode().strip().splitlines()[-1])
        assert res["ok"] == 8 and res["stored"] == 16
        assert len(set(res["nodes"])) == 2  # one worker on each node
    finally:
        for p in procs:  # `ray start --block` stops its node's processes on SIGTERM; then whatever is left
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            for pid in _session_pids(p.pid):
                os.kill(pid, signal.SIGKILL)
        for f in logs:
            f.close()
        shutil.rmtree(temp, ignore_errors=True)
