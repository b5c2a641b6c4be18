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
        if isinstance(node.op, ast.Pow):
            if abs(right) > _MAX_EXPONENT:
                raise ToolError(f"exponent {right} too large (limit {_MAX_EXPONENT})")
            # Bound the result before computing it: (3**2500)**10000 passes both limits above but would
            # build a 40-million-bit int, blocking the event loop for seconds (sync tools run inline).
            if isinstance(left, int) and isinstance(right, int) and right > 0 and (abs(left).bit_length() - 1) * right > _MAX_INT_BITS:
                raise ToolError(f"result too large (more than {_MAX_INT_BITS} bits)")
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
    if isinstance(node, ast.Name):
        if node.id in _CONSTS:
            return _CONSTS[node.id]
        if node.id not in _FUNCS:
            raise ToolError(f"unknown name {node.id!r}; constants: {', '.join(_CONSTS)}")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        args = [_eval(a) for a in node.args]
        if node.func.id == "factorial" and (not args or args[0] > 1000):
            raise ToolError("factorial argument too large (limit 1000)")
        try:
            return _check(_FUNCS[node.func.id](*args))
        except (ValueError, TypeError, OverflowError) as e:
            raise ToolError(f"{node.func.id}: {e}") from None
    if isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)[:40]
        if fname in _FUNCS:
            raise ToolError(f"{fname}: keyword arguments are not supported")
        raise ToolError(f"unknown function {fname!r}; available: {', '.join(_FUNCS)}")
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
    except (RecursionError, MemoryError):
        raise ToolError("expression is nested too deeply") from None
    try:
        return _eval(tree)
    except RecursionError:  # _eval recurses per node: a 1000-term sum is deeper than Python's stack limit
        raise ToolError("expression is nested too deeply; split it into smaller steps") from None


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
