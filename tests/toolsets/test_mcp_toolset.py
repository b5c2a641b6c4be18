"""MCPToolset against a real MCP server process (tests/toolsets/mcp_demo_server.py, written with the ``mcp``
package's server API), over stdio and streamable HTTP."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from swarmgym.envs.core import AgentEnv
from swarmgym.loop import run_episode
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.toolsets.base import ToolContext
from swarmgym.toolsets.mcp import MCPServerError, MCPToolset
from swarmgym.wire import Task, ToolCall

pytestmark = pytest.mark.anyio

SERVER = Path(__file__).with_name("mcp_demo_server.py")
# the machine may be loaded: starting a Python MCP server can take many seconds
CONNECT_S = 180.0


def _toolset(**kw) -> MCPToolset:
    kw.setdefault("timeout_s", 60.0)
    kw.setdefault("timeouts", {"hang": 2.0})
    return MCPToolset([sys.executable, str(SERVER)], connect_timeout_s=CONNECT_S, errlog=subprocess.DEVNULL, **kw)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not a live server; the test process is not its parent, so it is reaped elsewhere
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _gone_soon(pid: int, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


async def _call(ts: MCPToolset, ctx: ToolContext, name: str, **args):
    return await ts.call(ToolCall(id=f"c-{name}", name=name, arguments=args), ctx)


@pytest.fixture(scope="module")
def shared():
    ts = _toolset()
    ts.specs()  # starts the shared server
    yield ts
    pids = ts._test_pids if hasattr(ts, "_test_pids") else []
    ts.close()
    for pid in pids:
        assert _gone_soon(pid), f"MCP server {pid} still running after close()"


async def _pid(ts: MCPToolset, ctx: ToolContext) -> int:
    r = await _call(ts, ctx, "pid")
    assert not r.is_error, r.content
    return int(r.content)


def test_specs_match_the_servers_own_tool_list(shared: MCPToolset):
    spec = importlib.util.spec_from_file_location("mcp_demo_server", SERVER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tools = anyio.run(mod.server.list_tools)  # the server API's own view, in this process
    got = {s.name: s for s in shared.specs()}
    assert set(got) == {t.name for t in tools} == {"add", "echo", "boom", "hang", "pid", "bump"}
    for t in tools:
        schema = getattr(t, "input_schema", None) or t.inputSchema
        assert got[t.name].parameters["properties"] == schema["properties"]
        assert got[t.name].description == t.description
    assert got["add"].parameters["required"] == ["a", "b"]


async def test_calls_return_the_servers_results(shared: MCPToolset):
    ctx = ToolContext()
    await shared.setup(ctx)
    r = await _call(shared, ctx, "add", a=2, b=40)
    assert (r.is_error, r.content, r.call_id) == (False, "42", "c-add")
    r = await _call(shared, ctx, "echo", text="swarm")
    assert (r.is_error, r.content) == (False, "MRAWS")
    shared._test_pids = [await _pid(shared, ctx)]
    await shared.teardown(ctx)


async def test_failures_are_error_observations(shared: MCPToolset):
    ctx = ToolContext()
    await shared.setup(ctx)
    r = await _call(shared, ctx, "boom", reason="disk on fire")
    # mcp 2's server hides an unexpected exception's message (1.x passes it on); both name the tool
    assert r.is_error and "tool 'boom' failed" in r.content and "boom" in r.content.split("failed", 1)[1]
    r = await _call(shared, ctx, "add", a="seven")  # wrong type and a missing argument
    assert r.is_error and "add" in r.content and "b" in r.content
    r = await shared.call(ToolCall(id="x", name="add", arguments="{not json"), ctx)
    assert r.is_error and "not a JSON object" in r.content
    r = await _call(shared, ctx, "nope")
    assert r.is_error and "unknown tool 'nope'" in r.content and "add" in r.content
    t0 = time.monotonic()
    r = await _call(shared, ctx, "hang")
    assert r.is_error and "timed out after 2 s" in r.content and r.metadata == {"timeout": True}
    assert time.monotonic() - t0 < 30
    # the server survives a timed-out call
    r = await _call(shared, ctx, "add", a=1, b=1)
    assert (r.is_error, r.content) == (False, "2")


async def test_concurrent_calls_share_one_server(shared: MCPToolset):
    ctx = ToolContext()
    await shared.setup(ctx)
    got: dict[int, object] = {}

    async def one(i: int) -> None:
        r = await _call(shared, ctx, "add", a=i, b=1000)
        got[i] = r.content if not r.is_error else r

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(one, i)
    assert got == {i: str(i + 1000) for i in range(40)}


async def test_shared_server_killed_gives_an_error_then_restarts(shared: MCPToolset):
    ctx = ToolContext()
    await shared.setup(ctx)
    old = await _pid(shared, ctx)
    os.kill(old, signal.SIGKILL)
    assert _gone_soon(old)
    r = await _call(shared, ctx, "add", a=1, b=2)
    assert r.is_error and "MCP server" in r.content, r.content
    await shared.teardown(ctx)
    # the next episode gets a fresh server
    ctx = ToolContext()
    await shared.setup(ctx)
    new = await _pid(shared, ctx)
    assert new != old and _alive(new)
    assert (await _call(shared, ctx, "add", a=1, b=2)).content == "3"
    shared._test_pids = [new]
    await shared.teardown(ctx)


async def test_run_episode_with_a_policy_calling_the_mcp_tool(shared: MCPToolset):
    env = AgentEnv([Task(id="t1", prompt="what is 20 + 22?", answer="42")], toolsets=[shared])
    assert [s.name for s in env.tool_specs] == [s.name for s in shared.specs()]
    policy = ScriptedPolicy([
        {"role": "assistant", "content": None, "tool_calls": [{"id": "k1", "name": "add", "arguments": {"a": 20, "b": 22}}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "k2", "name": "boom", "arguments": {}}]},
        "The answer is 42.",
    ])
    traj = await run_episode(env, policy, env.tasks[0])
    assert traj.status == "ok", traj.error
    tool_msgs = [m for m in traj.messages if m.role == "tool"]
    assert [m.content for m in tool_msgs][0] == "42"
    assert tool_msgs[1].content.startswith("tool 'boom' failed")
    assert traj.metrics["tool_calls"] == 2 and traj.metrics["tool_errors"] == 1


async def test_episode_scope_starts_a_server_per_episode_and_always_stops_it():
    ts = _toolset(scope="episode")
    try:
        assert "bump" in [s.name for s in ts.specs()]  # the discovery server is stopped again
        a, b = ToolContext(), ToolContext()
        await ts.setup(a)
        await ts.setup(b)
        pa, pb = await _pid(ts, a), await _pid(ts, b)
        assert pa != pb
        # per-episode state: each server counts on its own
        assert [(await _call(ts, a, "bump")).content for _ in range(2)] == ["1", "2"]
        assert (await _call(ts, b, "bump")).content == "1"
        # cancelled mid-call (e.g. the episode deadline), then torn down: the server is gone
        with anyio.move_on_after(0.5):
            await _call(ts, a, "hang", seconds=60)
        await ts.teardown(a)
        assert not _alive(pa)
        # killed mid-episode: an error observation, and the next episode starts a new server
        os.kill(pb, signal.SIGKILL)
        assert _gone_soon(pb)
        r = await _call(ts, b, "add", a=1, b=2)
        assert r.is_error and "restarts next episode" in r.content, r.content
        await ts.teardown(b)
        c = ToolContext()
        await ts.setup(c)
        pc = await _pid(ts, c)
        assert pc not in (pa, pb) and (await _call(ts, c, "add", a=3, b=4)).content == "7"
        await ts.teardown(c)
        assert not _alive(pc)
    finally:
        ts.close()


async def test_run_episode_cancelled_leaves_no_server():
    ts = _toolset(scope="episode")
    try:
        env = AgentEnv([Task(id="t", prompt="p")], toolsets=[ts])
        pids: list[int] = []

        async def policy_fn(messages, tools, ctx):
            if not pids:
                return {"role": "assistant", "content": None, "tool_calls": [{"id": "p", "name": "pid", "arguments": {}}]}
            return {"role": "assistant", "content": None, "tool_calls": [{"id": "h", "name": "hang", "arguments": {"seconds": 60}}]}

        async def watch():
            traj = await run_episode(env, ScriptedPolicy(policy_fn), env.tasks[0])
            return traj

        async def record_pid():
            while not pids:
                await anyio.sleep(0.05)

        with anyio.move_on_after(CONNECT_S):
            async with anyio.create_task_group() as tg:
                # the policy learns the pid from the first tool message
                async def runner():
                    await watch()

                orig = ts.call

                async def spy(call, ctx):
                    r = await orig(call, ctx)
                    if call.name == "pid" and not r.is_error:
                        pids.append(int(r.content))
                        tg.cancel_scope.cancel()  # cancel the whole run while the server is up
                    return r

                ts.call = spy  # type: ignore[method-assign]
                tg.start_soon(runner)
        assert pids, "the episode never reached its first tool call"
        assert _gone_soon(pids[0]), "the per-episode server outlived the cancelled episode"
    finally:
        ts.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + CONNECT_S
        while True:
            assert proc.poll() is None, "the HTTP MCP server exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP MCP server did not listen in time"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(30)


async def test_streamable_http_server(http_server: str):
    ts = MCPToolset(url=http_server, timeout_s=60, connect_timeout_s=CONNECT_S, prefix="web_")
    try:
        assert "web_echo" in [s.name for s in ts.specs()]
        ctx = ToolContext()
        await ts.setup(ctx)
        r = await _call(ts, ctx, "web_echo", text="over http")
        assert (r.is_error, r.content) == (False, "PTTH REVO")
        r = await _call(ts, ctx, "web_boom")
        assert r.is_error and r.content.startswith("tool 'web_boom' failed")
        await ts.teardown(ctx)
    finally:
        ts.close()


def test_bad_configuration_is_a_clear_error():
    from swarmgym.errors import ConfigError

    with pytest.raises(ConfigError, match="exactly one of"):
        MCPToolset()
    with pytest.raises(ConfigError, match="scope"):
        MCPToolset(["x"], scope="task")  # type: ignore[arg-type]
    ts = _toolset(tools=["add", "nope"])
    try:
        with pytest.raises(ConfigError, match=r"no tool\(s\) \['nope'\]"):
            ts.specs()
    finally:
        ts.close()
    # a server that cannot start: a clear error at discovery, no hang
    ts = MCPToolset([sys.executable, "-c", "import sys; sys.exit(3)"], connect_timeout_s=60, errlog=subprocess.DEVNULL)
    try:
        with pytest.raises(MCPServerError, match="could not be started: .*Connection closed"):
            ts.specs()
    finally:
        ts.close()


def test_a_toolset_never_closed_stops_its_server_at_interpreter_exit(tmp_path: Path):
    script = tmp_path / "leaky.py"
    script.write_text(
        "import sys, anyio\n"
        "from swarmgym.toolsets.mcp import MCPToolset\n"
        "from swarmgym.toolsets.base import ToolContext\n"
        "from swarmgym.wire import ToolCall\n"
        f"ts = MCPToolset([sys.executable, {str(SERVER)!r}], connect_timeout_s={CONNECT_S})\n"
        "ts.specs()\n"
        "async def main():\n"
        "    r = await ts.call(ToolCall(id='1', name='pid', arguments={}), ToolContext())\n"
        "    print(r.content, flush=True)\n"
        "anyio.run(main)\n"  # no close(): exit must neither hang nor leave the server behind
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-P", str(script)], capture_output=True, text=True, timeout=CONNECT_S + 60, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    pid = int(out.stdout.strip())
    assert _gone_soon(pid), "the server outlived its interpreter"
