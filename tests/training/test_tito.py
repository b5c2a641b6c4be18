from __future__ import annotations

from typing import Any

import pytest
from swarmgym.errors import ConfigError, TokenDriftError
from swarmgym.training.chat import ChatRenderer, message_to_template, tools_to_template
from swarmgym.training.synthetic import SYNTHETIC_TOOLS
from swarmgym.training.tito import STATE_KEY, TokenizedConversation
from swarmgym.wire import Message, ToolCall


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False))


def _tool_turn(tok: Any, conv: TokenizedConversation) -> tuple[list[int], Message]:
    """Sampled ids of a tool-calling turn, tokenised non-canonically (character by character)."""
    body = '\n{"name": "search", "arguments": {"query": "weather in Paris"}}\n'
    ids = [tok.convert_tokens_to_ids("<tool_call>")]
    for ch in body:
        ids += _ids(tok, ch)
    ids += [tok.convert_tokens_to_ids("</tool_call>"), tok.convert_tokens_to_ids("<|im_end|>")]
    return ids, conv.parse(ids, None)


def test_first_prompt_equals_apply_chat_template(tokenizers: dict[str, Any]) -> None:
    msgs = [Message(role="system", content="Be brief."), Message(role="user", content="What is 2+2?")]
    for name in ("chatml_tools", "qwen3_like", "llama_like"):
        tok = tokenizers[name]
        conv = TokenizedConversation(tok)
        tools = tools_to_template(SYNTHETIC_TOOLS)
        expected = tok.apply_chat_template(
            [message_to_template(m) for m in msgs], tools=tools, add_generation_prompt=True, return_dict=False
        )
        assert conv.prompt_ids(msgs, SYNTHETIC_TOOLS, {}) == list(expected)


def test_fast_renderer_matches_apply_chat_template(tokenizers: dict[str, Any]) -> None:
    call = ToolCall(id="c1", name="add", arguments={"a": 1})
    msgs = [
        Message(role="system", content="s"),
        Message(role="user", content="u"),
        Message(role="assistant", content=None, tool_calls=[call], reasoning_content="hmm"),
        Message(role="tool", content="2", tool_call_id="c1", name="add"),
        Message(role="tool", content="3", tool_call_id="c1", name="add"),
    ]
    dicts = [message_to_template(m) for m in msgs]
    tools = tools_to_template(SYNTHETIC_TOOLS)
    for tok in tokenizers.values():
        fast, slow = ChatRenderer(tok, fast=True), ChatRenderer(tok, fast=False)
        for gen in (True, False):
            assert fast.render(dicts, tools, add_generation_prompt=gen) == slow.render(
                dicts, tools, add_generation_prompt=gen
            )


def test_sampled_ids_are_kept_verbatim_and_tool_results_appended(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="weather?")]
    p0 = conv.prompt_ids(msgs, SYNTHETIC_TOOLS, state)
    sampled, msg = _tool_turn(tok, conv)
    assert msg.tool_calls and msg.tool_calls[0].arguments == {"query": "weather in Paris"}
    conv.record(state, None, None, sampled)
    call_id = msg.tool_calls[0].id
    msgs += [msg, Message(role="tool", content="sunny", tool_call_id=call_id, name="search")]
    p1 = conv.prompt_ids(msgs, SYNTHETIC_TOOLS, state)
    assert p1[: len(p0) + len(sampled)] == p0 + sampled
    # the non-canonical tokenisation survives: re-tokenising the same text would give other ids
    assert _ids(tok, tok.decode(sampled)) != sampled
    delta = tok.decode(p1[len(p0) + len(sampled) :])
    assert delta == "\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response><|im_end|>\n<|im_start|>assistant\n"


def test_consecutive_tool_results_render_as_one_turn(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    p0 = conv.prompt_ids(msgs, SYNTHETIC_TOOLS, state)
    calls = [ToolCall(id="a", name="add", arguments={"a": 1}), ToolCall(id="b", name="add", arguments={"a": 2})]
    sampled = _ids(tok, "two calls<|im_end|>")
    conv.record(state, None, None, sampled)
    msgs += [
        Message(role="assistant", content="two calls", tool_calls=calls),
        Message(role="tool", content="1", tool_call_id="a"),
        Message(role="tool", content="2", tool_call_id="b"),
    ]
    p1 = conv.prompt_ids(msgs, SYNTHETIC_TOOLS, state)
    delta = tok.decode(p1[len(p0) + len(sampled) :])
    assert delta.count("<|im_start|>user") == 1 and delta.count("<tool_response>") == 2


def test_truncated_completion_gets_the_whole_closing(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    p0 = conv.prompt_ids(msgs, [], state)
    sampled = _ids(tok, "cut mid sent")  # no <|im_end|>: the token limit stopped it
    conv.record(state, None, None, sampled)
    msgs += [conv.parse(sampled, None, remember=False), Message(role="user", content="go on")]
    p1 = conv.prompt_ids(msgs, [], state)
    assert tok.decode(p1[len(p0) + len(sampled) :]).startswith("<|im_end|>\n<|im_start|>user\ngo on")


def test_qwen3_reasoning_kept_where_retokenising_would_drop_it(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["qwen3_like"]
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q1")]
    p0 = conv.prompt_ids(msgs, [], state)
    sampled = _ids(tok, "<think>\nlet me think\n</think>\n\nA1<|im_end|>")
    conv.record(state, None, None, sampled)
    msg = conv.parse(sampled, None, remember=False)
    assert msg.reasoning_content == "let me think" and msg.content == "A1"
    msgs += [msg, Message(role="user", content="q2")]
    p1 = conv.prompt_ids(msgs, [], state)
    assert p1[: len(p0) + len(sampled)] == p0 + sampled
    # Re-rendering the whole conversation drops the old reasoning: the ids would not match what was sampled.
    rerendered = tok.apply_chat_template(
        [message_to_template(m) for m in msgs], add_generation_prompt=True, return_dict=False
    )
    assert "let me think" not in tok.decode(rerendered) and "let me think" in tok.decode(p1)


def test_llama_like_template_without_newlines(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["llama_like"]
    conv, state = TokenizedConversation(tok), {}
    assert tok.decode(conv.tail_ids) == "<|eot|>" and conv.stop_token_ids == [tok.convert_tokens_to_ids("<|eot|>")]
    msgs = [Message(role="user", content="q")]
    p0 = conv.prompt_ids(msgs, [], state)
    sampled = _ids(tok, "answer<|eot|>")
    conv.record(state, None, None, sampled)
    msgs += [conv.parse(sampled, None), Message(role="user", content="next")]
    p1 = conv.prompt_ids(msgs, [], state)
    assert p1[: len(p0) + len(sampled)] == p0 + sampled
    assert tok.decode(p1[len(p0) + len(sampled) :]) == "<|start|>user<|sep|>next<|eot|><|start|>assistant<|sep|>"


def test_non_prefix_preserving_template_raises_naming_the_turn(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["counting"]
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    conv.prompt_ids(msgs, [], state)
    conv.record(state, None, None, _ids(tok, "a<|im_end|>"))
    msgs += [Message(role="assistant", content="a"), Message(role="user", content="again")]
    with pytest.raises(TokenDriftError, match=r"turn 1: .*not append-only"):
        conv.prompt_ids(msgs, [], state)


def test_restart_mode_starts_a_new_segment(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers["counting"]
    conv, state = TokenizedConversation(tok, on_drift="restart"), {}
    msgs = [Message(role="user", content="q")]
    conv.prompt_ids(msgs, [], state)
    conv.record(state, None, None, _ids(tok, "a<|im_end|>"))
    msgs += [Message(role="assistant", content="a"), Message(role="user", content="again")]
    p1 = conv.prompt_ids(msgs, [], state)
    assert tok.decode(p1).startswith("<|im_start|>system\n3 messages follow")
    assert state[STATE_KEY].segment == 1


def test_changed_history_and_tools_are_drift(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    conv.prompt_ids(msgs, [], state)
    conv.record(state, None, None, _ids(tok, "a<|im_end|>"))
    with pytest.raises(TokenDriftError, match="turn 1: .*earlier messages"):
        conv.prompt_ids([Message(role="user", content="other"), Message(role="assistant", content="a")], [], state)
    with pytest.raises(TokenDriftError, match="turn 1: .*tools"):
        conv.prompt_ids(msgs + [Message(role="assistant", content="a")], SYNTHETIC_TOOLS, state)
    with pytest.raises(TokenDriftError, match="expected the assistant message"):
        conv.prompt_ids(msgs + [Message(role="user", content="no answer in between")], [], state)


def test_retry_returns_the_same_prompt(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    assert conv.prompt_ids(msgs, [], state) == conv.prompt_ids(msgs, [], state)


def test_parse_remembers_ids_when_the_caller_does_not_record(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    p0 = conv.prompt_ids(msgs, [], state)
    sampled = [_ids(tok, c)[0] for c in "hi"] + _ids(tok, "<|im_end|>")  # one id per character
    msgs += [conv.parse(sampled, None), Message(role="user", content="ok")]
    p1 = conv.prompt_ids(msgs, [], state)
    assert p1[: len(p0) + len(sampled)] == p0 + sampled
    assert state[STATE_KEY].rendered_turns == []


def test_unsampled_assistant_messages_are_rendered_by_the_template(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    p0 = conv.prompt_ids(msgs, [], state)
    msgs += [Message(role="assistant", content="scripted"), Message(role="user", content="next")]
    p1 = conv.prompt_ids(msgs, [], state)
    dicts = [message_to_template(m) for m in msgs]
    full = tok.apply_chat_template(dicts, add_generation_prompt=True, return_dict=False)
    assert p1 == list(full) and p1[: len(p0)] == p0
    assert state[STATE_KEY].rendered_turns == [0]


def test_config_errors(tok: Any) -> None:
    with pytest.raises(ConfigError, match="on_drift"):
        TokenizedConversation(tok, on_drift="ignore")  # type: ignore[arg-type]
    conv = TokenizedConversation(tok)
    with pytest.raises(ConfigError, match="prompt_ids"):
        conv.record({}, None, None, [1])
    with pytest.raises(ConfigError, match="at least one message"):
        conv.prompt_ids([], [], {})


def test_record_follows_the_prompt_the_server_ran(tok: Any) -> None:
    conv, state = TokenizedConversation(tok), {}
    msgs = [Message(role="user", content="q")]
    p0 = conv.prompt_ids(msgs, [], state)
    served = [tok.bos_token_id] + p0  # a server that put a BOS in front
    sampled = _ids(tok, "a<|im_end|>")
    msgs.append(conv.parse(sampled, None))
    conv.record(state, msgs[:1], served, sampled)
    p1 = conv.prompt_ids(msgs + [Message(role="user", content="b")], [], state)
    assert p1[: len(served) + len(sampled)] == served + sampled


def test_plugs_into_the_http_token_mode_protocol(tok: Any) -> None:
    from swarmgym.policies.openai_http import ChatTokenizer

    assert isinstance(TokenizedConversation(tok), ChatTokenizer)
