"""Judges: the protocol and composition (base), rule-based outcome judges, math, code tests, item F1,
visual rewards, rubric (GRM), agent-as-judge and the Toggle budget judge.

Names load lazily on first access, so ``import swarmgym.judges`` costs nothing beyond the base module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .base import FunctionJudge, Judge, JudgeContext, NullJudge, Weighted, safe_score

_LAZY: dict[str, str] = {
    "extract_answer": ".extract",
    "extract_boxed": ".extract",
    "extract_tag": ".extract",
    "extract_last_line": ".extract",
    "extract_json_field": ".extract",
    "extract_code": ".extract",
    "OutcomeJudge": ".rules",
    "ExactMatch": ".rules",
    "RegexMatch": ".rules",
    "MultipleChoice": ".rules",
    "NumericMatch": ".rules",
    "normalize_answer": ".rules",
    "MathJudge": ".math_answer",
    "math_equal": ".math_answer",
    "ItemF1": ".f1",
    "item_f1": ".f1",
    "F1Report": ".f1",
    "VisualJudge": ".visual",
    "box_f1": ".visual",
    "point_f1": ".visual",
    "polygon_iou": ".visual",
    "ocr_score": ".visual",
    "count_reward": ".visual",
    "CodeTestJudge": ".code",
    "run_tests": ".code",
    "Rubric": ".rubric",
    "RubricJudge": ".rubric",
    "AgentJudge": ".agent",
    "parse_verdict": ".agent",
    "ToggleJudge": ".budget",
    "PARLReward": ".parl",
    "PARLStagedReward": ".parl",
    "LinearSchedule": ".parl",
    "CosineSchedule": ".parl",
    "ConstantSchedule": ".parl",
}

_EAGER = ("FunctionJudge", "Judge", "JudgeContext", "NullJudge", "Weighted", "safe_score")
__all__ = sorted([*_EAGER, *_LAZY])
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, eager=_EAGER)






if TYPE_CHECKING:  # pragma: no cover
    from .agent import AgentJudge, parse_verdict
    from .budget import ToggleJudge
    from .code import CodeTestJudge, run_tests
    from .extract import (extract_answer, extract_boxed, extract_code, extract_json_field, extract_last_line,
                          extract_tag)
    from .f1 import F1Report, ItemF1, item_f1
    from .math_answer import MathJudge, math_equal
    from .rubric import Rubric, RubricJudge
    from .rules import ExactMatch, MultipleChoice, NumericMatch, OutcomeJudge, RegexMatch, normalize_answer
    from .visual import VisualJudge, box_f1, count_reward, ocr_score, point_f1, polygon_iou
