"""``RunIndex``: a columnar index over a trajectory store file, built in a background thread.

The viewer never loads the file. One pass records, per trajectory line, its byte offset and a handful of
fixed-width columns (reward, status, env, role, judge outcome, ids as 64-bit hashes, turns, wall time …) in
numpy arrays — about 80 bytes a trajectory whatever the trajectory's size — and a page reads its few lines
back with ``pread``. The index grows while the file grows (``swarmgym run`` still writing), so the first
page is served as soon as the first lines are indexed, not after the whole file was read.

A resumed run stores a cancelled episode again under the same ``(task_id, sample_index)``: the cancelled
row is then *superseded* (flag ``F_SUPERSEDED``, no longer counted as top-level), as ``swarmgym show`` does.

Rejected: SQLite (a second copy of the data on disk, slower to build than the scan itself) and keeping
parsed trajectories (memory proportional to the file). Columns are numpy arrays grown by doubling; a reader
takes views of the first ``n`` rows, which the writer never changes again but for the superseded flag (set
under the lock, with the query cache cleared), so queries need no copy and no lock held while they run.
"""

from __future__ import annotations

import os
import re
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ..errors import StoreError
from ..rollout.store import _LINE  # the store's own line framing: one definition of the format

__all__ = ["Filters", "RunIndex", "id_hash"]

STATUSES = ("ok", "truncated", "error", "cancelled")
JUDGE_OUTCOMES = ("ok", "error", "timeout")  # code = index; -1 = no judge
MAX_FACETS = 32  # facet columns kept for filtering (names beyond this are listed but not filterable)

F_TOP, F_TRAINABLE, F_ERROR, F_TOKENS, F_SUPERSEDED = 1, 2, 4, 8, 16
_CANCELLED = STATUSES.index("cancelled")

_COLUMNS: dict[str, Any] = {
    "off": np.int64, "ln": np.int64, "reward": np.float64, "status": np.int8, "env": np.int16,
    "role": np.int16, "judge": np.int8, "flags": np.uint8, "idh": np.int64, "parh": np.int64,
    "taskh": np.int64, "sample": np.int32, "turns": np.float32, "tool_calls": np.float32,
    "wall_s": np.float32, "model_s": np.float32, "nchildren": np.int32,
}
SORT_KEYS = ("row", "reward", "wall_s", "turns", "tool_calls", "nchildren", "status", "env")


def id_hash(s: str | None) -> int:
    """A 64-bit hash of an id (0 for None), valid within this process only (str hashing is salted per
    process; the index is never stored). Collisions among 1e6 ids: ~3e-8."""
    if s is None:
        return 0
    return hash(s) or 1


def _f(m: dict[str, Any], k: str) -> float:
    v = m.get(k, 0.0)
    return float(v) if isinstance(v, (int, float)) else 0.0


_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
_JUDGE_CODE: dict[Any, int] = {s: i for i, s in enumerate(JUDGE_OUTCOMES)}


@dataclass(frozen=True)
class Filters:
    """Episode-table filters (all optional; empty strings mean "any")."""

    env: str = ""
    task: str = ""
    status: str = ""
    role: str = ""
    rmin: float | None = None
    rmax: float | None = None
    facet: str = ""
    fmin: float | None = None
    fmax: float | None = None
    error: str = ""
    judge: str = ""
    top: bool = True
    """Top-level episodes only (children are reached through their tree)."""

    @classmethod
    def from_query(cls, q: Any) -> Filters:
        def num(k: str) -> float | None:
            v = (q.get(k) or "").strip()
            if not v:
                return None
            try:
                return float(v)
            except ValueError:
                raise ValueError(f"filter {k}={v!r} is not a number") from None

        return cls(
            env=q.get("env", ""), task=q.get("task", ""), status=q.get("status", ""), role=q.get("role", ""),
            rmin=num("rmin"), rmax=num("rmax"), facet=q.get("facet", ""), fmin=num("fmin"), fmax=num("fmax"),
            error=q.get("error", ""), judge=q.get("judge", ""), top=q.get("top", "1") not in ("0", "false", ""),
        )


def _fields(payload: bytes) -> dict[str, Any] | None:
    """The small fields of a trajectory without parsing its messages (most of the line), or None.

    ``Trajectory.model_dump_json`` writes fields in declaration order: scalars up to ``messages``, the bulk
    (messages, completions, tools), then ``reward`` … ``info``. Keys inside string values are escaped, so the
    first ``,"messages":`` is the real key. The last ``,"reward":`` is the real key unless ``info`` holds
    one in a nested object — and then the text after it has more closing than opening brackets, which is
    invalid JSON: a wrong cut can never parse, so whatever parses here is exact. Anything else (another
    field order, hand-written files) returns None and the caller parses the whole line.
    """
    i = payload.find(b',"messages":')
    j = payload.rfind(b',"reward":')
    if not 0 < i < j:
        return None
    try:
        head = orjson.loads(payload[:i] + b"}")
        tail = orjson.loads(b"{" + payload[j + 1:])
    except orjson.JSONDecodeError:
        return None
    if not (isinstance(head, dict) and isinstance(tail, dict) and "id" in head and "status" in tail):
        return None
    head.update(tail)
    return head


class _Codes:
    """Interns a small set of strings (env ids, roles) to integer codes."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._code: dict[str, int] = {}

    def code(self, s: str) -> int:
        c = self._code.get(s)
        if c is None:
            c = self._code[s] = len(self.names)
            self.names.append(s)
        return c

    def get(self, s: str) -> int:
        return self._code.get(s, -1)


class RunIndex:
    """Index a store file (see the module docstring) and answer the viewer's queries.

    Args:
        path: a plain (not gzip) store file written by ``TrajectoryStore``.
        follow: keep indexing what is appended after the end is reached (live mode).
        poll_s: how often to look for new data when following.

    Raises:
        StoreError: the file does not exist or is gzip-compressed (no random access: decompress it first).
    """

    def __init__(self, path: str | os.PathLike[str], *, follow: bool = False, poll_s: float = 0.5) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"no trajectory store at {self.path}")
        with open(self.path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                raise StoreError(
                    f"{self.path} is gzip-compressed; the viewer needs random access: "
                    f"zcat {self.path} > run.jsonl and view that"
                )
        self.follow = follow
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reset()

    # ------------------------------------------------------------------ building

    def _reset(self) -> None:
        self._cols = {k: np.zeros(1024, dtype=t) for k, t in _COLUMNS.items()}
        self._facets: dict[str, np.ndarray] = {}
        self.facet_names: list[str] = []
        self.n = 0
        self.n_top = 0
        self._max_top: int | None = None
        self.end = 0  # bytes indexed (always at a line boundary)
        self.lines = 0
        self.damaged: list[tuple[int, str]] = []  # (line number, reason), first 100
        self.n_damaged = 0
        self.manifests: list[dict[str, Any]] = []
        self.marked_orphans: set[str] = set()
        self._cancelled_top: dict[tuple[int, int], int] = {}  # (task hash, sample) -> row of a cancelled episode
        self.n_superseded = 0
        self.envs = _Codes()
        self.roles = _Codes()
        self.done = False
        self.generation = getattr(self, "generation", -1) + 1
        self._cache: OrderedDict[Any, np.ndarray] = OrderedDict()
        self.error: str | None = None

    def start(self) -> RunIndex:
        """Start indexing in a daemon thread (returns self)."""
        self._thread = threading.Thread(target=self._run, name="swarmgym-view-index", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def build(self, max_top: int | None = None) -> RunIndex:
        """Index the file in this thread (no following); with ``max_top``, stop once that many top-level
        episodes are indexed (their children come before them in the file, so their trees are complete)."""
        self._max_top = max_top
        self._scan_once()
        self.done = True
        return self

    def wait(self, rows: int | None = None, timeout: float = 60.0) -> bool:
        """Wait until ``rows`` rows are indexed (or the first pass is done when None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.done if rows is None else self.n >= rows) or self.error:
                return True
            time.sleep(0.01)
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._scan_once()
                self.done = True
                if not self.follow:
                    return
                self._stop.wait(self.poll_s)
        except Exception as e:  # shown by the page and the API, never a silent dead thread
            self.error = f"{type(e).__name__}: {e}"
            self.done = True

    def _scan_once(self, max_chunk: int = 8 << 20) -> None:
        # small reads first, so the first page has rows within milliseconds, then big ones for throughput
        chunk = 256 << 10
        size = self.path.stat().st_size
        if size < self.end:  # the file was cut (a resumed run trimmed it) or replaced: start over
            with self._lock:
                self._reset()
        with open(self.path, "rb") as f:
            f.seek(self.end)
            while not self._stop.is_set():
                buf = f.read(chunk)
                if not buf:
                    return
                cut = buf.rfind(b"\n") + 1
                if cut == 0:  # one line longer than the chunk, or a line still being written
                    more = f.readline()
                    buf += more
                    if not buf.endswith(b"\n"):
                        return  # an incomplete last line: wait for the writer
                    cut = len(buf)
                self._add_lines(buf[:cut], self.end)
                f.seek(self.end)
                chunk = min(max_chunk, chunk * 2)
                if self._max_top is not None and self.n_top >= self._max_top:
                    return

    def _add_lines(self, buf: bytes, base: int) -> None:
        rows: list[tuple[Any, ...]] = []
        facet_rows: list[tuple[int, str, float]] = []
        n0 = self.n
        off = base
        match, crc32, loads = _LINE.fullmatch, zlib.crc32, orjson.loads
        for line in buf.splitlines(keepends=True):
            self.lines += 1
            start, off = off, off + len(line)
            m = match(line)
            if m is None:
                self._damage("not a store record (bad framing)")
                continue
            payload = m.group(3)
            if crc32(payload) != int(m.group(1), 16):
                self._damage("checksum mismatch")
                continue
            kind = m.group(2)
            d = _fields(payload) if kind == b"trajectory" else None
            if d is None:
                try:
                    d = loads(payload)
                except orjson.JSONDecodeError as e:
                    self._damage(f"invalid JSON: {e}")
                    continue
            if kind != b"trajectory":
                if kind == b"manifest" and isinstance(d, dict):
                    self.manifests.append(d)
                elif kind == b"orphans" and isinstance(d, dict):
                    self.marked_orphans.update(d.get("ids") or ())
                continue
            if not isinstance(d, dict):
                self._damage("a trajectory record without a trajectory")
                continue
            rows.append(self._row(d, start, len(line), b'"completion_ids":[' in payload))
            judge = d.get("judge")
            if judge:
                for k, v in (judge.get("facets") or {}).items():
                    if isinstance(v, (int, float)):
                        facet_rows.append((n0 + len(rows) - 1, k, float(v)))
        with self._lock:
            self._append(rows, facet_rows)
            self.end = base + len(buf)

    def _damage(self, why: str) -> None:
        self.n_damaged += 1
        if len(self.damaged) < 100:
            self.damaged.append((self.lines, why))

    def _row(self, d: dict[str, Any], off: int, ln: int, tokens: bool) -> tuple[Any, ...]:
        m = d.get("metrics") or {}
        judge = d.get("judge")
        status = d.get("status", "ok")
        parent = d.get("parent_id")
        flags = (F_TOP if parent is None else 0) | (F_TRAINABLE if d.get("trainable", True) else 0)
        if d.get("error"):
            flags |= F_ERROR
        if tokens:
            flags |= F_TOKENS
        outcome = judge.get("outcome", "ok") if isinstance(judge, dict) else None
        reward = d.get("reward", 0.0)
        return (
            off, ln, float(reward) if isinstance(reward, (int, float)) else float("nan"),
            _STATUS_CODE.get(status, -1), self.envs.code(str(d.get("env_id", ""))),
            self.roles.code(str(d.get("role", "main"))), _JUDGE_CODE.get(outcome, -1), flags,
            id_hash(str(d.get("id", ""))), id_hash(parent), id_hash(str(d.get("task_id", ""))),
            int(d.get("sample_index", 0) or 0), _f(m, "turns"), _f(m, "tool_calls"), _f(m, "wall_s"),
            _f(m, "model_time_s"), len(d.get("children") or ()),
        )

    def _append(self, rows: list[tuple[Any, ...]], facet_rows: list[tuple[int, str, float]]) -> None:
        if not rows:
            return
        n, k = self.n, len(rows)
        cap = len(self._cols["off"])
        if n + k > cap:
            new = max(cap * 2, n + k)
            for name, a in list(self._cols.items()):
                b = np.zeros(new, dtype=a.dtype)
                b[:n] = a[:n]
                self._cols[name] = b  # readers holding the old array keep a valid view of rows < n
            for name, a in list(self._facets.items()):
                b = np.full(new, np.nan, dtype=np.float32)
                b[:n] = a[:n]
                self._facets[name] = b
        cols = list(zip(*rows))
        for (name, a), values in zip(self._cols.items(), cols):
            a[n:n + k] = values
        for r, name, v in facet_rows:
            if name not in self._facets:
                if name not in self.facet_names:
                    self.facet_names.append(name)
                if len(self._facets) >= MAX_FACETS:
                    continue
                self._facets[name] = np.full(len(self._cols["off"]), np.nan, dtype=np.float32)
            self._facets[name][r] = v
        self.n_top += int(np.count_nonzero(self._cols["flags"][n:n + k] & F_TOP))
        self.n = n + k
        self._supersede(n, k)
        self._cache.clear()

    def _supersede(self, n: int, k: int) -> None:
        """A top-level row for a (task, sample) whose last episode was cancelled: that one was run again."""
        flags, taskh, sample, status = (self._cols[c] for c in ("flags", "taskh", "sample", "status"))
        top = np.flatnonzero(flags[n:n + k] & F_TOP) + n
        if not self._cancelled_top and not np.any(status[top] == _CANCELLED):
            return  # nothing was cancelled (every run that was not interrupted): no per-row work
        for r in top:
            key = (int(taskh[r]), int(sample[r]))
            old = self._cancelled_top.pop(key, None)
            if old is not None:
                flags[old] = (int(flags[old]) & ~F_TOP) | F_SUPERSEDED
                self.n_top -= 1
                self.n_superseded += 1
            if status[r] == _CANCELLED:
                self._cancelled_top[key] = int(r)

    # ------------------------------------------------------------------ reading

    def col(self, name: str) -> np.ndarray:
        """A read-only view of one column's indexed rows."""
        with self._lock:
            return self._cols[name][: self.n]

    def meta(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path.exists() else 0
        return {
            "path": str(self.path), "size": size, "indexed_bytes": self.end, "rows": self.n,
            "top_level": self.n_top, "superseded": self.n_superseded, "done": self.done,
            "follow": self.follow, "damaged": self.n_damaged, "damaged_lines": self.damaged[:20],
            "envs": list(self.envs.names), "roles": list(self.roles.names), "statuses": list(STATUSES),
            "facets": list(self.facet_names), "sort_keys": list(SORT_KEYS), "error": self.error,
            "manifest": self.manifests[0] if self.manifests else None, "generation": self.generation,
        }

    def read(self, row: int, *, small: bool = False) -> dict[str, Any]:
        """The trajectory at ``row``, parsed (raises IndexError for a row not indexed); ``small``: only its
        small fields when the fast path applies (a table row never parses a long conversation)."""
        if not 0 <= row < self.n:
            raise IndexError(f"no row {row}: {self.n} trajectories indexed")
        off, ln = int(self._cols["off"][row]), int(self._cols["ln"][row])
        fd = os.open(self.path, os.O_RDONLY)
        try:
            line = os.pread(fd, ln, off)
        finally:
            os.close(fd)
        m = _LINE.fullmatch(line)
        if m is None:  # the file changed under us (rewritten): say so rather than show another line
            raise StoreError(f"{self.path} changed since it was indexed (row {row}); reload the viewer")
        return (small and _fields(m.group(3))) or orjson.loads(m.group(3))

    def summary(self, row: int, d: dict[str, Any] | None = None) -> dict[str, Any]:
        """The table row of one trajectory (ids from the line, figures from the columns)."""
        d = self.read(row, small=True) if d is None else d
        c = self._cols
        judge = d.get("judge") or {}
        return {
            "row": row, "id": d.get("id", ""), "task_id": d.get("task_id", ""), "sample": int(c["sample"][row]),
            "env": d.get("env_id", ""), "role": d.get("role", ""), "status": d.get("status", ""),
            "reward": _num(c["reward"][row]), "judge": judge.get("outcome") if judge else None,
            "facets": judge.get("facets", {}) if judge else {}, "error": (d.get("error") or "")[:200],
            "turns": _num(c["turns"][row]), "tool_calls": _num(c["tool_calls"][row]),
            "wall_s": _num(c["wall_s"][row]), "children": int(c["nchildren"][row]),
            "trainable": bool(c["flags"][row] & F_TRAINABLE), "tokens": bool(c["flags"][row] & F_TOKENS),
            "superseded": bool(c["flags"][row] & F_SUPERSEDED),
            "parent_id": d.get("parent_id"), "group_id": d.get("group_id"),
        }

    def query(self, f: Filters, sort: str = "row", desc: bool = False) -> np.ndarray:
        """Row numbers matching ``f``, in ``sort`` order (cached per filter, sort and index size)."""
        if sort not in SORT_KEYS:
            raise ValueError(f"unknown sort key {sort!r}; one of {', '.join(SORT_KEYS)}")
        key = (f, sort, desc, self.n, self.generation)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        with self._lock:
            n = self.n
            c = {k: v[:n] for k, v in self._cols.items()}
            facets = {k: v[:n] for k, v in self._facets.items()}
        mask = np.ones(n, dtype=bool)
        if f.top:
            mask &= (c["flags"] & F_TOP) != 0
        if f.env:
            mask &= c["env"] == self.envs.get(f.env)
        if f.role:
            mask &= c["role"] == self.roles.get(f.role)
        if f.status:
            mask &= c["status"] == (STATUSES.index(f.status) if f.status in STATUSES else -2)
        if f.judge:
            mask &= c["judge"] == (JUDGE_OUTCOMES.index(f.judge) if f.judge in JUDGE_OUTCOMES else -1)
        if f.rmin is not None:
            mask &= c["reward"] >= f.rmin
        if f.rmax is not None:
            mask &= c["reward"] <= f.rmax
        if f.facet:
            col = facets.get(f.facet)
            if col is None:
                mask[:] = False
            else:
                mask &= ~np.isnan(col)
                if f.fmin is not None:
                    mask &= col >= f.fmin
                if f.fmax is not None:
                    mask &= col <= f.fmax
        if f.task:
            exact = c["taskh"] == id_hash(f.task)
            mask &= exact if exact.any() else self._task_substring(f.task, n)
        if f.error:
            mask &= (c["flags"] & F_ERROR) != 0
            needle = f.error.lower()
            for r in np.flatnonzero(mask):
                if needle not in (self.read(int(r), small=True).get("error") or "").lower():
                    mask[r] = False
        rows = np.flatnonzero(mask)
        if sort != "row":
            keys = c[sort][rows]
            if sort == "env":  # codes are in first-seen order: sort by name
                keys = np.argsort(np.argsort(np.array(self.envs.names, dtype=object)))[keys]
            order = np.argsort(-keys if desc and keys.dtype.kind == "f" else keys, kind="stable")
            if desc and keys.dtype.kind != "f":
                order = order[::-1]
            rows = rows[order]
        elif desc:
            rows = rows[::-1]
        self._cache[key] = rows
        while len(self._cache) > 16:
            self._cache.popitem(last=False)
        return rows

    def _task_substring(self, text: str, n: int, chunk: int = 32 << 20) -> np.ndarray:
        """Rows whose task id contains ``text``: a regex pass over the raw file in line-aligned chunks (no
        parse, and memory bounded by the chunk; mapping the whole file would count it all as resident)."""
        needle = orjson.dumps(text)[1:-1]  # as the text appears inside a JSON string
        pat = re.compile(rb'"task_id":"(?:[^"\\]|\\.)*?' + re.escape(needle))
        out = np.zeros(n, dtype=bool)
        if n == 0:
            return out
        off = self.col("off")[:n]
        end = int(off[-1] + self._cols["ln"][n - 1])
        with open(self.path, "rb") as fh:
            base = 0
            while base < end:
                buf = fh.read(min(chunk, end - base))
                if not buf:
                    break
                cut = buf.rfind(b"\n") + 1 or len(buf)
                for m in pat.finditer(buf, 0, cut):
                    r = int(np.searchsorted(off, base + m.start(), side="right")) - 1
                    if r >= 0:
                        out[r] = True
                base += cut
                fh.seek(base)
        return out

    def find(self, traj_id: str) -> int | None:
        """Row of the trajectory with this id (None if not indexed)."""
        hits = np.flatnonzero(self.col("idh") == id_hash(traj_id))
        return int(hits[0]) if len(hits) else None

    def children(self, row: int) -> list[int]:
        """Rows whose parent is the trajectory at ``row`` (in file order)."""
        n = self.n
        key = ("children", n, self.generation)
        hit = self._cache.get(key)
        if hit is None:  # rows sorted by parent hash, built once per index size: a lookup is a bisection
            order = np.argsort(self.col("parh")[:n], kind="stable")
            hit = self._cache[key] = (order, self._cols["parh"][:n][order])
        order, parh = hit
        h = self._cols["idh"][row]
        lo, hi = np.searchsorted(parh, h, side="left"), np.searchsorted(parh, h, side="right")
        return sorted(int(r) for r in order[lo:hi])


def _num(v: Any) -> float | None:
    v = float(v)
    return None if v != v else round(v, 6)
