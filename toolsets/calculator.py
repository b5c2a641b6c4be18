"""A safe calculator tool: arithmetic by walking the AST (never ``eval``), with bounded cost.

Integers stay exact (Python ints); ``/`` gives a float unless both sides divide exactly. Exponents and
result sizes are bounded so ``9**9**9`` is an error, not a hang.
"""

from __future__ import annotations

import ast
import functools
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
    # exact type checks (not isinstance): bool is an int subclass and must be rejected, and this runs
    # once per node on the loop's hot path
    t = type(v)
    if t is int:
        if v.bit_length() > _MAX_INT_BITS:
            raise ToolError(f"result too large (more than {_MAX_INT_BITS} bits)")
        return v
    if t is float:
        if not math.isfinite(v):
            raise ToolError("result is not finite")
        return v
    raise ToolError(f"unsupported value {v!r}")


def _binop(node: ast.BinOp) -> Any:
    op = type(node.op)
    left, right = _eval(node.left), _eval(node.right)
    if op is ast.Pow:
        if abs(right) > _MAX_EXPONENT:
            raise ToolError(f"exponent {right} too large (limit {_MAX_EXPONENT})")
        # Bound the result before computing it: (3**2500)**10000 passes both limits above but would
        # build a 40-million-bit int, blocking the event loop for seconds (sync tools run inline).
        if type(left) is int and type(right) is int and right > 0 and (abs(left).bit_length() - 1) * right > _MAX_INT_BITS:
            raise ToolError(f"result too large (more than {_MAX_INT_BITS} bits)")
    elif op is ast.Div and type(left) is int and type(right) is int and right and left % right == 0:
        return left // right
    try:
        return _check(_BINOPS[op](left, right))
    except ZeroDivisionError:
        raise ToolError("division by zero") from None
    except OverflowError:
        raise ToolError("numeric overflow") from None


def _call(node: ast.Call) -> Any:
    func = node.func
    if type(func) is ast.Name and func.id in _FUNCS and not node.keywords:
        args = [_eval(a) for a in node.args]
        if func.id == "factorial" and (not args or args[0] > 1000):
            raise ToolError("factorial argument too large (limit 1000)")
        try:
            return _check(_FUNCS[func.id](*args))
        except (ValueError, TypeError, OverflowError) as e:
            raise ToolError(f"{func.id}: {e}") from None
    fname = func.id if isinstance(func, ast.Name) else ast.unparse(func)[:40]
    if fname in _FUNCS:
        raise ToolError(f"{fname}: keyword arguments are not supported")
    raise ToolError(f"unknown function {fname!r}; available: {', '.join(_FUNCS)}")


def _eval(node: ast.AST) -> Any:
    t = type(node)
    if t is ast.BinOp and type(node.op) in _BINOPS:  # type: ignore[attr-defined]
        return _binop(node)  # type: ignore[arg-type]
    if t is ast.Constant and type(node.value) in (int, float):  # type: ignore[attr-defined]
        return _check(node.value)  # type: ignore[attr-defined]
    if t is ast.UnaryOp and type(node.op) in _UNARY:  # type: ignore[attr-defined]
        return _check(_UNARY[type(node.op)](_eval(node.operand)))  # type: ignore[attr-defined]
    if t is ast.Expression:
        return _eval(node.body)  # type: ignore[attr-defined]
    if t is ast.Name:
        name = node.id  # type: ignore[attr-defined]
        if name in _CONSTS:
            return _CONSTS[name]
        if name not in _FUNCS:
            raise ToolError(f"unknown name {name!r}; constants: {', '.join(_CONSTS)}")
    if t is ast.Call:
        return _call(node)  # type: ignore[arg-type]
    raise ToolError(f"unsupported syntax: {ast.dump(node)[:80]}")


@functools.lru_cache(maxsize=4096)
def _parse(source: str) -> ast.Expression:
    # Parsing is most of a calculator call (~3 µs in CPython's compiler); like ``re``'s pattern cache,
    # recent expressions keep their tree (never mutated: _eval only reads it). Errors are not cached.
    return ast.parse(source, mode="eval")


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
        tree = _parse(expression.strip().replace("^", "**"))
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
