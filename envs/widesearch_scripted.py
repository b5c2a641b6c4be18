"""SCRIPTED BASELINES for WideSearch — hand-written agents, not models.

They are the envs' oracles and the benchmark's baselines, and they really use the tools: every cell of
their answer comes from a page they opened. Each is a pure function of the conversation so far (no hidden
state), so the same logic runs as an ``env.oracle``, inside a :class:`~swarmgym.policies.ScriptedPolicy`,
or behind the fake OpenAI server (:func:`fake_server_responder`).

- :func:`single_agent_step` — **sequential single agent**: finds the registries (one search turn, one open
  turn), then looks the entities up **one by one** (a search turn, then one turn opening that entity's two
  pages), then answers with the table.
- :func:`orchestrator_step` — **scripted orchestrator**: finds the registries' members itself with its own
  ``search``/``open`` (two turns; without those tools it assigns one listing sub-agent per registry
  instead), then creates a sub-agent and assigns the entities in chunks, all in parallel, then merges the
  sub-agents' tables. Every sub-agent runs :func:`single_agent_step`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..context import HIDDEN_MARKER as _HIDDEN
from ..wire import Message, ToolCall
from .widesearch_data import parse_request, subtask_prompt, task_prompt

__all__ = [
    "ORCHESTRATOR_SYSTEM",
    "SINGLE_SYSTEM",
    "SUBAGENT_PROMPT",
    "batched_agent_step",
    "fake_server_responder",
    "notes_summary",
    "orchestrator_step",
    "single_agent_step",
]

SINGLE_SYSTEM = (
    "You build tables from a document collection. Use search to find pages and open to read them. "
    "Each entity has a profile page (titled with its name) and a history page; registries list members."
)
ORCHESTRATOR_SYSTEM = (
    "You coordinate a swarm of research sub-agents. Find what has to be looked up, create sub-agents with "
    "create_subagent, and dispatch independent parts of the work to them in parallel with assign_task "
    "(several calls in one turn run concurrently). Merge their answers into the final table."
)
SUBAGENT_PROMPT = (
    "You are a research agent. Look up each entity you are given with search and open (its profile page and "
    "its history page), and answer with one markdown table of the requested columns."
)

_HIT = re.compile(r"^\[\d+\] id=(\S+)(?: (.*?))? \(score [-0-9.eE+]+\)$", re.MULTILINE)
_FACT = re.compile(r"^([A-Z][A-Za-z ]*): (.+)$", re.MULTILINE)


def _first_user(messages: Sequence[Message]) -> str:
    for m in messages:
        if m.role == "user":
            return m.text
    return ""


class _History:
    """The calls made so far and their results, indexed for the scripted agents."""

    def __init__(self, messages: Sequence[Message]) -> None:
        self.results: dict[str, str] = {m.tool_call_id: m.text for m in messages if m.role == "tool" and m.tool_call_id}
        self.turn = sum(1 for m in messages if m.role == "assistant")
        self.searches: dict[str, str] = {}  # query -> result text
        self.opens: dict[str, str] = {}  # doc id -> result text
        self.calls: list[ToolCall] = []
        for m in messages:
            if m.role != "assistant":
                continue
            for c in m.tool_calls or ():
                self.calls.append(c)
                args = c.arguments if isinstance(c.arguments, dict) else {}
                res = self.results.get(c.id)
                if res is None:
                    continue
                if c.name == "search":
                    self.searches[str(args.get("query", ""))] = res
                elif c.name == "open":
                    self.opens[str(args.get("doc_id", ""))] = res

    def call(self, i: int, tool: str, **arguments: Any) -> dict[str, Any]:
        return {"id": f"call_{self.turn}_{i}", "name": tool, "arguments": arguments}


def _hits(search_result: str) -> list[tuple[str, str]]:
    return [(m.group(1), (m.group(2) or "").strip()) for m in _HIT.finditer(search_result)]


def _registry_query(label: str) -> str:
    return f"Registry {label}"


def _read_pages(h: _History) -> dict[str, str]:
    """Pages read and still visible, by title (an open result starts with ``# <title>``)."""
    read: dict[str, str] = {}
    for text in h.opens.values():
        if text.startswith("# "):
            read[text[2 : text.find("\n")]] = text
    return read


def _resolve_registries(h: _History, registries: list[str]) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """Either the next calls (searches, then opens, every registry in parallel) or the member list.

    A registry page still visible is used as it is; one whose search result was hidden by a context
    strategy before it was opened is searched again.
    """
    read = _read_pages(h)
    searches: list[str] = []
    opens: list[str] = []
    for r in registries:
        if f"Registry: {r}" in read:
            continue
        q = _registry_query(r)
        res = h.searches.get(q)
        if res is None or res == _HIDDEN:
            searches.append(q)
            continue
        opens += [d for d, title in _hits(res) if title == f"Registry: {r}"][:1]  # none: not found, skipped
    if searches:
        return [h.call(i, "search", query=q, k=5) for i, q in enumerate(searches)], []
    if opens:
        return [h.call(i, "open", doc_id=d) for i, d in enumerate(opens)], []
    members: list[str] = []
    for r in registries:
        for line in read.get(f"Registry: {r}", "").splitlines():
            if line.startswith("Members: "):
                members += [x.strip() for x in line[len("Members: "):].split(";") if x.strip()]
    return None, members


def _entity_pages(h: _History, name: str) -> list[str]:
    return [d for d, title in _hits(h.searches.get(name, "")) if title in (name, f"{name} (history)")]


def _facts(h: _History, name: str) -> dict[str, str]:
    out: dict[str, str] = {"Name": name}
    for d in _entity_pages(h, name):
        for m in _FACT.finditer(h.opens.get(d, "")):
            out.setdefault(m.group(1).strip(), m.group(2).strip())
    return out


def _cell(v: str) -> str:
    return v.replace("|", "\\|")


def _table(columns: list[str], rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def single_agent_step(messages: Sequence[Message]) -> dict[str, Any] | str:
    """SCRIPTED BASELINE: the next action of the sequential single agent (also the sub-agent logic)."""
    registries, entities, columns = parse_request(_first_user(messages))
    if not columns:
        return "I cannot read the task: it lists no columns."
    h = _History(messages)
    if registries:
        calls, members = _resolve_registries(h, registries)
        if calls:
            return {"role": "assistant", "content": None, "tool_calls": calls}
        entities = members + [e for e in entities if e not in members]
    if columns == ["Name"]:  # a listing request: the registries are the answer, nothing to look up
        return _table(columns, [{"Name": n} for n in entities])
    for name in entities:  # one by one: search, then open its pages, then the next entity
        if name not in h.searches:
            return {"role": "assistant", "content": None, "tool_calls": [h.call(0, "search", query=name, k=5)]}
        pending = [d for d in _entity_pages(h, name) if d not in h.opens]
        if pending:
            return {"role": "assistant", "content": None,
                    "tool_calls": [h.call(i, "open", doc_id=d) for i, d in enumerate(pending)]}
    return _table(columns, [_facts(h, n) for n in entities])


def orchestrator_step(
    messages: Sequence[Message],
    *,
    entities_per_agent: int = 2,
    max_agents: int = 100,
    self_search: bool = True,
    subagent_prompt: str | None = None,
) -> dict[str, Any] | str:
    """SCRIPTED BASELINE: the next action of the scripted orchestrator.

    Args:
        messages: the conversation so far.
        entities_per_agent: entities per sub-agent (more sub-agents are used when the cap allows).
        max_agents: most sub-agents to launch, listing agents included (chunks grow when there are more
            entities).
        self_search: find the registries' members with its own search/open (False: listing sub-agents, for
            an orchestrator with only the swarm tools).
        subagent_prompt: the sub-agents' system prompt (default :data:`SUBAGENT_PROMPT`).
    """
    registries, entities, columns = parse_request(_first_user(messages))
    if not columns:
        return "I cannot read the task: it lists no columns."
    from ..judges.f1 import parse_markdown_table

    h = _History(messages)
    note = None
    if registries and self_search:
        members = _memory(messages)[1]  # noted at dispatch: the registry pages may be hidden by then
        if members is None:
            own, members = _resolve_registries(h, registries)
            if own:
                return {"role": "assistant", "content": None, "tool_calls": own}
            note = _MEMBERS + json.dumps(members)
        entities = members + [e for e in entities if e not in members]
        registries = []
    assigned = [c for c in h.calls if c.name == "assign_task" and isinstance(c.arguments, dict)]
    listing = [c for c in assigned if parse_request(str(c.arguments.get("prompt", "")))[0]]
    lookups = [c for c in assigned if c not in listing]
    created = any(c.name == "create_subagent" for c in h.calls)
    calls: list[dict[str, Any]] = []
    if not created:
        calls.append(h.call(0, "create_subagent", name="researcher", system_prompt=subagent_prompt or SUBAGENT_PROMPT))
    if registries and not listing:
        # stage 1: one sub-agent per registry lists its members (the orchestrator has no search tool)
        calls += [
            h.call(len(calls) + i, "assign_task", agent="researcher", prompt=task_prompt([r], ["Name"]))
            for i, r in enumerate(registries)
        ]
        return {"role": "assistant", "content": None, "tool_calls": calls}
    members: list[str] = []
    for c in listing:
        members += [r["Name"] for r in parse_markdown_table(h.results.get(c.id, "")) or [] if r.get("Name")]
    entities = members + [e for e in entities if e not in members]
    if not lookups and entities and columns != ["Name"]:
        # stage 2: the entities in chunks, all sub-agents in parallel
        n_agents = max(1, min(max_agents - len(listing), -(-len(entities) // max(1, entities_per_agent))))
        n = len(entities)  # near-equal chunks, exactly n_agents of them
        chunks = [entities[i * n // n_agents : (i + 1) * n // n_agents] for i in range(n_agents)]
        calls += [
            h.call(len(calls) + i, "assign_task", agent="researcher", prompt=subtask_prompt(chunk, columns))
            for i, chunk in enumerate(chunks)
        ]
        return {"role": "assistant", "content": note, "tool_calls": calls}
    rows: dict[str, dict[str, str]] = {n: {"Name": n} for n in entities}
    for c in lookups:
        for r in parse_markdown_table(h.results.get(c.id, "")) or []:
            if r.get("Name") in rows and len(rows[r["Name"]]) == 1:
                rows[r["Name"]] = r
    return _table(columns, [rows[n] for n in entities])


def fake_server_responder(*, entities_per_agent: int = 2, max_agents: int = 100) -> Any:
    """A responder for :class:`~swarmgym.testing.FakeOpenAIServer` that plays the scripted baselines:
    the orchestrator when the request offers ``create_subagent``, the single/sub-agent otherwise."""

    def respond(req: dict[str, Any]) -> Any:
        msgs = []
        for raw in req.get("messages", []):
            d = dict(raw)
            if d.get("tool_calls"):
                d["tool_calls"] = [ToolCall.from_openai(c) for c in d["tool_calls"]]
            msgs.append(Message.model_validate(d))
        tools = {t.get("function", {}).get("name") for t in req.get("tools") or ()}
        if "create_subagent" in tools:
            out = orchestrator_step(msgs, entities_per_agent=entities_per_agent, max_agents=max_agents,
                                    self_search="search" in tools)
        else:
            out = single_agent_step(msgs)
        if isinstance(out, dict):
            out = {**out, "tool_calls": [{**c, "arguments": json.dumps(c["arguments"])} for c in out["tool_calls"]]}
        return out

    return respond


# ---------------------------------------------------------------------------------------------- batched agent
#
# The best single agent we can script under a per-agent context window and a per-turn call cap. Steps count
# tool invocations, so batching saves turns (and context), not steps; what saves steps is opening only the
# pages a column needs (learned from the first entity's two pages). Facts are written down as NOTE lines in
# the agent's own messages the turn after they were read, so a context strategy may hide old tool results
# or condense the history (:func:`notes_summary`) without losing them.

_NOTE = "NOTE "
_MEMBERS = "MEMBERS "
_LAYOUT = "LAYOUT "
_STEPS = "STEPS "


def _memory(
    messages: Sequence[Message],
) -> tuple[dict[str, dict[str, str]], list[str] | None, dict[str, str], int]:
    """(noted rows by name, noted registry members or None, learned layout: column -> "profile"/"history",
    steps used) from NOTE/MEMBERS/LAYOUT/STEPS lines anywhere in the visible conversation (own messages or
    a summary)."""
    rows: dict[str, dict[str, str]] = {}
    members: list[str] | None = None
    layout: dict[str, str] = {}
    steps = 0
    for m in messages:
        if m.role not in ("assistant", "user"):
            continue
        for line in m.text.splitlines():
            try:
                if line.startswith(_NOTE):
                    row = json.loads(line[len(_NOTE):])
                    rows[row["Name"]] = row
                elif line.startswith(_MEMBERS):
                    members = list(json.loads(line[len(_MEMBERS):]))
                elif line.startswith(_LAYOUT):
                    layout.update(json.loads(line[len(_LAYOUT):]))
                elif line.startswith(_STEPS):
                    steps = max(steps, int(line[len(_STEPS):]))
            except (ValueError, KeyError, TypeError):
                continue
    return rows, members, layout, steps


def _page_facts(text: str) -> dict[str, str]:
    return {m.group(1).strip(): m.group(2).strip() for m in _FACT.finditer(text)}


def batched_agent_step(
    messages: Sequence[Message], *, calls_per_turn: int = 16, k: int = 5, max_steps: int | None = None
) -> dict[str, Any] | str:
    """SCRIPTED BASELINE: the next action of the batched single agent (also the batched sub-agent).

    Each turn it opens the pages of entities found the turn before and searches new ones, up to
    ``calls_per_turn`` calls; it writes the facts it read into NOTE lines; it answers from its notes. Given
    its step budget, it keeps count (a STEPS line) and answers with what it has before the budget runs out.

    Args:
        messages: the conversation as the agent sees it (a context strategy may have hidden or condensed
            parts of it).
        calls_per_turn: the per-turn call cap it plans for.
        k: results per search.
        max_steps: its step budget (tool invocations plus the answer turn), if it knows it.
    """
    registries, entities, columns = parse_request(_first_user(messages))
    if not columns:
        return "I cannot read the task: it lists no columns."
    h = _History(messages)
    rows, members, layout, used = _memory(messages)
    notes: list[str] = []
    budget = calls_per_turn if max_steps is None else min(calls_per_turn, max_steps - used - 1)  # 1: the answer
    if registries:
        if members is None:
            calls, found = _resolve_registries(h, registries)
            if calls and budget >= 1:  # the rest next turn
                calls = calls[:budget]
                return {"role": "assistant", "content": f"{_STEPS}{used + len(calls)}", "tool_calls": calls}
            if calls:
                return "I ran out of steps before I could read the registries."
            members = found
            notes.append(_MEMBERS + json.dumps(found))
        entities = members + [e for e in entities if e not in members]
    wanted = [c for c in columns if c != "Name"]
    if not wanted:  # a listing request
        return "\n".join(notes + [_table(columns, [{"Name": n} for n in entities])])
    # pages read and still visible, by their title: the search result that led to a page may already be
    # condensed away
    read = _read_pages(h)
    calls: list[dict[str, Any]] = []
    new_searches = 0
    for name in entities:
        if name in rows:
            continue
        titles = (name, f"{name} (history)")
        facts: dict[str, str] = {}
        for t in titles:
            if t in read:
                page = _page_facts(read[t])
                facts.update(page)
                kind = "history" if t.endswith("(history)") else "profile"
                learn = {c: kind for c in page if c in wanted and c not in layout}
                if learn:
                    layout.update(learn)
                    notes.append(_LAYOUT + json.dumps(learn))
        pages = [(d, t) for d, t in _hits(h.searches.get(name, "")) if t in titles]
        seen = {d for d, t in pages if t in read}
        if all(c in facts for c in wanted):
            row = {"Name": name, **{c: facts[c] for c in wanted}}
            rows[name] = row
            notes.append(_NOTE + json.dumps(row))
            continue
        if len(calls) >= budget:
            continue
        if pages:  # found: open the pages the missing columns need (both while the layout is unknown)
            missing = [c for c in wanted if c not in facts]
            kinds = {layout[c] for c in missing if c in layout}
            if any(c not in layout for c in missing):
                kinds = {"profile", "history"}
            todo = [d for d, t in pages if d not in seen
                    and ("history" if t.endswith("(history)") else "profile") in kinds]
            for d in todo[: max(0, budget - len(calls))]:
                calls.append(h.call(len(calls), "open", doc_id=d))
            if todo:
                continue
        # not searched yet, or its results were hidden before they were used: search (a third of the cap
        # per turn, so the next turn has room to open what these find)
        if new_searches < max(1, calls_per_turn // 3) and len(calls) < budget:
            calls.append(h.call(len(calls), "search", query=name, k=k))
            new_searches += 1
    if calls:
        notes.append(f"{_STEPS}{used + len(calls)}")
        return {"role": "assistant", "content": "\n".join(notes), "tool_calls": calls}
    table = _table(columns, [rows.get(n, {"Name": n}) for n in entities])
    return "\n".join(notes + [table]) if notes else table


def notes_summary(request: Sequence[Message]) -> str:
    """SCRIPTED summariser for :class:`~swarmgym.context.Summary`: keeps every NOTE/MEMBERS/LAYOUT line of the
    history it is given (the facts), drops the rest (the calls and pages already used)."""
    text = request[-1].text if request else ""
    keep = [line.split("] ", 1)[-1] if line.startswith("[") else line for line in text.splitlines()]
    steps = [line for line in keep if line.startswith(_STEPS)][-1:]  # only the latest count matters
    keep = [line for line in keep if line.startswith((_NOTE, _MEMBERS, _LAYOUT))] + steps
    return "\n".join(dict.fromkeys(keep)) or "(nothing noted yet)"
