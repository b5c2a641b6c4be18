"""Tool calls for models whose chat template has no notion of tools (SmolLM2, plain ChatML).

Such a template ignores a ``tools`` list and fails on an assistant message that has tool calls but no
content. :class:`ToolPrompt` turns a tool-using conversation into plain text turns the template can render,
so the same env runs on any chat model:

- the tools are described in the system message (appended to the env's own system prompt, or a new first
  message), followed by how to call one;
- an assistant tool call is written as text, one line per call, exactly as the model is told to write it::

      <tool_call>{"name": "calculator", "arguments": {"expression": "2+3"}}</tool_call>

- a tool result becomes a user turn ``<tool_response>…</tool_response>`` (small chat models were trained on
  user/assistant turns, not on a ``tool`` role).

The model's reply is parsed with :func:`~swarmgym.training.parse.parse_hermes`, which reads exactly that
``<tool_call>`` form; a call it cannot parse stays a call with raw-string arguments, which the loop answers
with an error observation (never an exception). The rewrite depends only on each message itself and on the
tools, so the rewritten conversation grows append-only, which token-in-token-out needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..wire import Message, ToolSpec, text_of

__all__ = ["ToolPrompt", "template_renders_tools"]

_INSTRUCTIONS = (
    "You can use these tools:\n{tools}\n\n"
    "To use a tool, reply with only this line and nothing else:\n"
    '<tool_call>{{"name": "TOOL_NAME", "arguments": {{ARGUMENTS AS JSON}}}}</tool_call>\n'
    "For example:\n{example}\n"
    "The result comes back as <tool_response>RESULT</tool_response>. "
    "When you know the final answer, reply with it and no tool call."
)


def _signature(spec: ToolSpec) -> str:
    props: dict[str, Any] = (spec.parameters or {}).get("properties", {}) or {}
    args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in props.items())
    return f"- {spec.name}({args}): {spec.description.strip()}".rstrip(": ")


def _example(spec: ToolSpec) -> str:
    props: dict[str, Any] = (spec.parameters or {}).get("properties", {}) or {}
    samples = {"string": "2 + 3" if spec.name == "calculator" else "...", "integer": 1, "number": 1.5}
    args = {k: samples.get(v.get("type", "string"), "...") for k, v in props.items()}
    return _call_text(spec.name, args)


def _call_text(name: str, arguments: Any) -> str:
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return f'<tool_call>{{"name": {json.dumps(name)}, "arguments": {args}}}</tool_call>'


class ToolPrompt:
    """Rewrites a tool-using conversation into text turns (see the module docstring for the format).

    Args:
        instructions: the text appended to the system message; ``{tools}`` is replaced by one line per tool,
            ``{example}`` by an example call of the first tool.

    Example:
        >>> from swarmgym.wire import ToolCall
        >>> spec = ToolSpec(name="calculator", description="Evaluate arithmetic.",
        ...                 parameters={"type": "object", "properties": {"expression": {"type": "string"}}})
        >>> msgs = [Message(role="system", content="Solve it."), Message(role="user", content="2+3?"),
        ...         Message(role="assistant", content=None,
        ...                 tool_calls=[ToolCall(id="c1", name="calculator", arguments={"expression": "2+3"})]),
        ...         Message(role="tool", content="5", tool_call_id="c1")]
        >>> out = ToolPrompt().apply(msgs, [spec])
        >>> [m.role for m in out]
        ['system', 'user', 'assistant', 'user']
        >>> out[2].content, out[3].content
        ('<tool_call>{"name": "calculator", "arguments": {"expression": "2+3"}}</tool_call>', '<tool_response>5</tool_response>')
    """

    def __init__(self, instructions: str = _INSTRUCTIONS) -> None:
        self.instructions = instructions
        self._cache: tuple[Any, str] | None = None

    def system_text(self, tools: Sequence[ToolSpec]) -> str:
        """The tool instructions for ``tools`` (empty when there are none)."""
        if not tools:
            return ""
        cached = self._cache
        if cached is not None and cached[0] is tools:
            return cached[1]
        text = self.instructions.format(tools="\n".join(map(_signature, tools)), example=_example(tools[0]))
        self._cache = (tools, text)
        return text

    def apply(self, messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[Message]:
        """``messages`` as plain user/assistant/system text turns, with the tools described up front."""
        out: list[Message] = []
        intro = self.system_text(tools)
        for i, m in enumerate(messages):
            if m.role == "system" and i == 0:
                body = text_of(m.content) if m.content is not None else ""
                out.append(Message(role="system", content=f"{body}\n\n{intro}".strip() if intro else body))
            elif m.role == "assistant" and m.tool_calls:
                lines = [text_of(m.content)] if m.content else []
                lines += [_call_text(c.name, c.arguments) for c in m.tool_calls]
                out.append(Message(role="assistant", content="\n".join(lines)))
            elif m.role == "tool":
                out.append(Message(role="user", content=f"<tool_response>{m.text}</tool_response>"))
            else:
                out.append(m)
        if intro and (not messages or messages[0].role != "system"):
            out.insert(0, Message(role="system", content=intro))
        return out


def template_renders_tools(renderer: Any) -> bool:
    """Whether a chat template writes the tools it is given into the prompt (a probe tool's name shows up).

    Args:
        renderer: a :class:`~swarmgym.training.chat.ChatRenderer` (anything with ``render(msgs, tools, …)``).
    """
    probe = "swarmgym_probe_tool_7f3a"
    tools = [{"type": "function", "function": {"name": probe, "description": "probe", "parameters": {}}}]
    try:
        text = renderer.render([{"role": "user", "content": "x"}], tools, add_generation_prompt=True)
    except Exception:  # a template that chokes on tools certainly does not render them
        return False
    return probe in text
