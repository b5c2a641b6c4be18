"""Judge outcomes are explicit: failures, timeouts, sys.exit, deadlines while judging, off-loop judges,
metrics, the breaker, ``swarmgym show``, and the training step every judge sees."""

from __future__ import annotations

import time

import anyio
import pytest
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.errors import RolloutError
from swarmgym.judges.base import JudgeContext, Weighted, safe_score
from swarmgym.loop import run_episode
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.rollout.limits import RolloutLimits
from swarmgym.rollout.manager import RolloutManager
from swarmgym.testing import FaultyJudge
from swarmgym.wire import JudgeResult, Task, Trajectory

TASK = Task(id="t0", prompt="answer", answer="42")


async def _episode(judge: object, limits: EpisodeLimits | None = None, **kw: object) -> Trajectory:
    env = AgentEnv([TASK], judge=judge, limits=limits, **kw)  # type: ignore[arg-type]
    return await run_episode(env, ScriptedPolicy(["42"]), TASK)


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["raise", "exit", "nan"])
@pytest.mark.parametrize("judge_timeout", [None, 5.0])
async def test_a_failing_judge_is_flagged_and_not_trainable(fault: str, judge_timeout: float | None) -> None:
    t = await _episode(FaultyJudge(fault), EpisodeLimits(judge_timeout_s=judge_timeout))  # type: ignore[arg-type]
    assert t.status == "ok" and t.judge is not None
    assert t.judge.outcome == "error" and t.judge.facets == {"judge_error": 1.0}
    assert t.trainable is False and t.reward == 0.0
    assert {"raise": "the judge broke", "exit": "SystemExit", "nan": "non-finite"}[fault] in t.judge.info["judge_error"]


@pytest.mark.anyio
async def test_train_on_judge_failure_keeps_it_trainable() -> None:
    t = await _episode(FaultyJudge("raise"), train_on_judge_failure=True)
    assert t.judge is not None and t.judge.outcome == "error" and t.trainable is True


@pytest.mark.anyio
async def test_a_good_judge_is_ok_and_trainable() -> None:
    t = await _episode(FaultyJudge("none"))
    assert t.judge is not None and t.judge.outcome == "ok" and t.trainable and t.reward == 1.0
    assert t.metrics["judge_time_s"] >= 0


@pytest.mark.anyio
async def test_judge_timeout_is_a_timeout() -> None:
    class Slow:
        async def score(self, task: Task, traj: Trajectory, ctx: JudgeContext) -> JudgeResult:
            await anyio.sleep(30)
            return JudgeResult(reward=1.0)

    t0 = time.monotonic()
    t = await _episode(Slow(), EpisodeLimits(judge_timeout_s=0.2))
    assert time.monotonic() - t0 < 10
    assert t.judge is not None and t.judge.outcome == "timeout" and "judge_timeout" in t.judge.facets
    assert t.trainable is False


@pytest.mark.anyio
async def test_deadline_while_judging_is_never_ok() -> None:
    class Slow:
        async def score(self, task: Task, traj: Trajectory, ctx: JudgeContext) -> JudgeResult:
            await anyio.sleep(30)
            return JudgeResult(reward=1.0)

    t = await _episode(Slow(), EpisodeLimits(episode_timeout_s=0.3))
    assert t.status == "truncated" and "while judging" in (t.error or "")
    assert t.judge is not None and t.judge.outcome == "timeout" and t.reward == 0.0 and t.trainable is False


@pytest.mark.anyio
async def test_cancelling_a_run_while_judging_is_cancelled_not_ok() -> None:
    class Slow:
        async def score(self, task: Task, traj: Trajectory, ctx: JudgeContext) -> JudgeResult:
            await anyio.sleep(30)
            return JudgeResult(reward=1.0)

    env = AgentEnv([TASK], judge=Slow())
    with anyio.move_on_after(0.3):
        await run_episode(env, ScriptedPolicy(["42"]), TASK, fork=False)
    assert env.trajectory is not None and env.trajectory.status == "cancelled"


@pytest.mark.anyio
async def test_thread_offloaded_judge_leaves_the_loop_free_and_times_out() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        t = await _episode(FaultyJudge("sleep", seconds=0.5, offload="thread"))
        tg.cancel_scope.cancel()
    assert t.judge is not None and t.judge.outcome == "ok" and t.reward == 1.0
    assert ticks >= 10  # a judge blocking on the loop for 0.5 s would leave ~0 ticks
    t0 = time.monotonic()
    t = await _episode(FaultyJudge("sleep", seconds=5, offload="thread", offload_timeout_s=0.2))
    assert time.monotonic() - t0 < 3
    assert t.judge is not None and t.judge.outcome == "timeout"


@pytest.mark.anyio
async def test_process_offloaded_judge_is_killed_at_its_timeout() -> None:

    from swarmgym.judges.offload import _pool

    def alive(pid: int) -> bool:  # not a zombie: /proc/<pid>/stat's state field
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    ok = await _episode(FaultyJudge("none", offload="process"))
    assert ok.judge is not None and ok.judge.outcome == "ok" and ok.reward == 1.0
    workers = [w.proc.pid for w in _pool().idle]
    assert workers
    t0 = time.monotonic()
    spun = await _episode(FaultyJudge("spin", seconds=60, offload="process", offload_timeout_s=0.5))
    assert time.monotonic() - t0 < 10
    assert spun.judge is not None and spun.judge.outcome == "timeout"
    await anyio.sleep(0.2)
    assert not any(alive(p) for p in workers)
    exited = await _episode(FaultyJudge("exit", offload="process"))  # sys.exit in the worker is contained
    assert exited.judge is not None and exited.judge.outcome == "error" and "SystemExit" in exited.judge.info["judge_error"]


@pytest.mark.anyio
async def test_real_math_judge_runs_in_a_process() -> None:
    from swarmgym.judges.math_answer import MathJudge

    j = MathJudge()
    assert getattr(j, "offload", None) == "process"
    t = Task(id="m", prompt="q", answer="x^2+2x+1")
    traj = Trajectory(messages=[{"role": "assistant", "content": "\\boxed{(x+1)^2}"}])  # type: ignore[list-item]
    r = await safe_score(j, t, traj, JudgeContext())
    assert r.outcome == "ok" and r.reward == 1.0


@pytest.mark.anyio
async def test_weighted_carries_the_worst_outcome() -> None:
    r = await safe_score(Weighted([(FaultyJudge("none"), 1.0), (FaultyJudge("raise"), 1.0)]), TASK, Trajectory(),
                         JudgeContext())
    assert r.outcome == "error" and r.reward == 1.0


@pytest.mark.anyio
async def test_manager_counts_judge_failures_and_the_breaker_trips() -> None:
    env = AgentEnv([Task(id=f"t{i}", prompt="q") for i in range(40)], judge=FaultyJudge("raise"))
    mgr = RolloutManager(ScriptedPolicy(["a"], cycle=True), RolloutLimits(breaker_error_rate=0.5, breaker_min_episodes=10))
    with pytest.raises(RolloutError, match="judge error"):
        await mgr.run(env, 40)
    c = mgr.metrics.counters
    assert c["judge_error"] >= 10 and c["breaker_trips"] == 1
    ok = RolloutManager(ScriptedPolicy(["a"], cycle=True), RolloutLimits(breaker_error_rate=0.5, breaker_min_episodes=10))
    trajs = await ok.run(AgentEnv([Task(id="t", prompt="q")], judge=FaultyJudge("none")), 20)
    assert len(trajs) == 20 and ok.metrics.counters["judge_error"] == 0


@pytest.mark.anyio
async def test_group_judge_failure_is_counted_and_untrainable() -> None:
    env = AgentEnv([Task(id="t", prompt="q")], judge=FaultyJudge("none"))
    mgr = RolloutManager(ScriptedPolicy(["a"], cycle=True), RolloutLimits(breaker_error_rate=None),
                         group_judge=FaultyJudge("raise"))
    trajs = await mgr.run(env, 1, group_size=3)
    assert all(t.judge is not None and t.judge.outcome == "error" and not t.trainable for t in trajs)
    assert mgr.metrics.counters["judge_error"] == 3


@pytest.mark.anyio
async def test_every_judge_sees_the_trainers_step() -> None:
    episode_judge = FaultyJudge("none")
    group_judge = FaultyJudge("none")
    env = AgentEnv([Task(id="t", prompt="q")], judge=episode_judge)
    mgr = RolloutManager(ScriptedPolicy(["a"], cycle=True), judge_step=3, group_judge=group_judge)
    await mgr.run(env, 1, group_size=2)
    mgr.set_judge_step(7)
    await mgr.run(env, 1, group_size=2)
    mgr.pause()
    mgr.resume(step=11)
    await mgr.run(env, 1)
    assert episode_judge.steps == [3, 3, 7, 7, 11]
    assert group_judge.steps[:4] == [3, 3, 7, 7]
    with pytest.raises(Exception, match="int >= 0"):
        mgr.set_judge_step(-1)


@pytest.mark.anyio
async def test_step_is_read_when_the_judge_runs() -> None:
    # an episode that started at step 1 and is judged after the trainer moved on sees the new step
    gate = anyio.Event()
    judge = FaultyJudge("none")

    async def script(messages, tools, ctx):  # type: ignore[no-untyped-def]
        await gate.wait()
        return "a"

    mgr = RolloutManager(ScriptedPolicy(script), judge_step=1)
    env = AgentEnv([Task(id="t", prompt="q")], judge=judge)
    async with anyio.create_task_group() as tg:
        tg.start_soon(mgr.run, env, 1)
        await anyio.sleep(0.1)
        mgr.set_judge_step(2)
        gate.set()
    assert judge.steps == [2]


def test_show_reports_judge_failures(tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from swarmgym.cli import main
    from swarmgym.rollout.store import TrajectoryStore

    target = os.path.join(str(tmp_path), "run.jsonl")
    trajs = [anyio.run(_episode, FaultyJudge("raise")), anyio.run(_episode, FaultyJudge("none"))]
    with TrajectoryStore(target) as store:
        for t in trajs:
            store.append(t)
    assert main(["show", target]) == 0
    out = capsys.readouterr().out
    assert "judge error" in out and "not trainable" in out
    assert main(["show", target, "--index", "0"]) == 0
    assert "judge=error" in capsys.readouterr().out


def test_process_offload_does_not_rerun_an_unguarded_main_script(tmp_path: object) -> None:
    # multiprocessing's spawn/forkserver children re-import __main__: a training script without a
    # ``if __name__ == "__main__"`` guard would run again inside every judge worker
    import os
    import subprocess
    import sys

    d = str(tmp_path)
    script = os.path.join(d, "train.py")
    with open(script, "w") as f:
        f.write(
            "import anyio, os\n"
            "from swarmgym.judges.base import JudgeContext, safe_score\n"
            "from swarmgym.testing import FaultyJudge\n"
            "from swarmgym.wire import Task, Trajectory\n"
            f"open({os.path.join(d, 'runs.txt')!r}, 'a').write('ran\\n')\n"
            "r = anyio.run(safe_score, FaultyJudge('none', offload='process'), Task(id='t', prompt='q'),"
            " Trajectory(), JudgeContext())\n"
            "print(r.outcome, r.reward)\n"
        )
    out = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "ok 1.0", out.stderr
    with open(os.path.join(d, "runs.txt")) as f:
        assert f.read() == "ran\n"
