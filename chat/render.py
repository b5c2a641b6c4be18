"""Render swarmgym messages with a Hugging Face tokenizer's chat template.

:class:`ChatRenderer` is the one place that turns :class:`~swarmgym.wire.Message` objects into the dicts chat
templates expect and renders them to text or ids. It compiles the template once and renders it directly (the
same Jinja environment ``apply_chat_template`` uses, minus its per-call deep copies), because token-in-token-out
renders twice per turn and ``apply_chat_template`` costs about 1.5× as much here; ``fast=False`` goes through
``apply_chat_template`` itself and a test checks both agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError
from ..wire import Message, ToolSpec, text_of

__all__ = ["ChatRenderer", "message_to_template", "tools_to_template"]


def message_to_template(m: Message) -> dict[str, Any]:
    """``m`` as a chat-template message dict (no None values; tool-call arguments as a dict when parsed).

    Hugging Face templates expect ``tool_calls[i].function.arguments`` as a mapping (they ``tojson`` it);
    malformed arguments stay the raw string the model produced.
    """
    d: dict[str, Any] = {"role": m.role}
    if m.content is not None:
        d["content"] = text_of(m.content)
    elif m.role != "assistant":
        d["content"] = ""
    if m.tool_calls:
        d["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.tool_call_id is not None:
        d["tool_call_id"] = m.tool_call_id
    if m.name is not None:
        d["name"] = m.name
    if m.reasoning_content is not None:
        d["reasoning_content"] = m.reasoning_content
    return d


def tools_to_template(tools: Sequence[ToolSpec] | Sequence[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Tool specs in the OpenAI ``tools`` shape templates expect (None when there are none)."""
    if not tools:
        return None
    return [t.to_openai() if isinstance(t, ToolSpec) else dict(t) for t in tools]


class ChatRenderer:
    """Renders conversations with ``tokenizer``'s chat template and encodes text without added specials.

    Args:
        tokenizer: a Hugging Face tokenizer with a ``chat_template``.
        chat_template: override the tokenizer's template.
        fast: render with the compiled template directly (see module docstring).
        chat_template_kwargs: extra template variables (e.g. ``{"enable_thinking": False}``), passed on every
            render like ``apply_chat_template(**kwargs)``.

    Raises:
        ConfigError: the tokenizer has no chat template.
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        chat_template: str | None = None,
        fast: bool = True,
        chat_template_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        reserved = {"messages", "tools", "documents", "add_generation_prompt"} & set(self.chat_template_kwargs)
        if reserved:
            raise ConfigError(f"chat_template_kwargs may not set {sorted(reserved)}: swarmgym passes those itself")
        self.chat_template = chat_template or getattr(tokenizer, "chat_template", None)
        if not self.chat_template:
            raise ConfigError(
                "the tokenizer has no chat_template; set tokenizer.chat_template or pass chat_template=..."
            )
        self._compiled: Any = None
        if fast:
            try:  # private helper of transformers: fall back to the public path if it moves
                from transformers.utils.chat_template_utils import _compile_jinja_template

                self._compiled = _compile_jinja_template(self.chat_template)
            except (ImportError, AttributeError):
                self._compiled = None
        self._specials = dict(getattr(tokenizer, "special_tokens_map", {}) or {})
        backend = getattr(tokenizer, "backend_tokenizer", None)
        # The Rust tokenizer's encode skips the Python wrapper (a third faster on short deltas).
        self._encode_backend = backend.encode if backend is not None else None
        self._anchor = self._find_anchor()

    def render(
        self, messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None, *, add_generation_prompt: bool
    ) -> str:
        """The template's text for ``messages`` (already template dicts)."""
        if self._compiled is not None:
            return str(
                self._compiled.render(
                    messages=list(messages),
                    tools=tools,
                    documents=None,
                    add_generation_prompt=add_generation_prompt,
                    **{**self._specials, **self.chat_template_kwargs},
                )
            )
        return str(
            self.tokenizer.apply_chat_template(
                list(messages),
                tools=tools,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                chat_template=self.chat_template,
                **self.chat_template_kwargs,
            )
        )

    def _encode(self, text: str) -> list[int]:
        if self._encode_backend is not None:
            return list(self._encode_backend(text, add_special_tokens=False).ids)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _find_anchor(self) -> tuple[str, int] | None:
        """A special token to encode continuations after, for tokenizers that prefix a space to every encode.

        SentencePiece tokenizers (Llama 2, Mistral v0.x) turn ``"a"`` into ``"▁a"`` at the start of an encode
        call, so a continuation encoded on its own would gain a space the full render does not have. After a
        special token they add none; encoding ``anchor + text`` and dropping the anchor's ids gives the ids the
        text has inside a longer sequence. Byte-level BPE tokenizers need no anchor (None).
        """
        probe = "a"
        ids = self._encode(probe)
        if self.decode(ids + ids) == probe + probe:
            return None
        for tok in [getattr(self.tokenizer, "eos_token", None), *getattr(self.tokenizer, "all_special_tokens", [])]:
            if tok:
                n = len(self._encode(tok))
                if n and self.decode(self._encode(tok + probe)[n:] * 2) == probe + probe:
                    return tok, n
        return None

    def encode(self, text: str, *, continuation: bool = False) -> list[int]:
        """Ids of ``text`` exactly as the template's tokenisation would give them (no BOS/EOS added).

        Args:
            text: the text to encode.
            continuation: ``text`` follows other ids (a delta appended to a prompt): encode it as it is tokenised
                inside a longer sequence (no SentencePiece dummy-prefix space).
        """
        if not text:
            return []
        if continuation and self._anchor is not None:
            anchor, n = self._anchor
            return self._encode(anchor + text)[n:]
        return self._encode(text)

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str:
        """Text of ``ids`` (special tokens kept unless asked)."""
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens))
