"""A safe calculator tool: arithmetic by walking the AST (never ``eval``), with bounded cost.

Integers stay exact (Python ints); ``/`` gives a float unless both sides divide exactly. Exponents and
result sizes are bounded so ``9**9**9`` is an error, not a hang.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from ..errors import ToolError
from .base import Toolset, tool

__all__ = ["CalculatorToolset", "evaluate"]

_MAX_EXPONENT = 10_000
_MAX_INT_BITS = 4096
_MAX_LEN = 2000

_BINOPS: dict[type, Any] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Any] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, Any] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": math.factorial,
    "gcd": math.gcd,
}
_CONSTS = {"pi": math.pi, "e": math.e}


def _check(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ToolError(f"unsupported value {v!r}")
    if isinstance(v, int) and v.bit_length() > _MAX_INT_BITS:
        raise ToolError(f"result too large (more than {_MAX_INT_BITS} bits)")
    if isinstance(v, float) and not math.isfinite(v):
        raise ToolError("result is not finite")
    return v


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return _check(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ToolError(f"exponent {right} too large (limit {_MAX_EXPONENT})")
        if isinstance(node.op, ast.Div) and isinstance(left, int) and isinstance(right, int) and right and left % right == 0:
            return left // right
        try:
            return _check(_BINOPS[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("division by zero") from None
        except OverflowError:
            raise ToolError("numeric overflow") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _check(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and (not args or args[0] > 1000):
            raise ToolError("factorial argument too large (limit 1000)")
        try:
            return _check(_FUNCS[node.func.id](*args))
        except (ValueError, TypeError) as e:
            raise ToolError(f"{node.func.id}: {e}") from None
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:80]}")


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely.

    Raises:
        ToolError: syntax error, unsupported construct, division by zero, or a too-large result.

    Example:
        >>> evaluate("2 * (3 + 4) ** 2")
        98
    """
    if len(expression) > _MAX_LEN:
        raise ToolError(f"expression too long ({len(expression)} characters, limit {_MAX_LEN})")
    try:
        tree = ast.parse(expression.strip().replace("^", "**"), mode="eval")
    except SyntaxError as e:
        raise ToolError(f"syntax error in expression: {e.msg}") from None
    return _eval(tree)


def _fmt(v: int | float) -> str:
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(v) if isinstance(v, float) else str(v)


class CalculatorToolset(Toolset):
    """One tool, ``calculator(expression)``: + - * / // % ** and sqrt, log, exp, sin, cos, abs, round …"""

    @tool
    def calculator(self, expression: str) -> str:
        """Evaluate an arithmetic expression and return the result.

        Args:
            expression: e.g. "12 * (3 + 4) / 2" or "sqrt(2) ** 2".
        """
        return _fmt(evaluate(expression))
