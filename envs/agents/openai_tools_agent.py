#!/usr/bin/env python3
"""A small tool-using agent written with the official ``openai`` client (nothing from swarmgym).

Reads the task from stdin, talks to ``OPENAI_BASE_URL`` with ``OPENAI_API_KEY`` and ``OPENAI_MODEL``, offers a
``calculator`` tool, runs the tool calls the model makes and prints the model's final answer on stdout.

    echo "What is 17 * 23?" | OPENAI_BASE_URL=http://127.0.0.1:8100/v1 OPENAI_API_KEY=k \\
        OPENAI_MODEL=m python3 openai_tools_agent.py [--stream] [--max-turns 8]
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import os
import sys

import openai

SYSTEM = (
    "Solve the problem. Use the calculator tool for every computation, then give only the final answer "
    "inside \\boxed{}."
)
CALCULATOR = {
    "type": "function",
    "function": {
        "name": "calculator",
        "description": "Evaluate an arithmetic expression (+ - * / // % ** and parentheses).",
        "parameters": {
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "e.g. (3 + 4) * 5"}},
            "required": ["expression"],
        },
    },
}
_OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.USub: operator.neg, ast.UAdd: operator.pos,
}


def calculate(expression: str) -> str:
    """Evaluate plain arithmetic (no names, no calls); errors come back as text for the model."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"unsupported expression element: {type(node).__name__}")

    try:
        value = ev(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, TypeError) as e:
        return f"error: {e}"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def ask(client: openai.OpenAI, model: str, messages: list, stream: bool) -> dict:
    """One model call; returns the assistant message as a dict (content and tool calls)."""
    if not stream:
        msg = client.chat.completions.create(model=model, messages=messages, tools=[CALCULATOR]).choices[0].message
        out: dict = {"role": "assistant", "content": msg.content}
        if msg.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": c.function.arguments}}
                for c in msg.tool_calls
            ]
        return out
    content, calls = [], {}
    for chunk in client.chat.completions.create(model=model, messages=messages, tools=[CALCULATOR], stream=True):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if delta.content:
            content.append(delta.content)
        for d in delta.tool_calls or ():
            c = calls.setdefault(d.index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
            c["id"] = d.id or c["id"]
            if d.function and d.function.name:
                c["function"]["name"] = d.function.name
            if d.function and d.function.arguments:
                c["function"]["arguments"] += d.function.arguments
    out = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        out["tool_calls"] = [calls[i] for i in sorted(calls)]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stream", action="store_true", help="use the streaming API")
    p.add_argument("--max-turns", type=int, default=8)
    args = p.parse_args()
    task = sys.stdin.read().strip()
    model = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL / OPENAI_API_KEY from the environment
    messages: list = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]
    for _ in range(args.max_turns):
        msg = ask(client, model, messages, args.stream)
        messages.append(msg)
        if not msg.get("tool_calls"):
            print(msg.get("content") or "")
            return 0
        for call in msg["tool_calls"]:
            try:
                expr = json.loads(call["function"]["arguments"] or "{}").get("expression", "")
                result = calculate(str(expr)) if call["function"]["name"] == "calculator" else "error: unknown tool"
            except (ValueError, AttributeError) as e:
                result = f"error: bad arguments: {e}"
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    print(f"no final answer after {args.max_turns} turns", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
