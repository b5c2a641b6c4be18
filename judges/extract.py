"""Answer extraction: pull the final answer out of a model's response text.

Four formats, chosen per task (``task.metadata["answer_format"]``, written by the answer-format
diversifier) or per judge:

- ``"boxed"``: the content of the last ``\\boxed{…}`` (or ``\\fbox{…}``), nested braces balanced;
- ``"tags"``: the content of the last ``<answer>…</answer>`` (tag name configurable);
- ``"last_line"``: the last non-empty line, with a leading ``Answer:``/``Final answer:`` label removed;
- ``"json"``: a field of the last JSON object in the text (fenced or bare).

Every extractor returns ``None`` when the format is absent, never raises on any input (None, non-strings,
megabytes of text, unbalanced braces), and caps the work it does on huge inputs.

Example:
    >>> extract_answer(r"so the result is \\boxed{\\frac{1}{2}}.", "boxed")
    '\\\\frac{1}{2}'
    >>> extract_answer("<answer> 42 </answer>", "tags")
    '42'
    >>> extract_answer('{"answer": 7}', "json")
    '7'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

__all__ = [
    "ANSWER_FORMAT_KEY",
    "FORMATS",
    "AnswerFormat",
    "answer_format_of",
    "extract_answer",
    "extract_boxed",
    "extract_code",
    "extract_json_field",
    "extract_last_line",
    "extract_tag",
    "format_instruction",
    "render_answer",
]

AnswerFormat = Literal["boxed", "tags", "last_line", "json"]
FORMATS: tuple[str, ...] = ("boxed", "tags", "last_line", "json")
ANSWER_FORMAT_KEY = "answer_format"
"""``task.metadata`` key holding ``{"kind": "boxed"|"tags"|"last_line"|"json", "tag": …, "field": …}``."""

# Judges look at the tail of a response: answers come last, and regexes over megabytes cost real time.
MAX_SCAN_CHARS = 200_000


def _as_text(text: Any) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        return None
    return text[-MAX_SCAN_CHARS:]


def extract_boxed(text: Any) -> str | None:
    """Content of the last ``\\boxed{…}``/``\\fbox{…}`` with balanced nested braces, stripped.

    ``\\boxed 5`` (no braces, a single token) is accepted too. Returns None when absent or unbalanced.
    """
    s = _as_text(text)
    if not s:
        return None
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\s*(\{)?", s)]
    for m in reversed(starts):
        if m.group(1) is None:  # \boxed 5
            tok = re.match(r"\s*([^\s$\\]+)", s[m.end():])
            if tok:
                return tok.group(1).strip()
            continue
        depth = 1
        i = m.end()
        while i < len(s):
            c = s[i]
            if c == "\\" and i + 1 < len(s) and s[i + 1] in "{}":
                i += 2  # an escaped brace is content, not structure
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return s[m.end():i].strip()
            i += 1
    return None


def extract_tag(text: Any, tag: str = "answer") -> str | None:
    """Content of the last ``<tag>…</tag>`` (case-insensitive), stripped; None when absent."""
    s = _as_text(text)
    if not s or not isinstance(tag, str) or not tag:
        return None
    t = re.escape(tag)
    found = re.findall(rf"<{t}(?:\s[^>]*)?>(.*?)</{t}\s*>", s, flags=re.IGNORECASE | re.DOTALL)
    if not found:
        return None
    return found[-1].strip()


_LABEL = re.compile(r"^\s*(?:\*\*)?(?:the\s+)?(?:final\s+)?answer(?:\s+is)?\s*(?:\*\*)?\s*[:=\-]?\s*(?:\*\*)?\s*", re.IGNORECASE)


def extract_last_line(text: Any) -> str | None:
    """The last non-empty line, with an ``Answer:``-style label and surrounding markup removed."""
    s = _as_text(text)
    if not s:
        return None
    for line in reversed(s.splitlines()):
        line = line.strip()
        if not line or line.strip("`") == "":
            continue
        line = _LABEL.sub("", line, count=1).strip().strip("*").strip()
        return line or None
    return None


def _json_candidates(s: str) -> list[Any]:
    """JSON values in ``s``: fenced blocks first (last wins), then bare objects scanned from the end."""
    out: list[Any] = []
    for block in re.findall(r"```(?:json)?\s*\n?(.*?)```", s, flags=re.DOTALL | re.IGNORECASE):
        try:
            out.append(json.loads(block))
        except ValueError:
            pass
    if out:
        return out
    dec = json.JSONDecoder()
    # Top-level values left to right (skipping what a parsed value covers), so the outermost object wins
    # over its nested ones. Only the last few thousand brackets are tried: pathological inputs stay cheap.
    positions = [m.start() for m in re.finditer(r"[\{\[]", s)][-2000:]
    covered = -1
    for pos in positions:
        if pos < covered:
            continue
        try:
            val, end = dec.raw_decode(s, pos)
        except (ValueError, RecursionError):
            continue
        if isinstance(val, (dict, list)):
            out.append(val)
            covered = end
    return out


def extract_json(text: Any) -> Any:
    """The last JSON value (object or array) in the text, or None."""
    s = _as_text(text)
    if not s:
        return None
    cands = _json_candidates(s)
    return cands[-1] if cands else None


def extract_json_field(text: Any, field: str = "answer") -> str | None:
    """A field of the last JSON object in the text, as a string (non-strings JSON-encoded); None if absent.

    ``field`` may be a dotted path (``"result.value"``).
    """
    s = _as_text(text)
    if not s or not isinstance(field, str):
        return None
    for val in reversed(_json_candidates(s)):
        cur: Any = val
        ok = True
        for part in field.split("."):
            if isinstance(cur, Mapping) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok:
            if cur is None:
                return None
            return cur if isinstance(cur, str) else json.dumps(cur, ensure_ascii=False)
    return None


def extract_code(text: Any, language: str = "python") -> str | None:
    """The last fenced code block (preferring ``language``-tagged ones); the whole text if there is none."""
    if not isinstance(text, str) or not text.strip():
        return None
    blocks = re.findall(r"```([\w+-]*)[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    if not blocks:
        # an unterminated block (the model ran out of tokens mid-fence): take what is there
        m = re.search(r"```[\w+-]*[ \t]*\n(.*)$", text, flags=re.DOTALL)
        return m.group(1) if m else text
    tagged = [b for lang, b in blocks if lang.lower() in (language, language[:2])]
    return (tagged or [b for _, b in blocks])[-1]


def answer_format_of(metadata: Any, default: str | Mapping[str, Any] = "boxed") -> dict[str, str]:
    """The answer format recorded in ``task.metadata`` (or ``default``) as ``{"kind", "tag", "field"}``."""
    raw: Any = default
    if isinstance(metadata, Mapping) and metadata.get(ANSWER_FORMAT_KEY) is not None:
        raw = metadata[ANSWER_FORMAT_KEY]
    if isinstance(raw, str):
        raw = {"kind": raw}
    if not isinstance(raw, Mapping) or raw.get("kind") not in FORMATS:
        raise ValueError(
            f"answer format must be one of {FORMATS} (or a dict with 'kind'), got {raw!r}"
        )
    return {"kind": str(raw["kind"]), "tag": str(raw.get("tag", "answer")), "field": str(raw.get("field", "answer"))}


def extract_answer(
    text: Any,
    fmt: str | Mapping[str, Any] = "boxed",
    *,
    tag: str | None = None,
    field: str | None = None,
    fallback: bool = False,
) -> str | None:
    """Extract the final answer from ``text`` in format ``fmt``.

    Args:
        text: the response (anything; non-strings give None).
        fmt: ``"boxed"``, ``"tags"``, ``"last_line"``, ``"json"``, or a format dict as stored in
            ``task.metadata["answer_format"]``.
        tag: tag name for ``"tags"`` (default ``"answer"``).
        field: field (dotted path) for ``"json"`` (default ``"answer"``).
        fallback: when the format is absent, fall back to the last line (lenient judges).

    Returns:
        The answer string, or None when the response has no answer in that format.

    Raises:
        ValueError: ``fmt`` is not a known format (a programming error, not bad model output).
    """
    spec = answer_format_of(None, fmt)
    tag = tag if tag is not None else spec["tag"]
    field = field if field is not None else spec["field"]
    kind = spec["kind"]
    if kind == "boxed":
        out = extract_boxed(text)
    elif kind == "tags":
        out = extract_tag(text, tag)
    elif kind == "json":
        out = extract_json_field(text, field)
    else:
        out = extract_last_line(text)
    if out is None and fallback and kind != "last_line":
        out = extract_last_line(text)
    return out


def format_instruction(fmt: str | Mapping[str, Any]) -> str:
    """The sentence that asks a model to answer in ``fmt`` (used by the answer-format diversifier)."""
    spec = answer_format_of(None, fmt)
    kind = spec["kind"]
    if kind == "boxed":
        return "Put your final answer within \\boxed{}."
    if kind == "tags":
        return f"Put your final answer between <{spec['tag']}> and </{spec['tag']}> tags."
    if kind == "json":
        return f'End your response with a JSON object of the form {{"{spec["field"]}": <your final answer>}}.'
    return "Write your final answer alone on the last line."


def render_answer(answer: Any, fmt: str | Mapping[str, Any]) -> str:
    """``answer`` written in format ``fmt`` (oracles and few-shot examples use it)."""
    spec = answer_format_of(None, fmt)
    kind = spec["kind"]
    a = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    if kind == "boxed":
        return f"\\boxed{{{a}}}"
    if kind == "tags":
        return f"<{spec['tag']}>{a}</{spec['tag']}>"
    if kind == "json":
        return json.dumps({spec["field"]: answer}, ensure_ascii=False)
    return a
