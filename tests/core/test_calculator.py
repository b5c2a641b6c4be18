"""The safe calculator: exact arithmetic, and every unsafe or unbounded input is an error observation."""

from __future__ import annotations

import ast
import math

import pytest
from swarmgym.errors import ToolError
from swarmgym.toolsets import calculator
from swarmgym.toolsets.base import ToolContext
from swarmgym.toolsets.calculator import CalculatorToolset, evaluate
from swarmgym.wire import ToolCall


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("2 * (3 + 4) ** 2", 98),
        ("7 / 2", 3.5),
        ("6 / 3", 2),
        ("10 // 3", 3),
        ("-7 % 3", 2),
        ("2 ^ 10", 1024),  # ^ means power, as models write it
        ("2 ** -2", 0.25),
        ("-(3 - 5)", 2),
        ("+4", 4),
        ("sqrt(16)", 4.0),
        ("abs(-3) + max(1, 5, 2) - min(4, 2)", 6),
        ("round(2.567, 2)", 2.57),
        ("floor(2.7) + ceil(2.1)", 5),
        ("gcd(12, 18)", 6),
        ("factorial(20)", 2432902008176640000),
        ("log10(1000)", 3.0),
        ("1.5e3 + 1", 1501.0),
        ("  1 + 1  ", 2),
    ],
)
def test_results(expression: str, expected: float) -> None:
    got = evaluate(expression)
    assert got == expected
    assert type(got) is type(expected)


def test_integers_are_exact() -> None:
    assert evaluate("12345678901234567890 * 98765432109876543210") == 12345678901234567890 * 98765432109876543210
    assert evaluate("2 ** 100") == 2**100
    assert evaluate("2 ** 100 - 1") == 2**100 - 1  # no float rounding
    assert evaluate("(10 ** 30 + 1) / 1") == 10**30 + 1  # exact division stays an int
    assert evaluate("10 ** 30 // 7") == 10**30 // 7
    assert evaluate("3 ** 2584") == 3**2584  # just under the size limit


def test_floats_and_constants() -> None:
    assert evaluate("pi") == math.pi and evaluate("e") == math.e
    assert evaluate("0.1 + 0.2") == 0.1 + 0.2
    assert evaluate("sin(0) + cos(0)") == 1.0


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('echo pwned')", "unknown function"),
        ("__import__('os')", "unknown function '__import__'"),
        ("open('/etc/passwd')", "unknown function 'open'"),
        ("eval('1')", "unknown function 'eval'"),
        ("os.system('ls')", "unknown function"),
        ("().__class__.__bases__", "unsupported syntax"),
        ("pi.real", "unsupported syntax"),
        ("(1).__class__", "unsupported syntax"),
        ("x + 1", "unknown name 'x'"),
        ("__builtins__", "unknown name '__builtins__'"),
        ("(lambda: 1)()", "unknown function"),
        ("[1, 2]", "unsupported syntax"),
        ("'abc' * 3", "unsupported syntax"),
        ("True + 1", "unsupported syntax"),
        ("1 if 1 else 2", "unsupported syntax"),
        ("5 < 3", "unsupported syntax"),
        ("1 << 3", "unsupported syntax"),
        ("[x for x in ()]", "unsupported syntax"),
        ("abs(x=1)", "keyword arguments"),
        ("1 +", "syntax error"),
        ("", "syntax error"),
        ("import os", "syntax error"),
        ("1/0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("sqrt(-1)", "sqrt: math domain error"),
        ("log(0)", "log"),
        ("exp(1000)", "exp"),
        ("1e308 * 10", "not finite"),
        ("2.0 ** 10000", "overflow"),
        ("(-8) ** 0.5", "unsupported value"),
        ("factorial(-1)", "factorial"),
        ("factorial(1001)", "factorial argument too large"),
        ("gcd(2.5, 1)", "gcd"),
        ("1" * 2001, "expression too long"),
    ],
)
def test_unsafe_or_invalid_input_is_a_tool_error(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "9 ** 9 ** 9",  # exponent far over the limit
        "2 ** 10001",
        "10 ** 5000",  # exponent allowed, result too big
        "(10 ** 1000) ** 5",
        "(3 ** 2500) ** 10000",  # each part allowed: the result size must be bounded *before* computing it
        "(3 ** 2500) ** 9999 // 7",
        "10 ** 4000 * 10 ** 4000",
        "factorial(1000) * factorial(1000)",
        "2 ** 4096",
    ],
)
def test_huge_numbers_are_rejected(expression: str) -> None:
    # No timing assertion (speed is a benchmark's business); a slow rejection would show as a slow test
    # run, and the bound is checked structurally: nothing with more than 4096 bits is ever returned.
    with pytest.raises(ToolError, match="too large"):
        evaluate(expression)


def test_power_size_is_bounded_before_computing(monkeypatch: pytest.MonkeyPatch) -> None:
    # "Rejected quickly", proven structurally: the oversized power is never computed at all.
    computed: list[tuple[object, object]] = []
    real_pow = calculator._BINOPS[ast.Pow]

    def spy(a: object, b: object) -> object:
        computed.append((a, b))
        return real_pow(a, b)

    monkeypatch.setitem(calculator._BINOPS, ast.Pow, spy)
    with pytest.raises(ToolError, match="too large"):
        evaluate("(3 ** 2500) ** 10000")
    assert computed == [(3, 2500)]


@pytest.mark.parametrize("expression", ["-" * 1999 + "1", "+".join(["1"] * 1000), "(" * 300 + "1" + ")" * 300])
def test_deep_nesting_is_a_tool_error_not_a_recursion_error(expression: str) -> None:
    with pytest.raises(ToolError, match="nested too deeply|too many nested"):
        evaluate(expression)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("expression", "content", "is_error"),
    [
        ("12 * (3 + 4) / 2", "42", False),
        ("sqrt(2) ** 2", "2.0000000000000004", False),
        ("2 ** 70", str(2**70), False),
        ("4.0 / 2", "2", False),  # an integral float is shown as an integer
        ("1 / 0", "error: division by zero", True),
        ("__import__('os')", "error: unknown function '__import__'", True),
    ],
)
async def test_calculator_tool_observations(expression: str, content: str, is_error: bool) -> None:
    ts = CalculatorToolset()
    res = await ts.call(ToolCall(id="c", name="calculator", arguments={"expression": expression}), ToolContext())
    assert res.is_error is is_error
    assert str(res.content).startswith(content)


def test_calculator_spec() -> None:
    (spec,) = CalculatorToolset().specs()
    assert spec.name == "calculator"
    assert spec.parameters["required"] == ["expression"]
    assert spec.parameters["properties"]["expression"]["type"] == "string"
    assert spec.description.startswith("Evaluate an arithmetic expression")
