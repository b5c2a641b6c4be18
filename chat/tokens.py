"""Token-in-token-out: build each turn's prompt ids by appending to the previous turn's ids.

Re-tokenising a multi-turn conversation after the fact silently changes ids: decode→encode is not the
identity for BPE, chat templates re-render earlier turns (Qwen3 drops old ``<think>`` blocks), and the
boundary tokens after an assistant turn (``<|im_end|>\\n``) were never sampled. :class:`TokenizedConversation`
never re-tokenises what the model wrote. For turn t+1 the prompt is

    prompt(t) + completion ids of turn t exactly as sampled + template tokens for the new messages

where the template tokens are rendered in a small synthetic context (``[system?, user, assistant]``) and
cut out as a text suffix — the template must render that context as a prefix of the context plus the new
messages, or the turn is refused with :class:`~swarmgym.errors.TokenDriftError` naming it (never train on
silently wrong ids). The assistant's placeholder content in the synthetic context is neutral text, so
templates that rewrite *old assistant content* (Qwen3's think-stripping) extend cleanly while the real ids
keep what was sampled; templates that rewrite *the prompt's start* (a message count, a date that moves) fail.

One :class:`TokenizedConversation` serves many concurrent episodes; each episode's ids live in the ``state``
dict passed in (``PolicyContext.state``). It satisfies the token-mode protocol of the HTTP policies::

    prompt_ids(messages, tools, state) -> list[int]
    parse(completion_ids, text) -> Message

How the sampled ids of turn t reach turn t+1: call ``record(state, messages, prompt_ids, completion_ids)``
after sampling (exact, preferred; the HTTP policies call it when present), or let ``parse`` remember them —
the next ``prompt_ids`` finds the ids of the assistant message it parsed. An assistant message whose ids
are unknown (e.g. scripted into the task's prompt) is rendered by the template; those tokens
were never sampled, so they carry no loss.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import ConfigError, TokenDriftError
from ..wire import Message, ToolSpec
from .render import ChatRenderer, message_to_template, tools_to_template
from .parse import parse_hermes

__all__ = ["TokenizedConversation", "TokenState", "STATE_KEY"]

STATE_KEY = "swarmgym.tito"
"""Key of the per-episode :class:`TokenState` in ``PolicyContext.state``."""

_SENTINEL = "\u2063SWARMGYM\u2063"  # invisible separators: never inside a template's own markup
_PLACEHOLDER = "x"


@dataclass(slots=True)
class TokenState:
    """One episode's token-exact conversation so far (kept in ``PolicyContext.state[STATE_KEY]``).

    Attributes:
        ids: prompt ids of the last model call (the completion is appended on the next call).
        messages: the messages ``ids`` render (the last call's prompt messages).
        tools_key: JSON of the tools the prompt was rendered with (a change forces a new segment).
        turn: number of prompts built (the 0-based index of the next model call).
        pending: sampled ids of the last call, from :meth:`TokenizedConversation.record`.
        segment: number of restarts after drift (``on_drift="restart"``); 0 for a clean episode.
        rendered_turns: turns whose assistant ids came from the template, not from sampling.
    """

    ids: list[int]
    messages: list[Message]
    tools_key: str
    turn: int = 1
    pending: list[int] | None = None
    segment: int = 0
    rendered_turns: list[int] = field(default_factory=list)


class TokenizedConversation:
    """Incremental, token-exact prompt builder and completion parser for one tokenizer + chat template.

    Args:
        tokenizer: a Hugging Face tokenizer with a chat template (``PreTrainedTokenizerFast`` or similar).
        chat_template: override the tokenizer's template.
        on_drift: ``"raise"`` (default) raises TokenDriftError when a turn cannot be extended exactly;
            ``"restart"`` renders that turn's prompt from scratch and starts a new segment (exports then cut
            the episode into one sample per segment).
        parser: turns decoded completion text into a Message (default: Hermes ``<tool_call>`` style).
        remember: how many parsed completions to remember for :meth:`prompt_ids` when the caller does not
            :meth:`record` (oldest forgotten first).
        fast_render: render with the compiled template directly (see :class:`ChatRenderer`).
        chat_template_kwargs: extra variables for the template, e.g. ``{"enable_thinking": False}`` for Qwen3
            (the same keyword ``apply_chat_template`` and vLLM's ``chat_template_kwargs`` take).

    Example:
        >>> from swarmgym.training.tiny import make_tiny_tokenizer
        >>> from swarmgym.wire import Message
        >>> tok = make_tiny_tokenizer("chatml_tools")
        >>> conv, state = TokenizedConversation(tok), {}
        >>> msgs = [Message(role="user", content="2+2?")]
        >>> p0 = conv.prompt_ids(msgs, [], state)
        >>> sampled = tok.encode("4<|im_end|>", add_special_tokens=False)  # what the model produced
        >>> msgs += [conv.parse(sampled, None), Message(role="user", content="sure?")]
        >>> conv.record(state, msgs[:1], p0, sampled)
        >>> p1 = conv.prompt_ids(msgs, [], state)
        >>> p1[: len(p0) + len(sampled)] == p0 + sampled
        True
        >>> tok.decode(p1[len(p0) + len(sampled):])
        '\\n<|im_start|>user\\nsure?<|im_end|>\\n<|im_start|>assistant\\n'
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        chat_template: str | None = None,
        on_drift: Literal["raise", "restart"] = "raise",
        parser: Callable[..., Message] | None = None,
        remember: int = 8192,
        fast_render: bool = True,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        state_key: str = STATE_KEY,
    ) -> None:
        if on_drift not in ("raise", "restart"):
            raise ConfigError(f"on_drift must be 'raise' or 'restart', got {on_drift!r}")
        self.tokenizer = tokenizer
        self.renderer = ChatRenderer(
            tokenizer, chat_template=chat_template, fast=fast_render, chat_template_kwargs=chat_template_kwargs
        )
        self.on_drift = on_drift
        self.parser = parser or parse_hermes
        self.state_key = state_key
        self._remember = remember
        self._sampled: OrderedDict[str, list[int]] = OrderedDict()
        self._tools_cache: tuple[Any, list[dict[str, Any]] | None, str] | None = None
        self.tail_text, self.tail_ids = self._assistant_tail()
        self.stop_texts = self._stop_texts()
        self.stop_token_ids = self._stop_ids()

    # ------------------------------------------------------------------ template facts
    def _assistant_tail(self) -> tuple[str, list[int]]:
        """The text a template writes after an assistant's content (``<|im_end|>\\n`` for ChatML)."""
        text = self.renderer.render(
            [{"role": "user", "content": _PLACEHOLDER}, {"role": "assistant", "content": _SENTINEL}],
            None,
            add_generation_prompt=False,
        )
        at = text.rfind(_SENTINEL)
        if at < 0:
            return "", []
        tail = text[at + len(_SENTINEL) :]
        return tail, self.renderer.encode(tail, continuation=True)

    def _stop_texts(self) -> list[str]:
        stops = []
        if self.tail_ids:
            first = self.renderer.decode(self.tail_ids[:1])
            if first.strip():
                stops.append(first)
        eos = getattr(self.tokenizer, "eos_token", None)
        if eos and eos not in stops:
            stops.append(eos)
        return stops

    def _stop_ids(self) -> list[int]:
        """Ids that end an assistant turn: the template's end-of-turn token and the tokenizer's EOS."""
        ids: list[int] = []
        if self.tail_ids and self.renderer.decode(self.tail_ids[:1]).strip():
            ids.append(self.tail_ids[0])
        eos = getattr(self.tokenizer, "eos_token_id", None)
        if isinstance(eos, int) and eos not in ids:
            ids.append(eos)
        return ids

    # ------------------------------------------------------------------ protocol
    def prompt_ids(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec] | None, state: dict[str, Any]
    ) -> list[int]:
        """Prompt ids for the next model call on ``messages`` (ends with the generation prompt).

        Args:
            messages: the whole conversation so far; after the first call it must extend the previous call's
                messages with the assistant message of that call, then tool/user messages.
            tools: the tools offered to the model (rendered by the template).
            state: per-episode dict (``PolicyContext.state``); holds the :class:`TokenState`.

        Returns:
            A fresh list of ids. Calling again with the same messages (a retry) returns the same ids.

        Raises:
            TokenDriftError: the conversation cannot be extended exactly (earlier messages changed, the
                template is not prefix-preserving); the message names the turn. Not raised with
                ``on_drift="restart"``.
        """
        msgs = list(messages)
        tools_t, tools_key = self._tools(tools)
        st: TokenState | None = state.get(self.state_key)
        if st is None:
            st = TokenState(ids=self._render_fresh(msgs, tools_t), messages=msgs, tools_key=tools_key)
            state[self.state_key] = st
            return list(st.ids)
        turn = st.turn
        n = len(st.messages)
        if st.pending is None and len(msgs) == n and _same(msgs, st.messages) and tools_key == st.tools_key:
            return list(st.ids)  # a retry of the same call
        try:
            if tools_key != st.tools_key:
                raise _Drift("the tools offered to the model changed")
            if len(msgs) <= n or not _same(msgs[:n], st.messages):
                raise _Drift("earlier messages were changed or removed (e.g. by a context strategy)")
            ids = self._extend(st, msgs, msgs[n:], tools_t, turn)
        except _Drift as d:
            if self.on_drift == "raise":
                raise TokenDriftError(
                    f"turn {turn}: cannot extend the token-exact prompt: {d}. Keep the conversation "
                    "append-only with a prefix-preserving chat template, or use "
                    "TokenizedConversation(on_drift='restart') to start a new training sample here."
                ) from None
            ids = self._render_fresh(msgs, tools_t)
            st.segment += 1
        st.ids, st.messages, st.tools_key, st.pending, st.turn = ids, msgs, tools_key, None, turn + 1
        return list(ids)

    def record(
        self,
        state: dict[str, Any],
        messages: Sequence[Message] | None,
        prompt_ids: Sequence[int] | None,
        completion_ids: Sequence[int],
    ) -> None:
        """Hand over what the server saw and sampled for the last prompt of this episode (call once per turn).

        This is the ``record`` hook of the token-mode HTTP policies. ``prompt_ids`` is the prompt the server
        reports it ran (None: the one :meth:`prompt_ids` built); when it differs (a server that adds a BOS),
        the next turn extends the server's version, since that is what the model read.
        """
        st: TokenState | None = state.get(self.state_key)
        if st is None:
            raise ConfigError("record() before prompt_ids(): build the prompt with prompt_ids() first")
        ids = list(completion_ids)
        st.pending = ids
        if prompt_ids is not None and list(prompt_ids) != st.ids:
            st.ids = list(prompt_ids)
        # parse() just remembered these ids for callers that do not record; the pending copy wins, so drop it.
        if self._sampled:
            key, last = next(reversed(self._sampled.items()))
            if last == ids:
                del self._sampled[key]

    def parse(self, completion_ids: Sequence[int] | None, text: str | None = None, *, remember: bool = True) -> Message:
        """The assistant message the model wrote.

        Args:
            completion_ids: ids as sampled (decoded here with special tokens kept, so tool-call markers that
                are special tokens survive); None to parse ``text`` alone.
            text: the server's text, used when no ids are given.
            remember: keep the ids for the next :meth:`prompt_ids` (callers that :meth:`record` pass False).

        Returns:
            The parsed assistant Message (malformed tool calls kept raw; never raises on model output).
        """
        if completion_ids is not None:
            ids = list(completion_ids)
            msg = self.parser(self.renderer.decode(ids), stops=self.stop_texts)
            if remember:
                self._sampled[_key(msg)] = ids
                while len(self._sampled) > self._remember:
                    self._sampled.popitem(last=False)
            return msg
        return self.parser(text or "", stops=self.stop_texts)

    def state_of(self, state: dict[str, Any]) -> TokenState | None:
        """The episode's TokenState, if a prompt was built."""
        return state.get(self.state_key)

    # ------------------------------------------------------------------ internals
    def _tools(self, tools: Sequence[ToolSpec] | None) -> tuple[list[dict[str, Any]] | None, str]:
        # Episodes share one tools list object; avoid re-serialising it every turn.
        cached = self._tools_cache
        if cached is not None and cached[0] is tools:
            return cached[1], cached[2]
        tools_t = tools_to_template(tools)
        key = json.dumps(tools_t, sort_keys=True) if tools_t else ""
        self._tools_cache = (tools, tools_t, key)
        return tools_t, key

    def _render_fresh(self, msgs: list[Message], tools_t: list[dict[str, Any]] | None) -> list[int]:
        if not msgs:
            raise ConfigError("prompt_ids() needs at least one message")
        text = self.renderer.render([message_to_template(m) for m in msgs], tools_t, add_generation_prompt=True)
        return self.renderer.encode(text)

    def _extend(
        self,
        st: TokenState,
        msgs: list[Message],
        new: list[Message],
        tools_t: list[dict[str, Any]] | None,
        turn: int,
    ) -> list[int]:
        if new[0].role != "assistant":
            raise _Drift(f"expected the assistant message of turn {turn - 1} next, got a {new[0].role!r} message")
        system = [message_to_template(msgs[0])] if msgs[0].role == "system" else []
        ids = list(st.ids)
        i = 0
        while i < len(new):
            assistant = new[i]
            j = i + 1
            while j < len(new) and new[j].role != "assistant":
                j += 1
            sampled = st.pending if i == 0 else None
            if sampled is None:
                sampled = self._sampled.pop(_key(assistant), None)
            if sampled is None:
                sampled = self._render_assistant(system, assistant, tools_t)
                st.rendered_turns.append(turn - 1 if i == 0 else turn)
            ids += sampled
            ids += self._delta(system, assistant, new[i + 1 : j], tools_t, sampled)
            i = j
        return ids

    def _delta(
        self,
        system: list[dict[str, Any]],
        assistant: Message,
        rest: list[Message],
        tools_t: list[dict[str, Any]] | None,
        sampled: list[int],
    ) -> list[int]:
        """Template ids that follow a sampled assistant turn: unsampled closing tokens + new messages.

        Rendered in a small synthetic context ``[system?, user, assistant, *rest]`` whose assistant content is a
        sentinel. The text that follows the turn is located *after the sentinel* in the render with ``rest``,
        not by assuming that the render ending in the assistant is a prefix of it: Qwen3's real template writes
        an empty think block before the content of the LAST assistant message only, so that assumption fails
        at turn 1 while the text after the content is unchanged. Two checks keep this exact: the text before
        the assistant turn must not change when messages are added (templates that rewrite the start, e.g. a
        message count or tools moved to the last user turn, are drift), and the assistant's own text after its
        content (tool calls + closing) must be the same whether or not it is the last message.
        """
        stub: dict[str, Any] = {"role": "assistant", "content": _SENTINEL}
        if assistant.tool_calls:
            stub["tool_calls"] = message_to_template(assistant)["tool_calls"]
        head = [*system, {"role": "user", "content": _PLACEHOLDER}]
        before = self.renderer.render(head, tools_t, add_generation_prompt=False)
        last = self.renderer.render([*head, stub], tools_t, add_generation_prompt=False)
        full = self.renderer.render([*head, stub, *(message_to_template(m) for m in rest)], tools_t,
                                    add_generation_prompt=True)
        if not full.startswith(before):
            raise _Drift("the chat template re-renders earlier text when messages are added (not append-only)")
        b, f = last.rfind(_SENTINEL), full.rfind(_SENTINEL)
        if b >= 0 and f >= 0:
            own = last[b + len(_SENTINEL) :]  # tool calls + closing, as written for the last message
            after = full[f + len(_SENTINEL) :]
        elif full.startswith(last):  # content not shown (Llama 3.1 writes only the call): a plain prefix
            own, after = last, full
        else:
            raise _Drift("the chat template neither shows the assistant's content nor extends its render")
        if not after.startswith(own):
            raise _Drift("the template writes this assistant turn differently once messages follow it")
        if not own.endswith(self.tail_text):
            raise _Drift(f"the template closes this assistant turn differently from {self.tail_text!r}")
        return _missing_tail(sampled, self.tail_ids) + self.renderer.encode(after[len(own) :], continuation=True)

    def _render_assistant(
        self, system: list[dict[str, Any]], assistant: Message, tools_t: list[dict[str, Any]] | None
    ) -> list[int]:
        """Ids of an assistant turn nobody sampled here, as the template writes it after a generation prompt."""
        ctx = [*system, {"role": "user", "content": _PLACEHOLDER}]
        base = self.renderer.render(ctx, tools_t, add_generation_prompt=True)
        full = self.renderer.render(ctx + [message_to_template(assistant)], tools_t, add_generation_prompt=False)
        if not full.startswith(base):
            raise _Drift("the template's generation prompt differs from its assistant header")
        return self.renderer.encode(full[len(base) :], continuation=True)


class _Drift(Exception):
    """Internal: why a turn cannot be extended (turned into TokenDriftError with the turn number)."""


def _missing_tail(sampled: list[int], tail: list[int]) -> list[int]:
    """The part of the template's assistant closing the model did not sample (e.g. the ``\\n`` after EOS).

    The longest prefix of ``tail`` that ``sampled`` ends with was produced by the model; the rest is added
    as template tokens. A completion cut by the token limit ends with none of it, so it gets all of it.
    """
    for k in range(len(tail), 0, -1):
        if len(sampled) >= k and sampled[-k:] == tail[:k]:
            return tail[k:]
    return list(tail)


def _same(a: Sequence[Message], b: Sequence[Message]) -> bool:
    return len(a) == len(b) and all(x is y or x == y for x, y in zip(a, b))


def _key(m: Message) -> str:
    return m.model_dump_json()
