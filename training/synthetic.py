"""Synthetic multi-turn episodes from a pure-Python fake sampler, for the token-exactness property check.

The fake sampler emits ids the way a real model does — not the way the tokenizer would encode the same text:
random vocabulary ids, and tool calls whose JSON is cut into random pieces and encoded piece by piece (a
non-canonical tokenisation that decode→encode would not reproduce). Some turns end with the end-of-turn
token, some are cut by the token limit, some carry malformed JSON or reasoning. Episodes run through
:class:`~swarmgym.chat.tokens.TokenizedConversation` exactly as a token-mode policy would, so the exported
ids can be compared with what was "sampled" bit for bit. Used by the tests and ``benchmarks/tito.py``.
"""

from __future__ import annotations

import json
import random
from typing import Any

from ..chat.render import message_to_template
from ..wire import Completion, Message, ToolCall, ToolSpec, Trajectory
from ..chat.tokens import TokenizedConversation

__all__ = ["FakeSampler", "synthetic_episode", "template_episode", "SYNTHETIC_TOOLS"]

SYNTHETIC_TOOLS = [
    ToolSpec(
        name="search",
        description="Search the web.",
        parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    ),
    ToolSpec(
        name="add",
        description="Add two numbers.",
        parameters={"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
    ),
]
_WORDS = "alpha beta gamma delta file path value result error sum query city open read 42 7 x y".split()


class FakeSampler:
    """Produces completion ids for a tokenizer without running a model.

    Args:
        conv: the conversation whose tokenizer and end-of-turn ids to use.
        rng: source of randomness (seeded by the caller for reproducibility).
    """

    def __init__(self, conv: TokenizedConversation, rng: random.Random) -> None:
        self.conv = conv
        self.rng = rng
        tok = conv.tokenizer
        specials = set(getattr(tok, "all_special_ids", []) or [])
        added = set(getattr(tok, "added_tokens_decoder", {}) or {})
        self.free_ids = [i for i in range(len(tok)) if i not in specials and i not in added]
        self.eot = conv.stop_token_ids[0] if conv.stop_token_ids else None
        self.call_open = tok.convert_tokens_to_ids("<tool_call>")
        self.call_close = tok.convert_tokens_to_ids("</tool_call>")
        self._encode = conv.renderer.encode
        self._cache: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        ids = self._cache.get(text)
        if ids is None:
            ids = self._cache[text] = self._encode(text)
        return ids

    @classmethod
    def shared(cls, conv: TokenizedConversation, rng: random.Random) -> FakeSampler:
        """One sampler per conversation (its vocabulary scan and encode cache are reused), bound to ``rng``."""
        cached: FakeSampler | None = getattr(conv, "_fake_sampler", None)
        if cached is None:
            cached = cls(conv, rng)
            conv._fake_sampler = cached  # type: ignore[attr-defined]
        cached.rng = rng
        return cached

    def _pieces(self, text: str) -> list[int]:
        """``text`` encoded in random pieces: same text, ids the tokenizer itself would not choose."""
        ids: list[int] = []
        i = 0
        while i < len(text):
            j = min(len(text), i + self.rng.randint(1, 6))
            ids += self.encode(text[i:j])
            i = j
        return ids

    def sample(self, prompt_ids: list[int], *, allow_tools: bool) -> tuple[list[int], list[float]]:
        """Completion ids and their (made-up) logprobs for one turn."""
        rng = self.rng
        ids = [rng.choice(self.free_ids) for _ in range(rng.randint(0, 12))]
        if allow_tools and rng.random() < 0.6:
            for _ in range(rng.randint(1, 3)):
                args: Any = {"query": " ".join(rng.choices(_WORDS, k=rng.randint(1, 4)))}
                body = json.dumps({"name": rng.choice(["search", "add"]), "arguments": args})
                if rng.random() < 0.15:
                    body = body[: rng.randint(1, len(body) - 1)]  # malformed JSON
                ids += [self.call_open] + self._pieces("\n" + body + "\n") + [self.call_close]
        if rng.random() < 0.1:  # cut by the token limit: no end-of-turn token
            ids = ids[: rng.randint(0, len(ids))]
        elif self.eot is not None:
            ids.append(self.eot)
        return ids, [-rng.random() * 5 for _ in ids]


def synthetic_episode(
    conv: TokenizedConversation,
    rng: random.Random,
    *,
    max_turns: int = 5,
    use_record: bool | None = None,
    episode: int = 0,
) -> Trajectory:
    """Run one fake episode through ``conv`` and return its trajectory (token-exact completions).

    Args:
        conv: the tokenized conversation under test.
        rng: randomness for lengths, tool calls and observations.
        max_turns: upper bound of model calls.
        use_record: hand sampled ids over with ``conv.record`` (True) or rely on ``conv.parse`` remembering
            them (False); random when None.
        episode: a number for the trajectory id.
    """
    sampler = FakeSampler.shared(conv, rng)
    state: dict[str, Any] = {}
    msgs: list[Message] = []
    if rng.random() < 0.5:
        msgs.append(Message(role="system", content="You are a careful agent. " * rng.randint(1, 3)))
    msgs.append(Message(role="user", content=" ".join(rng.choices(_WORDS, k=rng.randint(1, 20)))))
    tools = SYNTHETIC_TOOLS if rng.random() < 0.7 else []
    record = rng.random() < 0.5 if use_record is None else use_record
    completions: list[Completion] = []
    for turn in range(rng.randint(1, max_turns)):
        prompt = conv.prompt_ids(msgs, tools, state)
        ids, lps = sampler.sample(prompt, allow_tools=bool(tools))
        message = conv.parse(ids, None)
        if record:
            conv.record(state, msgs, prompt, ids)
        completions.append(
            Completion(
                message=message,
                prompt_ids=prompt,
                completion_ids=ids,
                logprobs=lps,
                policy_version=turn // 2,
                token_exact=True,
            )
        )
        msgs.append(message)
        for call in message.tool_calls or []:
            out = " ".join(rng.choices(_WORDS, k=rng.randint(0, 30)))
            msgs.append(Message(role="tool", content=out, tool_call_id=call.id, name=call.name))
        if not message.tool_calls or rng.random() < 0.2:
            msgs.append(Message(role="user", content=" ".join(rng.choices(_WORDS, k=rng.randint(1, 8)))))
    return Trajectory(
        id=f"syn_{episode}",
        task_id=f"task_{episode // 4}",
        messages=msgs,
        completions=completions,
        tools=list(tools),
        reward=float(rng.random() < 0.5),
    )


def _split_tokens(conv: TokenizedConversation, ids: list[int], rng: random.Random) -> list[int]:
    """``ids`` with some tokens replaced by two shorter tokens spelling the same text (non-canonical ids)."""
    tok = conv.tokenizer
    vocab = _vocab(conv)
    out: list[int] = []
    for i, piece in zip(ids, tok.convert_ids_to_tokens(ids)):
        if rng.random() < 0.3 and len(piece) > 1 and i not in conv._specials_ids:  # type: ignore[attr-defined]
            k = rng.randint(1, len(piece) - 1)
            a, b = vocab.get(piece[:k]), vocab.get(piece[k:])
            if a is not None and b is not None:
                out += [a, b]
                continue
        out.append(i)
    return out


def _vocab(conv: TokenizedConversation) -> dict[str, int]:
    v = getattr(conv, "_vocab_cache", None)
    if v is None:
        tok = conv.tokenizer
        v = conv._vocab_cache = tok.get_vocab()  # type: ignore[attr-defined]
        conv._specials_ids = set(tok.all_special_ids) | set(tok.added_tokens_decoder)  # type: ignore[attr-defined]
    return v


def _assistant_text(conv: TokenizedConversation, msgs: list[Message], msg: Message, tools_t: Any) -> str | None:
    """The text the template itself writes for ``msg`` after the generation prompt of ``msgs`` (None: refused)."""
    r = conv.renderer
    conv_t = [message_to_template(m) for m in msgs]
    try:
        pre = r.render(conv_t, tools_t, add_generation_prompt=True)
        full = r.render([*conv_t, message_to_template(msg)], tools_t, add_generation_prompt=False)
    except Exception:  # the template refuses this shape (e.g. Llama 3.1: one tool call per message)
        return None
    if full.startswith(pre):
        return full[len(pre) :]
    try:  # the template moves earlier text (Mistral Nemo's system prompt): write the turn in a small context
        return r.decode(conv._render_assistant([], msg, tools_t))
    except Exception:
        return None


def template_episode(
    conv: TokenizedConversation,
    rng: random.Random,
    *,
    max_turns: int = 5,
    episode: int = 0,
    reasoning: bool = False,
) -> Trajectory:
    """A multi-turn tool episode whose sampled turns are what the chat template itself writes for each message.

    Each assistant message is drawn first (text, up to two tool calls, reasoning when ``reasoning``); its
    "sampled" ids are the template's own text for it after the generation prompt, up to and including the
    end-of-turn token (the unsampled rest, e.g. ``\\n``, is the template's), tokenised non-canonically (some
    tokens split in two). One turn in ten is cut before its end-of-turn token. Tool results follow tool
    calls; a new user message follows an answer without calls. So ``decode(ids)`` of the episode can be
    compared with the template's render of its final conversation.
    """
    from ..chat.render import tools_to_template

    state: dict[str, Any] = {}
    msgs: list[Message] = []
    if rng.random() < 0.5:
        msgs.append(Message(role="system", content="You are a careful agent. " * rng.randint(1, 3)))
    msgs.append(Message(role="user", content=" ".join(rng.choices(_WORDS, k=rng.randint(1, 20)))))
    tools = SYNTHETIC_TOOLS if rng.random() < 0.7 else []
    tools_t = tools_to_template(tools)
    stop = conv.stop_token_ids[0] if conv.stop_token_ids else None
    completions: list[Completion] = []
    for turn in range(rng.randint(1, max_turns)):
        prompt = conv.prompt_ids(msgs, tools, state)
        n_calls = rng.choice([0, 1, 1, 2]) if tools else 0
        content = " ".join(rng.choices(_WORDS, k=rng.randint(1 if not n_calls else 0, 12)))
        think = " ".join(rng.choices(_WORDS, k=rng.randint(1, 8))) if reasoning and rng.random() < 0.7 else None
        text = None
        while text is None:
            calls = [
                ToolCall(
                    id="".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=9)),
                    name=rng.choice(["search", "add"]),
                    arguments={"query": " ".join(rng.choices(_WORDS, k=rng.randint(1, 4)))},
                )
                for _ in range(n_calls)
            ]
            msg = Message(
                role="assistant",
                content=content if (content or not calls) else None,
                tool_calls=calls or None,
                reasoning_content=think,
            )
            text = _assistant_text(conv, msgs, msg, tools_t)
            if text is None and n_calls == 0:
                raise ValueError(f"the template refuses a plain assistant answer after {[m.role for m in msgs]}")
            n_calls -= 1
        cut = rng.random() < 0.1
        if conv.tail_text and text.endswith(conv.tail_text):
            text = text[: -len(conv.tail_text)]
        ids = _split_tokens(conv, conv.renderer.encode(text, continuation=True), rng)
        if stop is not None and not cut:
            ids.append(stop)
        conv.record(state, msgs, prompt, ids)
        completions.append(
            Completion(
                message=msg,
                prompt_ids=prompt,
                completion_ids=ids,
                logprobs=[-rng.random() * 5 for _ in ids],
                policy_version=turn // 2,
                token_exact=True,
            )
        )
        msgs.append(msg)
        for call in msg.tool_calls or []:
            out = " ".join(rng.choices(_WORDS, k=rng.randint(1, 30)))
            msgs.append(Message(role="tool", content=out, tool_call_id=call.id, name=call.name))
        if not msg.tool_calls:
            msgs.append(Message(role="user", content=" ".join(rng.choices(_WORDS, k=rng.randint(1, 8)))))
    return Trajectory(
        id=f"tpl_{episode}",
        task_id=f"task_{episode // 4}",
        messages=msgs,
        completions=completions,
        tools=list(tools),
        reward=float(rng.random() < 0.5),
    )
