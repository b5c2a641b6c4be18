"""The viewer package's public names, and the CLI staying light."""

from __future__ import annotations

import subprocess
import sys

import swarmgym.viewer as viewer


def test_all_is_exactly_the_public_names() -> None:
    assert sorted(viewer.__all__) == sorted(n for n in dir(viewer) if not n.startswith("_"))
    for name in viewer.__all__:
        assert getattr(viewer, name).__module__.startswith("swarmgym.viewer.")


def test_cli_parser_does_not_load_the_viewer() -> None:
    # `swarmgym --help` builds the parser: the viewer's server, index and plots must not load for it
    code = ("import sys, swarmgym.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('matplotlib', 'swarmgym.viewer.server', 'swarmgym.viewer.index', "
            "'swarmgym.viewer.verify') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
