"""`swarmgym run --profile`: a real pyinstrument report of a real run, and the loop's slowest callbacks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

pytest.importorskip("pyinstrument")

from swarmgym.cli import main  # noqa: E402
from swarmgym.rollout.profile import RunProfiler  # noqa: E402


def test_run_profile_writes_call_tree_and_slow_callbacks(tmp_path: Path) -> None:
    out = tmp_path / "prof.txt"
    rc = main(["run", "swarmgym/ToolMath-v0", "--policy", "oracle", "-n", "400", "--no-live",
               "--out", str(tmp_path / "t.jsonl"), "--profile", str(out)])
    assert rc == 0
    text = out.read_text()
    # 400 episodes: enough 1 ms samples to see the manager and the loop even on a busy machine (20 were not:
    # a CI run recorded 23 samples and neither)
    assert "manager.py" in text and "run_episode" in text  # pyinstrument saw the manager and the loop
    section = text.split("Slowest event-loop callbacks (", 1)[1]
    assert int(section.split(" callbacks ran", 1)[0].replace(",", "")) > 20
    assert "ms  task " in section  # callbacks named by the task's coroutine
    assert (tmp_path / "prof.txt.html").stat().st_size > 1000


def test_a_blocking_callback_tops_the_list(tmp_path: Path) -> None:
    async def blocker() -> None:
        time.sleep(0.05)  # holds the loop: exactly what the list is for

    async def quick() -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    async def both() -> None:
        await asyncio.gather(quick(), blocker())

    with RunProfiler(tmp_path / "p.txt", top=3) as prof:
        asyncio.run(both())
    assert prof.callbacks > 50
    slow = (tmp_path / "p.txt").read_text().split("Slowest event-loop callbacks", 1)[1].splitlines()[1]
    assert "blocker" in slow and float(slow.split("ms")[0]) >= 50.0
    assert asyncio.events.Handle._run.__name__ == "_run" and "profile" not in asyncio.events.Handle._run.__module__
