"""PythonToolset, ShellToolset and FileEditToolset on a real (local) sandbox."""

from __future__ import annotations

import anyio
import pytest
from swarmgym.testing.require import missing
from swarmgym.toolsets.base import ToolContext
from swarmgym.toolsets.files import FileEditToolset
from swarmgym.toolsets.python import PythonToolset
from swarmgym.toolsets.shell import ShellToolset
from swarmgym.wire import ToolCall

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def sb():
    from swarmgym.errors import SandboxError
    from swarmgym.toolsets.sandbox import create_sandbox

    try:
        s = anyio.run(create_sandbox, "local")
    except SandboxError as e:  # pragma: no cover - hosts without bubblewrap
        missing(f"local sandbox unavailable: {e}")
    yield s
    anyio.run(s.close)


@pytest.fixture
def ctx(sb):
    anyio.run(sb.reset)
    return ToolContext(sandbox=sb)


async def call(ts, name, ctx, **args):
    return await ts.call(ToolCall(id="c1", name=name, arguments=args), ctx)


async def test_python_tool_is_stateful(ctx):
    ts = PythonToolset()
    assert [s.name for s in ts.specs()] == ["python"]
    r = await call(ts, "python", ctx, code="x = 6\nprint('hi')\nx * 7")
    assert not r.is_error and r.content == "hi\nOut: 42"
    r = await call(ts, "python", ctx, code="x / 0")
    assert r.is_error and "ZeroDivisionError" in r.content
    r = await call(ts, "python", ctx, code="pass")
    assert r.content == "(no output)"


async def test_python_tool_timeout_is_an_observation(ctx):
    ts = PythonToolset(timeout=0.5)
    r = await call(ts, "python", ctx, code="while True: pass")
    assert r.is_error and "timed out" in r.content and "variables are lost" in r.content
    assert ts.tools["python"].timeout > 0.5  # the env's cancel comes after the sandbox's own timeout


async def test_tools_without_sandbox_say_what_to_do():
    r = await call(PythonToolset(), "python", ToolContext(), code="1")
    assert r.is_error and "sandbox=SandboxPool" in r.content


async def test_bash_tool(ctx):
    ts = ShellToolset(timeout=0.5)
    r = await call(ts, "bash", ctx, command="echo hi; echo oops >&2; exit 2")
    assert r.is_error and r.content == "hi\noops\n[exit code 2]"
    r = await call(ts, "bash", ctx, command="sleep 10")
    assert r.is_error and "timed out after 0.5 s" in r.content
    r = await call(ts, "bash", ctx, command="true")
    assert not r.is_error and r.content == "(no output)"


async def test_sandbox_failure_is_an_observation(sb):
    from swarmgym.toolsets.sandbox import create_sandbox

    other = await create_sandbox("local")
    try:
        c = ToolContext(sandbox=other)
        r = await call(ShellToolset(), "bash", c, command=f"kill -9 {other.agent_pid}")
        assert r.is_error and "the sandbox failed" in r.content
        r = await call(ShellToolset(), "bash", c, command="echo again")
        assert r.is_error and "not usable" in r.content
    finally:
        await other.close()


async def test_file_tools_view_create_insert_replace(ctx):
    ts = FileEditToolset()
    assert [s.name for s in ts.specs()] == ["view", "create_file", "insert", "str_replace", "submit"]
    assert ts.is_terminal("submit") and not ts.is_terminal("view")
    r = await call(ts, "create_file", ctx, path="pkg/mod.py", content="a = 1\nb = 2\nc = 3\n")
    assert not r.is_error and "created pkg/mod.py" in r.content
    r = await call(ts, "view", ctx, path="pkg/mod.py")
    assert r.content == "     1\ta = 1\n     2\tb = 2\n     3\tc = 3"
    r = await call(ts, "view", ctx, path="pkg/mod.py", start_line=2, end_line=2)
    assert r.content == "     2\tb = 2"
    r = await call(ts, "view", ctx, path=".")
    assert r.content == "pkg/\npkg/mod.py"
    r = await call(ts, "insert", ctx, path="pkg/mod.py", line=1, text="a2 = 11")
    assert not r.is_error
    r = await call(ts, "str_replace", ctx, path="pkg/mod.py", old_str="b = 2", new_str="b = 22")
    assert not r.is_error and "b = 22" in r.content
    assert (await ctx.sandbox.read_file("pkg/mod.py")).decode() == "a = 1\na2 = 11\nb = 22\nc = 3\n"


async def test_file_tools_precise_errors(ctx):
    ts = FileEditToolset()
    await ctx.sandbox.write_file("f.py", "x = 1\nx = 1\n    y = 2\n")
    await ctx.sandbox.write_file("blob.bin", b"\x00\x01\x02")
    await ctx.sandbox.exec("ln -s /etc/passwd link")
    cases = [
        (dict(name="str_replace", path="f.py", old_str="x = 1", new_str="x = 2"), "occurs 2 times in 'f.py' (at lines 1, 2)"),
        (dict(name="str_replace", path="f.py", old_str="y = 3", new_str="z"), "no match for old_str in 'f.py'"),
        (dict(name="str_replace", path="f.py", old_str="y = 2\n    ", new_str="z"), "no match"),
        (dict(name="str_replace", path="f.py", old_str="", new_str="z"), "old_str is empty"),
        (dict(name="str_replace", path="blob.bin", old_str="a", new_str="b"), "binary file"),
        (dict(name="view", path="../etc/passwd"), "outside the workspace"),
        (dict(name="view", path="/etc/passwd"), "outside the workspace"),
        (dict(name="view", path="link"), "outside the workspace"),
        (dict(name="view", path="nope.py"), "does not exist"),
        (dict(name="view", path="f.py", start_line=9), "start_line 9 is out of range: 'f.py' has 3 lines"),
        (dict(name="create_file", path="f.py", content=""), "already exists"),
        (dict(name="insert", path="f.py", line=7, text="z"), "line 7 is out of range"),
    ]
    for args, expected in cases:
        name = args.pop("name")
        r = await call(ts, name, ctx, **args)
        assert r.is_error, (name, args)
        assert expected in r.content, (name, args, r.content)
    r = await call(ts, "str_replace", ctx, path="f.py", old_str="y = 2", new_str="y = 3")
    assert not r.is_error  # a unique match inside an indented line is fine
    r = await call(ts, "str_replace", ctx, path="f.py", old_str="  y = 3\nz", new_str="")
    assert "no match" in r.content


async def test_submit_records_state(ctx):
    ts = FileEditToolset()
    r = await call(ts, "submit", ctx)
    assert not r.is_error and ctx.state["files"]["submitted"] is True
