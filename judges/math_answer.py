"""Math answers checked with math-verify: equivalent forms, LaTeX, fractions, intervals, sets.

``math_verify`` (0.23 s to import, sympy underneath) loads on first use. Its timeouts use ``signal.alarm``,
which only works in the main thread: on the main thread we keep them (a pathological expression is cut off
after ``timeout_s``); elsewhere we turn them off. Either way answers longer than ``MAX_ANSWER_CHARS`` are only compared as
normalised strings (sympy time grows with expression size; real answers are short).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..wire import Task
from .rules import OutcomeJudge, parse_number

__all__ = ["MathJudge", "math_equal"]

MAX_ANSWER_CHARS = 400
"""Longer "answers" are not compared (sympy time explodes with size); never truncated, since a prefix of a
wrong answer can equal the right one."""


def _wrap(s: str) -> str:
    # math-verify's LaTeX extractor wants a math environment; a bare "\frac{1}{2}" parses better in $…$.
    # Inner "$" signs are dropped first: math-verify takes the *first* $…$ span of free text, so
    # "$\dfrac{464}{887}$9" would otherwise pass as 464/887 with the trailing 9 ignored.
    s = s.strip()
    if "\\boxed" in s:
        return s
    s = s.replace("\\$", "").replace("$", "").strip()
    return f"${s}$"


def _light_norm(s: str) -> str:
    # Only changes that cannot alter meaning: brackets and commas matter in math ((0,1] vs [0,1]).
    s = s.strip().strip("$").strip()
    for a in ("\\left", "\\right", "\\!", "\\,", "\\ ", "\\displaystyle"):
        s = s.replace(a, "")
    s = "".join(s.split()).rstrip(".")
    return s


def math_equal(pred: Any, gold: Any, *, timeout_s: int = 5, float_rounding: int = 6) -> bool:
    """True when ``pred`` and ``gold`` are mathematically equal according to math-verify.

    Cheap checks first (normalised string equality, plain numbers), math-verify only when they disagree.
    Never raises on bad input: anything unparseable is simply not equal.
    """
    if pred is None or gold is None:
        return False
    p, g = str(pred), str(gold)
    if not p.strip() or len(p) > MAX_ANSWER_CHARS or len(g) > MAX_ANSWER_CHARS:
        return _light_norm(p) == _light_norm(g) if p.strip() else False
    if _light_norm(p) == _light_norm(g):
        return True
    pn, gn = parse_number(p), parse_number(g)
    if pn is not None and gn is not None:
        return abs(pn - gn) <= max(1e-9, 10 ** (-float_rounding) * max(1.0, abs(gn)))
    from math_verify import parse, verify

    main = threading.current_thread() is threading.main_thread()
    t = timeout_s if main else None
    try:
        gp = parse(_wrap(g), parsing_timeout=t)  # type: ignore[arg-type]
        pp = parse(_wrap(p), parsing_timeout=t)  # type: ignore[arg-type]
        if not gp or not pp:
            return False
        return bool(verify(gp, pp, float_rounding=float_rounding, timeout_seconds=t))
    except Exception:  # math-verify raises on some malformed LaTeX despite raise_on_error=False
        return False


class MathJudge(OutcomeJudge):
    """Math answer judge: extract (``\\boxed{}`` by default, or the task's recorded format) then math-verify.

    ``task.answer`` may be a string/number or a list of accepted answers.

    Example:
        >>> import anyio
        >>> from swarmgym.wire import Task, Trajectory, Message
        >>> from swarmgym.judges.base import JudgeContext
        >>> t = Task(id="1", prompt="1/2 + 1/4?", answer="3/4")
        >>> tr = Trajectory(messages=[Message(role="assistant", content="\\\\boxed{\\\\frac{3}{4}}")])
        >>> anyio.run(MathJudge().score, t, tr, JudgeContext()).reward
        1.0
    """

    name = "math"
    offload = "process"  # sympy can run for ever: a killable worker (swarmgym.judges.offload)

    def __init__(self, *, answer_format: str | Mapping[str, Any] | None = "boxed", fallback: bool = False,
                 timeout_s: int = 5, name: str | None = None) -> None:
        super().__init__(answer_format=answer_format, fallback=fallback, name=name)
        self.timeout_s = timeout_s

    def compare(self, pred: str, gold: Any, task: Task) -> float:
        golds = gold if isinstance(gold, (list, tuple)) else [gold]
        return float(any(math_equal(pred, g, timeout_s=self.timeout_s) for g in golds))
