"""BlackBoxEnv with real agent programs (the official ``openai`` client, curl, plain shell) as subprocesses,
through a real gateway in front of the fake server: recording, judging, failure statuses, no cross-talk."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from swarmgym import make
from swarmgym.envs.agents import agent_path
from swarmgym.envs.blackbox import BlackBoxEnv
from swarmgym.errors import ConfigError
from swarmgym.judges.rules import ExactMatch
from swarmgym.loop import run_episode
from swarmgym.policies import OpenAIPolicy
from swarmgym.rollout import RolloutLimits, RolloutManager
from swarmgym.testing import FakeOpenAIServer, Reply
from swarmgym.testing import toy_tokenizer as tok
from swarmgym.wire import SamplingParams, Task

pytestmark = pytest.mark.anyio

OPENAI_AGENT = [sys.executable, agent_path("openai_tools_agent.py")]
CURL_AGENT = ["/bin/sh", agent_path("curl_agent.sh")]
_NUM_EXPR = re.compile(r"-?\d+(?:\s*[-+*/]\s*-?\d+)+")


def calculator_model(req: dict[str, Any]) -> Reply | str:
    """A scripted model: first call the agent's calculator on the task's expression, then box its result."""
    if "messages" in req:  # chat mode
        msgs = req["messages"]
        results = [m["content"] for m in msgs if m["role"] == "tool"]
        user = next(m["content"] for m in reversed(msgs) if m["role"] == "user")
    else:  # token mode: the rendered conversation's ids
        text = tok.decode(req["prompt"])
        results = re.findall(r"<\|im_start\|>tool\n(.*?)<\|im_end\|>", text, re.S)
        user = re.findall(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", text, re.S)[-1]
    if not results:
        return Reply.tool("calculator", {"expression": _NUM_EXPR.search(user).group(0)}, content="Let me compute.")
    return f"The answer is \\boxed{{{results[-1]}}}."


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer(responder=calculator_model) as srv:
        yield srv


@pytest.fixture
async def policy(upstream: FakeOpenAIServer) -> AsyncIterator[OpenAIPolicy]:
    async with OpenAIPolicy(upstream.base_url, "fake-model", max_retries=0) as pol:
        yield pol


def env_of(command: Any, **kw: Any) -> BlackBoxEnv:
    kw.setdefault("judge", ExactMatch())
    kw.setdefault("timeout_s", 60)
    return BlackBoxEnv([], command, model="fake-model", **kw)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_openai_client_agent_with_tool_calls_is_recorded_and_judged(
    policy: OpenAIPolicy, upstream: FakeOpenAIServer, stream: bool
) -> None:
    cmd = [*OPENAI_AGENT, "--stream"] if stream else OPENAI_AGENT
    env = env_of(cmd)
    traj = await run_episode(env, policy, Task(id="add", prompt="Calculate 1515 * 61 - 17.", answer="92398"))
    assert traj.status == "ok", traj.error
    assert traj.reward == 1.0 and traj.judge is not None and traj.judge.outcome == "ok"
    # two model calls: the tool call, then the answer built from the agent's own calculator result
    assert len(traj.completions) == 2 and traj.metrics["calls"] == 2.0
    assert [m.role for m in traj.messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert traj.messages[2].tool_calls[0].name == "calculator"
    assert traj.messages[3].content == "92398"  # computed by the program, sent back through the gateway
    assert [t.name for t in traj.tools] == ["calculator"]
    # token ids and logprobs are the upstream's own (the fake server's toy tokenizer)
    last = traj.completions[1]
    assert last.token_exact and last.completion_ids == [*tok.encode("The answer is \\boxed{92398}."), tok.IM_END]
    assert len(last.logprobs or ()) == len(last.completion_ids)
    # the stored conversation is the model's; the judge read the program's stdout
    assert traj.info["program"]["exit_code"] == 0
    assert traj.info["program"]["stdout"].strip() == "The answer is \\boxed{92398}."
    assert "gateway_key" not in traj.info and traj.info["segments"] == [0]
    sent = [r.json for r in upstream.requests if r.path == "/v1/chat/completions"]
    assert len(sent) == 2 and sent[0]["tools"][0]["function"]["name"] == "calculator"


async def test_token_mode_upstream_gives_trainable_token_exact_rows(upstream: FakeOpenAIServer) -> None:
    from swarmgym.testing.toy_tokenizer import ToyChatTokenizer
    from swarmgym.training.export_trl import to_trl_rollout

    pol = OpenAIPolicy(upstream.base_url, "fake-model", mode="token", tokenizer=ToyChatTokenizer(), max_retries=0)
    async with pol:
        traj = await run_episode(env_of(OPENAI_AGENT), pol, Task(id="tm", prompt="Calculate 12 * 12.", answer="144"))
    assert traj.status == "ok" and traj.reward == 1.0, traj.error
    c1, c2 = traj.completions
    assert c1.token_exact and c2.token_exact
    # the second call's prompt extends the first call's prompt + sampled ids (then the tool turn follows)
    assert c2.prompt_ids[: len(c1.prompt_ids) + len(c1.completion_ids)] == [*c1.prompt_ids, *c1.completion_ids]
    rows = to_trl_rollout([traj])  # the trainer's exporter accepts it as one chained sample
    assert rows["prompt_ids"] == [c1.prompt_ids]
    assert sum(rows["env_mask"][0]) == len(c1.completion_ids) + len(c2.completion_ids)


async def test_curl_shell_agent(policy: OpenAIPolicy) -> None:
    env = env_of(CURL_AGENT)
    # the scripted model answers a curl call (no tools offered) with a tool call: the shell agent just
    # prints the content it got, which the judge then marks wrong; the episode itself is fine
    traj = await run_episode(env, policy, Task(id="c", prompt="Calculate 2 + 3.", answer="5"))
    assert traj.status == "ok", traj.error
    assert len(traj.completions) == 1 and traj.messages[-1].tool_calls
    assert traj.info["program"]["stdout"].strip() == "Let me compute."
    assert traj.reward == 0.0


async def test_curl_shell_agent_echo_scored(policy: OpenAIPolicy, upstream: FakeOpenAIServer) -> None:
    upstream.responder = None  # the fake server echoes the last user message
    env = env_of(CURL_AGENT)
    traj = await run_episode(env, policy, Task(id="e", prompt="\\boxed{tea \"time\"}\nsecond line", answer="tea \"time\""))
    assert traj.status == "ok", traj.error
    assert traj.reward == 1.0
    assert traj.messages[-1].content == "\\boxed{tea \"time\"}\nsecond line"
    assert traj.completions[0].completion_ids == [*tok.encode(traj.messages[-1].content), tok.IM_END]


async def test_curl_shell_agent_without_jq_uses_python(policy: OpenAIPolicy, upstream: FakeOpenAIServer,
                                                      tmp_path: Path) -> None:
    import shutil

    upstream.responder = None
    bin_dir = tmp_path / "bin"  # a PATH with what the agent needs, but no jq
    bin_dir.mkdir()
    for name in ("cat", "curl"):
        (bin_dir / name).symlink_to(shutil.which(name))
    (bin_dir / "python3").symlink_to(sys.executable)
    env = env_of(CURL_AGENT, env={"PATH": str(bin_dir)})
    traj = await run_episode(env, policy, Task(id="nj", prompt='\\boxed{"quoted" \\ back}', answer='"quoted" \\ back'))
    assert traj.status == "ok", traj.error
    assert traj.messages[-1].content == '\\boxed{"quoted" \\ back}' and traj.reward == 1.0


async def test_crashing_killed_and_missing_programs_are_error_episodes(policy: OpenAIPolicy) -> None:
    crash = await run_episode(env_of("echo 'Traceback: boom' >&2; exit 3"), policy, Task(id="x", prompt="p"))
    assert crash.status == "error" and crash.reward == 0.0 and crash.judge is None
    assert "exited with status 3" in crash.error and "Traceback: boom" in crash.error
    assert crash.info["program"]["exit_code"] == 3

    killed = await run_episode(env_of(["/bin/sh", "-c", "echo dying >&2; kill -9 $$"]), policy, Task(id="k", prompt="p"))
    assert killed.status == "error" and "killed by SIGKILL" in killed.error and "dying" in killed.error

    missing = await run_episode(env_of(["/nonexistent/agent"]), policy, Task(id="m", prompt="p"))
    assert missing.status == "error" and "could not be started" in missing.error


async def test_hanging_program_is_truncated_and_its_group_killed(policy: OpenAIPolicy, tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    cmd = f"sleep 600 & echo $! > {pidfile}; echo 'waiting forever' >&2; sleep 600"
    traj = await run_episode(env_of(cmd, timeout_s=1.0), policy, Task(id="h", prompt="p", answer="x"))
    assert traj.status == "truncated"
    assert "timeout of 1 s" in traj.error and "waiting forever" in traj.error
    assert traj.info["program"]["timed_out"] and traj.judge is not None  # truncated episodes are still judged
    _assert_dead(int(pidfile.read_text()))


async def test_background_helpers_die_with_the_program_and_escaped_pipes_do_not_hang(
    policy: OpenAIPolicy, tmp_path: Path
) -> None:
    # a helper in the program's group is killed when the program exits; one that left the group (setsid)
    # but keeps stdout open cannot hold the episode past the drain grace
    pid_in, pid_out = tmp_path / "in", tmp_path / "out"
    cmd = (f"sleep 600 & echo $! > {pid_in}; setsid sh -c 'echo $$ > {pid_out}; exec sleep 600' & "
           "sleep 0.2; printf '%s\\n' '\\boxed{done}'")
    traj = await run_episode(env_of(cmd), policy, Task(id="b", prompt="p", answer="done"))
    try:
        assert traj.status == "ok" and traj.reward == 1.0
        _assert_dead(int(pid_in.read_text()))
    finally:
        try:
            os.kill(int(pid_out.read_text()), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _assert_dead(pid: int) -> None:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)  # (a killed process may take a moment to be reaped by init)
        if Path(f"/proc/{pid}/stat").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return
    raise AssertionError(f"process {pid} still runs")


@pytest.mark.slow
async def test_many_concurrent_episodes_through_one_gateway_have_no_cross_talk(policy: OpenAIPolicy,
                                                                               upstream: FakeOpenAIServer) -> None:
    upstream.responder = None  # echo: each answer repeats its own episode's task marker
    n = 1000  # all at once: 1,000 programs, one gateway
    cmd = 'case "$SWARMGYM_TASK_ID" in crash*) echo "crash $SWARMGYM_TASK_ID" >&2; exit 1;; esac; exec sh ' + CURL_AGENT[1]
    env = env_of(cmd)
    tasks = [Task(id=f"{'crash' if i % 10 == 7 else 't'}{i}", prompt=f"\\boxed{{marker-{i:05d}}}", answer=f"marker-{i:05d}")
             for i in range(n)]
    mgr = RolloutManager(policy, RolloutLimits(max_episodes=n))
    trajs = await mgr.run(env, tasks)
    assert len(trajs) == n
    by_task = {t.task_id: t for t in trajs}
    for i in range(n):
        t = by_task[tasks[i].id]
        if i % 10 == 7:  # crashed programs are error episodes; the run went on
            assert t.status == "error" and f"crash crash{i}" in t.error and not t.completions
            continue
        assert t.status == "ok", t.error
        assert t.reward == 1.0 and len(t.completions) == 1
        # every recorded call carries only this episode's marker
        text = json.dumps([m.to_openai() for m in t.messages])
        assert re.findall(r"marker-\d{5}", text) == [f"marker-{i:05d}"] * 2
    assert env._shared.gateway is None and env._shared.users == 0  # stopped with the last episode


async def test_run_token_budget_stops_the_program(policy: OpenAIPolicy) -> None:
    # the manager's per-episode budget sees the calls as they happen and ends the episode at the next one
    mgr = RolloutManager(policy, RolloutLimits(max_episodes=1, max_tokens_per_episode=3))
    env = env_of(OPENAI_AGENT)
    [traj] = await mgr.run(env, [Task(id="b", prompt="Calculate 2 + 2.", answer="4")])
    assert traj.status == "truncated" and "token budget" in traj.error
    assert traj.judge is not None and traj.judge.outcome == "ok"  # judged once, after the program stopped
    assert env._shared.gateway is None and env._shared.users == 0
    assert len(traj.completions) == 1 and traj.completions[0].message.tool_calls  # the call made before it


async def test_sub_agents_with_derived_keys_come_back_as_a_tree(policy: OpenAIPolicy,
                                                                 upstream: FakeOpenAIServer) -> None:
    from swarmgym.envs.blackbox import subagent_trajectories

    upstream.responder = None  # echo
    ask = ('curl -sS --fail-with-body "$OPENAI_BASE_URL/chat/completions" -H "Authorization: Bearer $1" '
           '-H "Content-Type: application/json" -d "{\\"model\\": \\"$OPENAI_MODEL\\", '
           '\\"messages\\": [{\\"role\\": \\"user\\", \\"content\\": \\"$2\\"}]}" > /dev/null')
    cmd = (f'ask() {{ {ask}; }}; K="$OPENAI_API_KEY"; '
           'ask "$K~a" sub-a & ask "$K~b" sub-b & wait; ask "$K~a~deep" sub-a-deep; ask "$K~a" sub-a-again; '
           "ask \"$K\" root; printf '%s\\n' '\\boxed{tree}'")
    traj = await run_episode(env_of(["/bin/bash", "-c", cmd]), policy, Task(id="tree", prompt="p", answer="tree"))
    assert traj.status == "ok" and traj.reward == 1.0, traj.error
    assert len(traj.completions) == 1 and traj.messages[-1].content == "root"
    subs = {t.messages[0].content: t for t in subagent_trajectories(traj)}
    assert sorted(subs) == ["sub-a-again", "sub-a-deep", "sub-b"]  # (each one's last conversation)
    a, b, deep = subs["sub-a-again"], subs["sub-b"], subs["sub-a-deep"]
    assert a.parent_id == b.parent_id == traj.id and deep.parent_id == a.id and a.children == [deep.id]
    assert [m.content for m in a.messages] == ["sub-a-again", "sub-a-again"]
    assert a.info["segment_messages"][0][0]["content"] == "sub-a"  # its first call, before the new one
    assert len(a.completions) == 2 and a.info["history_rewritten"]  # a fresh conversation: a new segment
    assert all(t.role == "subagent" and not t.trainable and t.task_id == "tree" for t in subs.values())
    assert traj.metrics["subagent_calls"] == 4.0


async def test_run_sampling_overrides_the_agents(policy: OpenAIPolicy, upstream: FakeOpenAIServer) -> None:
    upstream.responder = None
    env = env_of(CURL_AGENT, sampling_from="run")
    traj = await run_episode(env, policy, Task(id="s", prompt="hi", answer="hi"),
                             sampling=SamplingParams(temperature=0.25, max_tokens=7))
    assert traj.status == "ok", traj.error
    sent = upstream.requests[-1].json
    assert sent["temperature"] == 0.25 and sent["max_tokens"] == 7


async def test_registered_env_runs_the_shipped_openai_agent(upstream: FakeOpenAIServer) -> None:
    env = make("swarmgym/BlackBoxMath-v0", model="fake-model", size=4, timeout_s=60)
    async with OpenAIPolicy(upstream.base_url, "fake-model", max_retries=0) as pol:
        mgr = RolloutManager(pol, RolloutLimits(max_episodes=4))
        trajs = await mgr.run(env, [env.tasks[i] for i in range(4)])
    assert [t.status for t in trajs] == ["ok"] * 4, [t.error for t in trajs]
    # the program's calculator computed each reasoning-gym answer; reasoning-gym's judge accepted it
    assert [t.reward for t in trajs] == [1.0] * 4
    assert all(len(t.completions) == 2 and t.env_id == "swarmgym/BlackBoxMath-v0" for t in trajs)


def test_gym_api_the_caller_is_the_model() -> None:
    # reset starts the program and shows its first model call; each step answers the pending call
    env = BlackBoxEnv([Task(id="g", prompt="Calculate 6 * 7.", answer="42")], OPENAI_AGENT, judge=ExactMatch(),
                      model="fake-model", timeout_s=60)
    try:
        obs, info = env.reset(seed=0)
        assert [m.role for m in obs["messages"]] == ["system", "user"] and obs["messages"][1].content == "Calculate 6 * 7."
        assert [t.name for t in obs["tools"]] == ["calculator"] and info["call"] == 1
        call = {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'}}
        obs, reward, term, trunc, info = env.step({"content": None, "tool_calls": [call]})
        assert not (term or trunc) and reward == 0.0
        assert obs["messages"][-1].role == "tool" and obs["messages"][-1].content == "42"  # the program's tool ran
        obs, reward, term, trunc, info = env.step("\\boxed{42}")
        assert term and not trunc and reward == 1.0 and info["status"] == "ok"
        traj = env.trajectory
        assert traj is not None and len(traj.completions) == 2 and traj.info["program"]["exit_code"] == 0
        with pytest.raises(ConfigError, match="no model call"):
            env.step("more")
        env.reset(seed=1)
        waiting = env.trajectory
        env.reset(seed=2)  # a reset mid-episode ends the waiting program and starts a new one
        assert waiting is not None and waiting.status == "cancelled" and waiting.error
        assert env.trajectory is not waiting
    finally:
        env.close()
    assert env._shared.gateway is None


async def test_bad_config_and_step_before_reset_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="non-empty"):
        BlackBoxEnv([], [])
    with pytest.raises(ConfigError, match="judge_on"):
        BlackBoxEnv([], "true", judge_on="workspace")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="sandbox backend"):
        BlackBoxEnv([], "true", sandbox="vm")
    env = BlackBoxEnv([Task(id="t", prompt="p")], "true")
    with pytest.raises(ConfigError, match="reset"):
        await env.astep("hi")


async def test_workspace_judge_reads_files_the_program_wrote(policy: OpenAIPolicy) -> None:
    from swarmgym.judges.base import FunctionJudge

    seen: list[str] = []

    class WorkspaceJudge:
        async def score(self, task: Task, traj: Any, ctx: Any) -> Any:
            path = Path(ctx.state["workspace"]) / "result.txt"
            seen.append(str(path))
            return await FunctionJudge(lambda t, tr: float(path.read_text().strip() == t.answer)).score(task, traj, ctx)

    env = env_of("cat given.txt > result.txt; echo ' world' >> result.txt", judge=WorkspaceJudge(),
                 judge_on="messages", files={"given.txt": "hello"})
    traj = await run_episode(env, policy, Task(id="w", prompt="p", answer="hello world"))
    assert traj.status == "ok" and traj.reward == 1.0
    assert not Path(seen[0]).parent.exists()  # the workspace is removed after the judge


def test_cli_run_with_the_oracle_through_the_gateway(tmp_path: Path) -> None:
    # `swarmgym run` as users run it: the oracle answers the shipped openai-client agent's calls
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "swarmgym.cli", "run", "swarmgym/BlackBoxMath-v0", "--policy", "oracle", "-n", "3",
         "--no-live", "--json", "--out", str(tmp_path / "t.jsonl")],
        capture_output=True, text=True, cwd=tmp_path, timeout=240,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["mean_reward"] == 1.0 and summary["counters"]["model_calls"] == 6
    records = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    trajs = [r["data"] for r in records if r["kind"] != "manifest"]
    assert len(trajs) == 3 and all(t["info"]["program"]["exit_code"] == 0 for t in trajs)
