from swarmgym.training.parse import parse_hermes, strip_stop_text


def test_plain_text_and_stop_stripping() -> None:
    m = parse_hermes("Hello there.<|im_end|>", stops=["<|im_end|>"])
    assert m.role == "assistant" and m.content == "Hello there." and m.tool_calls is None


def test_several_tool_calls_with_content() -> None:
    text = (
        'Let me check.\n<tool_call>\n{"name": "search", "arguments": {"query": "x"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 2}}\n</tool_call>'
    )
    m = parse_hermes(text)
    assert m.content == "Let me check."
    calls = [(c.name, c.arguments) for c in m.tool_calls or []]
    assert calls == [("search", {"query": "x"}), ("add", {"a": 1, "b": 2})]
    assert len({c.id for c in m.tool_calls or []}) == 2


def test_only_tool_call_has_no_content() -> None:
    m = parse_hermes('<tool_call>{"name": "f", "arguments": {}}</tool_call>')
    assert m.content is None and m.tool_calls and m.tool_calls[0].name == "f"


def test_malformed_json_is_kept_raw() -> None:
    m = parse_hermes('<tool_call>{"name": "search", "arguments": {"query": </tool_call>')
    (call,) = m.tool_calls or []
    assert call.name == "search" and call.is_malformed
    assert call.arguments == '{"name": "search", "arguments": {"query":'


def test_unclosed_call_cut_by_token_limit_is_kept_raw() -> None:
    m = parse_hermes('ok <tool_call>{"name": "add", "argu')
    (call,) = m.tool_calls or []
    assert call.name == "add" and call.arguments == '{"name": "add", "argu'
    assert m.content == "ok "


def test_string_arguments_are_decoded_and_non_objects_kept_raw() -> None:
    m = parse_hermes('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>')
    assert m.tool_calls and m.tool_calls[0].arguments == {"a": 1}
    m = parse_hermes('<tool_call>{"name": "f", "arguments": [1, 2]}</tool_call>')
    assert m.tool_calls and m.tool_calls[0].arguments == "[1, 2]"
    m = parse_hermes("<tool_call>not json at all</tool_call>")
    assert m.tool_calls and m.tool_calls[0].name == "" and m.tool_calls[0].arguments == "not json at all"


def test_reasoning_is_split_off() -> None:
    m = parse_hermes("<think>\nstep 1\n</think>\n\nThe answer is 4.")
    assert m.reasoning_content == "step 1" and m.content == "The answer is 4."


def test_strip_stop_text_repeats() -> None:
    assert strip_stop_text("a<|im_end|><|endoftext|>", ["<|im_end|>", "<|endoftext|>"]) == "a"
    assert strip_stop_text("", ["x"]) == ""
