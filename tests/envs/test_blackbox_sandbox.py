"""BlackBoxEnv with the program in a sandbox (docker container, bubblewrap) whose only way out is the
gateway: real sandboxes, a real gateway on a unix socket, the fake server upstream."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from swarmgym.envs.blackbox import BlackBoxEnv
from swarmgym.judges.rules import ExactMatch
from swarmgym.loop import run_episode
from swarmgym.policies import OpenAIPolicy
from swarmgym.rollout import RolloutLimits, RolloutManager
from swarmgym.testing import FakeOpenAIServer
from swarmgym.testing.require import require_sandbox
from swarmgym.wire import Task

pytestmark = pytest.mark.anyio

# The default sandbox image has python3 but neither curl nor the openai package: a stdlib agent. It first
# tries to leave the sandbox (a public address, the docker bridge's host side), then asks the model.
AGENT = r"""
import json, os, socket, sys, urllib.request
for host in ("1.1.1.1", "172.17.0.1", "10.0.0.1"):
    try:
        socket.create_connection((host, 80), timeout=2).close()
        print("net: OPEN", host, file=sys.stderr)
    except OSError as e:
        print("net: blocked", host, file=sys.stderr)
body = json.dumps({"model": os.environ["OPENAI_MODEL"],
                   "messages": [{"role": "user", "content": sys.stdin.read()}]}).encode()
req = urllib.request.Request(os.environ["OPENAI_BASE_URL"] + "/chat/completions", body,
                             {"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                              "Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["message"]["content"])
"""


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> str:
    require_sandbox(request.param)
    return request.param


@pytest.fixture
async def policy() -> AsyncIterator[OpenAIPolicy]:
    async with FakeOpenAIServer() as srv, OpenAIPolicy(srv.base_url, "fake-model", max_retries=0) as pol:
        yield pol


def env_of(backend: str, command: str | list[str], **kw: object) -> BlackBoxEnv:
    kw.setdefault("timeout_s", 60)
    return BlackBoxEnv([], command, model="fake-model", judge=ExactMatch(), sandbox=backend,
                       files={"agent.py": AGENT}, **kw)  # type: ignore[arg-type]


async def test_sandboxed_program_reaches_the_gateway_and_nothing_else(backend: str, policy: OpenAIPolicy) -> None:
    env = env_of(backend, ["python3", "agent.py"], sandbox_pool_size=3)
    tasks = [Task(id=f"t{i}", prompt=f"\\boxed{{sandboxed {i}}}", answer=f"sandboxed {i}") for i in range(3)]
    trajs = await RolloutManager(policy, RolloutLimits(max_episodes=3)).run(env, tasks)
    by_id = {t.task_id: t for t in trajs}
    for i in range(3):
        t = by_id[f"t{i}"]
        assert t.status == "ok", t.error
        assert t.reward == 1.0 and len(t.completions) == 1
        assert t.messages[-1].content == f"\\boxed{{sandboxed {i}}}"  # its own call, through the socket
        err = t.info["program"]["stderr_tail"]
        assert err.count("net: blocked") == 3 and "OPEN" not in err, err
    assert env._shared.gateway is None and env._shared.pool is None and env._shared.socket_dir is None


async def test_sandboxed_crash_and_hang(backend: str, policy: OpenAIPolicy) -> None:
    crash = await run_episode(env_of(backend, "echo 'agent broke' >&2; exit 4"), policy, Task(id="c", prompt="p"))
    assert crash.status == "error" and "status 4" in crash.error and "agent broke" in crash.error
    hang = await run_episode(env_of(backend, "echo 'stuck' >&2; sleep 600", timeout_s=1.5), policy,
                             Task(id="h", prompt="p", answer="x"))
    assert hang.status == "truncated" and "stuck" in hang.error and hang.info["program"]["timed_out"]


@pytest.mark.docker
async def test_no_container_is_left_behind(policy: OpenAIPolicy) -> None:
    require_sandbox("docker")
    from swarmgym.toolsets.sandbox.docker import RUN_ID, list_containers

    traj = await run_episode(env_of("docker", ["python3", "agent.py"]), policy,
                             Task(id="d", prompt="\\boxed{x}", answer="x"))
    assert traj.status == "ok", traj.error
    assert [c for c in list_containers(all_owners=False) if c["run"] == RUN_ID] == []
