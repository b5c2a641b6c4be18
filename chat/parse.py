"""Parse sampled assistant text into a :class:`~swarmgym.wire.Message` (Hermes / Qwen tool-call style).

Models trained on Hermes-style templates (Qwen2.5, Qwen3, many others) write tool calls as
``<tool_call>{"name": …, "arguments": {…}}</tool_call>`` and reasoning as ``<think>…</think>``. Bad model
output is data, not an error: a call whose JSON does not parse keeps the raw text as
``ToolCall.arguments`` (a ``str``) so the loop can answer it with an error observation, and a call cut off by
the token limit (no closing tag) is kept the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..wire import Message, ToolCall, new_id

__all__ = ["parse_hermes", "strip_stop_text"]

_CALL_RE = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.DOTALL)
_NAME_RE = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')


def strip_stop_text(text: str, stops: Sequence[str]) -> str:
    """``text`` without trailing end-of-turn markers (e.g. ``<|im_end|>``), removed repeatedly."""
    changed = True
    while changed and text:
        changed = False
        for s in stops:
            if s and text.endswith(s):
                text = text[: -len(s)]
                changed = True
    return text


def _parse_call(body: str) -> ToolCall:
    raw = body.strip()
    try:
        obj: Any = json.loads(raw)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        m = _NAME_RE.search(raw)
        return ToolCall(id=new_id("call_"), name=m.group(1) if m else "", arguments=raw)
    args: Any = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some models double-encode the arguments
        try:
            decoded = json.loads(args) if args.strip() else {}
            args = decoded if isinstance(decoded, dict) else args
        except ValueError:
            pass
    elif not isinstance(args, dict):
        args = json.dumps(args)
    return ToolCall(id=new_id("call_"), name=obj["name"], arguments=args)


def parse_hermes(text: str, *, stops: Sequence[str] = ()) -> Message:
    """The assistant message written as ``text``.

    Args:
        text: the decoded completion (special tokens may be present).
        stops: end-of-turn strings to strip from the end first (e.g. ``["<|im_end|>"]``).

    Returns:
        An assistant Message: ``content`` is the text outside tool-call blocks (None when empty and there are
        tool calls), ``reasoning_content`` the text before ``</think>`` when the model reasoned, ``tool_calls``
        one entry per ``<tool_call>`` block, malformed arguments kept as the raw string.

    Example:
        >>> m = parse_hermes('<think>add</think>Sure.<tool_call>{"name": "add", "arguments": {"a": 1}}'
        ...                  '</tool_call><|im_end|>', stops=["<|im_end|>"])
        >>> m.reasoning_content, m.content, m.tool_calls[0].name, m.tool_calls[0].arguments
        ('add', 'Sure.', 'add', {'a': 1})
        >>> parse_hermes('<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>').tool_calls[0].arguments
        '{"name": "add", "arguments": {"a": 1'
    """
    text = strip_stop_text(text, stops)
    reasoning: str | None = None
    if "</think>" in text:
        head, _, text = text.partition("</think>")
        reasoning = head.split("<think>", 1)[-1].strip("\n")
    calls = [_parse_call(m.group(1)) for m in _CALL_RE.finditer(text)] if "<tool_call>" in text else []
    content = _CALL_RE.sub("", text).strip("\n") if calls else text.strip("\n")
    return Message(
        role="assistant",
        content=content if (content or not calls) else None,
        tool_calls=calls or None,
        reasoning_content=reasoning,
    )
