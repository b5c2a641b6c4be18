"""The toy byte-level tokenizer and its chat tokenizer (the fake server's vocabulary)."""

from __future__ import annotations

import pytest
from swarmgym.testing import ToyChatTokenizer
from swarmgym.testing import toy_tokenizer as tok
from swarmgym.wire import Message, ToolCall, ToolSpec


@pytest.mark.parametrize("text", ["", "plain", "héllo wörld ✓", "<|im_start|>user\nhi<|im_end|>\n", "a < b"])
def test_decode_inverts_encode(text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_ids_layout() -> None:
    assert tok.encode("A") == [ord("A") + 3]
    assert tok.encode("<|im_end|>") == [tok.IM_END]
    assert tok.decode([tok.IM_START, ord("x") + 3, tok.IM_END], skip_special=True) == "x"
    assert tok.token_str(tok.IM_END) == "<|im_end|>" and tok.token_str(0xE2 + 3) == "<0xE2>"


def test_parse_assistant_tool_calls() -> None:
    text = tok.render_assistant(
        "thinking", [{"name": "add", "arguments": {"a": 1}}, {"name": "f", "arguments": '{"x": '}]
    )
    content, calls = tok.parse_assistant(text)
    assert content == "thinking"
    assert calls == [("add", {"a": 1}), ("f", '{"x": ')]
    assert tok.parse_assistant("just text") == ("just text", [])
    assert tok.parse_assistant("") == ("", [])


def test_chat_tokenizer_is_incremental_and_matches_a_full_render() -> None:
    t = ToyChatTokenizer()
    state: dict[str, object] = {}
    tools = [ToolSpec(name="add", description="adds")]
    msgs = [Message(role="system", content="sys"), Message(role="user", content="1+2?")]
    p1 = t.prompt_ids(msgs, tools, state)
    assert p1 == tok.encode(tok.render_chat([m.to_openai() for m in msgs], [x.to_openai() for x in tools]))

    sampled = tok.encode(tok.render_assistant(None, [{"name": "add", "arguments": {"a": 1, "b": 2}}])) + [tok.IM_END]
    reply = t.parse(sampled, "")
    assert reply.tool_calls is not None and reply.tool_calls[0].arguments == {"a": 1, "b": 2}
    t.record(state, msgs, p1, sampled)

    call = ToolCall(id="c", name="add", arguments={"a": 1, "b": 2})
    msgs2 = [
        *msgs,
        Message(role="assistant", content=None, tool_calls=[call]),
        Message(role="tool", content="3", tool_call_id="c"),
    ]
    p2 = t.prompt_ids(msgs2, tools, state)
    assert p2[: len(p1) + len(sampled)] == p1 + sampled  # sampled ids reused verbatim
    full = tok.encode(tok.render_chat([m.to_openai() for m in msgs2], [x.to_openai() for x in tools]))
    assert p2 == full  # and for this byte-level template the extension equals a full re-render


def test_chat_tokenizer_keeps_malformed_arguments_raw() -> None:
    ids = tok.encode('<tool_call>\n{"name": "calc", "arguments": {"expr": "1+"\n</tool_call>')
    msg = ToyChatTokenizer().parse(ids, "")
    assert msg.tool_calls is not None
    assert msg.tool_calls[0].name == "calc"
    assert msg.tool_calls[0].is_malformed and msg.tool_calls[0].arguments == '{"expr": "1+"'
