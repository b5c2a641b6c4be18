"""Our instruction checkers against Google's IFEval checkers (bundled by the ``if-verifiable`` package).

For every kind both have, random responses built from pieces that exercise IFEval's edge cases (contractions,
``**bold**``, substrings of keywords, a "Section 1" in prose, trailing ``******``, closing quotes, ``[]``,
inline "P.S." …) plus the composer's satisfying responses and mutations of them are checked by both, in strict
and loose mode. Each kind must agree on ≥ 95 % of responses, and the set must hold both verdicts (so the
comparison can fail).

Two reference checkers need NLTK data that cannot be downloaded here (and that no PyPI package ships):
- ``length_constraints:number_sentences`` loads the pre-trained English Punkt model; we run it with an
  untrained ``PunktSentenceTokenizer`` (same algorithm, no learned abbreviation list) instead;
- ``change_case:capital_word_frequency`` calls ``nltk.word_tokenize``, whose sentence split needs the same
  model; we call it with ``preserve_line=True`` (the same Treebank word tokenizer, no sentence split).
Upper/lowercase: IFEval also requires ``langdetect`` to say "en", which it often does not for all-caps or
short English; we check the letters only (a deliberate difference, asserted to be the only one).
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable
from typing import Any

import langdetect
import nltk
import pytest

# the dev extra installs if-verifiable; without it this module fails to import (it never skips)
from if_verifiable.common import get_loose_transformations
from if_verifiable.ifeval import instructions_registry as ifeval
from if_verifiable.ifeval import instructions_util
from swarmgym.prompts.compose import compose_response
from swarmgym.prompts.constraints import REGISTRY, SampleContext, check, sample_constraint

N = 300  # responses per kind (each checked strict and loose)
KEYWORDS = ("harbor", "ember", "velvet")
PROMPT = "Write a short note about harbors."


@pytest.fixture(autouse=True, scope="module")
def _offline_nltk() -> Any:
    """Swap the two NLTK calls that need downloadable data for their data-free equivalents (see above)."""
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    langdetect.DetectorFactory.seed = 0  # langdetect is random unless seeded
    old_tok, old_wt = instructions_util._get_sentence_tokenizer, instructions_util.nltk.word_tokenize
    instructions_util._get_sentence_tokenizer = lambda: PunktSentenceTokenizer()
    instructions_util.nltk.word_tokenize = functools.partial(nltk.tokenize.word_tokenize, preserve_line=True)
    yield
    instructions_util._get_sentence_tokenizer = old_tok
    instructions_util.nltk.word_tokenize = old_wt


# ---------------------------------------------------------------------------------------------- responses

PIECES = (
    "The quiet river shapes the village.", "It's a bright morning, isn't it?", "We don't know yet!",
    "**bold claim**", "*soft note*", "** **", "* a bullet point", "- a dash item", "-- not a bullet",
    "Section 1", "SECTION 2", "Section 3 covers the rest.", "see Section 1 above", "[name]", "[]", "[ address ]",
    "<<A Title>>", "<< >>", "P.S. thanks", "p.p.s more", "P.S.", "******", "***", "harbor", "harbors",
    "HARBOR", "harbor_x", "emberly", "velvet", "NOTE", "I", "A", "DON'T", "U.S.", "IT'S", "word, word",
    "Is there anything else I can help with?", '"quoted"', "Dr. Smith arrived.", "3.5 apples.", "zz", "Zebra",
    "Hope this helps.", "e.g. this", "Wait...", "café au lait.", "{\"a\": 1}",
    "My answer is yes.", "my answer is no.", "My answer is: maybe", "Harbor, the first word.", "\"It's here.",
)
END = "Is there anything else I can help with?"
JOINERS = (" ", " ", "\n", "\n\n", "\n\n***\n\n", "\n******\n")


def random_response(rng: random.Random) -> str:
    k = rng.randint(1, 14)
    parts = [rng.choice(PIECES) for _ in range(k)]
    text = parts[0]
    for p in parts[1:]:
        text += rng.choice(JOINERS) + p
    r = rng.random()
    if r < 0.12:
        text = text.upper()
    elif r < 0.24:
        text = text.lower()
    r = rng.random()
    if r < 0.08:
        text = f'"{text}"'
    elif r < 0.14:
        text = json.dumps({"response": text})
    elif r < 0.18:
        text = f"```json\n{json.dumps({'r': text})}\n```"
    elif r < 0.24:
        text = f"{text} {END}" + rng.choice(['"', "", "\n*Generated*"])
    elif r < 0.28:
        text = f"{PROMPT}\n{text}"
    if rng.random() < 0.1:
        text = "Sure, here it is:\n" + text
    return text


# ---------------------------------------------------------------------------------------------- kind map

# our kind -> (IFEval id, our params -> IFEval kwargs, params sampler around the text's own counts)
Params = dict[str, Any]


def _rel(rng: random.Random) -> str:
    return rng.choice(("at least", "less than"))


def _near(rng: random.Random, v: int) -> int:
    return max(1, v + rng.randint(-2, 2))


KINDS: dict[str, tuple[str, Callable[[Params], Params], Callable[[random.Random, str], Params]]] = {
    "length:words": ("length_constraints:number_words", lambda p: {"num_words": p["n"], "relation": p["relation"]},
                     lambda r, t: {"relation": _rel(r), "n": _near(r, instructions_util.count_words(t))}),
    "length:sentences": ("length_constraints:number_sentences",
                         lambda p: {"num_sentences": p["n"], "relation": p["relation"]},
                         lambda r, t: {"relation": _rel(r), "n": _near(r, instructions_util.count_sentences(t))}),
    "length:paragraphs": ("length_constraints:number_paragraphs", lambda p: {"num_paragraphs": p["n"]},
                          lambda r, t: {"n": _near(r, t.count("***") + 1)}),
    "format:bullets": ("detectable_format:number_bullet_lists", lambda p: {"num_bullets": p["n"]},
                       lambda r, t: {"n": r.randint(0, 3)}),
    "keywords:include": ("keywords:existence", lambda p: {"keywords": p["keywords"]},
                         lambda r, t: {"keywords": r.sample(KEYWORDS, r.randint(1, 2))}),
    "keywords:forbidden": ("keywords:forbidden_words", lambda p: {"forbidden_words": p["words"]},
                           lambda r, t: {"words": r.sample(KEYWORDS, r.randint(1, 2))}),
    "keywords:frequency": ("keywords:frequency",
                           lambda p: {"keyword": p["word"], "frequency": p["n"], "relation": p["relation"]},
                           lambda r, t: {"word": (w := r.choice(KEYWORDS)), "relation": _rel(r),
                                         "n": _near(r, t.lower().count(w))}),
    "keywords:letter_frequency": ("keywords:letter_frequency",
                                  lambda p: {"letter": p["letter"], "let_frequency": p["n"], "let_relation": p["relation"]},
                                  lambda r, t: {"letter": (c := r.choice("zhw")), "relation": _rel(r),
                                                "n": _near(r, t.lower().count(c))}),
    "startend:end": ("startend:end_checker", lambda p: {"end_phrase": p["phrase"]},
                     lambda r, t: {"phrase": r.choice((END, "Hope this helps."))}),
    "format:json": ("detectable_format:json_format", lambda p: {}, lambda r, t: {}),
    "case:lowercase": ("change_case:english_lowercase", lambda p: {}, lambda r, t: {}),
    "case:uppercase": ("change_case:english_capital", lambda p: {}, lambda r, t: {}),
    "case:capital_words": ("change_case:capital_word_frequency",
                           lambda p: {"capital_frequency": p["n"], "capital_relation": p["relation"]},
                           lambda r, t: {"relation": _rel(r), "n": r.randint(1, 5)}),
    "punctuation:no_comma": ("punctuation:no_comma", lambda p: {}, lambda r, t: {}),
    "format:title": ("detectable_format:title", lambda p: {}, lambda r, t: {}),
    "content:placeholders": ("detectable_content:number_placeholders", lambda p: {"num_placeholders": p["n"]},
                             lambda r, t: {"n": r.randint(1, 3)}),
    "content:postscript": ("detectable_content:postscript", lambda p: {"postscript_marker": p["marker"]},
                           lambda r, t: {"marker": r.choice(("P.S.", "P.P.S"))}),
    "format:sections": ("detectable_format:multiple_sections",
                        lambda p: {"section_spliter": p["splitter"], "num_sections": p["n"]},
                        lambda r, t: {"splitter": r.choice(("Section", "SECTION")), "n": r.randint(1, 3)}),
    "format:highlights": ("detectable_format:number_highlighted_sections", lambda p: {"num_highlights": p["n"]},
                          lambda r, t: {"n": r.randint(1, 3)}),
    "startend:quotation": ("startend:quotation", lambda p: {}, lambda r, t: {}),
    "combination:repeat_prompt": ("combination:repeat_prompt", lambda p: {"prompt_to_repeat": p["prompt"]},
                                  lambda r, t: {"prompt": PROMPT}),
    "combination:two_responses": ("combination:two_responses", lambda p: {}, lambda r, t: {}),
    "length:nth_paragraph_first_word": (
        "length_constraints:nth_paragraph_first_word",
        lambda p: {"num_paragraphs": p["n"], "nth_paragraph": p["nth"], "first_word": p["first_word"]},
        # nth <= n: IFEval's build_description silently re-draws an out-of-range nth at random
        lambda r, t: {"n": (n := _near(r, t.count("\n\n") + 1)), "nth": r.randint(1, min(n, 3)),
                      "first_word": r.choice(("harbor", "the", "section", "it"))}),
    "format:constrained_response": ("detectable_format:constrained_response", lambda p: {}, lambda r, t: {}),
    "language:response_language": ("language:response_language", lambda p: {"language": p["language"]},
                                   lambda r, t: {"language": r.choice(("en", "en", "fr", "es"))}),
}

# Our kinds with no IFEval counterpart (IFEval's start checker is commented out of its registry).
NOT_IN_IFEVAL = {"startend:start"}


def ifeval_check(ifeval_id: str, kwargs: Params, text: str, *, strict: bool) -> bool:
    checker = ifeval.INSTRUCTION_DICT[ifeval_id](ifeval_id)
    checker.build_description(**kwargs)
    variants = [text] if strict else get_loose_transformations(text)
    return any(v.strip() and checker.check_following(v) for v in variants)


def cases(kind: str) -> list[tuple[Params, str]]:
    """N (params, response) pairs: random responses, composer outputs that satisfy ours, and their mutations."""
    rng = random.Random(f"ifeval:{kind}")
    sampler = KINDS[kind][2]
    out: list[tuple[Params, str]] = []
    for i in range(N):
        if i % 3 == 0:  # a satisfying response for our checker, from the composer; every 6th one mutated
            c = sample_constraint(kind, rng, SampleContext(prompt=PROMPT))
            text = compose_response([c], seed=i)
            if i % 6 == 0:
                text = rng.choice((text.upper(), text.lower(), text + "\n" + random_response(rng),
                                   random_response(rng) + " " + text, text.replace(" ", ", ", 1)))
            out.append((c["params"], text))
        else:
            text = random_response(rng)
            out.append((sampler(rng, text), text))
    return out


def _langdetect_en(text: str) -> bool:
    try:
        return langdetect.detect(text) == "en"
    except langdetect.LangDetectException:
        return True


@functools.cache
def agreement(kind: str) -> dict[str, Any]:
    ifeval_id, to_kwargs, _ = KINDS[kind]
    res: dict[str, Any] = {"kind": kind, "ifeval": ifeval_id}
    for mode in ("strict", "loose"):
        agree, ref_true, diffs = 0, 0, []
        for params, text in cases(kind):
            ours = check({"kind": kind, "params": params}, text, strict=mode == "strict")
            ref = ifeval_check(ifeval_id, to_kwargs(params), text, strict=mode == "strict")
            ref_true += ref
            if ours == ref:
                agree += 1
            else:
                diffs.append((params, text, ours, ref))
        res[mode] = agree / N
        res[f"{mode}_ref_true"] = ref_true / N
        res[f"{mode}_diffs"] = diffs
    return res


def test_every_kind_is_compared_or_listed() -> None:
    assert set(KINDS) | NOT_IN_IFEVAL == set(REGISTRY)
    assert {v[0] for v in KINDS.values()} <= set(ifeval.INSTRUCTION_DICT)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_agrees_with_ifeval(kind: str) -> None:
    r = agreement(kind)
    print(f"\nIFEVAL {kind:28s} {r['ifeval']:48s} strict {r['strict']:.3f} loose {r['loose']:.3f} "
          f"(IFEval true: {r['strict_ref_true']:.2f}/{r['loose_ref_true']:.2f})")
    for mode in ("strict", "loose"):
        # both verdicts occur, so disagreement could show
        assert 0.05 <= r[f"{mode}_ref_true"] <= 0.95, (mode, r[f"{mode}_ref_true"])
        if kind in ("case:uppercase", "case:lowercase"):
            # the one deliberate difference: IFEval also wants langdetect == "en"; every disagreement must be
            # a response whose letters pass and that langdetect calls non-English
            for params, text, ours, ref in r[f"{mode}_diffs"]:
                assert ours and not ref, text
                variants = [text] if mode == "strict" else get_loose_transformations(text)
                assert not any(v.strip() and _langdetect_en(v) and (v.isupper() if kind == "case:uppercase"
                                                                     else v.islower()) for v in variants), text
        else:
            assert r[mode] >= 0.95, (mode, r[mode], r[f"{mode}_diffs"][:5])
