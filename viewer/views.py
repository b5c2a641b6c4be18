"""What the pages show, as plain JSON-able data: an episode tree with its critical path, and the token view.

Both the live server and the static ``--html`` export call these, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from .index import RunIndex

__all__ = ["Tokenizer", "load_tokenizer", "token_view", "tree_view"]

MAX_TREE_NODES = 2000


def _length(d: dict[str, Any]) -> float:
    """A node's own length on the critical path: its own steps, else its turns (not ``critical_steps``,
    which already counts its children)."""
    m = d.get("metrics") or {}
    for k in ("steps", "turns"):
        v = m.get(k)
        if isinstance(v, (int, float)):
            return float(v)
    return float(sum(1 for x in d.get("messages") or () if x.get("role") == "assistant"))


def tree_view(index: RunIndex, row: int) -> dict[str, Any]:
    """The episode tree under ``row``: every descendant with its parent, and the critical path.

    The critical path follows, from the root, the child whose subtree is longest (children run concurrently,
    so the parent waits for the longest one); ties go to the child with the longer wall time.
    """
    nodes: list[dict[str, Any]] = []
    stack = [(row, None, 0)]
    truncated = False
    while stack:
        r, parent, depth = stack.pop()
        if len(nodes) >= MAX_TREE_NODES:
            truncated = True
            break
        d = index.read(r, small=True)  # metrics and ids only: never parse a child's whole conversation
        s = index.summary(r, d)
        s.update(parent=parent, depth=depth, length=_length(d), kids=[])
        nodes.append(s)
        for c in reversed(index.children(r)):
            stack.append((c, r, depth + 1))
    by_row = {n["row"]: n for n in nodes}
    for n in nodes:
        if n["parent"] is not None and n["parent"] in by_row:
            by_row[n["parent"]]["kids"].append(n["row"])

    best: dict[int, float] = {}  # longest chain of own lengths from a node down to a leaf

    def subtree(r: int) -> float:  # recursion depth is bounded by the run's max_depth
        n = by_row[r]
        best[r] = n["length"] + max((subtree(k) for k in n["kids"]), default=0.0)
        return best[r]

    subtree(row)
    path = [row]
    cur = row
    while by_row[cur]["kids"]:
        kids = by_row[cur]["kids"]
        cur = max(kids, key=lambda k: (best[k], by_row[k]["wall_s"] or 0.0))
        path.append(cur)
    on_path = set(path)
    for n in nodes:
        n["critical"] = n["row"] in on_path
    return {"root": row, "nodes": nodes, "critical_path": path, "truncated": truncated}


class Tokenizer:
    """Decodes token ids to text with a Hugging Face tokenizer (``tokenizer.json`` file or folder)."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok

    def piece(self, i: int) -> str:
        return str(self._tok.decode([i]))


def load_tokenizer(spec: str | None) -> Tokenizer | None:
    """A tokenizer from a ``tokenizer.json`` path or a local Hugging Face folder (None: ids only).

    Raises:
        ConfigError: the path does not hold a tokenizer, or the ``hf`` extra is missing.
    """
    if not spec:
        return None
    from pathlib import Path

    from ..errors import ConfigError

    p = Path(spec)
    try:
        if p.is_file():
            from tokenizers import Tokenizer as HFTokenizer

            return Tokenizer(HFTokenizer.from_file(str(p)))
        from transformers import AutoTokenizer

        return Tokenizer(AutoTokenizer.from_pretrained(str(p), local_files_only=True))
    except ImportError:
        raise ConfigError("decoding token ids needs the hf extra: pip install 'swarmgym[hf]'") from None
    except Exception as e:
        raise ConfigError(f"cannot load a tokenizer from {spec}: {e}") from None


def token_view(d: dict[str, Any], tokenizer: Tokenizer | None = None, *, limit: int = 20000) -> dict[str, Any]:
    """Per-token rows of a token-exact trajectory: id, text, loss mask, sampler logprob, policy version.

    Each turn contributes the prompt tokens new since the previous turn (mask 0, version -1) and then the
    sampled tokens (mask 1 when the trajectory is trainable). Turns whose prompt does not extend the
    previous ids are marked ``drift`` and start over from their full prompt.
    """
    trainable = bool(d.get("trainable", True))
    tokens: list[list[Any]] = []  # [id, text, mask, logprob, version, turn]
    turns: list[dict[str, Any]] = []
    prev: list[int] = []
    total = 0
    for t, c in enumerate(d.get("completions") or ()):
        pids, cids = c.get("prompt_ids"), c.get("completion_ids")
        if cids is None:
            turns.append({"turn": t, "note": "no token ids (text-mode server)"})
            continue
        lps = c.get("logprobs")
        note = ""
        if lps is not None and len(lps) != len(cids):
            note = f"{len(lps)} logprobs for {len(cids)} ids"
        pids = pids or []
        if pids[: len(prev)] == prev:
            new_prompt = pids[len(prev):]
        else:
            new_prompt = pids
            note = (note + "; " if note else "") + "drift: the prompt does not extend the previous ids"
        version = int(c.get("policy_version", 0))
        rows = [[i, None, 0, None, -1, t] for i in new_prompt]
        rows += [[i, None, 1 if trainable else 0, (lps[j] if lps is not None and j < len(lps) else None),
                  version, t] for j, i in enumerate(cids)]
        turns.append({"turn": t, "start": total + len(new_prompt), "end": total + len(rows), "version": version,
                      "exact": bool(c.get("token_exact")), "note": note})
        total += len(rows)
        if len(tokens) < limit:
            tokens += rows[: limit - len(tokens)]
        prev = list(pids) + list(cids)
    if tokenizer is not None:
        for r in tokens:
            r[1] = tokenizer.piece(r[0])
    return {"tokens": tokens, "turns": turns, "total": total, "shown": len(tokens), "trainable": trainable,
            "decoded": tokenizer is not None}
