"""The viewer in a real browser: Debian's Chromium driven by Playwright, against the real server process and
the static ``--html`` file. Screenshots land in ``$SWARMGYM_ARTIFACTS/viewer-screenshots`` (CI artifacts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarmgym.cli import main
from swarmgym.rollout.store import read_trajectories
from swarmgym.testing.synthetic_run import write_synthetic_run

INJECT = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _ready(page: Any, route: str) -> None:
    page.wait_for_function("r => document.body.getAttribute('data-ready') === r", arg=route, timeout=30000)


def _goto(page: Any, url: str, route: str = "#/") -> None:
    page.goto(url.split("#")[0] + route)
    _ready(page, route)


def _wait_indexed(page: Any, url: str) -> None:
    page.goto(url + "api/meta")
    page.wait_for_function("async u => (await (await fetch(u)).json()).done", arg=url + "api/meta", timeout=60000)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("browser") / "run.jsonl"
    write_synthetic_run(p, 120, tree_every=10, inject=INJECT)
    return p


def _not_pwned(page: Any) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('script:not(#swarmgym-data)').length") == 1  # only the app
    assert page.evaluate("document.querySelectorAll('main img').length") == 0


def test_table_filter_and_paging(page: Any, viewer: Any, run: Path) -> None:
    v = viewer(run, "--no-follow")
    _wait_indexed(page, v.url)
    _goto(page, v.url)
    assert page.locator("#episodes tbody tr").count() == 50  # first page of 120
    want = sum(1 for t in read_trajectories(run) if t.parent_id is None and t.env_id == "swarmgym/ToolMath-v0"
               and t.status == "ok")
    page.select_option("select[name=env]", "swarmgym/ToolMath-v0")
    page.select_option("select[name=status]", "ok")
    page.click("#apply")
    page.wait_for_function("() => location.hash.includes('env=')")
    _ready(page, page.evaluate("location.hash"))
    assert page.locator("#episodes tbody tr").count() == want
    assert page.inner_text("#count").strip().startswith(f"{want} episodes")
    _goto(page, v.url, "#/?top=1&offset=100")
    assert page.locator("#episodes tbody tr").count() == 20


def test_trajectory_page_shows_tool_calls_and_script_stays_inert(page: Any, viewer: Any, run: Path) -> None:
    v = viewer(run, "--no-follow")
    _wait_indexed(page, v.url)
    _goto(page, v.url)
    _not_pwned(page)  # injected task ids and errors in the table
    page.click("#episodes tbody tr >> nth=0 >> td >> nth=1 >> a")  # episode 0 carries the injection
    page.wait_for_selector("#conversation")
    _ready(page, page.evaluate("location.hash"))
    t = next(read_trajectories(run, top_level_only=True))
    calls = sum(len(m.tool_calls or ()) for m in t.messages)
    assert page.locator(".toolcall").count() == calls == 1
    assert page.locator(".msg").count() == len(t.messages)
    assert "calculator" in page.inner_text(".toolcall")
    text = page.inner_text("#conversation")
    assert INJECT in text  # shown as the text the model wrote
    _not_pwned(page)


def test_tree_shows_every_child_of_a_real_swarm_run(page: Any, viewer: Any, tmp_path: Path) -> None:
    p = tmp_path / "swarm.jsonl"
    # a real run, in its own process (Playwright's sync API keeps an event loop running in this one)
    subprocess.run([sys.executable, "-P", "-m", "swarmgym.cli", "run", "swarmgym/WideSearch-Swarm-v0", "--policy",
                    "oracle", "-n", "1", "--out", str(p), "--no-live"], check=True, capture_output=True,
                   cwd=tmp_path, timeout=300)
    trajs = list(read_trajectories(p))
    root = next(t for t in trajs if t.parent_id is None)
    v = viewer(p, "--no-follow")
    _wait_indexed(page, v.url)
    _goto(page, v.url)
    page.click("#episodes tbody tr >> nth=0 >> td >> nth=12 >> a")
    page.wait_for_selector("#tree")
    _ready(page, page.evaluate("location.hash"))
    assert page.locator("#tree li").count() == len(trajs) == 1 + len(root.children)
    assert page.locator("#tree li.crit").count() >= 2  # the root and its longest child
    page.click("#tree li li >> nth=0 >> a")
    page.wait_for_selector("#conversation")
    main_text = page.inner_text("main")
    assert "subagent" in main_text
    assert "run limits (manifest)" in main_text and "max_depth" in main_text  # from the real run's manifest


def test_token_view_and_plots(page: Any, viewer: Any, run: Path) -> None:
    v = viewer(run, "--no-follow")
    _wait_indexed(page, v.url)
    _goto(page, v.url, "#/?top=1&judge=ok")  # trainable episodes: their sampled tokens carry the loss
    row = page.evaluate("[...document.querySelectorAll('#episodes a')].find(a => a.textContent === 'tokens')"
                        ".getAttribute('href')")
    _goto(page, v.url, row)
    n = page.locator("#tokstrip .tok").count()
    assert n > 0 and n == page.locator("#toktable tr").count() - 1
    assert 0 < page.locator("#tokstrip .tok.loss").count() < n
    _goto(page, v.url, "#/plots")
    page.wait_for_function("() => [...document.images].length === 5 && [...document.images].every(i => i.complete"
                           " && i.naturalWidth > 0)", timeout=60000)


def test_live_mode_follows_a_growing_file(page: Any, viewer: Any, tmp_path: Path) -> None:
    p = tmp_path / "live.jsonl"
    write_synthetic_run(p, 10, tree_every=0)
    v = viewer(p)  # follows by default
    _goto(page, v.url)
    page.wait_for_function("() => document.querySelector('#count').textContent.includes('10 episodes')")
    page.check("#live")
    write_synthetic_run(p, 15, tree_every=0, append=True, start=10)
    page.wait_for_function("() => document.querySelector('#count').textContent.includes('25 episodes')",
                           timeout=30000)
    assert page.locator("#episodes tbody tr").count() == 25


def test_static_html_file(page: Any, run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "view.html"
    assert main(["view", str(run), "--html", str(out), "--limit", "60"]) == 0
    assert "60 episodes" in capsys.readouterr().out
    _goto(page, out.as_uri())
    assert page.locator("#episodes tbody tr").count() == 50
    _not_pwned(page)
    want = sum(1 for t in list(read_trajectories(run, top_level_only=True))[:60] if t.env_id == "swarmgym/Math-v0")
    page.select_option("select[name=env]", "swarmgym/Math-v0")
    page.click("#apply")
    page.wait_for_function("() => location.hash.includes('env=')")
    _ready(page, page.evaluate("location.hash"))
    assert page.locator("#episodes tbody tr").count() == want
    _goto(page, out.as_uri())
    page.click("#episodes tbody tr >> nth=0 >> td >> nth=1 >> a")  # episode 0 carries the injection
    page.wait_for_selector("#conversation")
    assert INJECT in page.inner_text("#conversation")
    _not_pwned(page)
    _goto(page, out.as_uri(), "#/plots")
    assert page.locator("figure img").count() == 5
