"""Instruction constraints × answer formats: the enhancer never adds a constraint that contradicts the task's
answer format or its gold answer, every pair it allows is satisfiable (a response meeting both is built and
checked by the constraint checker *and* the answer extractor the judges use), and the answer-format
variant applied after the constraints only picks formats they allow."""

from __future__ import annotations

import json
import random

import pytest
from swarmgym.judges.extract import extract_answer, format_instruction
from swarmgym.prompts.compose import compose_response
from swarmgym.prompts.constraints import (
    ANSWER_FORMAT_CONFLICTS,
    DEFAULT_KINDS,
    KINDS,
    REGISTRY,
    SampleContext,
    check,
    compatible_with_answer,
    sample_constraint,
)
from swarmgym.prompts.diversify import AnswerFormatVariant
from swarmgym.prompts.instructions import InstructionEnhancer
from swarmgym.wire import Task

FORMATS = ("boxed", "tags", "json", "last_line")
ANSWERS = ("42", "\\frac{1}{2}", "True", "1, 2", "B")
PROMPT = "What is six times seven?"


def _placements(body: str, fmt: str, answer: str) -> list[str]:
    """Ways a model could put the answer into a response (before, after, inside a JSON wrapper …)."""
    box = {"boxed": f"\\boxed{{{answer}}}", "tags": f"<answer>{answer}</answer>",
           "json": json.dumps({"answer": answer}), "last_line": answer}[fmt]
    out = [f"{box}\n\n{body}", f"{body}\n\n{box}", f"{body}\n{box}", f"{body} {box}"]
    lines = body.split("\n")
    for i in range(1, min(len(lines), 6)):
        out.append("\n".join([*lines[:i], box, *lines[i:]]))
    try:  # a whole-response JSON: put the answer in as a string field too
        obj = json.loads(body)
        if isinstance(obj, dict):
            k = next(iter(obj))
            out.append(json.dumps({**obj, k: f"{obj[k]} {box}"}))
            out.append(json.dumps({**obj, "answer": answer}))
    except ValueError:
        pass
    if body.startswith('"') and body.endswith('"'):
        out.append(f'{body[:-1]} {box}"')
    return out


def _satisfiable(kind: str, fmt: str, answer: str) -> str | None:
    """A response that meets a sampled ``kind`` constraint and gives ``answer`` in ``fmt``, or None."""
    for seed in range(12):
        c = sample_constraint(kind, random.Random(seed), SampleContext(prompt=PROMPT))
        body = compose_response([c], seed)
        for text in _placements(body, fmt, answer):
            for t in (text, text.lower(), text.upper()):
                if check(c, t) and extract_answer(t, fmt) == answer:
                    return t
    return None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_allowed_pair_is_satisfiable(kind: str, fmt: str) -> None:
    answer = "42"
    if not compatible_with_answer(kind, fmt, answer):
        assert kind in ANSWER_FORMAT_CONFLICTS[fmt]
        return
    assert _satisfiable(kind, fmt, answer) is not None, (kind, fmt)


@pytest.mark.parametrize(("kind", "fmt"), [
    ("case:uppercase", "boxed"), ("case:uppercase", "json"), ("startend:quotation", "last_line"),
    ("format:json", "last_line"),
])
def test_declared_conflicts_are_real(kind: str, fmt: str) -> None:
    # nothing the placements try meets both, for any seed: the conflict is not an over-cautious guess.
    # (The other declared conflicts contradict the format's *instruction*, e.g. "end with this phrase" vs
    # "end your response with a JSON object", even where the lenient extractor would still find the answer.)
    assert not compatible_with_answer(kind, fmt, "42")
    assert _satisfiable(kind, fmt, "42") is None


def test_answer_text_conflicts() -> None:
    assert not compatible_with_answer("case:lowercase", "tags", "True")
    assert not compatible_with_answer("case:uppercase", "tags", "\\frac{1}{2}")
    assert compatible_with_answer("case:uppercase", "tags", "42")
    assert not compatible_with_answer("punctuation:no_comma", "boxed", "1, 2")
    assert compatible_with_answer("punctuation:no_comma", "boxed", ["1, 2", "1 and 2"])  # one accepted form fits
    assert compatible_with_answer("case:uppercase", None, "abc")  # no extracted answer: nothing to contradict
    with pytest.raises(ValueError, match="unknown answer format"):
        compatible_with_answer("case:uppercase", "xml", "1")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("answer", ANSWERS)
def test_enhancer_never_adds_a_contradicting_constraint(fmt: str, answer: str) -> None:
    task = Task(id="t", prompt=PROMPT, answer=answer, metadata={"answer_format": {"kind": fmt}})
    seen: set[str] = set()
    for seed in range(40):
        t = InstructionEnhancer(k=6).enhance(task, random.Random(seed))
        for c in t.metadata.get("constraints", []):
            seen.add(c["kind"])
            assert compatible_with_answer(c["kind"], fmt, answer), (c["kind"], fmt, answer)
    allowed = {k for k in DEFAULT_KINDS if compatible_with_answer(k, fmt, answer) and REGISTRY[k].applicable(
        SampleContext(prompt=PROMPT))}
    assert seen == allowed  # and every allowed kind does get used


def test_math_tasks_never_get_uppercase() -> None:
    from swarmgym.envs.math import ReasoningGymTasks

    src = ReasoningGymTasks(size=12, seed=1)
    for i in range(12):
        for seed in range(10):
            t = InstructionEnhancer(k=5).enhance(src[i], random.Random(seed))
            kinds = {c["kind"] for c in t.metadata.get("constraints", [])}
            assert not kinds & ANSWER_FORMAT_CONFLICTS["boxed"]


def test_answer_format_variant_after_constraints_picks_an_allowed_format() -> None:
    task = Task(id="t", prompt=PROMPT, answer="42",
                metadata={"constraints": [{"kind": "case:uppercase", "params": {}}]})
    picked = {AnswerFormatVariant().enhance(task, random.Random(s)).metadata["answer_format"]["kind"]
              for s in range(30)}
    assert picked == {"tags"}  # boxed and json are ruled out by "all capitals"
    t = AnswerFormatVariant().enhance(task, random.Random(0))
    assert format_instruction("tags") in str(t.prompt)
    stuck = Task(id="t", prompt=PROMPT, answer="42", metadata={"constraints": [
        {"kind": "case:uppercase", "params": {}}, {"kind": "startend:end", "params": {"phrase": "Bye."}}]})
    with pytest.raises(ValueError, match="no answer format"):
        AnswerFormatVariant(("boxed", "json")).enhance(stuck, random.Random(0))
