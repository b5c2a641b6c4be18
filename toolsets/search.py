"""``SearchToolset``: ``search(query, k)`` and ``open(doc_id)`` over a local corpus, ranked by BM25.

The index (:class:`SearchIndex`, built with `bm25s <https://github.com/xhluca/bm25s>`_) is built once, on
first use, in a worker thread, and shared by every episode and every env that holds the same
``SearchIndex`` object (10k documents index in about a second here; a query costs well under a
millisecond). No sandbox is needed: the corpus lives in the host process and is only read.

Example:
    >>> ts = SearchToolset([{"id": "a", "title": "Paris", "text": "Paris is the capital of France."}])
    >>> [s.name for s in ts.specs()]
    ['search', 'open']
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from ..errors import ConfigError, ToolError
from .base import ToolContext, Toolset, tool

__all__ = ["SearchToolset", "SearchIndex", "Document", "SearchHit"]


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a corpus."""

    id: str
    text: str
    title: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ranked result."""

    doc: Document
    score: float


def _as_document(i: int, d: Any) -> Document:
    if isinstance(d, Document):
        return d
    if isinstance(d, str):
        return Document(id=str(i), text=d)
    if isinstance(d, Mapping):
        text = d.get("text", d.get("content", d.get("body")))
        if text is None:
            raise ConfigError(f"document {i} has no 'text' (or 'content'/'body') field: keys {sorted(d)}")
        return Document(
            id=str(d.get("id", d.get("doc_id", i))),
            text=str(text),
            title=str(d.get("title", "")),
            url=str(d.get("url", "")),
        )
    raise ConfigError(f"document {i} is a {type(d).__name__}; give a str, a dict with 'text', or a Document")


class SearchIndex:
    """A BM25 index over a list of documents; thread-safe, built once on first use.

    Args:
        docs: strings, dicts (``id``, ``text``, optional ``title``/``url``) or :class:`Document` objects.
        stopwords: language of the stopword list (``"en"``), or None to keep every token.
    """

    def __init__(self, docs: Iterable[Any], *, stopwords: str | None = "en") -> None:
        self.docs: list[Document] = [_as_document(i, d) for i, d in enumerate(docs)]
        if not self.docs:
            raise ConfigError("the search corpus is empty; give at least one document")
        self.by_id: dict[str, Document] = {}
        for d in self.docs:
            if d.id in self.by_id:
                raise ConfigError(f"duplicate document id {d.id!r} in the search corpus")
            self.by_id[d.id] = d
        self.stopwords = stopwords
        self._retriever: Any = None
        self._vocab: dict[str, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def built(self) -> bool:
        return self._retriever is not None

    def build(self) -> None:
        """Build the index now (idempotent; otherwise the first search builds it)."""
        if self._retriever is not None:
            return
        with self._lock:
            if self._retriever is not None:
                return
            import bm25s

            texts = [f"{d.title}\n{d.text}" if d.title else d.text for d in self.docs]
            tokens = bm25s.tokenize(texts, stopwords=self.stopwords, show_progress=False)
            retriever = bm25s.BM25()
            retriever.index(tokens, show_progress=False)
            self._vocab = dict(tokens.vocab)
            self._retriever = retriever

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        """The ``k`` best documents for ``query`` (only those sharing a term with it)."""
        self.build()
        import bm25s

        words = bm25s.tokenize([query], stopwords=self.stopwords, return_ids=False, show_progress=False)[0]
        words = [w for w in words if w in self._vocab]
        if not words:
            return []
        k = max(1, min(k, len(self.docs)))
        ids, scores = self._retriever.retrieve([words], k=k, show_progress=False, n_threads=1)
        return [
            SearchHit(self.docs[int(i)], float(s)) for i, s in zip(ids[0], scores[0]) if float(s) > 0.0
        ]


class SearchToolset(Toolset):
    """Tools ``search`` and ``open`` over a local corpus.

    Args:
        corpus: a :class:`SearchIndex` (share one between envs) or the documents to index.
        max_k: most results one search may return.
        snippet_chars: characters of each result shown by ``search``.
        max_open_chars: characters ``open`` shows at once (pass ``offset`` to read further).
    """

    def __init__(
        self,
        corpus: SearchIndex | Sequence[Any],
        *,
        max_k: int = 20,
        snippet_chars: int = 300,
        max_open_chars: int = 8000,
    ) -> None:
        super().__init__()
        self.index = corpus if isinstance(corpus, SearchIndex) else SearchIndex(corpus)
        self.max_k = max_k
        self.snippet_chars = snippet_chars
        self.max_open_chars = max_open_chars

    async def setup(self, ctx: ToolContext) -> None:
        if not self.index.built:  # build off the event loop; concurrent episodes wait on the same lock
            await anyio.to_thread.run_sync(self.index.build)

    @tool
    async def search(self, query: str, k: int = 5) -> str:
        """Search the document collection; returns the best matches with their ids and a snippet.

        Args:
            query: keywords to look for.
            k: how many results to return.
        """
        if not query.strip():
            raise ToolError("query is empty; give some keywords")
        if k < 1:
            raise ToolError(f"k must be at least 1, got {k}")
        k = min(k, self.max_k)
        if not self.index.built:
            await anyio.to_thread.run_sync(self.index.build)
        hits = self.index.search(query, k)
        if not hits:
            return f"no documents match {query!r}; try other keywords"
        out = []
        for n, h in enumerate(hits, 1):
            snippet = " ".join(h.doc.text.split())[: self.snippet_chars]
            title = f" {h.doc.title}" if h.doc.title else ""
            out.append(f"[{n}] id={h.doc.id}{title} (score {h.score:.2f})\n{snippet}")
        return "\n\n".join(out)

    @tool
    async def open(self, doc_id: str, offset: int = 0) -> str:
        """Open a document by its id (from search results) and read its text.

        Args:
            doc_id: the document id shown by search.
            offset: character offset to start reading from (for long documents).
        """
        doc = self.index.by_id.get(str(doc_id).strip())
        if doc is None:
            raise ToolError(f"no document with id {doc_id!r}; use an id= value from the search results")
        if offset < 0 or (offset and offset >= len(doc.text)):
            raise ToolError(f"offset {offset} is out of range: the document has {len(doc.text)} characters")
        chunk = doc.text[offset : offset + self.max_open_chars]
        head = f"# {doc.title}\n" if doc.title and offset == 0 else ""
        end = offset + len(chunk)
        more = f"\n[... {len(doc.text) - end} more characters; pass offset={end}]" if end < len(doc.text) else ""
        return head + chunk + more
