"""Every third-party module the package imports is declared in pyproject.toml, checked against the installed
distributions' own metadata (``importlib.metadata.packages_distributions``), not against a list of ours.

A module-level import runs on ``import swarmgym.<module>``, so it must be a base dependency; an import inside
a function (a backend, a judge, an exporter) may come from an extra. An import guarded by
``except ImportError`` may be absent, but when it is installed here its distribution is declared too (or it
is listed below with the reason it is not). ``.ci/run`` adds the dynamic half: a venv with only the base
dependencies imports every module and runs the built-in envs.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOT_PACKAGE = {"tests", "benchmarks", ".ci", "build", "dist"}

# import name -> why its distribution is not declared (each one guarded by ``except ImportError``)
UNDECLARED = {
    "verl": "training/export_verl.py's optional AgentLoopOutput; verl is the user's trainer, never our dependency",
    "httpx": "mcp 1.x's HTTP client, imported only to hand headers to mcp's own transport (mcp brings it)",
    "httpx2": "mcp 2.x's HTTP client, same use as httpx (mcp brings it)",
    "_sha2": "the standard library's C sha256 (named _sha256 before Python 3.12)",
    "_sha256": "the standard library's C sha256 (named _sha2 from Python 3.12 on)",
}


# modules only something from an extra ever imports -> that extra (their module-level imports may come from it)
EXTRA_ONLY_MODULES = {
    "testing/pytest_plugin.py": "dev",
    "envs/agents/openai_tools_agent.py": "agents",  # a standalone example program (BlackBoxMath-v0's agent)  # loaded by pytest (addopts -p) for swarmgym's own test suite
}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str], dict[str, set[str]]]:
    """(base dependencies, every dependency including all extras, each extra's), as normalised names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs: list[str]) -> set[str]:
        return {_norm(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group(0)) for r in reqs}  # type: ignore[union-attr]

    base = names(project["dependencies"])
    per_extra = {k: names(v) for k, v in project.get("optional-dependencies", {}).items()}
    return base, base.union(*per_extra.values()), per_extra


def _third_party_imports() -> list[tuple[str, str, str]]:
    """``(top-level module, file, where)`` for each import of a non-stdlib, non-swarmgym module in the package;
    ``where`` is ``module`` (runs at import), ``function`` or ``guarded`` (inside ``try … except ImportError``
    or ``if TYPE_CHECKING``)."""
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in NOT_PACKAGE or rel.parts[0].startswith("."):
            continue

        def visit(node: ast.AST, where: str) -> None:
            for child in ast.iter_child_nodes(node):
                w = where
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and w == "module":
                    w = "function"
                if isinstance(child, ast.Try) and any(
                    h.type is not None and "ImportError" in ast.unparse(h.type) for h in child.handlers
                ):
                    w = "guarded"
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    w = "guarded"
                names: list[str] = []
                if isinstance(child, ast.Import):
                    names = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom) and not child.level and child.module:
                    names = [child.module]
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "swarmgym":
                        out.append((top, str(rel), w))
                visit(child, w)

        visit(ast.parse(path.read_text(), str(path)), "module")
    return out


def test_scanner_sees_imports_of_each_kind() -> None:
    found = {(m, w) for m, _, w in _third_party_imports()}
    # gymnasium is imported at module level, aiohttp inside functions, httpx2 behind except ImportError:
    # without these the checks below could not fail
    assert ("gymnasium", "module") in found and ("aiohttp", "function") in found and ("httpx2", "guarded") in found


def test_every_imported_distribution_is_declared() -> None:
    base, declared, per_extra = _declared()
    dists = packages_distributions()
    problems = []
    for module, file, where in _third_party_imports():
        if module in UNDECLARED:
            continue
        provided_by = {_norm(d) for d in dists.get(module, [])}
        if not provided_by:
            if where != "guarded":
                problems.append(f"{file}: imports {module}, which no installed distribution provides")
            continue
        allowed = base if where == "module" else declared
        if where == "module" and file in EXTRA_ONLY_MODULES:
            allowed = base | per_extra[EXTRA_ONLY_MODULES[file]]
        if not provided_by & allowed:
            kind = "base dependencies" if where == "module" else "dependencies or any extra"
            problems.append(f"{file}: imports {module} ({where}) from {sorted(provided_by)}, not in {kind}")
    assert problems == []


def test_undeclared_list_has_no_stale_entries() -> None:
    imported = {m for m, _, _ in _third_party_imports()}
    # (one of _sha2/_sha256 is a standard-library name on each Python, so the scanner skips it)
    assert sorted(set(UNDECLARED) - imported - set(sys.stdlib_module_names)) == []
