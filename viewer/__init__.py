"""See a run: a web viewer (``swarmgym view``), static HTML export, run plots and ``swarmgym verify``.

Re-exports only, imported lazily (the CLI's parser imports :mod:`.cli` without loading numpy or aiohttp).
The viewer reads the store file through an index of line offsets (:mod:`.index`), never the whole file
into memory.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = ["Filters", "RunIndex", "VerifyReport", "verify_file", "write_html"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "Filters": ".index", "RunIndex": ".index", "VerifyReport": ".verify", "verify_file": ".verify",
    "write_html": ".export",
})
