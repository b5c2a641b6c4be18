"""benchmarks/_readme.py: README tables come from the benchmarks' JSON, misses and failed arms included."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from swarmgym import cli

ROOT = cli._benchmarks_dir().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import _readme  # noqa: E402
from benchmarks._report import Bench, Target  # noqa: E402


def _bench_json(tmp_path: Path, name: str, figures: dict, argv: tuple[str, ...] = (), fail_arm: bool = False) -> Path:
    targets = [Target("speed", ">=", 10.0, what="calls per second"), Target("leaks", "==", 0, what="leaks")]
    bench = Bench(name, "Toy.", targets, describe={"extra_ms": "an extra figure, ms"})
    out = tmp_path / f"{name}.json"
    bench.parse_args([*argv, "--json", str(out)])

    def measure(res: dict) -> None:
        res.update(figures)
        with bench.arm("baseline"):
            if fail_arm:
                raise RuntimeError("baseline broke")

    bench.run(measure, title=f"{name} title")
    return out


def test_tables_show_values_goals_and_misses(tmp_path: Path) -> None:
    _bench_json(tmp_path, "overhead", {"speed": 12.5, "leaks": 0, "extra_ms": 3.25, "hidden": 1})
    _bench_json(tmp_path, "judges", {"speed": 4.0, "leaks": 0, "extra_ms": 1.0}, fail_arm=True)
    md = _readme.render(_readme.load([str(tmp_path)]))
    assert md.startswith(_readme.START) and md.endswith(_readme.END)
    overhead, judges = md.split("**judges title**")
    assert "**overhead title** — `swarmgym bench overhead`" in overhead  # README order: overhead first
    assert "| calls per second | 12.5 | ≥ 10 ✓ |" in overhead
    assert "| an extra figure, ms | 3.25 |  |" in overhead and "hidden" not in overhead
    assert "every target met" in overhead
    assert "| calls per second | 4 | ≥ 10 ✗ |" in judges
    assert "| arm baseline | failed: RuntimeError: baseline broke | runs ✗ |" in judges
    assert "targets missed: arm baseline, speed" in judges


def test_a_described_figure_not_measured_has_no_row_but_a_missing_target_does(tmp_path: Path) -> None:
    _bench_json(tmp_path, "overhead", {"leaks": 0})
    md = _readme.render(_readme.load([str(tmp_path)]))
    assert "an extra figure" not in md  # e.g. a section left out with --only
    assert "| calls per second | — | ≥ 10 ✗ |" in md


def test_quick_results_are_refused_unless_allowed(tmp_path: Path) -> None:
    _bench_json(tmp_path, "overhead", {"speed": 12.5, "leaks": 0}, argv=("--quick",))
    docs = _readme.load([str(tmp_path)])
    with pytest.raises(ValueError, match="quick-mode"):
        _readme.render(docs)
    assert "quick run (`--quick`)" in _readme.render(docs, allow_quick=True)


def test_write_replaces_only_the_marked_block(tmp_path: Path) -> None:
    js = _bench_json(tmp_path, "overhead", {"speed": 12.5, "leaks": 0})
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nintro\n\n{_readme.START}\nold table\n{_readme.END}\n\n## Next\n")
    assert _readme.main([str(js), "--write", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nintro\n\n") and text.endswith("\n\n## Next\n")
    assert "old table" not in text and "| calls per second | 12.5 | ≥ 10 ✓ |" in text
    readme.write_text("no markers here")
    assert _readme.main([str(js), "--write", str(readme)]) == 2


def test_old_flat_json_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "old.json").write_text(json.dumps({"import_s": 0.07}))
    with pytest.raises(ValueError, match="current contract"):
        _readme.render(_readme.load([str(tmp_path)]))
