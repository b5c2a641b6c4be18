"""Context management strategies: what the policy sees once the conversation grows past a token threshold.

Each strategy implements :class:`swarmgym.loop.ContextStrategy` (``async view(messages, ctx)``) and is set
on an env with ``AgentEnv(context_strategy=...)``. The trajectory always keeps the full record; only the
messages sent to the policy change. Below the threshold every strategy shows the whole conversation.

- :class:`HideToolResults`: keep only the most recent round(s) of tool results; older tool messages stay
  in place (the OpenAI format needs one per call) with their content replaced by a short marker. Every
  assistant message — the reasoning and the calls — is kept.
- :class:`DiscardAll`: drop the history once over the threshold, keeping the system prompt and the task;
  the policy continues from there (and the history is dropped again whenever it regrows past the threshold).
- :class:`Summary`: a policy in the role ``"summarizer"`` condenses the history into one message, which
  replaces it (again whenever the visible part regrows past the threshold; the previous summary is
  condensed with the new turns).

Tokens are estimated cheaply (characters / 4, tool-call arguments included); pass ``count_tokens`` for an
exact tokenizer.

Example:
    >>> from swarmgym.envs.core import AgentEnv
    >>> env = AgentEnv([], context_strategy=HideToolResults(threshold_tokens=8000))
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from .policies.base import PolicyContext
from .wire import Message, SamplingParams

__all__ = ["HIDDEN_MARKER", "DiscardAll", "HideToolResults", "Summary", "estimate_tokens"]

HIDDEN_MARKER = "[tool result hidden to save context]"

TokenCounter = Callable[[Sequence[Message]], int]


def estimate_tokens(messages: Sequence[Message]) -> int:
    """About four characters per token over content, reasoning and tool-call arguments."""
    n = 0
    for m in messages:
        n += len(m.text) + len(m.reasoning_content or "") + 4
        for c in m.tool_calls or ():
            args = c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments)
            n += len(c.name) + len(args)
    return n // 4


def _head_len(messages: Sequence[Message]) -> int:
    """Length of the fixed head: leading system messages and the first user message (the task)."""
    i = 0
    while i < len(messages) and messages[i].role == "system":
        i += 1
    if i < len(messages) and messages[i].role == "user":
        i += 1
    return i


class _Threshold:
    def __init__(self, threshold_tokens: int, count_tokens: TokenCounter | None) -> None:
        if threshold_tokens < 1:
            raise ValueError(f"threshold_tokens must be at least 1, got {threshold_tokens}")
        self.threshold_tokens = int(threshold_tokens)
        self.count_tokens = count_tokens or estimate_tokens

    def over(self, messages: Sequence[Message]) -> bool:
        return self.count_tokens(messages) > self.threshold_tokens

    def _state(self, ctx: PolicyContext | None) -> dict[str, Any]:
        # per episode; a fresh dict when there is no context (a direct call in a test or a script)
        if ctx is None:
            return {}
        return ctx.state.setdefault(f"context/{type(self).__name__}", {})


class HideToolResults(_Threshold):
    """Replace the content of all but the last ``keep_rounds`` rounds of tool results once over threshold.

    A round is the tool messages answering one assistant turn.

    Args:
        threshold_tokens: hide only when the conversation is estimated above this.
        keep_rounds: most recent rounds of tool results shown in full.
        marker: the text shown instead of a hidden result.
        count_tokens: token counter (default :func:`estimate_tokens`).
    """

    def __init__(
        self,
        threshold_tokens: int = 32_000,
        *,
        keep_rounds: int = 1,
        marker: str = HIDDEN_MARKER,
        count_tokens: TokenCounter | None = None,
    ) -> None:
        super().__init__(threshold_tokens, count_tokens)
        if keep_rounds < 0:
            raise ValueError(f"keep_rounds must be >= 0, got {keep_rounds}")
        self.keep_rounds = keep_rounds
        self.marker = marker

    async def view(self, messages: Sequence[Message], ctx: PolicyContext | None = None) -> list[Message]:
        msgs = list(messages)
        if not self.over(msgs):
            return msgs
        # index of the first tool message that stays visible: walk back over `keep_rounds` assistant turns
        keep_from = len(msgs)
        rounds = 0
        for i in range(len(msgs) - 1, -1, -1):
            if msgs[i].role == "assistant" and msgs[i].tool_calls:
                rounds += 1
                if rounds > self.keep_rounds:
                    break
                keep_from = i
        out = []
        for i, m in enumerate(msgs):
            if m.role == "tool" and i < keep_from and m.content != self.marker:
                out.append(m.model_copy(update={"content": self.marker}))
            else:
                out.append(m)
        return out


class DiscardAll(_Threshold):
    """Once over the threshold, show only the system prompt and the task (plus what came after the cut).

    Args:
        threshold_tokens: discard when the visible conversation is estimated above this.
        note: a user message appended after the task saying the history was dropped (None: no note).
        count_tokens: token counter (default :func:`estimate_tokens`).
    """

    def __init__(
        self,
        threshold_tokens: int = 32_000,
        *,
        note: str | None = "(Earlier steps were removed to save context. Continue the task.)",
        count_tokens: TokenCounter | None = None,
    ) -> None:
        super().__init__(threshold_tokens, count_tokens)
        self.note = note

    def _visible(self, msgs: list[Message], cut: int) -> list[Message]:
        head = msgs[: _head_len(msgs)]
        if cut <= len(head):
            return msgs
        extra = [Message(role="user", content=self.note)] if self.note else []
        return head + extra + msgs[cut:]

    async def view(self, messages: Sequence[Message], ctx: PolicyContext | None = None) -> list[Message]:
        msgs = list(messages)
        st = self._state(ctx)
        cut = int(st.get("cut", 0))
        visible = self._visible(msgs, cut)
        if self.over(visible) and len(msgs) > _head_len(msgs):
            # cut at the current end: the view is called between turns, after a whole round of tool results
            st["cut"] = len(msgs)
            st["discards"] = int(st.get("discards", 0)) + 1
            visible = self._visible(msgs, len(msgs))
        return visible


SUMMARY_SYSTEM = (
    "You condense an agent's working history. Write a concise summary of everything the agent has found "
    "and done so far that it needs to finish its task: facts gathered (with exact values), decisions, and "
    "what remains to do. Do not solve the task yourself."
)


class Summary(_Threshold):
    """Once over the threshold, a ``"summarizer"`` policy condenses the history into one message.

    Under a rollout manager the call goes through the manager like every other model call
    (``PolicyContext.side_call``): it waits while the manager is paused, counts against its call limits, gets
    the summariser role's version stamp, and is stored as a child trajectory (role ``"summarizer"``) of the
    episode. The policy is ``policies`` when given, else the manager's ``"summarizer"`` role. Outside a
    manager the call goes to ``policies`` directly.

    Args:
        policies: a PolicyRouter (its ``"summarizer"`` role is used) or a single policy; None: the manager's
            ``"summarizer"`` role (then the strategy only works under a manager).
        threshold_tokens: summarise when the visible conversation is estimated above this.
        system_prompt: instructions for the summariser.
        sampling: sampling for the summariser's call.
        count_tokens: token counter (default :func:`estimate_tokens`).
        keep_rounds: most recent rounds (an assistant turn with calls and its results) left out of the
            summary and shown verbatim after it (0: everything is condensed). An agent that has not yet
            seen its latest results needs them kept.
    """

    role = "summarizer"

    def __init__(
        self,
        policies: Any = None,
        threshold_tokens: int = 32_000,
        *,
        system_prompt: str = SUMMARY_SYSTEM,
        sampling: SamplingParams | None = None,
        count_tokens: TokenCounter | None = None,
        keep_rounds: int = 0,
    ) -> None:
        super().__init__(threshold_tokens, count_tokens)
        if keep_rounds < 0:
            raise ValueError(f"keep_rounds must be >= 0, got {keep_rounds}")
        self.keep_rounds = keep_rounds
        self.policies = policies
        self.system_prompt = system_prompt
        self.sampling = sampling or SamplingParams(temperature=0.0)

    def _policy(self) -> Any:
        if self.policies is None:
            from .errors import ConfigError

            raise ConfigError(
                "Summary(policies=None) takes the summariser from the rollout manager; outside one pass "
                "Summary(policies=...)"
            )
        get = getattr(self.policies, "get", None)
        return get(self.role) if callable(get) and hasattr(self.policies, "is_trainable") else self.policies

    @staticmethod
    def _render(msgs: Sequence[Message]) -> str:
        lines = []
        for m in msgs:
            text = m.text
            if m.tool_calls:
                text += "".join(f"\n-> {c.name}({c.arguments if isinstance(c.arguments, str) else json.dumps(c.arguments)})"
                                for c in m.tool_calls)
            lines.append(f"[{m.role}{'/' + m.name if m.name else ''}] {text}")
        return "\n".join(lines)

    def _visible(self, msgs: list[Message], st: dict[str, Any]) -> list[Message]:
        cut = int(st.get("cut", 0))
        if not cut:
            return msgs
        head = msgs[: _head_len(msgs)]
        note = Message(role="user", content=f"Summary of your progress so far:\n{st['summary']}")
        return head + [note] + msgs[cut:]

    async def view(self, messages: Sequence[Message], ctx: PolicyContext | None = None) -> list[Message]:
        msgs = list(messages)
        st = self._state(ctx)
        visible = self._visible(msgs, st)
        h = _head_len(msgs)
        cut = int(st.get("cut", 0))
        if not self.over(visible) or len(msgs) <= max(h, cut):
            return visible
        keep_from = len(msgs)  # the last `keep_rounds` rounds stay verbatim
        rounds = 0
        for i in range(len(msgs) - 1, max(h, cut) - 1, -1):
            if rounds >= self.keep_rounds:
                break
            if msgs[i].role == "assistant" and msgs[i].tool_calls:
                rounds += 1
                keep_from = i
        if keep_from <= max(h, cut):
            return visible  # nothing older than the kept rounds to condense
        # condense the visible history after the task (the previous summary included) up to the kept rounds
        history = visible[h : len(visible) - (len(msgs) - keep_from)]
        request = [
            Message(role="system", content=self.system_prompt),
            Message(role="user", content=f"Task:\n{self._render(msgs[:h])}\n\nHistory:\n{self._render(history)}"),
        ]
        sctx = PolicyContext(
            task=ctx.task if ctx else None,
            env=ctx.env if ctx else None,
            role=self.role,
            episode_id=(ctx.episode_id + "/summary") if ctx else "",
            turn=int(st.get("summaries", 0)),
        )
        side_call = ctx.side_call if ctx is not None else None
        if side_call is not None:
            own = self._policy() if self.policies is not None else None
            completion = await side_call(self.role, request, [], self.sampling, sctx, policy=own)
        else:
            completion = await self._policy().complete(request, [], self.sampling, ctx=sctx)
        st["summary"] = completion.message.text.strip()
        st["cut"] = keep_from
        st["summaries"] = int(st.get("summaries", 0)) + 1
        return self._visible(msgs, st)
