"""RubricJudge: per-task rubric sets from a pool, and a rubric model that never gives a usable verdict is a
flagged judge error, never a normal score of 0."""

from __future__ import annotations

import json
import re

import anyio
import pytest
from swarmgym.judges.base import JudgeContext, Weighted, safe_score
from swarmgym.judges.rubric import Rubric, RubricJudge, RubricParseError
from swarmgym.policies.scripted import ScriptedPolicy
from swarmgym.wire import Message, Task, Trajectory

POOL = {
    "code": [Rubric(name="correct", criterion="The code is right.", max_score=4),
             Rubric(name="tested", criterion="It comes with tests.", max_score=4)],
    "essay": [Rubric(name="clear", criterion="Clear prose.", max_score=10)],
}
TR = Trajectory(messages=[Message(role="user", content="q"), Message(role="assistant", content="An answer.")])


def _grader(score: float = 2.0):  # type: ignore[no-untyped-def]
    """A scripted rubric model that scores exactly the rubrics named in the system prompt it receives."""
    seen: list[list[str]] = []

    def respond(messages, tools, ctx):  # type: ignore[no-untyped-def]
        names = re.findall(r'^- "([^"]+)" \(0 to', messages[0].text, flags=re.MULTILINE)
        seen.append(names)
        return json.dumps({"scores": [{"rubric": n, "score": score, "reason": "ok"} for n in names]})

    return ScriptedPolicy(respond), seen


def _run(judge: RubricJudge, task: Task):  # type: ignore[no-untyped-def]
    return anyio.run(judge.score, task, TR, JudgeContext())


def test_each_task_is_scored_on_its_own_set() -> None:
    policy, seen = _grader(2.0)
    j = RubricJudge(policy, POOL, default="essay")
    code = _run(j, Task(id="a", prompt="p", metadata={"rubric_set": "code"}))
    essay = _run(j, Task(id="b", prompt="p"))  # no set named: the default
    assert seen == [["correct", "tested"], ["clear"]]
    assert code.reward == pytest.approx(0.5) and set(code.facets) >= {"correct", "tested"}
    assert code.info["rubric_set"] == "code"
    assert essay.reward == pytest.approx(0.2) and "clear" in essay.facets and "correct" not in essay.facets
    assert essay.info["rubric_set"] == "essay"


def test_selector_function_and_custom_key() -> None:
    policy, seen = _grader(4.0)
    by_lang = RubricJudge(policy, POOL, select=lambda t: "code" if "def " in str(t.prompt) else "essay")
    _run(by_lang, Task(id="a", prompt="def f(): ..."))
    _run(by_lang, Task(id="b", prompt="Write about tea."))
    inline = RubricJudge(policy, POOL, select=lambda t: [Rubric(name="brief", criterion="Short.")])
    _run(inline, Task(id="c", prompt="x"))
    keyed = RubricJudge(policy, POOL, select="grader")
    _run(keyed, Task(id="d", prompt="x", metadata={"grader": "essay"}))
    assert seen == [["correct", "tested"], ["clear"], ["brief"], ["clear"]]


def test_unknown_or_missing_set_is_a_judge_error_not_a_score() -> None:
    policy, seen = _grader()
    j = RubricJudge(policy, POOL)
    with pytest.raises(KeyError, match="unknown rubric set 'poem'"):
        _run(j, Task(id="a", prompt="p", metadata={"rubric_set": "poem"}))
    with pytest.raises(KeyError, match="no default"):
        _run(j, Task(id="b", prompt="p"))
    res = anyio.run(safe_score, j, Task(id="a", prompt="p", metadata={"rubric_set": "poem"}), TR, JudgeContext())
    assert res.facets.get("judge_error") == 1.0 and "poem" in res.info["judge_error"]
    assert seen == []  # the rubric model was never asked
    with pytest.raises(ValueError, match="not in the pool"):
        RubricJudge(policy, POOL, default="poem")
    with pytest.raises(ValueError, match="unique"):
        RubricJudge(policy, {"x": [POOL["essay"][0], POOL["essay"][0]]})
    with pytest.raises(KeyError, match="one rubric list"):
        _run(RubricJudge(policy, POOL["code"]), Task(id="c", prompt="p", metadata={"rubric_set": "code"}))


@pytest.mark.parametrize("bad", ["", "I'd give it 7/10.", '{"scores": [{"rubric": "correct", "score": 3}]}'])
def test_parse_failure_is_flagged_as_a_judge_error(bad: str) -> None:
    j = RubricJudge(ScriptedPolicy([bad], cycle=True), POOL, default="code", retries=1)
    r = _run(j, Task(id="a", prompt="p"))
    assert r.facets["rubric_parse_error"] == 1.0 and r.facets["judge_error"] == 1.0
    assert r.info["parse_error"].startswith("rubric model gave no usable verdict in 2 attempt(s)")
    assert "RubricParseError" in r.info["judge_error"] and len(r.info["raw"]) == 2
    # composed, the flag survives under the member's name, and the reward is not a silent normal 0
    w = anyio.run(Weighted([(j, 1.0)]).score, Task(id="a", prompt="p"), TR, JudgeContext())
    assert w.facets["rubric/judge_error"] == 1.0 and w.facets["rubric/rubric_parse_error"] == 1.0


def test_parse_failure_can_raise() -> None:
    j = RubricJudge(ScriptedPolicy(["nope"], cycle=True), POOL, default="essay", retries=0, on_parse_error="raise")
    with pytest.raises(RubricParseError, match="no usable verdict"):
        _run(j, Task(id="a", prompt="p"))
    res = anyio.run(safe_score, j, Task(id="a", prompt="p"), TR, JudgeContext())
    assert res.facets.get("judge_error") == 1.0
