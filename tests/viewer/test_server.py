"""The real `swarmgym view` process over HTTP: API answers agree with the store reader; bad input is a 4xx."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


from swarmgym.rollout.store import read_trajectories
from swarmgym.testing.synthetic_run import write_synthetic_run


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            return r.status, json.loads(body) if r.headers.get_content_type() == "application/json" else body
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_api_over_a_real_server(tmp_path: Path, viewer: Any) -> None:
    p = tmp_path / "run.jsonl"
    write_synthetic_run(p, 150, tree_every=10)
    v = viewer(p, "--no-follow")
    assert v.url.startswith("http://127.0.0.1:")
    for _ in range(300):
        status, meta = _get(v.url + "api/meta")
        if meta["done"]:
            break
    trajs = list(read_trajectories(p))
    assert meta["rows"] == len(trajs) and meta["top_level"] == 150
    status, page = _get(v.url + "api/episodes?env=swarmgym/Math-v0&sort=reward&desc=1&limit=500")
    want = [t for t in trajs if t.parent_id is None and t.env_id == "swarmgym/Math-v0"]
    assert status == 200 and page["total"] == len(want)
    assert [r["reward"] for r in page["rows"]] == sorted((t.reward for t in want), reverse=True)
    row = page["rows"][0]["row"]
    status, t = _get(v.url + f"api/traj/{row}")
    assert t["id"] == page["rows"][0]["id"]
    root = next(r for r in _get(v.url + "api/episodes?limit=20")[1]["rows"] if r["children"])
    status, tree = _get(v.url + f"api/tree/{root['row']}")
    assert len(tree["nodes"]) == 1 + sum(1 for t in trajs if t.id.startswith(root["id"] + "-"))
    status, page = _get(v.url + "api/episodes?rmin=abc")
    assert status == 400 and b"not a number" in page
    status, _ = _get(v.url + "api/traj/999999")
    assert status == 400
    status, _ = _get(v.url + "api/episodes", headers={"Host": "evil.example:80"})
    assert status == 403  # DNS rebinding: only the address it listens on
    status, html = _get(v.url)
    assert status == 200 and b"Content-Security-Policy" in html
    status, plots = _get(v.url + "api/plots")
    names = [x["name"] for x in plots["plots"]]
    assert names == ["reward_by_env", "reward_by_group", "pass_at_k", "episode_latency", "model_latency"]
    status, png = _get(v.url + plots["plots"][0]["src"])
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_token_pieces_come_from_a_real_tokenizer(tmp_path: Path, viewer: Any, require: Any) -> None:
    require("transformers", "decoding token ids needs the hf extra")
    from swarmgym.training.tiny import make_tiny_tokenizer

    tok = make_tiny_tokenizer("chatml_tools")
    tok.save_pretrained(tmp_path / "tok")
    p = tmp_path / "run.jsonl"
    write_synthetic_run(p, 10, tree_every=0, tokens_every=5)
    v = viewer(p, "--no-follow", "--tokenizer", str(tmp_path / "tok" / "tokenizer.json"))
    rows = _get(v.url + "api/episodes")[1]["rows"]
    row = next(r["row"] for r in rows if r["tokens"])
    view = _get(v.url + f"api/tokens/{row}")[1]
    assert view["decoded"] and view["tokens"]
    assert [t[1] for t in view["tokens"]] == [tok.decode([t[0]]) for t in view["tokens"]]


def test_missing_file_exits_with_a_clear_error(tmp_path: Path) -> None:
    from swarmgym.cli import main

    assert main(["view", str(tmp_path / "nope.jsonl")]) == 2
