"""Wire types: exact JSON round trips, raw malformed tool arguments, clear validation errors."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError
from swarmgym.wire import (
    Completion,
    ImagePart,
    JudgeResult,
    Message,
    SamplingParams,
    Task,
    TextPart,
    ToolCall,
    ToolResult,
    ToolSpec,
    Trajectory,
    Usage,
    text_of,
)

IMAGE = ImagePart(image_url={"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"})
MULTIMODAL = Message(role="user", content=[TextPart(text="What is in "), IMAGE, TextPart(text="this picture?")])
CALLS = [
    ToolCall(id="call_1", name="calculator", arguments={"expression": "2 + 2", "nested": {"xs": [1, 2.5, None, "é"]}}),
    ToolCall(id="call_2", name="calculator", arguments='{"expression": "2 +'),  # malformed: kept raw
    ToolCall(id="call_3", name="noop"),
]
ASSISTANT = Message(role="assistant", content=None, tool_calls=CALLS, reasoning_content="let me compute")
COMPLETION = Completion(
    message=ASSISTANT,
    prompt_ids=[1, 2, 3],
    completion_ids=[7, 8, 9],
    logprobs=[-0.1, -2.5e-08, -13.75],
    policy_version=4,
    finish_reason="tool_calls",
    usage=Usage(prompt_tokens=3, completion_tokens=3),
    token_exact=True,
    latency_s=0.125,
)

WIRE_VALUES: list[BaseModel] = [
    Message(role="system", content="be brief"),
    Message(role="user", content="hi", name="alice"),
    MULTIMODAL,
    ASSISTANT,
    Message(role="tool", content="4", tool_call_id="call_1", name="calculator"),
    Message(role="tool", content=[TextPart(text="see image"), IMAGE], tool_call_id="call_3", name="noop"),
    *CALLS,
    ToolSpec(
        name="calculator",
        description="Evaluate.",
        parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
    ),
    ToolResult(call_id="call_1", content="4"),
    ToolResult(call_id="call_2", content=[TextPart(text="plot"), IMAGE], is_error=True, metadata={"exit": 1}),
    SamplingParams(temperature=0.7, top_p=0.9, max_tokens=64, stop=["</s>"], seed=3, extra={"top_k": 20}),
    Usage(prompt_tokens=10, completion_tokens=2),
    COMPLETION,
    Completion(message=Message(role="assistant", content="plain")),  # text-only server: no ids, no logprobs
    Task(id="t1", prompt="2+2?", answer="4", metadata={"source": "x", "level": 2}),
    Task(id="t2", prompt=[Message(role="system", content="s"), MULTIMODAL], answer={"a": [1, 2]}),
    JudgeResult(reward=0.75, facets={"correct": 1.0, "format": 0.5}, info={"pred": "4"}),
]


@pytest.mark.parametrize("value", WIRE_VALUES, ids=lambda v: type(v).__name__)
def test_json_round_trip_is_exact(value: BaseModel) -> None:
    text = value.model_dump_json()
    back = type(value).model_validate_json(text)
    assert back == value
    assert back.model_dump_json() == text
    # through a plain json.loads/dumps too (what a JSONL store does)
    assert type(value).model_validate(json.loads(text)) == value


def test_trajectory_round_trip_with_completions_ids_and_logprobs() -> None:
    traj = Trajectory(
        task_id="t1",
        sample_index=3,
        env_id="swarmgym/ToolMath-v0",
        group_id="g1",
        parent_id="traj_parent",
        role="subagent",
        trainable=False,
        messages=[Message(role="user", content="2+2?"), ASSISTANT, Message(role="tool", content="4", tool_call_id="call_1")],
        completions=[COMPLETION, Completion(message=Message(role="assistant", content="\\boxed{4}"), policy_version=5)],
        tools=[ToolSpec(name="calculator")],
        reward=1.0,
        judge=JudgeResult(reward=1.0, facets={"correct": 1.0}),
        metrics={"turns": 2.0, "wall_s": 0.01},
        status="truncated",
        error="turn limit",
        children=["traj_child"],
        info={"note": [1, "two"]},
    )
    back = Trajectory.model_validate_json(traj.model_dump_json())
    assert back == traj
    assert back.completions[0].completion_ids == [7, 8, 9]
    assert back.completions[0].logprobs == [-0.1, -2.5e-08, -13.75]
    assert back.completions[1].prompt_ids is None
    assert back.policy_versions == [4, 5]
    assert back.num_turns == 1 and back.final_text == ""


def test_malformed_arguments_stay_raw_through_json() -> None:
    raw = '{"expression": "2 +'
    call = ToolCall(id="c", name="calculator", arguments=raw)
    assert call.is_malformed
    back = ToolCall.model_validate_json(call.model_dump_json())
    assert back.arguments == raw and back.is_malformed
    # a raw string that happens to look like JSON is still the raw string (never silently re-parsed)
    looks_valid = ToolCall(id="c", name="f", arguments='{"a": 1}')
    assert ToolCall.model_validate_json(looks_valid.model_dump_json()).arguments == '{"a": 1}'
    assert not CALLS[0].is_malformed


def test_wire_values_are_frozen_and_strict() -> None:
    with pytest.raises(ValidationError):
        MULTIMODAL.role = "assistant"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Message.model_validate({"role": "user", "content": "x", "colour": "red"})


def test_bad_role_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match=r"role\n.*'system', 'user', 'assistant' or 'tool'"):
        Message(role="robot", content="beep")  # type: ignore[arg-type]


def test_image_part_without_url_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="image_url needs a 'url' key") as exc:
        Message.model_validate({"role": "user", "content": [{"type": "image_url", "image_url": {"detail": "low"}}]})
    # the part is identified by its type: one error for the part, not one per union member
    part_errors = [e for e in exc.value.errors() if 0 in e["loc"]]
    assert len(part_errors) == 1, exc.value
    with pytest.raises(ValidationError, match="'text', 'image_url'"):
        Message.model_validate({"role": "user", "content": [{"type": "audio", "data": "..."}]})


def test_multimodal_parts_parse_from_openai_dicts() -> None:
    m = Message.model_validate(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}},
                {"type": "text", "text": "b"},
            ],
        }
    )
    assert isinstance(m.content, list)
    assert [type(p) for p in m.content] == [TextPart, ImagePart, TextPart]
    assert m.text == "ab" == text_of(m.content)
    assert m.to_openai()["content"][1] == {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}


def test_completion_and_judge_result_validation() -> None:
    with pytest.raises(ValidationError, match="message"):
        Completion.model_validate({"prompt_ids": [1]})
    with pytest.raises(ValidationError, match="completion_ids"):
        Completion.model_validate({"message": {"role": "assistant", "content": "x"}, "completion_ids": ["a"]})
    with pytest.raises(ValidationError, match="facets"):
        JudgeResult.model_validate({"reward": 1.0, "facets": {"x": "high"}})
    with pytest.raises(ValidationError, match="status"):
        Trajectory.model_validate({"status": "done"})


# ---------------------------------------------------------------- ToolCall.from_openai / to_openai


def _fn(name: str = "f", arguments: object = "{}", id: str | None = "call_x") -> dict:
    d: dict = {"type": "function", "function": {"name": name, "arguments": arguments}}
    if id is not None:
        d["id"] = id
    return d


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ('{"a": 1, "b": [true, null]}', {"a": 1, "b": [True, None]}),
        ("", {}),  # some servers send "" for a no-argument call
        (None, {}),
        ({"a": 1}, {"a": 1}),  # already parsed (some servers / our own dicts)
        ("{}", {}),
        ('{"a": 1', '{"a": 1'),  # truncated JSON: kept raw
        ("[1, 2]", "[1, 2]"),  # valid JSON but not an object: kept raw
        ("null", "null"),
        ('"just a string"', '"just a string"'),
        ("42", "42"),
        ("{'a': 1}", "{'a': 1}"),  # python repr, not JSON
    ],
)
def test_from_openai_arguments(arguments: object, expected: object) -> None:
    call = ToolCall.from_openai(_fn(arguments=arguments))
    assert call.arguments == expected
    assert call.is_malformed == isinstance(expected, str)


def test_from_openai_missing_fields() -> None:
    no_id = ToolCall.from_openai(_fn(id=None))
    assert no_id.id.startswith("call_") and len(no_id.id) > len("call_")
    assert ToolCall.from_openai(_fn(id=None)).id != no_id.id  # fresh ids, never a shared constant
    no_fn = ToolCall.from_openai({"id": "c"})
    assert no_fn.name == "" and no_fn.arguments == {}
    no_args = ToolCall.from_openai({"id": "c", "function": {"name": "g"}})
    assert no_args.name == "g" and no_args.arguments == {}


def test_openai_round_trip_of_tool_calls() -> None:
    for call in CALLS:
        assert ToolCall.from_openai(call.to_openai()) == call
    wire = CALLS[0].to_openai()
    assert wire["type"] == "function" and isinstance(wire["function"]["arguments"], str)
    assert CALLS[1].to_openai()["function"]["arguments"] == '{"expression": "2 +'  # raw sent back verbatim


def test_message_to_openai_drops_none_fields() -> None:
    d = ASSISTANT.to_openai()
    assert d["role"] == "assistant" and d["content"] is None
    assert [c["id"] for c in d["tool_calls"]] == ["call_1", "call_2", "call_3"]
    assert "tool_call_id" not in d and "name" not in d and "reasoning_content" not in d
    tool = Message(role="tool", content="4", tool_call_id="call_1", name="calculator").to_openai()
    assert tool == {"role": "tool", "content": "4", "tool_call_id": "call_1", "name": "calculator"}
    assert ToolSpec(name="f").to_openai()["function"]["parameters"] == {"type": "object", "properties": {}}


def test_internal_replace_is_a_model_copy_without_revalidation() -> None:
    from swarmgym.wire import Completion, Message

    c = Completion(message=Message(role="assistant", content="x"), latency_s=0.5)
    r = c._replace(latency_s=1.5, policy_version=3)
    expected = c.model_copy(update={"latency_s": 1.5, "policy_version": 3})
    assert r == expected and hash(r) == hash(expected) and r.model_fields_set == expected.model_fields_set
    assert c.latency_s == 0.5 and c.policy_version == 0  # the original is untouched
    assert Completion.model_validate_json(r.model_dump_json()) == r
    with pytest.raises(ValidationError):
        r.latency_s = 2.0  # still frozen
