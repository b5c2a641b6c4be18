"""See a run: a web viewer (``swarmgym view``), static HTML export, run plots and ``swarmgym verify``.

Re-exports only. The viewer reads the store file through an index of line offsets (:mod:`.index`), never
the whole file into memory.
"""

from __future__ import annotations

from .export import write_html
from .index import Filters, RunIndex
from .verify import VerifyReport, verify_file

__all__ = ["Filters", "RunIndex", "VerifyReport", "verify_file", "write_html"]
