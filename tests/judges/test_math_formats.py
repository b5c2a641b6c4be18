"""Every math judge reads the answer in the task's recorded answer format (the diversifier's choice), not only
``\\boxed{}``: reasoning-gym tasks diversified to JSON / tags / last line, answers written by hand."""

from __future__ import annotations

import json
import random

import anyio
import pytest
from swarmgym.envs.math import ReasoningGymJudge, ReasoningGymTasks, _math_oracle
from swarmgym.judges.base import JudgeContext
from swarmgym.judges.math_answer import MathJudge
from swarmgym.prompts.diversify import AnswerFormatVariant
from swarmgym.wire import Message, Task, Trajectory

SRC = ReasoningGymTasks(size=18, seed=3)

# the answer written by hand in each format, and a wrong-format response that must not count
WRITE = {
    "boxed": lambda a: f"Step by step... so the result is \\boxed{{{a}}}.",
    "tags": lambda a: f"Working it out.\n<answer>{a}</answer>",
    "json": lambda a: "Adding up the terms gives it.\n" + json.dumps({"answer": a}),
    "last_line": lambda a: f"Let me compute.\nFinal answer: {a}",
}
WRONG = {  # the right answer, not in the asked format
    "boxed": WRITE["tags"], "tags": WRITE["boxed"], "json": WRITE["boxed"],
    "last_line": lambda a: f"The answer is {a}.\nI hope the working above is clear.",
}


def _judges() -> list[object]:
    return [ReasoningGymJudge(SRC), MathJudge()]


def _score(judge: object, task: Task, text: str) -> float:
    tr = Trajectory(messages=[Message(role="assistant", content=text)])
    return anyio.run(judge.score, task, tr, JudgeContext()).reward  # type: ignore[attr-defined]


@pytest.mark.parametrize("fmt", sorted(WRITE))
@pytest.mark.parametrize("judge_i", [0, 1])
def test_math_judges_honour_the_answer_format(fmt: str, judge_i: int) -> None:
    judge = _judges()[judge_i]
    right = wrong_fmt = 0
    for i in range(len(SRC)):
        task = AnswerFormatVariant((fmt,)).enhance(SRC[i], random.Random(i))
        assert task.metadata["answer_format"]["kind"] == fmt
        right += _score(judge, task, WRITE[fmt](task.answer)) == 1.0
        wrong_fmt += _score(judge, task, WRONG[fmt](task.answer)) == 1.0
        assert _score(judge, task, WRITE[fmt]("-987654321")) == 0.0
    assert right == len(SRC)  # 18/18 correct answers in the asked format score (JSON was 0/18)
    assert wrong_fmt == 0


def test_custom_tag_and_field() -> None:
    task = SRC[0]
    for fmt, text in (({"kind": "tags", "tag": "final"}, f"<final>{task.answer}</final>"),
                      ({"kind": "json", "field": "result.value"}, json.dumps({"result": {"value": task.answer}}))):
        t = AnswerFormatVariant((fmt,)).enhance(task, random.Random(0))
        for j in _judges():
            assert _score(j, t, text) == 1.0


def test_math_tasks_record_boxed_and_the_oracle_follows_the_format() -> None:
    task = SRC[1]
    assert task.metadata["answer_format"] == "boxed"
    judge = ReasoningGymJudge(SRC)
    assert _score(judge, task, _math_oracle(task, [])) == 1.0
    for fmt in WRITE:
        t = AnswerFormatVariant((fmt,)).enhance(task, random.Random(0))
        assert _score(judge, t, _math_oracle(t, [])) == 1.0
