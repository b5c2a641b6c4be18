"""run_episode with scripted policies: concurrency, every failure mode as an observation or a status, limits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.errors import ConfigError, PolicyError
from swarmgym.judges.base import FunctionJudge
from swarmgym.loop import run_episode
from swarmgym.policies.base import PolicyContext, PolicyRouter
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.toolsets.base import ToolContext, Toolset, tool
from swarmgym.wire import Message, Task, ToolSpec, Trajectory

TASK = Task(id="t0", prompt="do the thing", answer="42")


def calls(*specs: tuple[str, Any]) -> dict[str, Any]:
    """An assistant turn calling tools: ``calls(("name", {args}), …)`` (ids call_0, call_1, …)."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": f"call_{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(specs)],
    }


class Probe(Toolset):
    """Tools that make the loop's behaviour observable (per-episode state lives in ctx.state)."""

    def __init__(self) -> None:
        super().__init__()
        self.torn_down = 0

    async def setup(self, ctx: ToolContext) -> None:
        ctx.state["log"] = []
        ctx.state["events"] = {}

    async def teardown(self, ctx: ToolContext) -> None:
        self.torn_down += 1

    @tool
    async def rendezvous(self, me: str, other: str, ctx: ToolContext) -> str:
        """Signal ``me``, then wait until ``other`` has signalled: completes only if both run at once."""
        ev = ctx.state["events"]
        log = ctx.state["log"]
        log.append(f"start {me}")
        ev.setdefault(me, anyio.Event()).set()
        await ev.setdefault(other, anyio.Event()).wait()
        log.append(f"end {me}")
        return f"{me} met {other}"

    @tool
    async def after(self, me: str, other: str, ctx: ToolContext) -> str:
        """Finish only after ``other`` has finished (so the later call finishes first)."""
        ev = ctx.state["events"]
        await ev.setdefault(f"done {other}", anyio.Event()).wait()
        ctx.state["log"].append(f"end {me}")
        return f"{me} after {other}"

    @tool
    async def quick(self, me: str, ctx: ToolContext) -> str:
        """Finish at once."""
        ctx.state["log"].append(f"end {me}")
        ctx.state["events"].setdefault(f"done {me}", anyio.Event()).set()
        return me

    @tool
    def count(self, ctx: ToolContext) -> int:
        """Count calls."""
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        return ctx.state["count"]

    @tool
    def boom(self) -> str:
        """Raise."""
        raise RuntimeError("tool exploded")

    @tool
    async def hang(self, ctx: ToolContext) -> str:
        """Never return."""
        ctx.state.setdefault("hanging", anyio.Event()).set()
        await anyio.sleep_forever()
        return "unreachable"

    @tool(timeout=0.05)
    async def hang_short(self) -> str:
        """Never return, with its own short timeout."""
        await anyio.sleep_forever()
        return "unreachable"

    @tool
    def big(self, n: int) -> str:
        """Return a long output."""
        return "".join(chr(ord("a") + i % 26) for i in range(n))

    @tool(terminal=True)
    def submit(self, answer: str, ctx: ToolContext) -> str:
        """Submit the final answer (ends the episode)."""
        ctx.state["submitted"] = answer
        return "submitted"


def make_env(probe: Probe | None = None, **kw: Any) -> AgentEnv:
    kw.setdefault("limits", EpisodeLimits(tool_timeout_s=10.0))
    return AgentEnv([TASK], toolsets=[probe or Probe()], **kw)


def tool_messages(traj: Trajectory) -> list[Message]:
    return [m for m in traj.messages if m.role == "tool"]


async def run(env: AgentEnv, script: Sequence[Any] | Any, **kw: Any) -> Trajectory:
    policy = script if hasattr(script, "complete") or isinstance(script, PolicyRouter) else ScriptedPolicy(script)
    return await run_episode(env, policy, TASK, **kw)


# ---------------------------------------------------------------- concurrency and ordering


@pytest.mark.anyio
async def test_tool_calls_in_one_turn_run_concurrently() -> None:
    # Each call waits for the other's signal: run one after the other, the first would hit its timeout.
    env = make_env()
    traj = await run(
        env,
        [calls(("rendezvous", {"me": "a", "other": "b"}), ("rendezvous", {"me": "b", "other": "a"})), "done"],
        fork=False,
    )
    assert traj.status == "ok", traj.error
    assert [m.content for m in tool_messages(traj)] == ["a met b", "b met a"]
    log = env.tool_context.state["log"]  # type: ignore[union-attr]
    assert sorted(log[:2]) == ["start a", "start b"]  # both started before either ended
    assert sorted(log[2:]) == ["end a", "end b"]


@pytest.mark.anyio
async def test_results_come_back_in_call_order() -> None:
    env = make_env()
    traj = await run(
        env,
        [calls(("after", {"me": "first", "other": "second"}), ("quick", {"me": "second"})), "done"],
        fork=False,
    )
    assert env.tool_context.state["log"] == ["end second", "end first"]  # type: ignore[union-attr]
    msgs = tool_messages(traj)
    assert [(m.tool_call_id, m.name, m.content) for m in msgs] == [
        ("call_0", "after", "first after second"),
        ("call_1", "quick", "second"),
    ]
    assert traj.messages[-1].content == "done" and traj.status == "ok"


# ---------------------------------------------------------------- failures become observations


@pytest.mark.anyio
async def test_unknown_tool_malformed_and_invalid_arguments_raising_tool_are_observations() -> None:
    turn = calls(
        ("no_such_tool", {}),
        ("count", '{"broken": '),  # malformed JSON kept raw by the policy
        ("big", {"n": "lots"}),  # fails schema validation
        ("boom", {}),
        ("count", {}),  # the good call still runs
    )
    traj = await run(make_env(), [turn, "all done"])
    assert traj.status == "ok" and traj.error is None
    msgs = tool_messages(traj)
    assert [m.tool_call_id for m in msgs] == [f"call_{i}" for i in range(5)]
    texts = [m.text for m in msgs]
    assert "unknown tool 'no_such_tool'" in texts[0] and "count" in texts[0]
    assert "not a JSON object" in texts[1] and '{"broken": ' in texts[1]
    assert "invalid arguments for tool 'big'" in texts[2] and "n:" in texts[2]
    assert "RuntimeError: tool exploded" in texts[3]
    assert texts[4] == "1"
    assert traj.metrics["tool_errors"] == 4.0 and traj.metrics["tool_calls"] == 5.0
    assert traj.final_text == "all done" and traj.num_turns == 2


@pytest.mark.anyio
async def test_hanging_tool_hits_its_timeout_and_the_episode_goes_on() -> None:
    env = make_env(limits=EpisodeLimits(tool_timeout_s=0.2))
    traj = await run(env, [calls(("hang", {}), ("count", {})), calls(("count", {})), "finished"])
    assert traj.status == "ok", traj.error
    msgs = tool_messages(traj)
    assert "timed out after 0.2 s" in msgs[0].text
    assert msgs[1].text == "1" and msgs[2].text == "2"  # the other call and later turns still ran
    assert traj.final_text == "finished"


@pytest.mark.anyio
async def test_a_tools_own_timeout_overrides_the_default() -> None:
    traj = await run(make_env(limits=EpisodeLimits(tool_timeout_s=30.0)), [calls(("hang_short", {})), "ok"])
    assert "timed out after 0.05 s" in tool_messages(traj)[0].text
    assert traj.status == "ok"


@pytest.mark.anyio
async def test_tool_output_is_truncated_with_a_marker() -> None:
    traj = await run(make_env(limits=EpisodeLimits(max_tool_output_chars=256)), [calls(("big", {"n": 5000})), "ok"])
    text = tool_messages(traj)[0].text
    assert len(text) <= 256
    assert "characters truncated" in text
    assert text.startswith("abcdef") and text.endswith("".join(chr(ord("a") + i % 26) for i in range(4990, 5000)))


# ---------------------------------------------------------------- limits


@pytest.mark.anyio
async def test_turn_limit_truncates_and_is_still_judged() -> None:
    env = make_env(limits=EpisodeLimits(max_turns=3), judge=FunctionJudge(lambda task, traj: 0.5))
    traj = await run(env, ScriptedPolicy([calls(("count", {}))], cycle=True))
    assert traj.status == "truncated"
    assert traj.num_turns == 3 and traj.metrics["turns"] == 3.0
    assert traj.reward == 0.5 and traj.judge is not None


@pytest.mark.anyio
async def test_max_tool_calls_per_turn() -> None:
    env = make_env(limits=EpisodeLimits(max_tool_calls_per_turn=2))
    traj = await run(env, [calls(("count", {}), ("count", {}), ("count", {})), "ok"], fork=False)
    texts = [m.text for m in tool_messages(traj)]
    assert texts[:2] == ["1", "2"]
    assert "at most 2 tool calls per turn" in texts[2]
    assert env.tool_context.state["count"] == 2  # type: ignore[union-attr]
    assert traj.status == "ok"


@pytest.mark.anyio
async def test_max_total_tool_calls_ends_the_episode() -> None:
    env = make_env(limits=EpisodeLimits(max_total_tool_calls=3))
    traj = await run(env, [calls(("count", {}), ("count", {})), calls(("count", {}), ("count", {})), "never"], fork=False)
    texts = [m.text for m in tool_messages(traj)]
    assert texts[:3] == ["1", "2", "3"]
    assert "budget of 3 tool calls is used up" in texts[3]
    assert traj.status == "truncated" and traj.num_turns == 2


@pytest.mark.anyio
async def test_terminal_tool_ends_the_episode_only_when_it_succeeds() -> None:
    env = make_env(judge=FunctionJudge(lambda task, traj: 1.0))
    traj = await run(
        env,
        [calls(("submit", {"wrong": 1})), calls(("submit", {"answer": "42"})), "never sent"],
        fork=False,
    )
    assert traj.status == "ok" and traj.num_turns == 2
    assert "invalid arguments for tool 'submit'" in tool_messages(traj)[0].text
    assert tool_messages(traj)[1].text == "submitted"
    assert env.tool_context.state["submitted"] == "42"  # type: ignore[union-attr]
    assert traj.reward == 1.0


@pytest.mark.anyio
async def test_episode_deadline_truncates() -> None:
    async def slow_second_turn(messages: Sequence[Message], tools: Sequence[ToolSpec], ctx: PolicyContext) -> Any:
        if ctx.turn == 0:
            return calls(("count", {}))
        await anyio.sleep_forever()

    probe = Probe()
    env = make_env(probe, limits=EpisodeLimits(episode_timeout_s=0.3), judge=FunctionJudge(lambda task, traj: 0.25))
    traj = await run(env, ScriptedPolicy(slow_second_turn))
    assert traj.status == "truncated"
    assert "deadline" in (traj.error or "")
    assert traj.num_turns == 1 and traj.judge is not None and traj.reward == 0.25  # what was produced is judged
    assert probe.torn_down == 1


# ---------------------------------------------------------------- policy failures, cancellation, judge failures


@pytest.mark.anyio
async def test_policy_error_is_status_error_with_message() -> None:
    probe = Probe()
    traj = await run(make_env(probe), [calls(("count", {}))])  # the script runs out on turn 1
    assert traj.status == "error"
    assert "PolicyError" in (traj.error or "") and "scripted policy has 1 responses" in (traj.error or "")
    assert traj.judge is None and traj.reward == 0.0
    assert probe.torn_down == 1


@pytest.mark.anyio
async def test_policy_error_after_some_turns_keeps_the_record() -> None:
    def fails_on_turn_two(messages: Any, tools: Any, ctx: PolicyContext) -> Any:
        if ctx.turn == 0:
            return calls(("count", {}))
        raise PolicyError("server at http://127.0.0.1:9 refused the connection; is it running?")

    traj = await run(make_env(), ScriptedPolicy(fails_on_turn_two))
    assert traj.status == "error"
    assert traj.error == "PolicyError: server at http://127.0.0.1:9 refused the connection; is it running?"
    assert traj.num_turns == 1 and tool_messages(traj)[0].text == "1"  # nothing finished is lost


@pytest.mark.anyio
async def test_arbitrary_policy_exception_is_status_error() -> None:
    def broken(messages: Any, tools: Any, ctx: Any) -> Any:
        raise KeyError("missing_field")

    probe = Probe()
    traj = await run(make_env(probe), ScriptedPolicy(broken))
    assert traj.status == "error"
    assert (traj.error or "").startswith("KeyError: 'missing_field'")
    assert probe.torn_down == 1


@pytest.mark.anyio
@pytest.mark.parametrize("deadline", [None, 300.0])
async def test_builtin_timeout_error_from_a_policy_is_status_error(deadline: float | None) -> None:
    # A user policy that wraps its own call in asyncio.wait_for raises the builtin TimeoutError: an error
    # trajectory (not an exception out of run_episode), and never mistaken for the episode deadline.
    def times_out(messages: Any, tools: Any, ctx: Any) -> Any:
        raise TimeoutError("model call took too long")

    traj = await run(make_env(limits=EpisodeLimits(episode_timeout_s=deadline)), ScriptedPolicy(times_out))
    assert traj.status == "error"
    assert (traj.error or "").startswith("TimeoutError: model call took too long")


@pytest.mark.anyio
async def test_cancellation_marks_cancelled_releases_and_reraises() -> None:
    probe = Probe()
    env = make_env(probe)
    outcome: list[str] = []

    async def episode() -> None:
        try:
            await run(env, [calls(("hang", {}))], fork=False)
            outcome.append("returned")
        except anyio.get_cancelled_exc_class():
            outcome.append("re-raised")
            raise

    async with anyio.create_task_group() as tg:
        tg.start_soon(episode)
        while env.tool_context is None or "hanging" not in env.tool_context.state:
            await anyio.sleep(0.01)
        await env.tool_context.state["hanging"].wait()
        tg.cancel_scope.cancel()
    assert outcome == ["re-raised"]
    traj = env.trajectory
    assert traj is not None and traj.status == "cancelled" and traj.judge is None
    assert probe.torn_down == 1


@pytest.mark.anyio
async def test_judge_raising_gives_reward_zero_and_a_judge_error_facet() -> None:
    def bad_judge(task: Task, traj: Trajectory) -> float:
        raise ValueError("judge broke")

    traj = await run(make_env(judge=FunctionJudge(bad_judge)), ["an answer"])
    assert traj.status == "ok"
    assert traj.reward == 0.0
    assert traj.judge is not None and traj.judge.facets.get("judge_error") == 1.0
    assert "judge broke" in traj.judge.info["judge_error"]


# ---------------------------------------------------------------- roles, routing, spawn, context


@pytest.mark.anyio
async def test_router_roles_and_frozen_roles() -> None:
    main = ScriptedPolicy(["from main"])
    critic = ScriptedPolicy(["from critic"])
    router = PolicyRouter(main, roles={"critic": critic}, frozen={"critic", "judge"})
    t_main = await run(make_env(), router)
    t_critic = await run(make_env(), router, role="critic")
    t_judge = await run(make_env(), router, role="judge")  # no own policy: falls back to main, still frozen
    assert (t_main.final_text, t_main.role, t_main.trainable) == ("from main", "main", True)
    assert (t_critic.final_text, t_critic.role, t_critic.trainable) == ("from critic", "critic", False)
    assert (t_judge.final_text, t_judge.role, t_judge.trainable) == ("from main", "judge", False)
    # A role without a policy is a configuration error with a clear message: raised before the episode
    # starts, or (equally acceptable) reported as an error trajectory.
    strict = PolicyRouter(main, strict=True)
    try:
        t_err = await run(make_env(), strict, role="critic")
    except ConfigError as e:
        message = str(e)
    else:
        assert t_err.status == "error"
        message = t_err.error or ""
    assert "no policy for role 'critic'" in message and "roles={'critic': policy}" in message


class Delegator(Toolset):
    def __init__(self, child_env: AgentEnv) -> None:
        super().__init__()
        self.child_env = child_env

    @tool
    async def delegate(self, question: str, ctx: ToolContext) -> str:
        """Ask a sub-agent."""
        child = await ctx.spawn(self.child_env, Task(id="sub", prompt=question), role="subagent")  # type: ignore[misc]
        ctx.state.setdefault("children", []).append(child)
        return child.final_text


@pytest.mark.anyio
async def test_spawn_runs_an_inline_child_episode() -> None:
    child_env = AgentEnv([], judge=FunctionJudge(lambda task, traj: 1.0))
    router = PolicyRouter(
        ScriptedPolicy([calls(("delegate", {"question": "what is 6*7?"})), "parent done"]),
        roles={"subagent": ScriptedPolicy(["child says 42"])},
    )
    env = AgentEnv([TASK], toolsets=[Delegator(child_env)], policies=router)
    traj = await run_episode(env, router, TASK, fork=False)
    assert traj.status == "ok", traj.error
    assert tool_messages(traj)[0].text == "child says 42"
    (child,) = env.tool_context.state["children"]  # type: ignore[union-attr]
    assert child.parent_id == traj.id and child.id != traj.id
    assert child.role == "subagent" and child.trainable is False
    assert child.task_id == "sub" and child.status == "ok" and child.reward == 1.0
    assert child.messages[0].content == "what is 6*7?"


@pytest.mark.anyio
async def test_spawn_records_the_child_id_in_the_parent() -> None:
    child_env = AgentEnv([])
    router = PolicyRouter(
        ScriptedPolicy([calls(("delegate", {"question": "q"})), "parent done"]),
        roles={"subagent": ScriptedPolicy(["a"])},
    )
    env = AgentEnv([TASK], toolsets=[Delegator(child_env)], policies=router)
    traj = await run_episode(env, router, TASK, fork=False)
    (child,) = env.tool_context.state["children"]  # type: ignore[union-attr]
    assert traj.children == [child.id]  # Trajectory.children: "ids of child trajectories spawned by this episode"


@pytest.mark.anyio
async def test_spawn_without_policies_is_an_error_observation() -> None:
    # Driven through the env API directly (no run_episode, no env.policies): nothing can play the child.
    env = AgentEnv([TASK], toolsets=[Delegator(AgentEnv([]))])
    await env.areset(task=TASK)
    await env.astep(calls(("delegate", {"question": "q"})))
    traj = env.trajectory
    assert traj is not None and not env.done
    assert "spawn needs a policy" in tool_messages(traj)[0].text
    await env.aclose_episode()


@pytest.mark.anyio
async def test_spawn_falls_back_to_the_run_policy() -> None:
    # run_episode hands its own policy to inline spawns when the env has none: the child is played by it
    # (as the frozen "subagent" role, so trainable=False).
    env = AgentEnv([TASK], toolsets=[Delegator(AgentEnv([]))])
    policy = ScriptedPolicy(lambda msgs, tools, ctx: calls(("delegate", {"question": "q"})) if ctx.role == "main" and ctx.turn == 0 else "child or parent answer")
    traj = await run_episode(env, policy, TASK)
    assert traj.status == "ok", traj.error
    assert tool_messages(traj)[0].text == "child or parent answer"
    assert len(traj.children) == 1


@pytest.mark.anyio
async def test_context_strategy_controls_what_the_policy_sees() -> None:
    class LastTwo:
        async def view(self, messages: Sequence[Message], ctx: PolicyContext) -> list[Message]:
            return list(messages[-2:])

    seen: list[int] = []

    def policy(messages: Sequence[Message], tools: Sequence[ToolSpec], ctx: PolicyContext) -> Any:
        seen.append(len(messages))
        return calls(("count", {})) if ctx.turn < 2 else "done"

    env = AgentEnv([TASK], toolsets=[Probe()], system_prompt="sys", context_strategy=LastTwo())
    traj = await run(env, ScriptedPolicy(policy))
    assert seen == [2, 2, 2]
    assert len(traj.messages) == 2 + 2 * 2 + 1  # the trajectory keeps the full record


@pytest.mark.anyio
async def test_run_episode_forks_by_default() -> None:
    env = make_env()
    traj = await run(env, ["hi"])
    assert traj.status == "ok" and env.trajectory is None  # the caller's env is untouched
    t1, t2 = await run(env, ["a"]), await run(env, ["b"])
    assert t1.id != t2.id and (t1.final_text, t2.final_text) == ("a", "b")


@pytest.mark.anyio
async def test_many_episodes_concurrently_share_one_env() -> None:
    env = make_env()
    results: dict[int, Trajectory] = {}

    async def one(i: int) -> None:
        results[i] = await run(
            env, [calls(("rendezvous", {"me": "a", "other": "b"}), ("rendezvous", {"me": "b", "other": "a"})), f"done {i}"]
        )

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert all(results[i].status == "ok" and results[i].final_text == f"done {i}" for i in range(20))
    assert len({t.id for t in results.values()}) == 20


@pytest.mark.anyio
async def test_sandbox_that_cannot_be_had_is_an_error_episode() -> None:
    import contextlib

    from swarmgym.errors import SandboxError

    class NoImagePool:
        def acquire(self) -> Any:
            @contextlib.asynccontextmanager
            async def cm() -> Any:
                raise SandboxError("docker image 'x' is not available locally; build it with `swarmgym sandbox build`")
                yield  # pragma: no cover

            return cm()

    env = AgentEnv([TASK], sandbox=NoImagePool())
    policy = ScriptedPolicy(["never asked"])
    traj = await run_episode(env, policy, TASK)
    assert traj.status == "error"
    assert traj.error is not None and traj.error.startswith("episode setup failed: SandboxError: docker image 'x'")
    assert policy.calls == 0 and traj.reward == 0.0


@pytest.mark.anyio
async def test_an_env_that_overrides_areset_gets_it_called_by_run_episode() -> None:
    class Greeting(AgentEnv):
        async def areset(self, **kw: Any) -> Any:
            out = await super().areset(**kw)
            self.trajectory.info["greeted"] = True  # type: ignore[union-attr]
            return out

    plain = await run(make_env(), ["done"])
    traj = await run(Greeting([TASK], toolsets=[Probe()]), ["done"])
    assert traj.info.get("greeted") is True and "greeted" not in plain.info
    assert traj.status == "ok" and traj.final_text == "done"


@pytest.mark.anyio
async def test_the_loops_unvalidated_trajectory_equals_a_validated_one() -> None:
    # run_episode builds trajectories and judge results without pydantic validation (a hot path): they
    # must hold every field, with the same values and set-fields a validated model has.
    from swarmgym.judges.rules import ExactMatch
    from swarmgym.wire import JudgeResult

    env = AgentEnv([TASK], judge=ExactMatch(answer_format=None))
    traj = await run(env, ["42"], group_id="g", sample_index=3, parent_id="p0")
    assert set(traj.__dict__) == set(Trajectory.model_fields)
    again = Trajectory.model_validate(traj.model_dump())
    assert again == traj and again.model_dump_json() == traj.model_dump_json()
    assert traj.__pydantic_fields_set__ >= {"id", "task_id", "sample_index", "group_id", "messages", "status", "judge"}
    assert (traj.group_id, traj.sample_index, traj.parent_id, traj.reward) == ("g", 3, "p0", 1.0)
    assert isinstance(traj.judge, JudgeResult) and JudgeResult.model_validate(traj.judge.model_dump()) == traj.judge
    assert traj.judge.facets == {"exact": 1.0, "extracted": 1.0}
    traj.metrics["x"] = 1.0  # fresh containers per episode: nothing shared with the next trajectory
    other = await run(env, ["41"])
    assert "x" not in other.metrics and other.reward == 0.0 and other.messages is not traj.messages


@pytest.mark.anyio
async def test_run_episode_validates_values_of_the_wrong_type() -> None:
    traj = await run(make_env(), ["hi"], sample_index="3")  # lax, like the validated constructor: "3" -> 3
    assert traj.sample_index == 3 and type(traj.sample_index) is int
    with pytest.raises(Exception, match="sample_index"):
        await run(make_env(), ["hi"], sample_index="three")


@pytest.mark.anyio
async def test_tool_messages_built_by_the_loop_equal_validated_ones() -> None:
    traj = await run(make_env(), [calls(("count", {}), ("boom", {})), "done"])
    for m in tool_messages(traj):
        again = Message(role="tool", content=m.content, tool_call_id=m.tool_call_id, name=m.name)
        assert again == m and again.model_dump_json() == m.model_dump_json()
        assert m.__pydantic_fields_set__ == again.__pydantic_fields_set__
    assert [m.content for m in tool_messages(traj)][0] == "1"
