"""Token-in-token-out on REAL chat templates (from llama-cpp-python's vendored llama.cpp and the SmolLM2
GGUF) with real tokenizers: no drift, and the ids decode to the template's own render wherever the template
does not rewrite history. Needs `.ci/install-templates.sh`; fails instead of skipping with
SWARMGYM_REQUIRE_REAL=1."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from swarmgym.chat.tokens import TokenizedConversation
from swarmgym.errors import TokenDriftError
from swarmgym.testing import real_templates
from swarmgym.wire import Message, ToolCall, ToolSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the checkout root, for `benchmarks`
from benchmarks.tito import check_episode  # noqa: E402


def _need_real() -> None:
    if real_templates.available():
        return
    msg = f"real chat templates not installed in {real_templates.cache_dir()}: run .ci/install-templates.sh"
    if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
        pytest.fail(msg)
    pytest.skip(msg)


_LOADED: dict[str, Any] = {}


def _load(name: str) -> tuple[Any, Any]:
    _need_real()
    if name not in _LOADED:
        _LOADED[name] = real_templates.load(name)
    return _LOADED[name]


TOOLS = [ToolSpec(name="add", description="Add.", parameters={"type": "object", "properties": {"a": {"type": "number"}}})]


def test_qwen3_extends_at_turn_one_with_and_without_thinking() -> None:
    # The real Qwen3 template writes an empty think block for the LAST assistant only: the old check
    # (render ending in a placeholder assistant is a prefix of the longer render) raised at turn 1.
    for name in ("qwen3", "qwen3-nothink"):
        tok, case = _load(name)
        conv = TokenizedConversation(tok, chat_template_kwargs=case.chat_template_kwargs)
        st: dict[str, Any] = {}
        msgs = [Message(role="user", content="add 2")]
        p0 = conv.prompt_ids(msgs, TOOLS, st)
        call = ToolCall(id="abcdefghi", name="add", arguments={"a": 2})
        answer = Message(role="assistant", content="ok", tool_calls=[call])
        text = '<think>\n\n</think>\n\nok\n<tool_call>\n{"name": "add", "arguments": {"a": 2}}\n</tool_call><|im_end|>'
        if name == "qwen3-nothink":  # the generation prompt already holds the empty think block
            assert tok.decode(p0).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
            text = text.removeprefix("<think>\n\n</think>\n\n")
        sampled = conv.renderer.encode(text, continuation=True)
        conv.record(st, msgs, p0, sampled)
        msgs += [answer, Message(role="tool", content="2", tool_call_id="abcdefghi", name="add")]
        p1 = conv.prompt_ids(msgs, TOOLS, st)
        assert p1[: len(p0) + len(sampled)] == p0 + sampled
        assert tok.decode(p1[len(p0) + len(sampled) :]).startswith("\n<|im_start|>user\n<tool_response>\n2\n")
        # the template itself drops the sampled think block from history: that is why ids must not be re-rendered
        rerender = tok.apply_chat_template(
            [{"role": "user", "content": "add 2"}, {"role": "assistant", "content": "ok", "tool_calls": [
                {"type": "function", "function": {"name": "add", "arguments": {"a": 2}}}]},
             {"role": "tool", "content": "2"}],
            tools=[t.to_openai() for t in TOOLS], add_generation_prompt=True, tokenize=False,
            **case.chat_template_kwargs,
        )
        assert "<think>\n\n</think>\n\nok" not in rerender


@pytest.mark.parametrize("name", sorted(real_templates.CASES))
def test_real_template_episodes_are_exact_and_match_the_render(name: str) -> None:
    tok, case = _load(name)
    conv = TokenizedConversation(tok, chat_template_kwargs=case.chat_template_kwargs)
    from swarmgym.training.synthetic import template_episode

    rng = random.Random(1)
    drift = checked = 0
    for e in range(40):
        try:
            traj = template_episode(conv, rng, episode=e, reasoning=name == "qwen3")
        except TokenDriftError:
            drift += 1
            continue
        exact, rewritten, matches = check_episode(conv, traj)
        assert exact, f"episode {e}: sampled ids not kept bit for bit"
        if not rewritten:
            checked += 1
            assert matches, f"episode {e}: decoded ids differ from the template's render"
    if name == "mistral-nemo":  # moves the system prompt / tools when messages follow: refused, never guessed
        assert drift > 0
    else:
        assert drift == 0
    if name in ("qwen2.5", "llama3.1", "llama3.2", "smollm2"):
        assert checked == 40  # append-only templates: every episode is render-checked


def test_render_check_can_fail() -> None:
    # flipping one sampled id must be caught by the check the benchmark relies on
    tok, case = _load("qwen2.5")
    conv = TokenizedConversation(tok)
    from swarmgym.training.synthetic import template_episode

    traj = template_episode(conv, random.Random(3), episode=0)
    c = traj.completions[-1]
    bad = c.model_copy(update={"completion_ids": [tok.convert_tokens_to_ids("Ġbeta"), *c.completion_ids[1:]]})
    traj = traj.model_copy(update={"completions": [*traj.completions[:-1], bad]})
    exact, rewritten, matches = check_episode(conv, traj)
    assert not rewritten and not matches
