"""Seeded, offline corpus and tasks for ``swarmgym/WideSearch-v0``.

A fictional world generated from one seed: countries, cities, companies, people and universities. Every
entity has **two pages** (a profile and a "history" page) and its attributes are spread over both, so
filling one row of a table takes a search and two reads. Every group of entities (e.g. "shipping companies
of Valdoria") has a **registry page** listing its members; a task asks for the table of all members of one
(or several) registries × a few attributes, which is the shape of WideSearch: many entities, many
attributes, each cell found by lookups.

With the defaults the corpus has about 11,000 entity pages plus ~250 registry pages and 252 tasks. The
world is a pure function of ``seed``; :func:`get_world` caches it (and its one shared search index) per
seed, so every env and episode in a process shares the same objects.

Page format (the scripted agents and the judge rely on it): the page title is the entity name (profile)
or ``"<name> (history)"``; attributes are lines ``Key: value``; prose never contains a colon. A registry's
title is ``"Registry: <label>"`` and its members are on one line ``Members: A; B; C``.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field
from typing import Any

from ..wire import Task

__all__ = [
    "KINDS",
    "Entity",
    "WideSearchTasks",
    "World",
    "generate_world",
    "get_world",
    "parse_request",
    "subtask_prompt",
    "task_prompt",
]

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr",
           "st", "th", "sh", "gl", "pl", "vr", "qu", "h", "c", "j")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou", "ia", "y")
_CODAS = ("", "", "n", "r", "l", "s", "th", "nd", "rk", "m", "x", "v", "st")

SECTORS = ("shipping", "biotech", "software", "mining", "textile", "aerospace", "brewing", "insurance")
OCCUPATIONS = ("sculptor", "novelist", "chemist", "architect", "composer", "cartographer", "astronomer", "chef")
_COMPANY_SUFFIX = ("Group", "Holdings", "Works", "Company", "Partners", "Industries", "Collective", "Trust")
_COLORS = ("blue", "gold", "green", "crimson", "silver", "white", "black", "amber", "violet", "teal")
_WORKS = ("Garden", "River", "Tower", "Letters", "Machine", "Lantern", "Harbor", "Winter", "Mirror", "Orchard")

# kind -> (attributes on the profile page, attributes on the history page)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "company": (("Founded", "Headquarters", "CEO", "Ticker"), ("Employees", "Revenue", "Founder")),
    "person": (("Born", "Birthplace", "Employer"), ("Notable work", "Awards", "Spouse")),
    "city": (("Population", "Mayor", "Elevation"), ("Founded", "Area", "Twin city")),
    "university": (("Founded", "City", "Rector"), ("Students", "Endowment", "Colors")),
}


@dataclass(slots=True)
class Entity:
    """One fictional entity: its name, kind, group label and attributes (key → value text)."""

    name: str
    kind: str
    group: str
    attrs: dict[str, str]
    index: int


@dataclass(slots=True)
class World:
    """The generated corpus: entities, groups (label → member names), documents and the shared index."""

    seed: int
    entities: dict[str, Entity]
    groups: dict[str, list[str]]
    group_kind: dict[str, str]
    docs: list[dict[str, str]]
    _index: Any = field(default=None, repr=False)

    @property
    def index(self) -> Any:
        """The one :class:`~swarmgym.toolsets.search.SearchIndex` over this corpus (built on first search)."""
        if self._index is None:
            from ..toolsets.search import SearchIndex

            self._index = SearchIndex(self.docs)
        return self._index

    def row(self, name: str, columns: list[str]) -> dict[str, str]:
        """The gold row of entity ``name`` for ``columns`` ("Name" is the entity name)."""
        e = self.entities[name]
        return {c: (e.name if c == "Name" else e.attrs[c]) for c in columns}


class _Names:
    """Unique pronounceable names from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, syllables: tuple[int, int] = (2, 3)) -> str:
        r = self.rng
        n = r.randint(*syllables)
        w = "".join(r.choice(_ONSETS) + r.choice(_VOWELS) for _ in range(n)) + r.choice(_CODAS)
        return w.capitalize()

    def unique(self, make: Any) -> str:
        for _ in range(1000):
            s = make()
            if s not in self.used:
                self.used.add(s)
                return s
        raise RuntimeError("name space exhausted; use fewer entities")  # pragma: no cover


def _profile_text(e: Entity, country: str, rng: random.Random, peers: list[str]) -> str:
    first, _ = KINDS[e.kind]
    peer = rng.choice(peers) if peers else e.name
    lead = {
        "company": f"{e.name} is a {e.group.split(' companies')[0]} company based in {country}.",
        "person": f"{e.name} is a {e.group.split(' of ')[0][:-1]} from {country}.",
        "city": f"{e.name} is a city in {country}.",
        "university": f"{e.name} is a university in {country}.",
    }[e.kind]
    prose = (
        f"{lead} It is often mentioned together with {peer}. "
        f"Records about {e.name} are kept in the national archive of {country}."
    )
    facts = "\n".join(f"{k}: {e.attrs[k]}" for k in first)
    return f"{prose}\n\nKey facts\n{facts}\n\nSee also the history page of {e.name}."


def _history_text(e: Entity, country: str, rng: random.Random) -> str:
    _, second = KINDS[e.kind]
    era = rng.choice(("early", "middle", "late"))
    prose = (
        f"This page covers the history of {e.name} in {country}. "
        f"Its {era} years are well documented in regional sources."
    )
    facts = "\n".join(f"{k}: {e.attrs[k]}" for k in second)
    return f"{prose}\n\nFigures\n{facts}"


def generate_world(seed: int = 0, *, countries: int = 14, group_size: tuple[int, int] = (12, 32)) -> World:
    """Generate the corpus (deterministic in ``seed``).

    Args:
        seed: world seed.
        countries: number of fictional countries (groups scale with it: 18 groups per country).
        group_size: inclusive range of entities per group.
    """
    rng = random.Random(seed)
    names = _Names(rng)
    country_names = [names.unique(lambda: names.word((2, 3)) + "ia") for _ in range(countries)]
    entities: dict[str, Entity] = {}
    groups: dict[str, list[str]] = {}
    group_kind: dict[str, str] = {}
    group_country: dict[str, str] = {}

    def add_group(label: str, kind: str, country: str, members: list[Entity]) -> None:
        groups[label] = [m.name for m in members]
        group_kind[label] = kind
        group_country[label] = country
        for m in members:
            entities[m.name] = m

    def size() -> int:
        return rng.randint(*group_size)

    # Cities first: other kinds refer to them (headquarters, birthplace).
    cities: dict[str, list[str]] = {}
    for c in country_names:
        label = f"cities of {c}"
        ms = []
        for _ in range(size()):
            n = names.unique(lambda: names.word((2, 3)))
            attrs = {
                "Population": f"{rng.randint(2, 2000) * 1000 + rng.randint(0, 999):,}",
                "Mayor": "",  # filled below once people exist
                "Elevation": f"{rng.randint(0, 2800)} m",
                "Founded": str(rng.randint(800, 1950)),
                "Area": f"{rng.randint(5, 900)} km2",
                "Twin city": "",
            }
            ms.append(Entity(n, "city", label, attrs, len(entities) + len(ms)))
        cities[c] = [m.name for m in ms]
        add_group(label, "city", c, ms)

    def person_name() -> str:
        return names.unique(lambda: f"{names.word((1, 2))} {names.word((2, 3))}")

    for c in country_names:
        for occ in OCCUPATIONS:
            label = f"{occ}s of {c}"
            ms = []
            for _ in range(size()):
                attrs = {
                    "Born": str(rng.randint(1900, 2000)),
                    "Birthplace": rng.choice(cities[c]),
                    "Employer": "",
                    "Notable work": f"The {rng.choice(_WORKS)} of {names.word((2, 2))}",
                    "Awards": str(rng.randint(0, 12)),
                    "Spouse": person_name(),
                }
                ms.append(Entity(person_name(), "person", label, attrs, len(entities) + len(ms)))
            add_group(label, "person", c, ms)

    people_by_country = {
        c: [n for lbl in groups if group_kind[lbl] == "person" and group_country[lbl] == c for n in groups[lbl]]
        for c in country_names
    }
    for c in country_names:
        for sector in SECTORS:
            label = f"{sector} companies of {c}"
            ms = []
            for _ in range(size()):
                n = names.unique(lambda s=sector: f"{names.word((2, 3))} {s.capitalize()} {rng.choice(_COMPANY_SUFFIX)}")
                attrs = {
                    "Founded": str(rng.randint(1850, 2020)),
                    "Headquarters": rng.choice(cities[c]),
                    "CEO": rng.choice(people_by_country[c]),
                    "Ticker": names.unique(lambda: "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXZ") for _ in range(4))),
                    "Employees": f"{rng.randint(20, 250_000):,}",
                    "Revenue": f"${rng.randint(1, 9000)} million",
                    "Founder": person_name(),
                }
                ms.append(Entity(n, "company", label, attrs, len(entities) + len(ms)))
            add_group(label, "company", c, ms)

    companies_by_country = {
        c: [n for lbl in groups if group_kind[lbl] == "company" and group_country[lbl] == c for n in groups[lbl]]
        for c in country_names
    }
    for c in country_names:
        label = f"universities of {c}"
        ms = []
        for _ in range(size()):
            n = names.unique(lambda: f"{names.word((2, 3))} {rng.choice(('University', 'Institute', 'College'))}")
            attrs = {
                "Founded": str(rng.randint(1100, 1990)),
                "City": rng.choice(cities[c]),
                "Rector": rng.choice(people_by_country[c]),
                "Students": f"{rng.randint(800, 60_000):,}",
                "Endowment": f"${rng.randint(5, 4000)} million",
                "Colors": " and ".join(rng.sample(_COLORS, 2)),
            }
            ms.append(Entity(n, "university", label, attrs, len(entities) + len(ms)))
        add_group(label, "university", c, ms)

    # Back-references that needed the other kinds.
    for e in entities.values():
        c = group_country[e.group]
        if e.kind == "city":
            e.attrs["Mayor"] = rng.choice(people_by_country[c])
            e.attrs["Twin city"] = rng.choice(cities[rng.choice(country_names)])
        elif e.kind == "person":
            e.attrs["Employer"] = rng.choice(companies_by_country[c])

    docs: list[dict[str, str]] = []
    for i, (label, members) in enumerate(groups.items()):
        docs.append({
            "id": f"reg-{i:04d}",
            "title": f"Registry: {label}",
            # the label repeated: a registry must outrank the many pages that share its country's name
            "text": f"{label[0].upper()}{label[1:]}. The national registry of {label} in {group_country[label]} "
            f"lists all {len(members)} {label}.\nMembers: " + "; ".join(members),
        })
    for i, e in enumerate(entities.values()):
        c = group_country[e.group]
        peers = groups[e.group]
        docs.append({"id": f"p{i:05d}", "title": e.name, "text": _profile_text(e, c, rng, peers)})
        docs.append({"id": f"h{i:05d}", "title": f"{e.name} (history)", "text": _history_text(e, c, rng)})
    return World(seed, entities, groups, group_kind, docs)


@functools.lru_cache(maxsize=4)
def get_world(seed: int = 0) -> World:
    """The world for ``seed``, generated once per process (one corpus, one search index, shared by all envs)."""
    return generate_world(seed)


# ---------------------------------------------------------------------------------------------- prompts

_TABLE_RULE = (
    "Answer with a single markdown table with exactly these columns (header row as given), one row per entity."
)


def task_prompt(registries: list[str], columns: list[str]) -> str:
    """The user prompt of a WideSearch task (the scripted agents parse it with :func:`parse_request`)."""
    regs = "\n".join(f"- {r}" for r in registries)
    return (
        "Build one table covering every entity listed in these registries:\n"
        f"{regs}\nColumns: {' | '.join(columns)}\n"
        f"Find the registries and the entities with the search tools. {_TABLE_RULE}"
    )


def subtask_prompt(entities: list[str], columns: list[str]) -> str:
    """The prompt the scripted orchestrator gives a sub-agent: a list of entities to look up."""
    ents = "\n".join(f"- {e}" for e in entities)
    return (
        "Look up each of these entities:\n"
        f"{ents}\nColumns: {' | '.join(columns)}\n"
        f"Use search and open to read each entity's pages. {_TABLE_RULE}"
    )


def parse_request(text: str) -> tuple[list[str], list[str], list[str]]:
    """``(registries, entities, columns)`` from a prompt made by :func:`task_prompt` / :func:`subtask_prompt`
    (empty lists when the text has another shape)."""
    registries: list[str] = []
    entities: list[str] = []
    columns: list[str] = []
    target: list[str] | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Build one table"):
            target = registries
        elif s.startswith("Look up each"):
            target = entities
        elif s.startswith("Columns:"):
            columns = [c.strip() for c in s[len("Columns:"):].split("|") if c.strip()]
            target = None
        elif s.startswith("- ") and target is not None:
            target.append(s[2:].strip())
    return registries, entities, columns


# ---------------------------------------------------------------------------------------------- tasks


class WideSearchTasks:
    """The task source: one task per registry (in a seeded order), each with 3–5 attribute columns.

    Args:
        seed: world and task seed.
        size: number of tasks (default: one per registry, 252 with the default world); capped at that.
    """

    def __init__(self, seed: int = 0, size: int | None = None) -> None:
        self.seed = int(seed)
        self.world = get_world(self.seed)
        labels = sorted(self.world.groups)
        random.Random(self.seed + 1).shuffle(labels)
        self.labels = labels if size is None else labels[: max(0, int(size))]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Task:
        n = len(self.labels)
        if not -n <= i < n:
            raise IndexError(f"task index {i} out of range ({n} tasks)")
        i %= n
        label = self.labels[i]
        rng = random.Random(f"{self.seed}/{label}")
        first, second = KINDS[self.world.group_kind[label]]
        # at least one column from each page, so every row needs both reads
        cols = [rng.choice(first), rng.choice(second)]
        rest = [a for a in first + second if a not in cols]
        cols += rng.sample(rest, rng.randint(1, 3))
        cols = ["Name"] + [a for a in first + second if a in cols]
        return make_task(self.world, [label], cols, task_id=f"widesearch-{self.seed}-{i:04d}")


def make_task(world: World, registries: list[str], columns: list[str], *, task_id: str) -> Task:
    """A task over the union of ``registries`` with ``columns`` (the first column must be "Name")."""
    if not columns or columns[0] != "Name":
        raise ValueError(f"the first column must be 'Name', got {columns[:1]}")
    unknown = [r for r in registries if r not in world.groups]
    if unknown:
        raise ValueError(f"unknown registries {unknown}; pick labels from world.groups")
    kinds = {world.group_kind[r] for r in registries}
    if len(kinds) != 1:
        raise ValueError(f"registries of one kind only (got {sorted(kinds)}): their columns must agree")
    members = [n for r in registries for n in world.groups[r]]
    return Task(
        id=task_id,
        prompt=task_prompt(registries, columns),
        answer=[world.row(n, columns) for n in members],
        metadata={
            "table_key": "Name",
            "table_columns": columns,
            "registries": registries,
            "kind": kinds.pop(),
            "n_entities": len(members),
        },
    )


def scale_task(world: World, n_entities: int = 500, *, kind: str = "company") -> Task:
    """One large task (for the scale benchmark): registries of ``kind`` until ``n_entities`` are covered."""
    regs: list[str] = []
    total = 0
    for label in sorted(world.groups):
        if world.group_kind[label] == kind and total < n_entities:
            regs.append(label)
            total += len(world.groups[label])
    first, second = KINDS[kind]
    return make_task(world, regs, ["Name", first[0], second[0]], task_id=f"widesearch-scale-{world.seed}-{total}")
