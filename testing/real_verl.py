"""Where ``.ci/install-verl.sh`` put verl 0.9.1 (its agent-loop module and only what importing it needs).

verl is kept out of the system python: its hydra needs antlr4-python3-runtime 4.9 while math-verify needs
4.13. Code that talks to verl's own classes runs in a subprocess with :func:`pythonpath` (this folder ahead of
site-packages). The folder is ``${SWARMGYM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/swarmgym}/verl``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .real_templates import cache_root

__all__ = ["verl_dir", "available", "pythonpath"]


def verl_dir() -> Path:
    """The ``pip install --target`` folder of .ci/install-verl.sh."""
    return cache_root() / "verl"


def available() -> bool:
    """Whether .ci/install-verl.sh completed (it writes a ``complete-*`` marker last)."""
    root = verl_dir()
    return root.is_dir() and any(root.glob("complete-*"))


def pythonpath() -> str:
    """A PYTHONPATH value with the verl folder first, then the caller's PYTHONPATH (if any)."""
    rest = os.environ.get("PYTHONPATH")
    return str(verl_dir()) + (os.pathsep + rest if rest else "")
