"""The benchmark contract (benchmarks/_report.py): targets checked, JSON and exit code agree, CLI passes it on."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from swarmgym import cli

ROOT = cli._benchmarks_dir().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._report import Bench, Target  # noqa: E402

TARGETS = [
    Target("speed", ">=", 10.0, quick=5.0, quick_why="a short run is dominated by warm-up"),
    Target("leaks", "==", 0),
]


def _run(tmp_path: Path, argv: list[str], figures: dict, *, arm_error: bool = False, own_error: bool = False):
    bench = Bench("toy", "Toy benchmark.\n\nMore text.", TARGETS)
    out = tmp_path / "out.json"
    bench.parse_args([*argv, "--json", str(out)])

    def measure(res: dict) -> None:
        res.update(figures)
        with bench.arm("baseline"):
            if arm_error:
                raise RuntimeError("baseline crashed")
            res["baseline_s"] = 1.0
        if own_error:
            raise ValueError("bug in the benchmark")

    code = bench.run(measure, title="toy")
    return code, json.loads(out.read_text())


def test_all_met_exits_0_and_json_agrees(tmp_path: Path) -> None:
    code, js = _run(tmp_path, [], {"speed": 12.0, "leaks": 0})
    assert code == 0 == js["exit_code"]
    assert js["benchmark"] == "toy" and js["checked"] is True and js["quick"] is False and js["error"] is None
    assert js["results"] == {"speed": 12.0, "leaks": 0, "baseline_s": 1.0}
    assert js["targets"] == [
        {"name": "arm baseline", "goal": "runs", "value": "ok", "met": True},
        {"name": "speed", "goal": "≥ 10", "value": 12.0, "met": True},
        {"name": "leaks", "goal": "= 0", "value": 0, "met": True},
    ]


@pytest.mark.parametrize("figures", [{"speed": 9.99, "leaks": 0}, {"speed": 12.0, "leaks": 1}, {"leaks": 0}])
def test_a_missed_or_missing_target_exits_1(tmp_path: Path, figures: dict) -> None:
    code, js = _run(tmp_path, [], figures)
    assert code == 1 == js["exit_code"]
    assert [t["name"] for t in js["targets"] if not t["met"]] in (["speed"], ["leaks"])


def test_a_failed_arm_is_a_missed_target(tmp_path: Path) -> None:
    code, js = _run(tmp_path, [], {"speed": 12.0, "leaks": 0}, arm_error=True)
    assert code == 1 == js["exit_code"]
    arm = js["targets"][0]
    assert arm["name"] == "arm baseline" and arm["met"] is False and "baseline crashed" in arm["value"]
    assert "baseline_s" not in js["results"]


def test_own_error_exits_2_and_keeps_what_was_measured(tmp_path: Path) -> None:
    code, js = _run(tmp_path, [], {"speed": 12.0, "leaks": 0}, own_error=True)
    assert code == 2 == js["exit_code"]
    assert "bug in the benchmark" in js["error"] and js["results"]["speed"] == 12.0


def test_no_check_exits_0_but_reports_met_honestly(tmp_path: Path) -> None:
    code, js = _run(tmp_path, ["--no-check"], {"speed": 1.0, "leaks": 3}, arm_error=True)
    assert code == 0 == js["exit_code"] and js["checked"] is False
    assert not any(t["met"] for t in js["targets"])
    code, js = _run(tmp_path, ["--no-check"], {"speed": 12.0, "leaks": 0}, own_error=True)
    assert code == 2 == js["exit_code"]  # --no-check does not hide the benchmark's own error


def test_quick_relaxes_only_declared_targets_and_says_so(tmp_path: Path) -> None:
    code, js = _run(tmp_path, ["--quick"], {"speed": 6.0, "leaks": 0})
    assert code == 0 and js["quick"] is True
    speed = js["targets"][1]
    assert speed["met"] and speed["goal"].startswith("≥ 5 (quick mode; full run ≥ 10: a short run is dominated")
    code, js = _run(tmp_path, ["--quick"], {"speed": 6.0, "leaks": 1})
    assert code == 1  # the bound without a quick relaxation holds in quick mode too
    code, js = _run(tmp_path, ["--quick"], {"speed": 4.0, "leaks": 0})
    assert code == 1


def test_target_definition_errors() -> None:
    with pytest.raises(ValueError, match="quick_why"):
        Target("x", ">=", 1, quick=0.5)
    with pytest.raises(ValueError, match="op must be"):
        Target("x", ">", 1)
    assert Target("x", "<=", 1).check({"x": float("nan")}, quick=False)["met"] is False
    assert Target("x", "<=", 1).check({"x": "n/a"}, quick=False)["met"] is False


@pytest.mark.parametrize("code", [0, 1, 2])
def test_cli_passes_the_exit_code_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    bdir = tmp_path / "benchmarks"
    bdir.mkdir()
    (bdir / "toybench.py").write_text("")  # listed by name; the module itself is injected below
    seen: list[list[str]] = []
    mod = types.ModuleType("benchmarks.toybench")
    mod.main = lambda argv: seen.append(argv) or code  # type: ignore[attr-defined]
    monkeypatch.setattr(cli, "_benchmarks_dir", lambda: bdir)
    monkeypatch.setitem(sys.modules, "benchmarks.toybench", mod)
    assert cli.main(["bench", "toybench", "--quick", "--json", "x.json"]) == code
    assert seen == [["--quick", "--json", "x.json"]]


def test_cli_turns_an_escaping_exception_into_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    bdir = tmp_path / "benchmarks"
    bdir.mkdir()
    (bdir / "toybench.py").write_text("")
    mod = types.ModuleType("benchmarks.toybench")

    def main(argv):
        raise RuntimeError("boom")

    mod.main = main  # type: ignore[attr-defined]
    monkeypatch.setattr(cli, "_benchmarks_dir", lambda: bdir)
    monkeypatch.setitem(sys.modules, "benchmarks.toybench", mod)
    assert cli.main(["bench", "toybench"]) == 2
    assert "boom" in capsys.readouterr().err
    assert cli.main(["bench"]) == 0 and "toybench" in capsys.readouterr().out
