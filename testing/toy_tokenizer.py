"""A deterministic byte-level toy tokenizer and chat template, shared by the fake server and tests.

Ids: ``0 <pad>``, ``1 <s>``, ``2 </s>``, ``3..258`` = one UTF-8 byte each (``id = byte + 3``),
``259 <|im_start|>``, ``260 <|im_end|>``. The chat template is ChatML-like and Hermes-style for tools::

    <|im_start|>system\\n{system text}\\n\\n# Tools\\n{one JSON schema per line}<|im_end|>\\n
    <|im_start|>user\\n{text}<|im_end|>\\n
    <|im_start|>assistant\\n{text}\\n<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call><|im_end|>\\n
    <|im_start|>tool\\n{text}<|im_end|>\\n
    <|im_start|>assistant\\n                       (generation prompt)

A generated assistant turn is ``encode(assistant_text) + [IM_END]``: like a real model, the end-of-turn token
is sampled (so it is in the completion ids) but not in the text. Byte-level encoding makes decode∘encode the
identity, which lets tests tell a policy's bugs apart from tokenizer artefacts.

:class:`ToyChatTokenizer` implements :class:`swarmgym.policies.openai_http.ChatTokenizer` on top of it, the
way a real incremental tokenizer does (earlier sampled ids are never re-tokenised).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "PAD",
    "BOS",
    "EOS",
    "IM_START",
    "IM_END",
    "VOCAB_SIZE",
    "encode",
    "decode",
    "token_str",
    "render_assistant",
    "render_chat",
    "parse_assistant",
    "ToyChatTokenizer",
]

PAD, BOS, EOS = 0, 1, 2
_OFFSET = 3
IM_START, IM_END = 259, 260
VOCAB_SIZE = 261
_SPECIALS = {PAD: "<pad>", BOS: "<s>", EOS: "</s>", IM_START: "<|im_start|>", IM_END: "<|im_end|>"}
_SPECIAL_IDS = {v: k for k, v in _SPECIALS.items()}
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in _SPECIALS.values()) + ")")
# Token strings as a byte-level BPE shows them; undecodable single bytes as "<0xNN>".
_TOKEN_STR = [_SPECIALS.get(i) or "" for i in range(VOCAB_SIZE)]
for _b in range(256):
    _TOKEN_STR[_b + _OFFSET] = chr(_b) if _b < 128 else f"<0x{_b:02X}>"


def encode(text: str) -> list[int]:
    """Token ids of ``text``; special-token strings in the text become their special ids."""
    if "<" in text and _SPECIAL_RE.search(text):
        ids: list[int] = []
        for piece in _SPECIAL_RE.split(text):
            if piece in _SPECIAL_IDS:
                ids.append(_SPECIAL_IDS[piece])
            elif piece:
                ids.extend([b + _OFFSET for b in piece.encode()])
        return ids
    return [b + _OFFSET for b in text.encode()]


def decode(ids: Iterable[int], *, skip_special: bool = False) -> str:
    """Text of ``ids`` (invalid UTF-8 replaced); specials rendered unless ``skip_special``."""
    out: list[str] = []
    buf = bytearray()
    for i in ids:
        if _OFFSET <= i < IM_START:
            buf.append(i - _OFFSET)
            continue
        if buf:
            out.append(buf.decode(errors="replace"))
            buf.clear()
        if not skip_special:
            out.append(_SPECIALS.get(i, ""))
    if buf:
        out.append(buf.decode(errors="replace"))
    return "".join(out)


def token_str(i: int) -> str:
    """The display string of one token id (what servers report as ``token`` in logprobs)."""
    return _TOKEN_STR[i] if 0 <= i < VOCAB_SIZE else ""


def _tool_call_text(name: str, arguments: Any) -> str:
    # Raw (possibly malformed) argument strings are spliced in verbatim, as a model would have sampled them.
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return '<tool_call>\n{"name": ' + json.dumps(name) + ', "arguments": ' + (args or "{}") + "}\n</tool_call>"


def render_assistant(content: str | None, tool_calls: Sequence[dict[str, Any]] = ()) -> str:
    """The text a model generates for an assistant turn (without the end-of-turn token).

    Args:
        content: the message text.
        tool_calls: OpenAI-shaped calls (``{"function": {"name", "arguments"}}``) or flat
            ``{"name", "arguments"}`` dicts; ``arguments`` is a dict or the raw string.
    """
    parts = [content] if content else []
    for tc in tool_calls:
        fn = tc.get("function", tc)
        parts.append(_tool_call_text(fn.get("name", ""), fn.get("arguments", "")))
    return "\n".join(parts)


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict))


def _render_message(m: dict[str, Any]) -> str:
    role = m.get("role", "user")
    if role == "assistant":
        body = render_assistant(_content_text(m.get("content")), m.get("tool_calls") or ())
    else:
        body = _content_text(m.get("content"))
    return f"<|im_start|>{role}\n{body}<|im_end|>\n"


def _tools_block(tools: Sequence[dict[str, Any]]) -> str:
    return "# Tools\n" + "\n".join(json.dumps(t.get("function", t), ensure_ascii=False) for t in tools)


def render_chat(
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None = None,
    *,
    add_generation_prompt: bool = True,
) -> str:
    """The toy chat template applied to OpenAI-format message dicts (and tool dicts), as text."""
    msgs = list(messages)
    out: list[str] = []
    if tools:
        system = ""
        if msgs and msgs[0].get("role") == "system":
            system = _content_text(msgs.pop(0).get("content")) + "\n\n"
        out.append(f"<|im_start|>system\n{system}{_tools_block(tools)}<|im_end|>\n")
    out.extend(_render_message(m) for m in msgs)
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n")
    return "".join(out)


_CALL_RE = re.compile(r"<tool_call>\n(.*?)\n</tool_call>", re.S)
_NAME_RE = re.compile(r'"name":\s*"((?:[^"\\]|\\.)*)"')
_ARGS_RE = re.compile(r'"arguments": ?(.*)\Z', re.S)


def parse_assistant(text: str) -> tuple[str | None, list[tuple[str, dict[str, Any] | str]]]:
    """Split generated assistant text into (content, [(tool name, arguments)]).

    Arguments that are not a JSON object come back as the raw string (a malformed call is data, not an
    error). Content is None when the turn only calls tools.
    """
    calls: list[tuple[str, dict[str, Any] | str]] = []
    for block in _CALL_RE.findall(text):
        try:
            obj = json.loads(block)
            if not isinstance(obj, dict):
                raise ValueError
            args = obj.get("arguments", {})
            calls.append((str(obj.get("name", "")), args if isinstance(args, dict) else json.dumps(args)))
        except ValueError:
            name = _NAME_RE.search(block)
            m = _ARGS_RE.search(block)
            raw = m.group(1) if m else block
            # The template closes the wrapper object right after the arguments: that last brace is not
            # part of them (a model that never wrote it leaves nothing to strip).
            if raw.endswith("}"):
                raw = raw[:-1]
            calls.append((name.group(1) if name else "", raw))
    idx = text.find("<tool_call>")
    content = (text[:idx].rstrip("\n") if idx >= 0 else text) or None
    if content is None and not calls:
        content = ""
    return content, calls


class ToyChatTokenizer:
    """A token-exact conversation tokenizer for the toy vocabulary (a ``ChatTokenizer``).

    Turn 1 renders the whole conversation. Later turns extend the ids recorded for the previous turn (prompt
    + completion exactly as sampled) with ``"\\n"`` (the template's separator after the end-of-turn token)
    and the rendering of the new messages only, so earlier assistant output is never re-tokenised — the
    property the real ``training/`` tokenizer provides for real chat templates.
    """

    _KEY = "toy_chat_tokenizer"

    def prompt_ids(self, messages: Sequence[Any], tools: Sequence[Any], state: dict[str, Any]) -> list[int]:
        """Prompt ids for the next assistant turn."""
        dicts = [m.to_openai() if hasattr(m, "to_openai") else m for m in messages]
        tool_dicts = [t.to_openai() if hasattr(t, "to_openai") else t for t in tools]
        prev = state.get(self._KEY)
        if prev is None:
            return encode(render_chat(dicts, tool_dicts))
        ids, n_seen = prev
        new = "".join(_render_message(m) for m in dicts[n_seen:])
        return [*ids, *encode("\n" + new + "<|im_start|>assistant\n")]

    def parse(self, completion_ids: Sequence[int], text: str) -> Any:
        """The assistant Message for sampled ids (tool calls parsed; malformed arguments kept raw)."""
        from ..wire import Message, ToolCall, new_id

        content, calls = parse_assistant(decode(completion_ids, skip_special=True))
        tool_calls = [ToolCall(id=new_id("call_"), name=n, arguments=a) for n, a in calls] or None
        return Message(role="assistant", content=content, tool_calls=tool_calls)

    def record(
        self,
        state: dict[str, Any],
        messages: Sequence[Any],
        prompt_ids: Sequence[int],
        completion_ids: Sequence[int],
    ) -> None:
        """Remember this turn's ids so the next prompt extends them (``messages`` = the prompt's messages)."""
        state[self._KEY] = ([*prompt_ids, *completion_ids], len(messages) + 1)
