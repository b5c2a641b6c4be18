"""Verifiable instruction constraints: a registry of kinds, each with a seeded instruction and a checker.

A constraint is stored in ``task.metadata["constraints"]`` as a plain dict::

    {"kind": "length:words", "params": {"relation": "at least", "n": 120}, "text": "Answer with at least 120 words."}

so a task round-trips through JSON and the judge needs nothing but the task. Each kind declares the kinds it
conflicts with (``format:json`` cannot also have ``***``-separated paragraphs); :func:`compatible` is
symmetric.

Checkers are deterministic and total: any input (None, bytes, megabytes, unicode) gives True/False.
**Strict** mode checks the response as is; **loose** mode (as in IFEval) also accepts it when the check
passes after dropping the first line, the last line, both, and/or markdown ``*`` emphasis — so a polite
"Sure, here it is:" or a bold wrapper does not fail an otherwise compliant answer.

Each checker follows the semantics of Google's IFEval checkers (the benchmark people evaluate on): words are
runs of ``\\w`` (``it's`` is two), keywords match as case-insensitive substrings, sections are "at least n",
one ``**bold**`` span is one highlight, "capital words" are tokens with ``str.isupper()`` (so "I" counts), and
so on. The few deliberate differences are marked "differs" below and listed in the README with the measured
agreement per kind; a test runs IFEval's own checkers on satisfying and violating responses for every kind.
An unknown relation (anything but "at least" / "less than") is a ValueError, never a silent default.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = [
    "CAPS_POOL",
    "DEFAULT_KINDS",
    "LANGUAGES",
    "OPTIONAL_KINDS",
    "detect_language",
    "KEYWORD_POOL",
    "KINDS",
    "REGISTRY",
    "ConstraintKind",
    "check",
    "ANSWER_FORMAT_CONFLICTS",
    "answer_text_conflicts",
    "check_all",
    "compatible",
    "compatible_with_answer",
    "count_sentences",
    "count_words",
    "sample_constraint",
]

MAX_CHARS = 200_000  # responses are cut here before checking: bounded cost, and no real answer is longer

# Vocabulary pools. They are disjoint from each other and from the words the response composer and the
# IFChat prompts use, so "include X" can never clash with "never say Y" or with the filler text.
KEYWORD_POOL: tuple[str, ...] = (
    "lantern", "harbor", "velvet", "compass", "meadow", "granite", "orchard", "saffron", "glacier", "violin",
    "pepper", "canyon", "marble", "falcon", "willow", "ember", "quartz", "thistle", "cobalt", "juniper",
    "parsley", "tundra", "saddle", "beacon", "walnut", "lagoon", "copper", "pebble", "harvest", "zephyr",
)
CAPS_POOL: tuple[str, ...] = ("NOTE", "KEY", "ALWAYS", "NEVER", "TRULY", "REALLY", "VITAL", "GREAT")
START_PHRASES: tuple[str, ...] = (
    "My answer follows.", "Here is my reply.", "Let me explain.", "Good question.", "Thanks for asking.",
)
END_PHRASES: tuple[str, ...] = (
    "Is there anything else I can help with?", "Let me know if you have additional questions.",
    "That is all for now.", "Hope this helps.",
)
TITLE_WORDS: tuple[str, ...] = ("Notes", "Thoughts", "Reflections", "Musings", "Sketches", "Essay", "Story", "Guide")
SECTION_SPLITTERS: tuple[str, ...] = ("Section", "Part")
LETTERS = "bcdfghjkmpqvwxyz"

_WORD = re.compile(r"\w+")  # IFEval's word: nltk RegexpTokenizer(r"\w+"), so "it's" is two words
_SENT = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
_CLITIC = re.compile(r"(?i)(n't|'s|'re|'ve|'ll|'d|'m)$")
_EDGE_PUNCT = "\"'()[]{}<>.,;:!?`"
RELATIONS = ("less than", "at least")


def _text(response: Any) -> str | None:
    if isinstance(response, bytes):
        return None
    return response[:MAX_CHARS] if isinstance(response, str) else None


def count_words(text: str) -> int:
    """Number of words as IFEval counts them: runs of ``\\w`` characters (``it's`` is two words)."""
    return len(_WORD.findall(text))


def count_sentences(text: str) -> int:
    """Number of sentences: pieces ending in ``.``/``!``/``?`` (closing quotes/brackets allowed after the mark)
    followed by whitespace, plus a trailing piece, each with a word.

    IFEval counts with NLTK's pre-trained English Punkt model; for text without abbreviations ("Dr.",
    "e.g.") and initials the two agree (see the README's IFEval agreement table).
    """
    pieces = _SENT.split(text)
    return sum(1 for p in pieces if _WORD.search(p))


def word_tokens(text: str) -> list[str]:
    """Word tokens close to NLTK's Treebank ``word_tokenize`` (which IFEval uses for capital words):
    whitespace-separated chunks, edge punctuation split off, clitics split (``DON'T`` → ``DO``, ``N'T``)."""
    out: list[str] = []
    for chunk in text.split():
        core = chunk.strip(_EDGE_PUNCT)
        if not core:
            continue
        m = _CLITIC.search(core)
        if m and m.start() > 0:
            out += [core[: m.start()], m.group(1)]
        else:
            out.append(core)
    return out


def _relation(value: int, relation: str, n: int) -> bool:
    if relation == "at least":
        return value >= n
    if relation == "less than":
        return value < n
    raise ValueError(f"unknown relation {relation!r}; expected one of {RELATIONS}")


def _kw_count(text: str, word: str) -> int:
    """Occurrences of ``word`` as a case-insensitive substring (IFEval: "harbors" contains "harbor")."""
    return len(re.findall(re.escape(word), text, flags=re.IGNORECASE))


def _kw_whole(text: str, word: str) -> bool:
    """``word`` as a whole word (``\\b`` boundaries, case-insensitive): IFEval's forbidden-word test."""
    return re.search(r"\b" + re.escape(word) + r"\b", text, flags=re.IGNORECASE) is not None


# ---------------------------------------------------------------------------------------------- checkers
# Each takes (text, params) with text already a str; params come from the kind's sampler (or a user).
# Semantics follow Google's IFEval checkers (instructions.py); deliberate differences are marked "differs".


def _c_words(t: str, p: Mapping[str, Any]) -> bool:
    return _relation(count_words(t), p["relation"], int(p["n"]))


def _c_sentences(t: str, p: Mapping[str, Any]) -> bool:
    return _relation(count_sentences(t), p["relation"], int(p["n"]))


def _c_paragraphs(t: str, p: Mapping[str, Any]) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", t)
    n = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if i in (0, len(parts) - 1):
                n -= 1  # a leading/trailing divider is tolerated
            else:
                return False  # an empty paragraph between dividers is a formatting error
    return n == int(p["n"])


_BULLET_STAR = re.compile(r"^\s*\*[^\*].*$", re.MULTILINE)
_BULLET_DASH = re.compile(r"^\s*-.*$", re.MULTILINE)


def _c_bullets(t: str, p: Mapping[str, Any]) -> bool:
    return len(_BULLET_STAR.findall(t)) + len(_BULLET_DASH.findall(t)) == int(p["n"])


def _c_include(t: str, p: Mapping[str, Any]) -> bool:
    return all(_kw_count(t, w) > 0 for w in p["keywords"])


def _c_forbidden(t: str, p: Mapping[str, Any]) -> bool:
    return not any(_kw_whole(t, w) for w in p["words"])


def _c_frequency(t: str, p: Mapping[str, Any]) -> bool:
    return _relation(_kw_count(t, str(p["word"]).strip()), p["relation"], int(p["n"]))


def _c_letter(t: str, p: Mapping[str, Any]) -> bool:
    return _relation(t.lower().count(str(p["letter"]).strip().lower()), p["relation"], int(p["n"]))


def _c_start(t: str, p: Mapping[str, Any]) -> bool:
    return t.strip().lower().startswith(str(p["phrase"]).strip().lower())


def _c_end(t: str, p: Mapping[str, Any]) -> bool:
    # a closing quote does not hide the end phrase (IFEval strips '"' from both ends first)
    return t.strip().strip('"').lower().endswith(str(p["phrase"]).strip().lower())


def _c_json(t: str, p: Mapping[str, Any]) -> bool:
    s = t.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        s = s.removeprefix(fence)
    s = s.removesuffix("```").strip()
    try:
        json.loads(s)
    except ValueError:
        return False
    return True


def _c_lower(t: str, p: Mapping[str, Any]) -> bool:
    # differs: IFEval also asks langdetect for "en"; we check the letters only (see the README)
    return t.islower()


def _c_upper(t: str, p: Mapping[str, Any]) -> bool:
    # differs: IFEval also asks langdetect for "en", which often says otherwise for all-caps English
    return t.isupper()


def _c_capitals(t: str, p: Mapping[str, Any]) -> bool:
    return _relation(sum(1 for w in word_tokens(t) if w.isupper()), p["relation"], int(p["n"]))


def _c_no_comma(t: str, p: Mapping[str, Any]) -> bool:
    return "," not in t and "\uff0c" not in t  # differs: a full-width comma is a comma too


def _c_title(t: str, p: Mapping[str, Any]) -> bool:
    return any(m.lstrip("<").rstrip(">").strip() for m in re.findall(r"<<[^\n]+>>", t))


def _c_placeholders(t: str, p: Mapping[str, Any]) -> bool:
    return len(re.findall(r"\[.*?\]", t)) >= int(p["n"])  # as IFEval: "[]" is a placeholder too


def _c_postscript(t: str, p: Mapping[str, Any]) -> bool:
    marker = str(p["marker"])
    if marker == "P.P.S":
        pat = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pat = r"\s*p\.\s?s\..*$"
    else:
        pat = r"\s*" + re.escape(marker.lower()) + r".*$"
    # as IFEval: the marker anywhere (not only at a line start) starts the postscript
    return re.search(pat, t.lower(), flags=re.MULTILINE) is not None


def _c_sections(t: str, p: Mapping[str, Any]) -> bool:
    # at least n (a "Section 1" mentioned in prose only adds a split, it cannot break a correct answer)
    parts = re.split(r"\s?" + re.escape(str(p["splitter"]).strip()) + r"\s?\d+\s?", t)
    return len(parts) - 1 >= int(p["n"])


def _c_highlights(t: str, p: Mapping[str, Any]) -> bool:
    # IFEval's count: "**bold**" matches the double pattern once and the single pattern only as two empty
    # "**" pairs, so one bold span is one highlight
    n = sum(1 for h in re.findall(r"\*[^\n\*]*\*", t) if h.strip("*").strip())
    n += sum(1 for h in re.findall(r"\*\*[^\n\*]*\*\*", t) if h.removeprefix("**").removesuffix("**").strip())
    return n >= int(p["n"])


def _c_quotation(t: str, p: Mapping[str, Any]) -> bool:
    s = t.strip()
    return len(s) > 1 and s[0] == '"' and s[-1] == '"'


def _c_repeat(t: str, p: Mapping[str, Any]) -> bool:
    req = str(p["prompt"]).strip().lower()
    return bool(req) and t.strip().lower().startswith(req)


def _c_two(t: str, p: Mapping[str, Any]) -> bool:
    parts = t.split("******")
    valid = []
    for i, part in enumerate(parts):
        if part.strip():
            valid.append(part.strip())
        elif i not in (0, len(parts) - 1):
            return False  # an empty response between separators
    return len(valid) == 2 and valid[0] != valid[1]  # a trailing "******" is tolerated


def _c_nth_first_word(t: str, p: Mapping[str, Any]) -> bool:
    # IFEval's paragraphs here are "\n\n"-separated; empty ones do not count, but the nth is taken by
    # position in the split (as IFEval does), so a stray blank paragraph before it fails the check
    paras = t.split("\n\n")
    n = sum(1 for x in paras if x.strip())
    nth = int(p["nth"])
    if not 1 <= nth <= int(p["n"]):
        raise ValueError(f"nth must be between 1 and n={p['n']}, got {nth}")
    if nth > n:
        return False
    para = paras[nth - 1].strip()
    if not para:
        return False
    word = para.split()[0].strip().lstrip("'").lstrip('"')
    first = ""
    for ch in word:
        if ch in ".,?!'\"":
            break
        first += ch.lower()
    return n == int(p["n"]) and first == str(p["first_word"]).lower()


CONSTRAINED_OPTIONS: tuple[str, ...] = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

LANGUAGES: dict[str, str] = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese"}
"""Languages ``language:response_language`` samples (ISO 639-1 codes as langdetect reports them); the
composer has filler text for each."""
MAX_DETECT_CHARS = 20_000  # language detection reads this much (its cost grows with the text)


@functools.lru_cache(maxsize=1)
def _language_factory() -> Any:
    """A langdetect detector factory of our own, seeded (langdetect is random unless seeded; using our own
    factory leaves langdetect's global one alone)."""
    try:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
    except ImportError as e:
        raise ConfigError(
            "constraint kind 'language:response_language' needs langdetect: pip install 'swarmgym[lang]'"
        ) from e
    f = DetectorFactory()
    f.load_profile(PROFILES_DIRECTORY)
    f.set_seed(0)
    return f


def detect_language(text: str) -> str | None:
    """The language langdetect sees in ``text`` (``"en"``, ``"fr"`` …), or None when it cannot tell."""
    from langdetect.lang_detect_exception import LangDetectException

    d = _language_factory().create()
    d.append(text[:MAX_DETECT_CHARS])
    try:
        return str(d.detect())
    except LangDetectException:
        return None


def _c_language(t: str, p: Mapping[str, Any]) -> bool:
    got = detect_language(t)
    return got is None or got == p["language"]  # as IFEval: text langdetect cannot place counts as followed


def _c_constrained(t: str, p: Mapping[str, Any]) -> bool:
    s = t.strip()
    return any(o in s for o in CONSTRAINED_OPTIONS)


# ---------------------------------------------------------------------------------------------- samplers


@dataclass
class SampleContext:
    """What a sampler may look at: the request text and the words other constraints already took."""

    prompt: str = ""
    used_words: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)


def _free_words(rng: random.Random, ctx: SampleContext, k: int) -> list[str]:
    prompt_words = {w.lower() for w in _WORD.findall(ctx.prompt)}
    pool = [w for w in KEYWORD_POOL if w not in ctx.used_words and w not in prompt_words]
    words = rng.sample(pool, k)
    ctx.used_words.update(words)
    return words


def _rel(rng: random.Random) -> str:
    return rng.choice(("at least", "less than"))


def _s_words(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    rel = _rel(rng)
    return {"relation": rel, "n": rng.randrange(20, 200, 10) if rel == "at least" else rng.randrange(120, 400, 20)}


def _s_sentences(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    rel = _rel(rng)
    return {"relation": rel, "n": rng.randint(3, 15) if rel == "at least" else rng.randint(10, 30)}


def _s_frequency(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    rel = _rel(rng)
    return {"word": _free_words(rng, ctx, 1)[0], "relation": rel, "n": rng.randint(1, 4) if rel == "at least" else rng.randint(1, 3)}


def _s_letter(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    return {"letter": rng.choice(LETTERS), "relation": "at least", "n": rng.randint(2, 10)}


def _s_capitals(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    rel = _rel(rng)
    # "less than" starts at 3: "I", "P.S." and the end phrases' "I" are capital words as IFEval counts them
    return {"relation": rel, "n": rng.randint(1, 5) if rel == "at least" else rng.randint(3, 6)}


def _s_none(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    return {}


def _s_language(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    code = rng.choice(sorted(LANGUAGES))
    return {"language": code, "name": LANGUAGES[code]}


def _s_nth(rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    n = rng.randint(2, 5)
    return {"n": n, "nth": rng.randint(1, n), "first_word": _free_words(rng, ctx, 1)[0]}


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ConstraintKind:
    """One kind of verifiable constraint.

    Attributes:
        kind: id (``"group:name"``).
        checker: ``f(text, params) -> bool`` (text is a str).
        sampler: ``f(rng, ctx) -> params`` drawing random parameters.
        phrasings: instruction templates (``str.format`` with the params, plus ``{kw}`` for keyword lists);
            one is chosen with the seed.
        conflicts: kinds that cannot be combined with this one (the relation is made symmetric).
        applicable: ``f(ctx) -> bool``: whether the kind makes sense for this request (e.g. repeating a
            request is only asked for short, plain requests).
    """

    kind: str
    checker: Callable[[str, Mapping[str, Any]], bool]
    sampler: Callable[[random.Random, SampleContext], dict[str, Any]]
    phrasings: tuple[str, ...]
    conflicts: frozenset[str] = frozenset()
    applicable: Callable[[SampleContext], bool] = lambda ctx: True

    def instruction(self, params: Mapping[str, Any], rng: random.Random) -> str:
        """The instruction text for ``params``, in a phrasing chosen by ``rng``."""
        fmt = dict(params)
        if "keywords" in params:
            fmt["kw"] = ", ".join(f'"{w}"' for w in params["keywords"])
        if "words" in params:
            fmt["kw"] = ", ".join(f'"{w}"' for w in params["words"])
        return rng.choice(self.phrasings).format(**fmt)


def _repeat_ok(ctx: SampleContext) -> bool:
    p = ctx.prompt
    return (
        0 < count_words(p) <= 40
        and not re.search(r"[,*\[\]<>\"]|p\.s|\b[A-Z]{2,}\b|\n", p, flags=re.IGNORECASE)
        and not any(_kw_count(p, w) for w in KEYWORD_POOL)
    )


_STRUCT = frozenset({"format:json", "startend:quotation", "combination:two_responses", "combination:repeat_prompt"})

_KINDS: list[ConstraintKind] = [
    ConstraintKind("length:words", _c_words, _s_words, (
        "Answer with {relation} {n} words.", "Your response should contain {relation} {n} words.",
        "Make sure the whole response has {relation} {n} words.")),
    ConstraintKind("length:sentences", _c_sentences, _s_sentences, (
        "Your response should contain {relation} {n} sentences.", "Write {relation} {n} sentences in total.")),
    ConstraintKind("length:paragraphs", _c_paragraphs, lambda r, c: {"n": r.randint(2, 5)}, (
        "There should be exactly {n} paragraphs. Separate paragraphs with the markdown divider: ***",
        "Write exactly {n} paragraphs, separated from each other by a line containing only ***."),
        frozenset({"format:json", "format:sections", "combination:two_responses"})),
    ConstraintKind("format:bullets", _c_bullets, lambda r, c: {"n": r.randint(1, 6)}, (
        "Your answer must contain exactly {n} bullet points. Use markdown bullet points such as:\n* This is point 1.",
        "Include exactly {n} bullet points in markdown format (lines starting with * )."),
        frozenset({"format:json", "combination:two_responses"})),
    ConstraintKind("keywords:include", _c_include, lambda r, c: {"keywords": _free_words(r, c, r.randint(1, 3))}, (
        "Include the keywords {kw} in the response.", "Make sure to use the words {kw} somewhere in your answer.")),
    ConstraintKind("keywords:forbidden", _c_forbidden, lambda r, c: {"words": _free_words(r, c, r.randint(1, 3))}, (
        "Do not include the words {kw} in the response.", "Never use any of these words: {kw}.")),
    ConstraintKind("keywords:frequency", _c_frequency, _s_frequency, (
        'In your response, the word "{word}" should appear {relation} {n} times.',
        'Use the word "{word}" {relation} {n} times.')),
    ConstraintKind("keywords:letter_frequency", _c_letter, _s_letter, (
        "In your response, the letter {letter} should appear {relation} {n} times.",
        "Make sure the letter {letter} appears {relation} {n} times in your reply.")),
    ConstraintKind("startend:start", _c_start, lambda r, c: {"phrase": r.choice(START_PHRASES)}, (
        'Start your response with the exact phrase "{phrase}"', 'Begin your answer with "{phrase}"'),
        frozenset({"format:title"}) | _STRUCT),
    ConstraintKind("startend:end", _c_end, lambda r, c: {"phrase": r.choice(END_PHRASES)}, (
        'Finish your response with this exact phrase: "{phrase}". No other words should follow it.',
        'End your answer with the exact phrase "{phrase}"'),
        frozenset({"format:json", "startend:quotation", "combination:two_responses"})),
    ConstraintKind("format:json", _c_json, _s_none, (
        "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
        "Format your entire response as valid JSON."),
        frozenset({"format:title", "content:postscript", "format:highlights", "format:sections",
                   "length:paragraphs", "format:bullets"}) | _STRUCT - {"format:json"}),
    ConstraintKind("case:lowercase", _c_lower, _s_none, (
        "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
        "Write everything in lowercase letters only."),
        frozenset({"case:uppercase", "case:capital_words", "format:sections"})),
    ConstraintKind("case:uppercase", _c_upper, _s_none, (
        "Your entire response should be in English, and in all capital letters.",
        "Write your whole answer in CAPITAL LETTERS."),
        frozenset({"case:lowercase", "case:capital_words", "format:sections"})),
    ConstraintKind("case:capital_words", _c_capitals, _s_capitals, (
        "In your response, words with all capital letters should appear {relation} {n} times.",
        "Use {relation} {n} words written entirely in capital letters."),
        frozenset({"case:lowercase", "case:uppercase"})),
    ConstraintKind("punctuation:no_comma", _c_no_comma, _s_none, (
        "In your entire response, refrain from the use of any commas.", "Do not use any commas in your answer.")),
    ConstraintKind("format:title", _c_title, _s_none, (
        "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
        "Give your answer a title wrapped in double angle brackets, like <<my title>>."),
        frozenset({"startend:start", "format:json", "combination:repeat_prompt", "combination:two_responses"})),
    ConstraintKind("content:placeholders", _c_placeholders, lambda r, c: {"n": r.randint(1, 4)}, (
        "The response must contain at least {n} placeholders represented by square brackets, such as [address].",
        "Include at least {n} placeholders in square brackets, like [name]."),),
    ConstraintKind("content:postscript", _c_postscript, lambda r, c: {"marker": r.choice(("P.S.", "P.P.S"))}, (
        "At the end of your response, please explicitly add a postscript starting with {marker}",
        "Add a postscript at the end that starts with {marker}"),
        frozenset({"format:json", "combination:two_responses"})),
    ConstraintKind("format:sections", _c_sections,
                   lambda r, c: {"n": r.randint(2, 4), "splitter": r.choice(SECTION_SPLITTERS)}, (
        "Your response must have {n} sections. Mark the beginning of each section with {splitter} X, such as:\n"
        "{splitter} 1\n[content of section 1]",
        "Split your answer into {n} sections, each starting with '{splitter} X' where X is its number."),
        frozenset({"length:paragraphs", "format:json", "combination:two_responses", "case:lowercase",
                   "case:uppercase"})),
    ConstraintKind("format:highlights", _c_highlights, lambda r, c: {"n": r.randint(1, 4)}, (
        "Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*.",
        "Use markdown to highlight at least {n} parts of your answer, like *this part*."),
        frozenset({"format:json"})),
    ConstraintKind("startend:quotation", _c_quotation, _s_none, (
        "Wrap your entire response with double quotation marks.", "Put your whole answer inside double quotes."),
        frozenset({"startend:start", "startend:end", "format:json", "combination:two_responses",
                   "combination:repeat_prompt"})),
    ConstraintKind("combination:repeat_prompt", _c_repeat, lambda r, c: {"prompt": c.prompt.strip()}, (
        "First repeat the request word for word without change, then give your answer (1. do not say any words "
        "or characters before repeating the request; 2. the request you need to repeat does not include this "
        "sentence)",),
        _STRUCT - {"combination:repeat_prompt"} | frozenset({"startend:start", "format:title"}),
        _repeat_ok),
    ConstraintKind("length:nth_paragraph_first_word", _c_nth_first_word, _s_nth, (
        "There should be {n} paragraphs. Paragraphs and only paragraphs are separated with each other by two "
        "new lines as if it was '\\n\\n' in python. Paragraph {nth} must start with word {first_word}.",
        "Write exactly {n} paragraphs separated by blank lines; paragraph number {nth} must begin with the word "
        "{first_word}."),
        frozenset({"length:paragraphs", "format:sections", "combination:two_responses", "format:json",
                   "startend:quotation", "combination:repeat_prompt", "startend:start", "format:title",
                   "content:postscript"})),
    ConstraintKind("format:constrained_response", _c_constrained, _s_none, (
        'Answer with one of the following options: ("My answer is yes.", "My answer is no.", '
        '"My answer is maybe.")',
        'Your answer must contain one of these exact sentences: "My answer is yes.", "My answer is no." or '
        '"My answer is maybe."'),
        frozenset({"case:lowercase", "case:uppercase"})),
    ConstraintKind("language:response_language", _c_language, _s_language, (
        "Your ENTIRE response should be in {name} language, no other language is allowed.",
        "Write your whole answer in {name}; do not use any other language."),
        # everything that puts fixed English words into the response
        frozenset({"keywords:include", "keywords:frequency", "startend:start", "startend:end", "format:title",
                   "content:postscript", "format:sections", "format:highlights", "format:bullets",
                   "case:lowercase", "case:uppercase", "case:capital_words", "combination:repeat_prompt",
                   "length:nth_paragraph_first_word", "format:constrained_response", "content:placeholders"})),
    ConstraintKind("combination:two_responses", _c_two, _s_none, (
        "Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: ******.",
        "Write two different answers, separated by a line of six asterisks: ******"),
        frozenset({"length:paragraphs", "format:sections", "content:postscript", "format:title",
                   "format:bullets", "startend:start", "startend:end"}) | _STRUCT - {"combination:two_responses"}),
]

REGISTRY: dict[str, ConstraintKind] = {k.kind: k for k in _KINDS}
KINDS: tuple[str, ...] = tuple(REGISTRY)
OPTIONAL_KINDS: frozenset[str] = frozenset({"language:response_language"})
"""Kinds whose checker needs an optional package (langdetect): used only when asked for by name."""
DEFAULT_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k not in OPTIONAL_KINDS)
"""The kinds an :class:`~swarmgym.prompts.instructions.InstructionEnhancer` draws from by default."""

# symmetric closure of the conflict relation
_CONFLICTS: dict[str, set[str]] = {k: set(v.conflicts) for k, v in REGISTRY.items()}
for _k, _vs in list(_CONFLICTS.items()):
    for _v in _vs:
        _CONFLICTS.setdefault(_v, set()).add(_k)


def compatible(a: str, b: str) -> bool:
    """True when kinds ``a`` and ``b`` may appear together (a kind is never combined with itself)."""
    return a != b and b not in _CONFLICTS.get(a, set())


# ------------------------------------------------------------------------- answer formats vs constraints
# A task whose answer the judge extracts in an answer format (``task.metadata["answer_format"]``: boxed,
# tags, json, last_line; see swarmgym.judges.extract) cannot take a constraint that no answer in that format
# can meet. Two kinds of clash, modelled separately:
#
# 1. the constraint contradicts the format's *markup or position* (this table);
# 2. the constraint contradicts the *gold answer's text* (:func:`answer_text_conflicts`): "all lowercase"
#    when the answer is "True", "no commas" when it is "(0, 1]".

ANSWER_FORMAT_CONFLICTS: dict[str, frozenset[str]] = {
    # \BOXED{} is not \boxed{} (the extractor is case-sensitive, as LaTeX is); a whole-response JSON
    # would need the LaTeX escaped inside a string
    "boxed": frozenset({"case:uppercase", "format:json", "format:constrained_response"}),
    # <ANSWER> is still the tag (tags are read case-insensitively). Every format: a task with its own answer
    # cannot be answered with "My answer is yes/no/maybe." (format:constrained_response)
    "tags": frozenset({"format:constrained_response"}),
    # "End your response with a JSON object" (the format instruction) vs every other demand on the end of
    # the response, even where the lenient extractor would still find the object; a JSON
    # object's field name is lowercase; JSON separates fields (and list items) with commas
    "json": frozenset({"case:uppercase", "punctuation:no_comma", "startend:end", "content:postscript",
                       "startend:quotation", "format:constrained_response"}),
    # the answer alone on the last line vs every other demand on the last line / the whole response
    "last_line": frozenset({"startend:end", "content:postscript", "startend:quotation", "format:json",
                            "combination:two_responses", "format:constrained_response"}),
}


def answer_text_conflicts(kind: str, answer: Any) -> bool:
    """True when constraint ``kind`` contradicts the gold answer's own text (which the response must contain).

    Only case and comma constraints look at it: an uppercase-only response cannot contain ``\\frac`` or
    "True" spelled right, a lowercase one cannot contain "A", a comma-free one cannot contain "1, 2".
    """
    if answer is None:
        return False
    golds = answer if isinstance(answer, (list, tuple)) else [answer]
    texts = [g if isinstance(g, str) else json.dumps(g, ensure_ascii=False) for g in golds]
    if kind == "case:uppercase":
        return all(any(c.islower() for c in t) for t in texts)
    if kind == "case:lowercase":
        return all(any(c.isupper() for c in t) for t in texts)
    if kind == "punctuation:no_comma":
        return all("," in t for t in texts)
    return False


def compatible_with_answer(kind: str, answer_format: Any = None, answer: Any = None) -> bool:
    """Whether constraint ``kind`` can be met by a response that gives ``answer`` in ``answer_format``.

    Args:
        kind: a constraint kind.
        answer_format: the task's answer format (a kind string or the ``{"kind", …}`` dict recorded in
            ``task.metadata["answer_format"]``), or None when the task has no extracted answer.
        answer: the gold answer (one value or a list of accepted values), or None.
    """
    if isinstance(answer_format, Mapping):
        answer_format = answer_format.get("kind")
    if answer_format is not None:
        if answer_format not in ANSWER_FORMAT_CONFLICTS:
            raise ValueError(f"unknown answer format {answer_format!r}; known: {sorted(ANSWER_FORMAT_CONFLICTS)}")
        if kind in ANSWER_FORMAT_CONFLICTS[answer_format]:
            return False
        return not answer_text_conflicts(kind, answer)
    return True


def sample_constraint(kind: str, rng: random.Random, ctx: SampleContext) -> dict[str, Any]:
    """Draw a constraint of ``kind``: ``{"kind", "params", "text"}`` (deterministic for a given rng state).

    Raises:
        KeyError: unknown kind (the message lists the known ones).
    """
    if kind not in REGISTRY:
        raise KeyError(f"unknown constraint kind {kind!r}; known kinds: {', '.join(KINDS)}")
    k = REGISTRY[kind]
    params = k.sampler(rng, ctx)
    ctx.kinds.add(kind)
    return {"kind": kind, "params": params, "text": k.instruction(params, rng)}


def _loose_variants(t: str) -> list[str]:
    lines = t.split("\n")
    first = "\n".join(lines[1:]).strip()
    last = "\n".join(lines[:-1]).strip()
    both = "\n".join(lines[1:-1]).strip()
    out = []
    for v in (t, first, last, both):
        out.append(v)
        out.append(v.replace("*", ""))
    return [v for v in out if v.strip()]


def check(constraint: Mapping[str, Any], response: Any, *, strict: bool = True) -> bool:
    """Whether ``response`` satisfies one constraint (``{"kind", "params"}``).

    Never raises for a bad response (anything that is not a str fails); raises KeyError for an unknown kind
    and propagates bad *params* (a programming error in whoever wrote the constraint).
    """
    kind = constraint.get("kind") if isinstance(constraint, Mapping) else None
    if kind not in REGISTRY:
        raise KeyError(f"unknown constraint kind {kind!r}; known kinds: {', '.join(KINDS)}")
    t = _text(response)
    if t is None or not t.strip():
        return False
    fn = REGISTRY[kind].checker
    params = constraint.get("params") or {}
    if strict:
        return bool(fn(t, params))
    return any(fn(v, params) for v in _loose_variants(t))


def check_all(constraints: Iterable[Mapping[str, Any]], response: Any, *, strict: bool = True) -> list[bool]:
    """:func:`check` for each constraint, in order."""
    return [check(c, response, strict=strict) for c in constraints]


def kinds_compatible(kinds: Sequence[str]) -> bool:
    """True when every pair of ``kinds`` is compatible."""
    return all(compatible(a, b) for i, a in enumerate(kinds) for b in kinds[i + 1:])
