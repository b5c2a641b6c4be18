"""SearchToolset: BM25 search and open over a local corpus."""

from __future__ import annotations

import pytest

from swarmgym.errors import ConfigError
from swarmgym.toolsets.base import ToolContext
from swarmgym.toolsets.search import SearchIndex, SearchToolset
from swarmgym.wire import ToolCall

pytestmark = pytest.mark.anyio

DOCS = [
    {"id": "paris", "title": "Paris", "text": "Paris is the capital and largest city of France."},
    {"id": "berlin", "title": "Berlin", "text": "Berlin is the capital of Germany, on the river Spree."},
    {"id": "rhine", "title": "Rhine", "text": "The Rhine flows through Switzerland, Germany and the Netherlands. " * 400},
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def call(ts, name, **args):
    return await ts.call(ToolCall(id="c", name=name, arguments=args), ToolContext())


async def test_search_ranks_and_open_reads():
    ts = SearchToolset(DOCS, max_open_chars=100)
    r = await call(ts, "search", query="capital of Germany", k=3)
    assert not r.is_error
    assert r.content.startswith("[1] id=berlin Berlin")
    assert "id=paris" in r.content and "id=rhine" in r.content
    r = await call(ts, "open", doc_id="paris")
    assert r.content == "# Paris\nParis is the capital and largest city of France."
    r = await call(ts, "open", doc_id="rhine")
    assert "more characters; pass offset=100" in r.content
    r = await call(ts, "open", doc_id="rhine", offset=100)
    assert not r.is_error and not r.content.startswith("#")


async def test_search_errors_are_observations():
    ts = SearchToolset(DOCS)
    assert "no documents match" in (await call(ts, "search", query="zzzzqqq")).content
    assert (await call(ts, "search", query="  ")).is_error
    r = await call(ts, "open", doc_id="rome")
    assert r.is_error and "no document with id 'rome'" in r.content
    assert (await call(ts, "open", doc_id="paris", offset=10_000)).is_error


async def test_index_is_shared_and_built_once():
    index = SearchIndex(["alpha beta", "beta gamma", "gamma delta"])
    a, b = SearchToolset(index), SearchToolset(index)
    assert not index.built
    await a.setup(ToolContext())
    assert index.built
    retr = index._retriever
    await b.setup(ToolContext())
    assert index._retriever is retr
    assert [h.doc.id for h in index.search("delta")] == ["2"]


def test_bad_corpus():
    with pytest.raises(ConfigError, match="empty"):
        SearchIndex([])
    with pytest.raises(ConfigError, match="duplicate document id 'a'"):
        SearchIndex([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}])
    with pytest.raises(ConfigError, match="has no 'text'"):
        SearchIndex([{"id": "a"}])
