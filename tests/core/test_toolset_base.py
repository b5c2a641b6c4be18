"""``@tool`` and Toolset: schema from the signature and docstring, validation and failures as error results."""

from __future__ import annotations

import json
from typing import Literal

import anyio
import pytest
from pydantic import BaseModel
from swarmgym.errors import ToolError
from swarmgym.toolsets.base import (
    FunctionTool,
    FunctionToolset,
    ToolContext,
    Toolset,
    ToolsetProtocol,
    tool,
)
from swarmgym.wire import Task, TextPart, ToolCall, ToolResult


class Point(BaseModel):
    x: int
    y: int


class Sample(Toolset):
    @tool
    def search(
        self,
        query: str,
        limit: int = 5,
        weights: list[float] | None = None,
        mode: Literal["fast", "exact"] = "fast",
    ) -> dict:
        """Search the corpus.

        Returns the best hits first.

        Args:
            query: what to look for.
            limit (int): how many hits
                to return at most.
            weights: optional per-field weights.

        Returns:
            A dict of hits.
        """
        return {"query": query, "limit": limit, "weights": weights, "mode": mode}

    @tool(name="whoami", description="Report the episode.", terminal=True, timeout=1.5)
    async def _who(self, ctx: ToolContext) -> Point:
        await anyio.sleep(0)
        return Point(x=ctx.depth, y=len(ctx.state))

    @tool
    def listing(self, n: int) -> list:
        """List numbers."""
        return list(range(n))

    @tool
    def nothing(self) -> None:
        """Return nothing."""

    @tool
    def parts(self) -> list:
        """Return content parts."""
        return [TextPart(text="a"), TextPart(text="b")]

    @tool
    def explicit(self, ctx: ToolContext) -> ToolResult:
        """Return a full ToolResult (with a wrong call id, fixed by the toolset)."""
        return ToolResult(call_id="whatever", content="done", metadata={"task": ctx.task.id if ctx.task else None})

    @tool
    def refuse(self, path: str) -> str:
        """Refuse with a ToolError."""
        raise ToolError(f"cannot open {path}: use a relative path")

    @tool
    def crash(self) -> str:
        """Raise an unexpected exception."""
        return str(1 / 0)

    @tool
    def move(self, p: Point) -> str:
        """Move to a point."""
        return f"{p.x},{p.y}"


async def call(ts: Toolset, name: str, arguments: dict | str | None = None, ctx: ToolContext | None = None) -> ToolResult:
    return await ts.call(ToolCall(id="c1", name=name, arguments={} if arguments is None else arguments), ctx or ToolContext())


def spec(ts: Toolset, name: str) -> dict:
    return next(s for s in ts.specs() if s.name == name).model_dump()


def test_schema_from_signature_and_docstring() -> None:
    s = spec(Sample(), "search")
    assert s["description"] == "Search the corpus.\n\nReturns the best hits first."
    params = s["parameters"]
    assert params["type"] == "object"
    assert params["required"] == ["query"]
    assert params["additionalProperties"] is False
    props = params["properties"]
    assert list(props) == ["query", "limit", "weights", "mode"]
    assert props["query"] == {"type": "string", "description": "what to look for."}
    assert props["limit"] == {"type": "integer", "default": 5, "description": "how many hits to return at most."}
    assert props["weights"]["default"] is None and props["weights"]["description"] == "optional per-field weights."
    assert {"type": "array", "items": {"type": "number"}} in props["weights"]["anyOf"]
    assert props["mode"]["enum"] == ["fast", "exact"] and props["mode"]["default"] == "fast"
    assert "description" not in props["mode"]  # not documented: no empty description
    assert not any("title" in p for p in props.values())
    json.dumps(params)  # a plain JSON Schema, sendable to any server


def test_options_ctx_and_names() -> None:
    ts = Sample()
    s = spec(ts, "whoami")
    assert s["description"] == "Report the episode."
    assert s["parameters"]["properties"] == {}  # ctx is injected, never part of the schema
    assert "required" not in s["parameters"]
    assert ts.is_terminal("whoami") and not ts.is_terminal("search") and not ts.is_terminal("missing")
    assert ts.timeout_for("whoami") == 1.5 and ts.timeout_for("search") is None
    assert sorted(ts.tools) == sorted(s.name for s in ts.specs())
    assert isinstance(ts, ToolsetProtocol)


@pytest.mark.anyio
async def test_valid_call_and_defaults() -> None:
    res = await call(Sample(), "search", {"query": "cats"})
    assert not res.is_error and res.call_id == "c1"
    assert json.loads(res.content) == {"query": "cats", "limit": 5, "weights": None, "mode": "fast"}  # type: ignore[arg-type]
    res = await call(Sample(), "search", {"query": "cats", "limit": 2, "weights": [1, 0.5], "mode": "exact"})
    assert json.loads(res.content) == {"query": "cats", "limit": 2, "weights": [1.0, 0.5], "mode": "exact"}  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_ctx_injection_and_async_tool() -> None:
    ctx = ToolContext(task=Task(id="t9", prompt="p"), depth=2, state={"k": 1})
    res = await call(Sample(), "whoami", ctx=ctx)
    assert not res.is_error and json.loads(res.content) == {"x": 2, "y": 1}  # type: ignore[arg-type]
    res = await call(Sample(), "explicit", ctx=ctx)
    assert res.call_id == "c1" and res.content == "done" and res.metadata == {"task": "t9"}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "content"),
    [
        ("listing", {"n": 3}, "[0, 1, 2]"),
        ("nothing", {}, ""),
        ("move", {"p": {"x": 1, "y": 2}}, "1,2"),
    ],
)
async def test_return_values_become_content(name: str, arguments: dict, content: str) -> None:
    res = await call(Sample(), name, arguments)
    assert not res.is_error and res.content == content


@pytest.mark.anyio
async def test_content_parts_pass_through() -> None:
    res = await call(Sample(), "parts")
    assert res.content == [TextPart(text="a"), TextPart(text="b")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "query: Field required"),
        ({"query": 3}, "query: Input should be a valid string"),
        ({"query": "q", "limit": "many"}, "limit: Input should be a valid integer"),
        ({"query": "q", "mode": "slow"}, "mode: Input should be 'fast' or 'exact'"),
        ({"query": "q", "colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"query": "q", "weights": ["x"]}, "weights.0: Input should be a valid number"),
    ],
)
async def test_validation_errors_are_error_results(arguments: dict, expected: str) -> None:
    res = await call(Sample(), "search", arguments)
    assert res.is_error
    assert res.content.startswith("invalid arguments for tool 'search': ")  # type: ignore[union-attr]
    assert expected in res.content


@pytest.mark.anyio
async def test_malformed_json_arguments_are_an_error_result() -> None:
    res = await call(Sample(), "search", '{"query": "ca')
    assert res.is_error and "not a JSON object" in res.content and '{"query": "ca' in res.content  # type: ignore[operator]


@pytest.mark.anyio
async def test_tool_error_message_reaches_the_model() -> None:
    res = await call(Sample(), "refuse", {"path": "/etc/passwd"})
    assert res.is_error and res.content == "error: cannot open /etc/passwd: use a relative path"


@pytest.mark.anyio
async def test_raising_tool_is_an_error_result() -> None:
    res = await call(Sample(), "crash")
    assert res.is_error
    assert res.content == "tool 'crash' raised ZeroDivisionError: division by zero"
    assert res.metadata["exception"] == "ZeroDivisionError"


@pytest.mark.anyio
async def test_unknown_tool_lists_the_available_ones() -> None:
    res = await call(Sample(), "serach", {"query": "x"})
    assert res.is_error and "unknown tool 'serach'" in res.content and "search" in res.content  # type: ignore[operator]


@pytest.mark.anyio
async def test_cancellation_is_not_swallowed() -> None:
    class Slow(Toolset):
        @tool
        async def wait(self) -> str:
            """Wait forever."""
            await anyio.sleep_forever()
            return "never"

    with anyio.move_on_after(0.05) as scope:
        await call(Slow(), "wait")
    assert scope.cancelled_caught  # the tool was cancelled, not turned into a result


@pytest.mark.anyio
async def test_function_toolset_from_plain_functions() -> None:
    def add(a: int, b: int = 1) -> int:
        """Add two numbers.

        Args:
            a: first.
            b: second.
        """
        return a + b

    @tool(terminal=True)
    async def submit(answer: str, ctx: ToolContext) -> str:
        """Submit the final answer."""
        ctx.state["answer"] = answer
        return "submitted"

    ts = FunctionToolset([add, submit])
    assert [s.name for s in ts.specs()] == ["add", "submit"]
    assert spec(ts, "add")["parameters"]["properties"]["b"] == {"default": 1, "description": "second.", "type": "integer"}
    assert ts.is_terminal("submit")
    ctx = ToolContext()
    assert (await call(ts, "add", {"a": 2}, ctx)).content == "3"
    assert (await call(ts, "submit", {"answer": "42"}, ctx)).content == "submitted"
    assert ctx.state == {"answer": "42"}


def test_decorated_methods_stay_callable() -> None:
    ts = Sample()
    assert ts.listing(2) == [0, 1]
    assert isinstance(Sample.__dict__["listing"], FunctionTool)
    plain = tool(lambda x: x * 2, name="double")
    assert plain(4) == 8 and plain.spec.name == "double"


def test_one_instance_per_toolset_instance() -> None:
    a, b = Sample(), Sample()
    a.add(lambda: "extra")
    assert "<lambda>" in a.tools and "<lambda>" not in b.tools
