"""Rule-based outcome judges: exact / normalised match, regex, multiple choice, numeric with tolerance.

All of them share one shape (:class:`OutcomeJudge`): take the response text (the last assistant message),
extract the answer in the task's answer format (``task.metadata["answer_format"]`` when an enhancer set it,
else the judge's own ``answer_format``), compare it with ``task.answer`` and report::

    JudgeResult(reward, facets={"<name>": reward, "extracted": 1.0 | 0.0}, info={"extracted": …})

A response without an answer in the expected format scores 0 (``extracted`` facet 0), never an error.

Example:
    >>> import anyio
    >>> from swarmgym.wire import Task, Trajectory, Message
    >>> t = Task(id="1", prompt="2+2?", answer="4")
    >>> tr = Trajectory(messages=[Message(role="assistant", content="It is \\\\boxed{4}.")])
    >>> anyio.run(ExactMatch().score, t, tr, JudgeContext()).reward
    1.0
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..wire import JudgeResult, Task, Trajectory, _trusted
from .base import JudgeContext
from .extract import answer_format_of, extract_answer

__all__ = [
    "ExactMatch",
    "MultipleChoice",
    "NumericMatch",
    "OutcomeJudge",
    "RegexMatch",
    "extract_answer",
    "normalize_answer",
    "parse_number",
    "response_text",
]

FROM_TASK = "from_task"


def response_text(trajectory: Trajectory) -> str:
    """The text a judge scores: the last assistant message ('' when there is none)."""
    return trajectory.final_text


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in "!\"#%&'()*,/:;<>?@[]^_`{|}~"})
_LATEX_WRAP = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


def normalize_answer(s: Any, *, strip_articles: bool = True) -> str:
    """Canonical form for lenient comparison.

    NFKC, case-folded, LaTeX wrappers (``$``, ``\\text{}``, ``\\mathrm{}``) and most punctuation removed,
    articles dropped, whitespace collapsed, a trailing period removed. Numbers written with thousands
    separators lose them (``1,000`` → ``1000``).
    """
    if s is None:
        return ""
    if not isinstance(s, str):
        s = str(s)
    s = unicodedata.normalize("NFKC", s).casefold()
    if "\\" in s:
        s = _LATEX_WRAP.sub(r"\1", s)
        s = s.replace("\\,", "").replace("\\!", "").replace("\\ ", " ")
    s = s.replace("$", " ")
    if "," in s:
        s = _THOUSANDS.sub("", s)
    s = s.translate(_PUNCT)
    if strip_articles:
        stripped = _ARTICLES.sub(" ", s)
        if stripped.strip():  # "a" or "the" alone is the answer itself, not an article
            s = stripped
    s = " ".join(s.split())
    s = s.rstrip(".").strip()
    return s


@functools.lru_cache(maxsize=16384)
def _normalize_short(s: str) -> str:
    return normalize_answer(s)


def _normalize_cached(s: Any) -> str:
    """normalize_answer, memoised for short strings (gold answers repeat across a group's samples)."""
    return _normalize_short(s) if isinstance(s, str) and len(s) <= 256 else normalize_answer(s)


_NUM = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?", re.IGNORECASE)


def parse_number(s: Any) -> float | None:
    """A number from an answer string: ``"1,234.5"``, ``"-3e2"``, ``"50%"`` (→ 50), ``"\\frac{3}{4}"``,
    ``"3/4"``; None when the string is not a single number."""
    if isinstance(s, bool):
        return None
    if isinstance(s, (int, float)):
        return float(s) if math.isfinite(float(s)) else None
    if not isinstance(s, str) or len(s) > 200:
        return None
    t = unicodedata.normalize("NFKC", s).strip().strip("$").strip()
    t = re.sub(r"\\(?:text|mathrm)\s*\{[^{}]*\}", "", t)  # units
    t = t.replace("\\%", "").replace("%", "").replace("\\!", "").replace("\\,", "").replace("{,}", "")
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t).strip().rstrip(".")
    t = t.replace("\u2212", "-")
    m = re.fullmatch(r"(-?)\\d?frac\{\s*([^{}]+?)\s*\}\{\s*([^{}]+?)\s*\}", t)
    if m:
        a, b = parse_number(m.group(2)), parse_number(m.group(3))
        if a is None or b is None or b == 0:
            return None
        return (-1 if m.group(1) else 1) * a / b
    m = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)\s*/\s*([-+]?\d+(?:\.\d+)?)", t)
    if m:
        b = float(m.group(2))
        return float(m.group(1)) / b if b != 0 else None
    if _NUM.fullmatch(t):
        v = float(t)
        return v if math.isfinite(v) else None
    return None


class OutcomeJudge:
    """Base of the answer-comparing judges: extract, compare, report.

    Subclasses implement :meth:`compare` (``pred``, ``gold`` → score in [0, 1]).

    Args:
        answer_format: format used when the task does not record one (``task.metadata["answer_format"]``
            wins, so the answer-format diversifier and the judge always agree). ``None`` compares the whole
            response text.
        fallback: when the format is absent, use the last line instead of scoring 0.
        name: facet name (and the name ``Weighted`` reports this judge under).
    """

    name = "outcome"

    def __init__(self, *, answer_format: str | Mapping[str, Any] | None = "boxed", fallback: bool = False,
                 name: str | None = None) -> None:
        if answer_format is not None:
            answer_format_of(None, answer_format)  # validate early: a bad format is a config error
        self.answer_format = answer_format
        self.fallback = fallback
        if name:
            self.name = str(name)

    def extract(self, task: Task, text: str) -> str | None:
        """The predicted answer in ``text``, following the task's recorded format."""
        if self.answer_format is None and "answer_format" not in task.metadata:
            return text.strip() if isinstance(text, str) and text.strip() else None
        fmt = answer_format_of(task.metadata, self.answer_format or "last_line")
        return extract_answer(text, fmt, fallback=self.fallback)

    def compare(self, pred: str, gold: Any, task: Task) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        pred = self.extract(task, response_text(trajectory))
        if pred is None:
            r, facets, info = 0.0, {self.name: 0.0, "extracted": 0.0}, {"extracted": None}
        else:
            r = float(self.compare(pred, task.answer, task))
            r = min(1.0, max(0.0, r)) if math.isfinite(r) else 0.0
            facets, info = {self.name: r, "extracted": 1.0}, {"extracted": pred[:1000]}
        # built here from a float and str-keyed float dicts: no validation needed (one per episode)
        return _trusted(JudgeResult, {"reward": r, "facets": facets, "info": info, "outcome": "ok"}, {"reward", "facets", "info"})


def _stripped(x: Any) -> str:
    return str(x).strip()


def _golds(gold: Any) -> list[Any]:
    """A gold answer may be one value or a list of accepted values."""
    if isinstance(gold, (list, tuple, set, frozenset)):
        return list(gold)
    return [gold]


class ExactMatch(OutcomeJudge):
    """1 when the extracted answer equals the gold answer (or any of a list of accepted answers).

    Args:
        normalize: compare :func:`normalize_answer` forms (default) instead of raw stripped strings.
    """

    name = "exact"

    def __init__(self, *, normalize: bool = True, **kw: Any) -> None:
        super().__init__(**kw)
        self.normalize = normalize

    def compare(self, pred: str, gold: Any, task: Task) -> float:
        f: Callable[[Any], str] = _normalize_cached if self.normalize else _stripped
        p = f(pred)
        if isinstance(gold, (list, tuple, set, frozenset)):
            return float(any(g is not None and p == f(g) for g in gold))
        return float(gold is not None and p == f(gold))  # one gold answer: the common case, no generator


class RegexMatch(OutcomeJudge):
    """1 when the extracted answer fully matches a regex (``pattern`` or, by default, ``task.answer``).

    The pattern is applied with ``re.fullmatch`` to the stripped answer; ``search=True`` uses
    ``re.search`` over the answer instead. Patterns are compiled once per distinct string.
    """

    name = "regex"

    def __init__(self, pattern: str | None = None, *, flags: int = re.IGNORECASE, search: bool = False,
                 **kw: Any) -> None:
        kw.setdefault("answer_format", None)
        super().__init__(**kw)
        self.pattern = re.compile(pattern, flags) if pattern is not None else None
        self.flags = flags
        self.search = search
        self._cache: dict[str, re.Pattern[str]] = {}

    def _compile(self, p: str) -> re.Pattern[str]:
        if p not in self._cache:
            if len(self._cache) > 1024:
                self._cache.clear()
            self._cache[p] = re.compile(p, self.flags)
        return self._cache[p]

    def compare(self, pred: str, gold: Any, task: Task) -> float:
        pats = [self.pattern] if self.pattern is not None else [self._compile(str(g)) for g in _golds(gold)]
        s = pred.strip()
        for p in pats:
            if (p.search(s) if self.search else p.fullmatch(s)) is not None:
                return 1.0
        return 0.0


_CHOICE = re.compile(
    r"(?:^|[\s(\[*:])\(?([A-Z])\)?(?=$|[\s).,:;\]*])"
)


class MultipleChoice(OutcomeJudge):
    """Multiple choice: the extracted answer names one option letter (``A``…``Z``).

    Accepts ``"B"``, ``"(B)"``, ``"B)"``, ``"Answer: B"``, ``"**B**"`` or the option's full text when the
    task lists ``task.metadata["choices"]`` (in order A, B, …). A response naming more than one distinct
    letter is ambiguous and scores 0: hedging must not be rewarded.
    """

    name = "choice"

    def __init__(self, **kw: Any) -> None:
        kw.setdefault("answer_format", "last_line")
        super().__init__(**kw)

    @staticmethod
    def letters(pred: str, choices: Sequence[str] | None = None) -> set[str]:
        """The option letters named in ``pred``."""
        s = pred.strip()
        if choices:
            n = normalize_answer(s)
            for i, c in enumerate(choices):
                if n and n == normalize_answer(c):
                    return {chr(ord("A") + i)}
        core = re.sub(r"^(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*", "", s, flags=re.IGNORECASE)
        if re.fullmatch(r"[(\[]?\s*[A-Za-z]\s*[)\].]?", core.strip("* ")):
            return {core.strip("*() []. ").upper()}
        return set(_CHOICE.findall(core))

    def compare(self, pred: str, gold: Any, task: Task) -> float:
        choices = task.metadata.get("choices")
        choices = list(choices) if isinstance(choices, (list, tuple)) else None
        got = self.letters(pred, choices)
        if len(got) != 1:
            return 0.0
        want: set[str] = set()
        for g in _golds(gold):
            if isinstance(g, int) and not isinstance(g, bool) and choices and 0 <= g < len(choices):
                want.add(chr(ord("A") + g))
            elif isinstance(g, str):
                want |= self.letters(g, choices)
        return float(bool(want) and got <= want)


class NumericMatch(OutcomeJudge):
    """Numeric answers within a tolerance: ``|p − g| ≤ max(abs_tol, rel_tol · |g|)``.

    Args:
        rel_tol: relative tolerance (default 1e-6).
        abs_tol: absolute tolerance (default 1e-9).
    """

    name = "numeric"

    def __init__(self, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9, **kw: Any) -> None:
        super().__init__(**kw)
        if rel_tol < 0 or abs_tol < 0:
            raise ValueError("tolerances must be >= 0")
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    def compare(self, pred: str, gold: Any, task: Task) -> float:
        p = parse_number(pred)
        if p is None:
            return 0.0
        for g in _golds(gold):
            gv = parse_number(g)
            if gv is not None and abs(p - gv) <= max(self.abs_tol, self.rel_tol * abs(gv)):
                return 1.0
        return 0.0
