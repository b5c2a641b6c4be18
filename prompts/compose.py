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

# filler for language:response_language, written for this module (plain everyday sentences, no commas)
_LANG_SENTENCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "es": ("y", ("El río tranquilo cruza el pueblo cada mañana", "La gente del barrio trabaja con mucho cuidado",
                 "Nuestra familia prepara la comida juntos", "Los niños juegan en el parque después de la escuela",
                 "Esta historia habla de un viaje muy largo", "El jardín tiene flores de muchos colores",
                 "Siempre aprendemos algo nuevo de los vecinos", "La ciudad parece diferente por la noche")),
    "fr": ("et", ("La rivière calme traverse le village chaque matin",
                  "Les gens du quartier travaillent avec beaucoup de soin", "Notre famille prépare le repas ensemble",
                  "Les enfants jouent dans le parc après l'école", "Cette histoire parle d'un très long voyage",
                  "Le jardin a des fleurs de toutes les couleurs",
                  "Nous apprenons toujours quelque chose de nouveau avec nos voisins",
                  "La ville semble différente pendant la nuit")),
    "de": ("und", ("Der ruhige Fluss fließt jeden Morgen durch das Dorf",
                   "Die Menschen im Viertel arbeiten mit großer Sorgfalt", "Unsere Familie kocht das Essen gemeinsam",
                   "Die Kinder spielen nach der Schule im Park", "Diese Geschichte erzählt von einer sehr langen Reise",
                   "Der Garten hat Blumen in vielen Farben", "Wir lernen immer etwas Neues von unseren Nachbarn",
                   "Die Stadt sieht in der Nacht ganz anders aus")),
    "it": ("e", ("Il fiume tranquillo attraversa il paese ogni mattina",
                 "Le persone del quartiere lavorano con molta cura", "La nostra famiglia prepara il pranzo insieme",
                 "I bambini giocano nel parco dopo la scuola", "Questa storia parla di un viaggio molto lungo",
                 "Il giardino ha fiori di tanti colori", "Impariamo sempre qualcosa di nuovo dai vicini",
                 "La città sembra diversa durante la notte")),
    "pt": ("e", ("O rio tranquilo atravessa a aldeia todas as manhãs", "As pessoas do bairro trabalham com muito cuidado",
                 "A nossa família prepara a comida juntos", "As crianças brincam no parque depois da escola",
                 "Esta história fala de uma viagem muito longa", "O jardim tem flores de muitas cores",
                 "Aprendemos sempre algo novo com os vizinhos", "A cidade parece diferente durante a noite")),
}


def _lang_sentence(rng: random.Random, lang: str, extras: Sequence[str], pad: int = 0) -> str:
    conj, pool = _LANG_SENTENCES[lang]
    clauses = [rng.choice(pool)] + [rng.choice(pool).lower() for _ in range(max(pad, 0) // 4)]
    return " ".join([f" {conj} ".join(clauses), *extras]) + "."


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
    lang = p.get("language:response_language", {}).get("language")
    if lang in _LANG_SENTENCES:
        sents = [_lang_sentence(rng, lang, c, pad) for c in chunks]
    else:
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
