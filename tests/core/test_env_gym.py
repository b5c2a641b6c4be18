"""The Gym API of AgentEnv: sync and async share one path, actions in every accepted form, seeding, close."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import anyio
import pytest
from swarmgym.envs.core import AgentEnv, EpisodeLimits
from swarmgym.errors import ConfigError
from swarmgym.judges.base import FunctionJudge
from swarmgym.toolsets.base import ToolContext, Toolset, tool
from swarmgym.toolsets.calculator import CalculatorToolset
from swarmgym.wire import Completion, Message, Task, ToolCall, Trajectory

TASKS = [Task(id=f"t{i}", prompt=f"What is {i} * 7?", answer=str(i * 7)) for i in range(20)]


def exact(task: Task, traj: Trajectory) -> float:
    return float(traj.final_text.strip() == task.answer)


def make_env(**kw: Any) -> AgentEnv:
    kw.setdefault("toolsets", [CalculatorToolset()])
    kw.setdefault("judge", FunctionJudge(exact, name="exact"))
    kw.setdefault("limits", EpisodeLimits(max_turns=4))
    return AgentEnv(TASKS, system_prompt="Use the calculator.", **kw)


def calc(expr: str, id: str = "call_0") -> dict[str, Any]:
    """An OpenAI-format assistant message (``function`` + JSON string arguments), as a server returns it."""
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": id, "type": "function", "function": {"name": "calculator", "arguments": f'{{"expression": "{expr}"}}'}}
        ],
    }


def script_for(obs: dict[str, Any]) -> list[Any]:
    """Actions solving the task in ``obs``, in several accepted forms."""
    n = int(obs["messages"][-1].content.split()[2])
    return [
        calc(f"{n} * 7"),
        Message(role="assistant", content=None, tool_calls=[ToolCall(id="call_1", name="calculator", arguments={"expression": f"{n} * 7 + 0"})]),
        str(n * 7),
    ]


def test_sync_and_async_apis_give_identical_observations() -> None:
    sync_env = make_env()
    obs, info = sync_env.reset(seed=7)
    sync_steps = [(obs, info)]
    for action in script_for(obs):
        sync_steps.append(sync_env.step(action))
    sync_env.close()

    async def drive() -> list[Any]:
        env = make_env()
        obs, info = await env.areset(seed=7)
        steps: list[Any] = [(obs, info)]
        for action in script_for(obs):
            steps.append(await env.astep(action))
        return steps

    async_steps = anyio.run(drive)
    assert sync_steps == async_steps
    obs, reward, terminated, truncated, info = sync_steps[-1]
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["status"] == "ok" and info["facets"] == {"exact": 1.0}
    roles = [m.role for m in obs["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "tool", "assistant"]


def test_step_returns_gym_tuples_and_spaces_contain_them() -> None:
    env = make_env()
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["task_id"] in {t.id for t in TASKS}
    assert obs["tools"] == tuple(CalculatorToolset().specs())
    obs, reward, terminated, truncated, info = env.step(calc("1 + 1"))
    assert env.observation_space.contains(obs)
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_calls"] == 1 and info["tool_errors"] == 0
    assert obs["messages"][-1].role == "tool" and obs["messages"][-1].content == "2"
    env.close()


def test_step_before_reset_is_a_config_error() -> None:
    env = make_env()
    with pytest.raises(ConfigError, match=r"call reset\(\)"):
        env.step("hello")
    env.close()


def test_step_after_the_episode_ended_is_a_config_error() -> None:
    env = make_env()
    env.reset(seed=0)
    env.step("done")
    with pytest.raises(ConfigError, match="no episode is running"):
        env.step("again")
    env.close()


@pytest.mark.parametrize(
    "action",
    [
        "14",
        {"content": "14"},
        {"role": "assistant", "content": "14"},
        # an OpenAI response message as dumped by the openai client (response-only keys left empty)
        {"role": "assistant", "content": "14", "refusal": None, "annotations": [], "audio": None, "function_call": None},
        Message(role="assistant", content="14"),
        Completion(message=Message(role="assistant", content="14"), completion_ids=[1, 2], logprobs=[-0.5, -0.25]),
    ],
    ids=["str", "dict-content", "dict", "openai-dump", "Message", "Completion"],
)
def test_accepted_action_forms(action: Any) -> None:
    env = make_env()
    env.reset(options={"task_index": 2})
    obs, reward, terminated, truncated, info = env.step(action)
    assert obs["messages"][-1] == Message(role="assistant", content="14")
    assert (reward, terminated) == (1.0, True)
    env.close()


def test_openai_tool_call_action_with_malformed_arguments_is_an_observation() -> None:
    env = make_env()
    env.reset(seed=0)
    bad = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "calculator", "arguments": '{"expression": "1+'}}],
    }
    obs, reward, terminated, truncated, info = env.step(bad)
    assert not terminated and info["tool_errors"] == 1
    assert obs["messages"][-2].tool_calls[0].arguments == '{"expression": "1+'  # kept raw in the record
    assert "not a JSON object" in obs["messages"][-1].text
    env.close()


@pytest.mark.parametrize(
    "action",
    [42, None, ["hi"], b"bytes", Message(role="user", content="hi"), {"role": "tool", "content": "x"}, {"content": 3}],
    ids=["int", "None", "list", "bytes", "user-Message", "tool-dict", "bad-content"],
)
def test_invalid_actions_are_config_errors(action: Any) -> None:
    env = make_env()
    env.reset(seed=0)
    assert not env.action_space.contains(action)
    with pytest.raises(ConfigError, match="invalid action"):
        env.step(action)
    obs, *_ = env.step("still running")  # the episode survived the bad action
    assert obs["messages"][-1].content == "still running"
    env.close()


def test_action_space_sample_is_a_valid_action() -> None:
    env = make_env()
    env.action_space.seed(3)
    a = env.action_space.sample()
    assert env.action_space.contains(a) and "x" not in a.model_fields_set - {"role", "content"}
    env.reset(seed=0)
    env.step(a)
    env.close()


def test_seeding_is_deterministic() -> None:
    def first_task(seed: int) -> str:
        env = make_env()
        obs, info = env.reset(seed=seed)
        env.close()
        return info["task_id"]

    seeds = list(range(12))
    assert [first_task(s) for s in seeds] == [first_task(s) for s in seeds]
    assert len({first_task(s) for s in seeds}) > 1  # the seed really chooses the task
    env = make_env()
    _, a = env.reset(seed=5)
    ids = [env.reset()[1]["task_id"] for _ in range(5)]  # unseeded resets continue the seeded stream
    _, b = env.reset(seed=5)
    assert a == b and ids == [env.reset()[1]["task_id"] for _ in range(5)]
    env.close()


def test_reset_options_choose_the_task() -> None:
    env = make_env()
    _, info = env.reset(options={"task_index": 3})
    assert info["task_id"] == "t3"
    custom = Task(id="custom", prompt="hello")
    obs, info = env.reset(options={"task": custom})
    assert info["task_id"] == "custom" and obs["messages"][-1].content == "hello"
    with pytest.raises(ConfigError, match="out of range"):
        env.reset(options={"task_index": 99})
    env.close()
    empty = AgentEnv([])
    with pytest.raises(ConfigError, match="no tasks"):
        empty.reset()
    empty.close()


class Tracked(Toolset):
    def __init__(self) -> None:
        super().__init__()
        self.setups = 0
        self.teardowns = 0

    async def setup(self, ctx: ToolContext) -> None:
        self.setups += 1

    async def teardown(self, ctx: ToolContext) -> None:
        self.teardowns += 1

    @tool
    def ping(self) -> str:
        """Ping."""
        return "pong"


def test_close_twice_and_close_mid_episode() -> None:
    ts = Tracked()
    env = make_env(toolsets=[ts])
    env.close()  # before any reset
    env.reset(seed=0)
    env.step({"role": "assistant", "content": None, "tool_calls": [{"id": "c", "name": "ping", "arguments": {}}]})
    env.close()
    env.close()
    assert ts.setups == 1 and ts.teardowns == 1
    assert env.trajectory is not None and env.trajectory.status == "cancelled"
    env.reset(seed=0)  # a closed env can be used again
    env.step("x")
    env.close()
    assert ts.setups == 2 and ts.teardowns == 2


def test_reset_mid_episode_releases_the_old_one() -> None:
    ts = Tracked()
    env = make_env(toolsets=[ts])
    env.reset(seed=0)
    first = env.trajectory
    env.reset(seed=1)
    assert first is not None and first.status == "cancelled" and ts.teardowns == 1
    env.close()
    assert ts.teardowns == 2


def test_render_ansi() -> None:
    env = make_env(render_mode="ansi")
    env.reset(options={"task_index": 1})
    env.step(calc("1 * 7"))
    text = env.render()
    assert text is not None
    assert "[user] What is 1 * 7?" in text and "calculator" in text and "[tool] 7" in text
    env.close()
    with pytest.raises(ConfigError, match="render_mode"):
        AgentEnv(TASKS, render_mode="human")


def test_interpreter_exits_when_close_is_forgotten() -> None:
    code = textwrap.dedent(
        """
        import swarmgym
        from swarmgym import AgentEnv, Task
        from swarmgym.toolsets.calculator import CalculatorToolset
        env = AgentEnv([Task(id="t", prompt="2+2?", answer="4")], toolsets=[CalculatorToolset()])
        env.reset(seed=0)
        obs, *_ = env.step({"role": "assistant", "content": None,
                            "tool_calls": [{"id": "c", "name": "calculator", "arguments": {"expression": "2+2"}}]})
        print(obs["messages"][-1].content, flush=True)
        other = AgentEnv([Task(id="u", prompt="hi")])
        other.reset()  # a second runner thread, also never closed
        """
    )
    # The timeout is a hang guard, not a speed assertion: a non-daemon runner thread would block exit forever.
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "4"
    assert "Traceback" not in out.stderr and "Exception" not in out.stderr, out.stderr


def test_forgotten_close_leaks_no_event_loop() -> None:
    # An env dropped without close(): once its runner thread has stopped, nothing may be left unclosed
    # (under pytest's filterwarnings=error a leaked loop fails whichever later test triggers the GC).
    code = textwrap.dedent(
        """
        import gc, threading
        from swarmgym import AgentEnv, Task
        env = AgentEnv([Task(id="t", prompt="hi")])
        env.reset(seed=0)
        del env
        gc.collect()
        for t in threading.enumerate():
            if t.name == "swarmgym-env":
                t.join()
        gc.collect()
        print("ok", flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-X", "dev", "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert "ResourceWarning" not in out.stderr, out.stderr


@pytest.mark.anyio
async def test_async_api_inside_a_running_loop() -> None:
    env = make_env()
    obs, _ = await env.areset(options={"task_index": 4})
    obs, reward, terminated, truncated, info = await env.astep(calc("4 * 7"))
    assert obs["messages"][-1].content == "28"
    obs, reward, terminated, truncated, info = await env.astep("28")
    assert (reward, terminated, truncated) == (1.0, True, False)
    with pytest.raises(ConfigError):
        await env.astep("again")


def test_turn_limit_truncates_in_the_gym_api() -> None:
    env = make_env(limits=EpisodeLimits(max_turns=2))
    env.reset(seed=0)
    assert env.step(calc("1"))[2:4] == (False, False)
    obs, reward, terminated, truncated, info = env.step(calc("2"))
    assert (terminated, truncated) == (False, True) and info["status"] == "truncated"
    env.close()


def test_spaces_validate_and_sample_deterministically() -> None:
    env = make_env()
    obs_space = env.observation_space
    good = {"messages": (Message(role="user", content="hi"),), "tools": tuple(CalculatorToolset().specs())}
    assert obs_space.contains(good)
    assert not obs_space.contains({"messages": ({"role": "user", "content": "hi"},), "tools": ()})  # dicts
    assert not obs_space.contains({"messages": [Message(role="user", content="hi")], "tools": ()})  # a list
    assert not obs_space.contains({"messages": (), "tools": ("calculator",)})
    assert not obs_space.contains({"messages": ()})
    obs_space.seed(1)
    first = [obs_space.sample() for _ in range(3)]
    obs_space.seed(1)
    assert [obs_space.sample() for _ in range(3)] == first
    assert all(obs_space.contains(s) for s in first)
    env.close()


def test_sync_api_called_from_inside_a_running_event_loop() -> None:
    # e.g. a notebook: the sync API runs on the env's own loop thread, so a running loop does not break it
    async def inside() -> Any:
        env = make_env()
        env.reset(options={"task_index": 1})
        result = env.step("7")
        env.close()
        return result

    _, reward, terminated, _, _ = anyio.run(inside)
    assert (reward, terminated) == (1.0, True)
