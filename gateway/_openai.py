"""The OpenAI chat-completions wire shapes the gateway and the fake server both speak: streamed chunks and
error bodies (one place, so the two cannot drift apart)."""

from __future__ import annotations

from typing import Any

from ..policies._http import json_dumps

__all__ = ["SSE_HEADERS", "chat_chunks", "sse_body", "text_sse_body", "error_body"]

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def chat_chunks(out: dict[str, Any], req: dict[str, Any]) -> list[dict[str, Any]]:
    """A whole chat completion ``out`` as the OpenAI API streams it (``chat.completion.chunk`` objects).

    Per choice: a role delta, content split into small deltas (and reasoning deltas), each tool call as a
    first delta with ``index``/``id``/``type``/``name`` and empty arguments followed by argument fragments,
    then a delta-less chunk carrying ``finish_reason``. With ``stream_options.include_usage`` every chunk has
    ``usage: null`` and a last chunk with no choices carries the usage. Token ids / logprobs ride on the
    chunk that carries the text they belong to only as whole lists on the finish chunk (vLLM sends them per
    chunk; a client concatenating them gets the same list).
    """
    include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
    head = {"id": out["id"], "object": "chat.completion.chunk", "created": out["created"], "model": out["model"]}
    chunks: list[dict[str, Any]] = []

    def emit(index: int, delta: dict[str, Any], finish: Any = None, **extra: Any) -> None:
        c = {**head, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish, **extra}]}
        if include_usage:
            c["usage"] = None
        chunks.append(c)

    if out.get("prompt_token_ids") is not None:
        first_extra = {"prompt_token_ids": out["prompt_token_ids"]}
    else:
        first_extra = {}
    for ch in out["choices"]:
        i, msg = ch["index"], ch["message"]
        emit(i, {"role": "assistant", "content": ""})
        if first_extra:
            chunks[-1].update(first_extra)
        if msg.get("reasoning_content"):
            for piece in _pieces(msg["reasoning_content"]):
                emit(i, {"reasoning_content": piece})
        if msg.get("content"):
            for piece in _pieces(msg["content"]):
                emit(i, {"content": piece})
        for k, tc in enumerate(msg.get("tool_calls") or ()):
            fn = tc["function"]
            emit(
                i,
                {
                    "tool_calls": [
                        {
                            "index": k,
                            "id": tc["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                },
            )
            for piece in _pieces(fn["arguments"]):
                emit(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        extra: dict[str, Any] = {}
        if ch.get("token_ids") is not None:
            extra["token_ids"] = ch["token_ids"]
        emit(i, {}, ch["finish_reason"], stop_reason=ch.get("stop_reason"), **extra)
        if ch.get("logprobs"):
            chunks[-1]["choices"][0]["logprobs"] = ch["logprobs"]
    if include_usage:
        chunks.append({**head, "choices": [], "usage": out["usage"]})
    return chunks


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[k : k + size] for k in range(0, len(text), size)] or [""]


def sse_body(out: dict[str, Any], req: dict[str, Any]) -> bytes:
    """The whole SSE stream of the chat completion ``out`` (chunks, then ``data: [DONE]``)."""
    return b"".join(b"data: " + json_dumps(c) + b"\n\n" for c in chat_chunks(out, req)) + b"data: [DONE]\n\n"


def text_sse_body(out: dict[str, Any], req: dict[str, Any]) -> bytes:
    """The SSE stream of the text completion ``out`` (``text_completion`` chunks, then ``data: [DONE]``)."""
    head = {k: out[k] for k in ("id", "object", "created", "model")}
    chunks = []
    for ch in out["choices"]:
        pieces = _pieces(ch["text"])
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            chunks.append({**head, "choices": [{"index": ch["index"], "text": piece, "logprobs": None,
                                                "finish_reason": ch["finish_reason"] if last else None}]})
    if (req.get("stream_options") or {}).get("include_usage"):
        chunks.append({**head, "choices": [], "usage": out["usage"]})
    return b"".join(b"data: " + json_dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def error_body(message: str, type_: str, param: str | None = None, code: Any = None) -> bytes:
    """An OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    return json_dumps({"error": {"message": message, "type": type_, "param": param, "code": code}})
