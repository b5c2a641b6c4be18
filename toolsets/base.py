"""Toolset protocol, the per-episode tool context and the ``@tool`` decorator.

A tool is a typed Python function. ``@tool`` derives its JSON Schema from the signature (pydantic), its
description from the docstring (Google style ``Args:`` become parameter descriptions), and validates the
model's arguments before the function runs. Everything a model can get wrong (unknown tool, malformed JSON,
wrong types, an exception in the tool) becomes an error :class:`~swarmgym.wire.ToolResult`, never an
exception out of the loop.

Example:
    >>> class Greeter(Toolset):
    ...     @tool
    ...     def greet(self, name: str, times: int = 1) -> str:
    ...         '''Greet someone.
    ...
    ...         Args:
    ...             name: who to greet.
    ...             times: how often.
    ...         '''
    ...         return " ".join([f"hello {name}"] * times)
    >>> [s.name for s in Greeter().specs()]
    ['greet']
"""

from __future__ import annotations

import inspect
import re
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, get_type_hints, runtime_checkable

import anyio
from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import ToolError
from ..wire import ContentPart, ToolCall, ToolResult, ToolSpec

if TYPE_CHECKING:
    from ..wire import Task

__all__ = ["Toolset", "ToolContext", "FunctionTool", "tool", "FunctionToolset", "ToolsetProtocol", "format_validation_error"]


@dataclass(slots=True)
class ToolContext:
    """What a tool call may use besides its arguments.

    Attributes:
        task: the episode's task.
        sandbox: the episode's sandbox (None when the env has no sandbox).
        spawn: ``await ctx.spawn(env_or_id, task, role="subagent", limits=None) -> Trajectory`` runs a
            child episode under this one (sub-agents, agent judges).
        state: per-episode scratch space shared by the toolsets (keyed by toolset, by convention).
        env: the AgentEnv running the episode.
        episode_id: id of the trajectory being built.
        role: policy role of this episode.
        depth: spawn depth of this episode (0 for a top-level episode).
    """

    task: Task | None = None
    sandbox: Any = None
    spawn: Callable[..., Awaitable[Any]] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    env: Any = None
    episode_id: str = ""
    role: str = "main"
    depth: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class ToolsetProtocol(Protocol):
    """The minimal contract the loop relies on."""

    def specs(self) -> list[ToolSpec]: ...

    async def call(self, call: ToolCall, ctx: ToolContext) -> ToolResult: ...


_ARGS_RE = re.compile(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """Description (text before the first section) and ``Args:`` entries of a Google-style docstring."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    lines = doc.splitlines()
    desc: list[str] = []
    params: dict[str, str] = {}
    i = 0
    while i < len(lines) and not re.match(r"^(Args|Arguments|Returns|Raises|Example|Examples|Yields):\s*$", lines[i]):
        desc.append(lines[i])
        i += 1
    current: str | None = None
    in_args = False
    for line in lines[i:]:
        if re.match(r"^\w[\w ]*:\s*$", line):
            in_args = line.split(":")[0] in ("Args", "Arguments")
            current = None
            continue
        if not in_args:
            continue
        m = _ARGS_RE.match(line)
        if m and (len(line) - len(line.lstrip())) <= 4:
            current = m.group(1)
            params[current] = m.group(2).strip()
        elif current and line.strip():
            params[current] += " " + line.strip()
    return "\n".join(desc).strip(), params


def format_validation_error(tool_name: str, e: ValidationError) -> str:
    """A short, model-readable description of what was wrong with the arguments."""
    parts = []
    for err in e.errors(include_url=False)[:8]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(arguments)"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return f"invalid arguments for tool '{tool_name}': " + "; ".join(parts)


class FunctionTool:
    """A tool built from a typed function (use the :func:`tool` decorator rather than this directly)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        terminal: bool = False,
        timeout: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.terminal = terminal
        """A successful call ends the episode (e.g. ``submit``)."""
        self.timeout = timeout
        """Per-tool timeout overriding the env's default."""
        doc_desc, arg_docs = _parse_docstring(fn.__doc__)
        self.description = description if description is not None else doc_desc
        sig = inspect.signature(fn)
        try:
            hints = get_type_hints(fn)
        except Exception:  # unresolved forward refs: fall back to raw annotations
            hints = {k: p.annotation for k, p in sig.parameters.items()}
        fields: dict[str, Any] = {}
        self._wants_ctx = False
        self._bound_self = False
        params = list(sig.parameters.values())
        if params and params[0].name == "self":
            self._bound_self = True
            params = params[1:]
        for p in params:
            if p.name == "ctx":
                self._wants_ctx = True
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            ann = hints.get(p.name, Any)
            if ann is inspect.Parameter.empty:
                ann = Any
            default = ... if p.default is inspect.Parameter.empty else p.default
            from pydantic import Field

            fields[p.name] = (ann, Field(default, description=arg_docs.get(p.name)))
        self.args_model: type[BaseModel] = create_model(  # type: ignore[call-overload]
            f"{self.name}_args", __config__=ConfigDict(extra="forbid"), **fields
        )
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        for prop in schema.get("properties", {}).values():
            prop.pop("title", None)
        schema.setdefault("properties", {})
        self.parameters = schema
        self.is_async = inspect.iscoroutinefunction(fn)
        self.spec = ToolSpec(name=self.name, description=self.description, parameters=schema)
        # Fast path: arguments whose every field is a str/int/float/bool need no pydantic round trip
        # beyond validation; we keep the validated model's attributes as kwargs.
        self._field_names = list(fields)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        # Used as a method decorator: accessing via the instance gives a bound copy.
        if obj is None:
            return self
        bound = object.__new__(FunctionTool)
        bound.__dict__.update(self.__dict__)
        bound.fn = self.fn.__get__(obj, objtype)
        bound._bound_self = False
        return bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    async def invoke(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        """Validate ``arguments`` and run the function (sync functions run inline: keep them fast, or make
        them async / use ``anyio.to_thread`` yourself for blocking work)."""
        if self.is_async:
            return await self.fn(**self._kwargs(arguments, ctx))
        return self.fn(**self._kwargs(arguments, ctx))

    def invoke_sync(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        """:meth:`invoke` for a sync function, without a coroutine (the agent loop's fast path)."""
        return self.fn(**self._kwargs(arguments, ctx))

    def _kwargs(self, arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
        model = self.args_model.model_validate(arguments)
        kwargs = {k: getattr(model, k) for k in self._field_names}
        if self._wants_ctx:
            kwargs["ctx"] = ctx
        return kwargs


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    terminal: bool = False,
    timeout: float | None = None,
) -> Any:
    """Make a tool from a typed function or method. Use bare (``@tool``) or with options.

    Args:
        fn: the function; its parameters (except ``self`` and ``ctx``) become the tool's arguments.
        name: tool name (default: the function name).
        description: description (default: the docstring's text before its sections).
        terminal: a successful call ends the episode.
        timeout: seconds before the call is cancelled (default: the env's tool timeout).
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return FunctionTool(f, name=name, description=description, terminal=terminal, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


def _to_content(value: Any) -> str | list[ContentPart]:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, BaseModel) for p in value):
        return value  # content parts
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    if isinstance(value, (dict, list, tuple)):
        import json

        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


class Toolset:
    """Base class for toolsets: methods decorated with ``@tool`` become the toolset's tools.

    Subclasses may override :meth:`setup` (called once per episode before the first call) and
    :meth:`teardown` (after the episode, even on error). Per-episode state belongs in ``ctx.state``, not on
    the instance: one toolset instance serves many concurrent episodes.
    """

    def __init__(self) -> None:
        self._tools: dict[str, FunctionTool] = {}
        for klass in reversed(type(self).__mro__):
            for attr, val in vars(klass).items():
                if isinstance(val, FunctionTool):
                    bound = getattr(self, attr)
                    self._tools[bound.name] = bound
        self._specs = [t.spec for t in self._tools.values()]

    def add(self, fn: Callable[..., Any] | FunctionTool) -> None:
        """Add a function (or FunctionTool) as a tool of this toolset."""
        t = fn if isinstance(fn, FunctionTool) else FunctionTool(fn)
        self._tools[t.name] = t
        self._specs = [t.spec for t in self._tools.values()]

    @property
    def tools(self) -> dict[str, FunctionTool]:
        return self._tools

    def specs(self) -> list[ToolSpec]:
        return list(self._specs)

    def is_terminal(self, name: str) -> bool:
        t = self._tools.get(name)
        return bool(t and t.terminal)

    def timeout_for(self, name: str) -> float | None:
        t = self._tools.get(name)
        return t.timeout if t else None

    async def setup(self, ctx: ToolContext) -> None:
        """Prepare per-episode state (default: nothing)."""

    async def teardown(self, ctx: ToolContext) -> None:
        """Release per-episode state (default: nothing)."""

    async def call(self, call: ToolCall, ctx: ToolContext) -> ToolResult:
        """Run one call; every failure the model can cause is an error result."""
        t = self._tools.get(call.name)
        if t is None:
            return ToolResult(
                call_id=call.id,
                content=f"unknown tool '{call.name}'; available: {', '.join(self._tools) or 'none'}",
                is_error=True,
            )
        return await run_tool(t, call, ctx)


async def run_tool(t: FunctionTool, call: ToolCall, ctx: ToolContext) -> ToolResult:
    """Validate and run ``call`` with tool ``t``, mapping every failure to an error result."""
    if isinstance(call.arguments, str):
        return _malformed(call)
    try:
        value = await t.invoke(call.arguments, ctx)
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as e:
        return _failed(call, e)
    return _result(call, value)


def run_tool_sync(t: FunctionTool, call: ToolCall, ctx: ToolContext) -> ToolResult:
    """:func:`run_tool` for a sync tool, without coroutines (the agent loop's fast path)."""
    if isinstance(call.arguments, str):
        return _malformed(call)
    try:
        value = t.invoke_sync(call.arguments, ctx)
    except Exception as e:
        return _failed(call, e)
    return _result(call, value)


def _malformed(call: ToolCall) -> ToolResult:
    args = str(call.arguments)
    snippet = args if len(args) <= 200 else args[:200] + "…"
    return ToolResult(
        call_id=call.id, content=f"arguments for tool '{call.name}' are not a JSON object: {snippet!r}", is_error=True
    )


def _failed(call: ToolCall, e: Exception) -> ToolResult:
    if isinstance(e, ValidationError):
        return ToolResult(call_id=call.id, content=format_validation_error(call.name, e), is_error=True)
    if isinstance(e, ToolError):
        return ToolResult(call_id=call.id, content=f"error: {e}", is_error=True)
    # a crashing tool is an observation, not a crash of the episode
    tb = traceback.extract_tb(e.__traceback__)[-3:]
    where = "; ".join(f"{f.name}:{f.lineno}" for f in tb)
    return ToolResult(
        call_id=call.id,
        content=f"tool '{call.name}' raised {type(e).__name__}: {e}",
        is_error=True,
        metadata={"exception": type(e).__name__, "where": where},
    )


def _result(call: ToolCall, value: Any) -> ToolResult:
    if isinstance(value, ToolResult):
        return value if value.call_id == call.id else value.model_copy(update={"call_id": call.id})
    return ToolResult(call_id=call.id, content=_to_content(value))


class FunctionToolset(Toolset):
    """A toolset from plain functions: ``FunctionToolset([f, g])`` (``@tool`` optional on each)."""

    def __init__(self, functions: Sequence[Callable[..., Any] | FunctionTool] = ()) -> None:
        super().__init__()
        for f in functions:
            self.add(f)
