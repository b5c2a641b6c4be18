"""The README's custom-env example runs and does what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_custom_env_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    env = ns["env"]
    try:
        assert ns["reward"] == 1.0
        assert ns["terminated"] is True
        msgs = env.trajectory.messages
        tool_msgs = [m for m in msgs if m.role == "tool"]
        assert [m.content for m in tool_msgs] == [">"]  # compare(3, 1)
    finally:
        env.close()
        import gymnasium

        gymnasium.registry.pop("myorg/Sorting-v0", None)


def test_readme_has_two_setup_commands() -> None:
    text = README.read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    commands = [line for line in bash.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "swarmgym run" in commands[0] and "bash .ci/run" in commands[1]


def _ci_helpers():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("ci_helpers", README.parent / ".ci" / "helpers.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_ci_runs_the_readme_command_and_checks_what_it_wrote(tmp_path: Path) -> None:
    # .ci/run extracts the README's first command itself (so the two cannot drift) and counts what the
    # command's `swarmgym run` wrote, row by row, against its -n
    import subprocess
    import sys

    import pytest

    helpers = _ci_helpers()
    cmd = helpers.readme_command(str(README))
    assert cmd.startswith("pip install") and "swarmgym run" in cmd and " -n " in cmd and "--out" in cmd
    out = subprocess.run([sys.executable, "-m", "swarmgym", "run", "swarmgym/Math-v0", "--policy", "oracle", "-n", "3",
                          "--out", "t.jsonl", "--no-live"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "3 trajectories, all ok" in helpers.check_run("swarmgym run swarmgym/Math-v0 -n 3 --out t.jsonl", str(tmp_path))
    with pytest.raises(SystemExit, match="3 trajectories for -n 4"):
        helpers.check_run("swarmgym run swarmgym/Math-v0 -n 4 --out t.jsonl", str(tmp_path))
    with pytest.raises(SystemExit, match="wrote no"):
        helpers.check_run("swarmgym run swarmgym/Math-v0 -n 3 --out other.jsonl", str(tmp_path))


def test_ci_bench_gate_fails_on_any_missed_target_but_listed_timings(tmp_path: Path) -> None:
    """.ci/run's benchmark gate: a missed correctness target fails CI; a listed timing target is reported."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    listed = root / ".ci" / "bench-timing-targets.txt"
    entries = {ln.split("#", 1)[0].strip() for ln in listed.read_text().splitlines()} - {""}
    assert "gateway:added_latency_p50_ms" in entries and all(":" in e for e in entries)

    def gate(targets: list[dict]) -> subprocess.CompletedProcess:
        f = tmp_path / "b.json"
        f.write_text(json.dumps({"benchmark": "gateway", "targets": targets}))
        return subprocess.run([sys.executable, str(root / ".ci" / "helpers.py"), "bench-gate", str(f), str(listed)],
                              capture_output=True, text=True)

    timing = {"name": "added_latency_p50_ms", "goal": "<= 0.3", "value": 0.5, "met": False}
    wrong = {"name": "recorded_calls_missing", "goal": "== 0", "value": 2, "met": False}
    assert gate([timing]).returncode == 0
    r = gate([timing, wrong])
    assert r.returncode == 1 and "gateway:recorded_calls_missing" in r.stdout and "FAILS CI" in r.stdout
    assert gate([{**wrong, "met": True}]).returncode == 0
