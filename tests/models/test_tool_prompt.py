"""ToolPrompt: tool use as text for templates without tools (fast; the real-template checks are in
test_smollm2_policy.py)."""

from __future__ import annotations

import doctest
from typing import Any

import pytest

import swarmgym.policies.tool_prompt as tool_prompt
from swarmgym.policies.tool_prompt import ToolPrompt, template_renders_tools
from swarmgym.training.parse import parse_hermes
from swarmgym.wire import Message, ToolCall, ToolSpec

CALC = ToolSpec(
    name="calculator",
    description="Evaluate an arithmetic expression.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)


def test_docstring_examples_run() -> None:
    assert doctest.testmod(tool_prompt).failed == 0


def test_rewrite_is_append_only_and_round_trips_calls() -> None:
    tp = ToolPrompt()
    msgs = [Message(role="user", content="12*7?")]
    first = tp.apply(msgs, [CALC])
    assert first[0].role == "system" and "calculator(expression: string)" in first[0].text
    call = ToolCall(id="c1", name="calculator", arguments={"expression": "12*7"})
    longer = [*msgs, Message(role="assistant", content=None, tool_calls=[call]),
              Message(role="tool", content="84", tool_call_id="c1")]  # fmt: skip
    second = tp.apply(longer, [CALC])
    assert second[: len(first)] == first  # earlier turns never change: token-in-token-out can extend
    # what the prompt tells the model to write is exactly what the parser reads back
    parsed = parse_hermes(second[2].text)
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == [("calculator", {"expression": "12*7"})]
    assert second[3] == Message(role="user", content="<tool_response>84</tool_response>")
    assert tp.apply(msgs, []) == msgs  # no tools: nothing added


def test_malformed_call_from_a_model_stays_raw() -> None:
    m = parse_hermes('<tool_call>{"name": "calculator", "arguments": {"expression": "1+</tool_call>')
    assert m.tool_calls[0].name == "calculator" and isinstance(m.tool_calls[0].arguments, str)


@pytest.mark.parametrize("kind", ["chatml_tools"])
def test_detects_a_template_that_renders_tools(kind: str) -> None:
    pytest.importorskip("transformers")
    from swarmgym.training.chat import ChatRenderer
    from swarmgym.training.tiny import make_tiny_tokenizer

    assert template_renders_tools(ChatRenderer(make_tiny_tokenizer(kind)))


def test_smollm2_template_does_not_render_tools(smollm2: tuple[Any, Any]) -> None:
    from swarmgym.training.chat import ChatRenderer

    assert not template_renders_tools(ChatRenderer(smollm2[1]))
