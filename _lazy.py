"""Lazy re-exports for package ``__init__`` modules (PEP 562), so importing a package costs nothing.

Usage in a package's ``__init__.py``::

    __getattr__, __dir__ = lazy_exports(__name__, {"Name": ".module", ...})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str], eager: tuple[str, ...] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module ``__getattr__``/``__dir__`` that import ``names[attr]`` (relative to ``package``) on first
    access and cache the value in the package's namespace.

    Args:
        package: the package's ``__name__``.
        names: public name -> module path relative to the package (e.g. ``".base"``); ``".name"`` for the
            name itself means the subpackage ``name`` (not an attribute of it).
        eager: names the package defines or imports itself (listed by ``__dir__`` too).
    """
    public = sorted({*names, *eager})

    def __getattr__(name: str) -> Any:
        mod = names.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(mod, package)
        # ".name" maps a subpackage to itself (e.g. a callable subpackage like swarmgym.rollout)
        value = module if mod == "." + name else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return list(public)

    return __getattr__, __dir__
