"""Answer extractors: positive, negative and adversarial inputs."""

from __future__ import annotations

import pytest
from swarmgym.judges.extract import (
    answer_format_of,
    extract_answer,
    extract_boxed,
    extract_code,
    extract_json_field,
    extract_last_line,
    extract_tag,
    format_instruction,
    render_answer,
)

BAD_INPUTS = [None, "", 42, 3.5, ["\\boxed{1}"], {"answer": 1}, b"\\boxed{1}", object()]


@pytest.mark.parametrize(
    "text, want",
    [
        ("\\boxed{42}", "42"),
        ("first \\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("\\boxed{ {a}{b{c}} }", "{a}{b{c}}"),
        ("\\fbox{x}", "x"),
        ("\\boxed 7 done", "7"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("$\\boxed{\\text{Paris}}$", "\\text{Paris}"),
    ],
)
def test_boxed(text: str, want: str) -> None:
    assert extract_boxed(text) == want


@pytest.mark.parametrize("text", ["no box here", "\\boxed{unbalanced", "\\boxed{", "boxed{1}", "\\boxed"])
def test_boxed_absent(text: str) -> None:
    assert extract_boxed(text) is None


def test_boxed_unbalanced_last_falls_back_to_earlier_balanced() -> None:
    assert extract_boxed("\\boxed{1} and \\boxed{2") == "1"


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_extractors_never_raise(bad: object) -> None:
    for fmt in ("boxed", "tags", "last_line", "json"):
        assert extract_answer(bad, fmt) is None


def test_huge_input_is_bounded() -> None:
    text = "{" * 300_000 + "\\boxed{5}"
    assert extract_boxed(text) == "5"
    assert extract_answer("x" * 2_000_000 + "<answer>9</answer>", "tags") == "9"
    assert extract_json_field("[" * 100_000, "answer") is None


def test_tags() -> None:
    assert extract_tag("<answer>1</answer> <ANSWER> 2 </ANSWER>") == "2"
    assert extract_tag("<final>x</final>", "final") == "x"
    assert extract_tag("<answer>multi\nline</answer>") == "multi\nline"
    assert extract_tag("<answer>open") is None
    assert extract_tag("<answer>1</answer>", "") is None
    assert extract_tag("<ans.wer>1</ans.wer>", "ans.wer") == "1"  # tag is escaped, not a regex


def test_last_line() -> None:
    assert extract_last_line("work\n\nFinal answer: 12\n\n") == "12"
    assert extract_last_line("a\n**Answer:** B") == "B"
    assert extract_last_line("The answer is 7") == "7"
    assert extract_last_line("\n\n  \n") is None
    assert extract_last_line("héllo wörld ✓") == "héllo wörld ✓"


def test_json_field() -> None:
    assert extract_json_field('blah {"answer": "x"} blah {"answer": 3}') == "3"
    assert extract_json_field('```json\n{"answer": [1, 2]}\n```') == "[1, 2]"
    assert extract_json_field('{"result": {"value": "ok"}}', "result.value") == "ok"
    assert extract_json_field('{"other": 1}') is None
    assert extract_json_field('{"answer": null}') is None
    assert extract_json_field("{not json}") is None
    assert extract_json_field('{"answer": "日本"}') == "日本"


def test_extract_answer_formats_and_fallback() -> None:
    assert extract_answer("x\n5", "boxed") is None
    assert extract_answer("x\n5", "boxed", fallback=True) == "5"
    assert extract_answer("<res>5</res>", {"kind": "tags", "tag": "res"}) == "5"
    assert extract_answer('{"final": 5}', {"kind": "json", "field": "final"}) == "5"
    with pytest.raises(ValueError, match="answer format must be one of"):
        extract_answer("x", "xml")


def test_answer_format_of_metadata() -> None:
    assert answer_format_of({"answer_format": "tags"})["kind"] == "tags"
    assert answer_format_of({}, "json") == {"kind": "json", "tag": "answer", "field": "answer"}
    assert answer_format_of(None)["kind"] == "boxed"


@pytest.mark.parametrize("fmt", ["boxed", "tags", "last_line", "json", {"kind": "tags", "tag": "z"}])
@pytest.mark.parametrize("answer", ["42", "\\frac{1}{2}", "Paris, France", "{1, 2}"])
def test_render_then_extract_roundtrip(fmt: object, answer: str) -> None:
    text = "Some reasoning.\n" + render_answer(answer, fmt)  # type: ignore[arg-type]
    assert extract_answer(text, fmt) == answer  # type: ignore[arg-type]
    assert format_instruction(fmt)  # type: ignore[arg-type]


def test_extract_code() -> None:
    assert extract_code("```python\nx = 1\n```\n```\ny\n```\n```py\nz = 2\n```") == "z = 2\n"
    assert extract_code("plain code") == "plain code"
    assert extract_code("```python\nunterminated") == "unterminated"
    assert extract_code(None) is None
    assert extract_code("   ") is None
