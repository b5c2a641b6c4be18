"""Compose a response that satisfies a set of compatible constraints (the IFChat oracle).

The composer builds text from plain filler sentences plus the pieces each constraint asks for (keywords,
capital words, placeholders, highlights, a title, sections, a postscript …), applies case and wrappers
(quotes, JSON, two responses) and then *searches* over the body length until every constraint passes its
strict check: length constraints interact with everything else, and checking beats predicting.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

from .constraints import CAPS_POOL, TITLE_WORDS, check

__all__ = ["FILLER_WORDS", "compose_response"]

_ADJ = ("quiet", "bright", "gentle", "simple", "steady", "careful", "honest", "curious", "patient", "warm")
_NOUN = ("river", "garden", "village", "morning", "journey", "question", "window", "story", "neighbor", "idea")
_VERB = ("shapes", "follows", "reaches", "changes", "supports", "explains", "touches", "guides", "crosses", "helps")
_TAIL = ("every day", "over time", "in small ways", "with care", "for everyone", "at dawn", "once more", "again")
FILLER_WORDS: frozenset[str] = frozenset(
    w for group in (_ADJ, _NOUN, _VERB, _TAIL, ("the", "this", "topic", "matters", "thanks", "for", "reading"))
    for phrase in group for w in phrase.split()
)

MAX_SENTENCES = 160


def _sentence(rng: random.Random, extras: Sequence[str], pad: int = 0) -> str:
    if pad < 0:  # short sentences, for "many sentences in few words"
        s = " ".join([rng.choice(_NOUN), rng.choice(_VERB), *extras])
        return s[0].upper() + s[1:] + "."
    more = [w for _ in range(pad // 4) for w in ("and", rng.choice(_ADJ), rng.choice(_NOUN), rng.choice(_VERB))]
    words = ["the", rng.choice(_ADJ), rng.choice(_NOUN), rng.choice(_VERB), "the", rng.choice(_ADJ),
             rng.choice(_NOUN), *more, *extras, rng.choice(_TAIL)]
    s = " ".join(words)
    return s[0].upper() + s[1:] + "."


def _groups(items: list[str], n: int) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n)]
    for i, it in enumerate(items):
        out[i % n].append(it)
    return out


def _extras(p: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Word chunks the constraints need somewhere in the text."""
    ex: list[str] = []
    if "keywords:include" in p:
        ex += list(p["keywords:include"]["keywords"])
    if "keywords:frequency" in p and p["keywords:frequency"]["relation"] == "at least":
        ex += [p["keywords:frequency"]["word"]] * int(p["keywords:frequency"]["n"])
    if "keywords:letter_frequency" in p:
        ex.append(str(p["keywords:letter_frequency"]["letter"]) * int(p["keywords:letter_frequency"]["n"]))
    if "case:capital_words" in p and p["case:capital_words"]["relation"] == "at least":
        n = int(p["case:capital_words"]["n"])
        ex += [CAPS_POOL[i % len(CAPS_POOL)] for i in range(n)]
    if "content:placeholders" in p:
        ex += [f"[detail {i + 1}]" for i in range(int(p["content:placeholders"]["n"]))]
    if "format:highlights" in p:
        ex += [f"*{_ADJ[i % len(_ADJ)]} point*" for i in range(int(p["format:highlights"]["n"]))]
    return ex


def _build(p: Mapping[str, Mapping[str, Any]], n_sent: int, rng: random.Random, pad: int = 0) -> str:
    ex = _extras(p)
    nth = p.get("length:nth_paragraph_first_word")
    n_struct = int(p.get("format:sections", p.get("length:paragraphs", nth or {"n": 1}))["n"])
    n_sent = max(n_sent, n_struct)
    chunks = _groups(ex, n_sent)
    sents = [_sentence(rng, c, pad) for c in chunks]
    bullets = []
    if "format:bullets" in p:
        bullets = [f"* {rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_VERB)} {rng.choice(_TAIL)}"
                   for _ in range(int(p["format:bullets"]["n"]))]
    groups = [" ".join(g) for g in _groups(sents, n_struct)]
    if bullets:
        groups[0] += "\n" + "\n".join(bullets) + "\n"
    if "format:sections" in p:
        sp = p["format:sections"]["splitter"]
        text = "\n\n".join(f"{sp} {i + 1}\n{g}" for i, g in enumerate(groups))
    elif "length:paragraphs" in p:
        text = "\n\n***\n\n".join(g.strip() for g in groups)
    elif nth is not None:
        k = int(nth["nth"]) - 1
        groups[k] = f"{str(nth['first_word']).title()} {groups[k].strip()}"
        text = "\n\n".join(g.strip() for g in groups)
    else:
        text = groups[0]
    if "format:constrained_response" in p:
        text = f"{text.rstrip()} My answer is yes."
    if "format:title" in p:
        text = f"<<{rng.choice(_ADJ).title()} {rng.choice(TITLE_WORDS)}>>\n\n{text}"
    if "startend:start" in p:
        text = f"{p['startend:start']['phrase']} {text}"
    if "content:postscript" in p:
        text = f"{text.rstrip()}\n\n{p['content:postscript']['marker']} thanks for reading."
    if "startend:end" in p:
        text = f"{text.rstrip()} {p['startend:end']['phrase']}"
    if "combination:repeat_prompt" in p:
        text = f"{p['combination:repeat_prompt']['prompt']}\n\n{text}"
    if "case:lowercase" in p:
        text = text.lower()
    if "case:uppercase" in p:
        text = text.upper()
    if "startend:quotation" in p:
        text = f'"{text}"'
    if "format:json" in p:
        key = "RESPONSE" if "case:uppercase" in p else "response"
        text = json.dumps({key: text}, ensure_ascii=False)
    return text


def compose_response(constraints: Sequence[Mapping[str, Any]], seed: int | str = 0) -> str:
    """A response satisfying every constraint (strict mode), deterministic for ``seed``.

    Args:
        constraints: constraint dicts as stored in ``task.metadata["constraints"]``; kinds must be pairwise
            compatible.
        seed: seeds the filler text.

    Returns:
        The response text. If no body length satisfies all constraints (an incompatible set), the attempt
        satisfying the most constraints is returned.
    """
    p = {c["kind"]: c.get("params") or {} for c in constraints}
    two = "combination:two_responses" in p
    best, best_ok = "", -1
    # Longer sentences (pad) only when short ones cannot work: "at least 200 words in less than 10 sentences".
    for pad in (0, 12, 40, -1):
        for n_sent in range(1, MAX_SENTENCES + 1):
            rng = random.Random(f"{seed}:{n_sent}:{pad}")
            text = _build(p, n_sent, rng, pad)
            if two:
                text = f"{text}\n******\n{_build(p, n_sent, random.Random(f'{seed}:{n_sent}:{pad}:b'), pad)}"
            ok = sum(check(c, text) for c in constraints)
            if ok == len(constraints):
                return text
            if ok > best_ok:
                best, best_ok = text, ok
    return best
