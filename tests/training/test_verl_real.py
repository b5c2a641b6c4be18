"""The verl export against verl 0.9.1's own code: ``ToolAgentLoop`` (turn count, response cut, global steps)
and ``AgentLoopWorker``'s padding and batching. verl runs in a subprocess with the folder of
.ci/install-verl.sh first on PYTHONPATH (its hydra needs antlr 4.9; the system python keeps 4.13). Fails
instead of skipping with SWARMGYM_REQUIRE_REAL=1 when that folder is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from swarmgym.testing import real_verl
from swarmgym.training.tiny import make_tiny_tokenizer


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not real_verl.available():
        msg = f"verl not installed in {real_verl.verl_dir()}: run .ci/install-verl.sh"
        if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    script = Path(__file__).with_name("verl_check.py")
    env = {**os.environ, "PYTHONPATH": real_verl.pythonpath()}
    proc = subprocess.run(
        [sys.executable, "-P", str(script)], env=env, cwd="/", capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def _segments(ids: list[int], mask: list[int]) -> list[tuple[int, list[int]]]:
    out: list[tuple[int, list[int]]] = []
    for i, m in zip(ids, mask):
        if out and out[-1][0] == m:
            out[-1][1].append(i)
        else:
            out.append((m, [i]))
    return out


def test_verl_runs_with_its_own_antlr(report: dict[str, Any]) -> None:
    assert report["antlr4"].startswith(str(real_verl.verl_dir()))


def test_every_response_length_matches_tool_agent_loop(report: dict[str, Any]) -> None:
    full = report["verl_full"]
    # 3 generations, 2 tool rounds (the second with two parallel calls): verl counts 3 + 2 + 1
    assert full["num_turns"] == 6 and (full["min_global_steps"], full["max_global_steps"]) == (3, 5)
    cases = report["cases"]
    assert len(cases) == len(full["response_ids"]) + 1
    for case in cases:
        assert case["type"] == "verl.experimental.agent_loop.agent_loop.AgentLoopOutput"
        assert case["swarmgym"] == case["verl"], f"response_length={case['response_length']}"
    # the cases cover both of verl's stops: a generation cut at the limit, and a tool round dropped whole
    cut_at_limit = [c for c in cases if len(c["verl"]["response_ids"]) == c["response_length"]]
    dropped = [c for c in cases if len(c["verl"]["response_ids"]) < min(c["response_length"], len(full["response_ids"]))]
    assert cut_at_limit and dropped
    assert {c["verl"]["num_turns"] for c in cases} == {2, 4, 6}


def test_swarmgym_episode_has_verls_turns_prompt_and_sampled_ids(report: dict[str, Any]) -> None:
    own, full = report["own"], report["verl_full"]
    assert own["prompt_ids"] == full["prompt_ids"]
    assert (own["num_turns"], own["min_global_steps"], own["max_global_steps"]) == (6, 3, 5)
    ours, theirs = _segments(own["response_ids"], own["response_mask"]), _segments(full["response_ids"], full["response_mask"])
    assert [m for m, _ in ours] == [m for m, _ in theirs] == [1, 0, 1, 0, 1]
    tok = make_tiny_tokenizer("chatml_tools")
    for (m, a), (_, b) in zip(ours, theirs):
        if m == 1:
            assert a == b  # the sampled ids
        else:
            # verl's default token builder leaves out the "\n" the template writes after <|im_end|> (the model
            # never sampled it); swarmgym keeps the template's render. Otherwise the tool turns are the same.
            assert tok.decode(a) == "\n" + tok.decode(b)


def test_verl_pads_and_batches_the_exports(report: dict[str, Any]) -> None:
    batch, expected = report["batch_cut"], report["batch_cut_expected"]
    assert "error" not in batch, batch.get("error")
    assert batch["shapes"] == {"prompts": [2, 256], "responses": [2, 30], "response_mask": [2, 30], "input_ids": [2, 286]}
    for row, mrow, e in zip(batch["responses"], batch["response_mask"], expected):
        n = len(e["response_ids"])
        assert row[:n] == e["response_ids"] and mrow[:n] == e["response_mask"] and not any(mrow[n:])
    assert batch["rm_scores_at"] == [len(expected[0]["response_ids"]) - 1, -1]  # reward 1.0 and 0.0
    assert batch["num_turns"] == [e["num_turns"] for e in expected]
    assert batch["min_global_steps"] == [e["min_global_steps"] for e in expected]
    assert batch["max_global_steps"] == [e["max_global_steps"] for e in expected]
    # what the cut prevents: a response longer than response_length makes a row verl cannot batch
    assert report["uncut_response_len"] > 30
    assert "Sizes of tensors must match" in report["batch_uncut"]["error"]
