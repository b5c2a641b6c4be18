"""``TrajectoryStore``: an append-only, crash-safe JSONL file of trajectories (optionally gzip-compressed).

Each line is one JSON object that carries a CRC-32 of its own payload::

    {"crc32":"1a2b3c4d","kind":"trajectory","data":{...the Trajectory...}}

so every line is plain JSON for ``jq`` and friends, and a damaged line is always detected: the payload is
checked byte for byte against the CRC, then parsed strictly. Kinds are ``manifest`` (one per session: env,
arguments, versions, seed) and ``trajectory`` (top-level and child episodes; children point up through
``parent_id``).

Writes are batched: :meth:`TrajectoryStore.append` buffers, :meth:`~TrajectoryStore.flush` writes the batch
with one ``write`` and ``fsync``\\s it. A crash (even ``kill -9``) can only tear the *last* batch; on
``resume=True`` the store keeps every complete, valid line, cuts the torn tail off the file, and
:meth:`~TrajectoryStore.done_keys` says which ``(task_id, sample_index)`` pairs are finished so a resumed run
skips them: nothing finished is lost and nothing is stored twice. A damaged line anywhere *before* the tail
is not a crash artefact; reading raises :class:`~swarmgym.errors.StoreError` naming the line.

Children are stored as soon as they end, their parent only when it ends; a run killed in between leaves
children whose parent was never stored (the resumed run runs that parent again, with new children). On
``resume=True`` such **orphans** are marked with one ``orphans`` record (their ids, and why), and
:func:`read_trajectories` leaves marked orphans out unless asked (:func:`orphan_ids` finds them in a file that
was never resumed); nothing is deleted from the append-only file.

With ``.gz`` paths (or ``compress=True``) each batch is one gzip member (concatenated members are a valid
gzip file: ``zcat`` reads it); a torn final member is cut the same way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..wire import Trajectory

__all__ = [
    "MemoryStore",
    "TrajectoryStore",
    "orphan_ids",
    "read_records",
    "read_trajectories",
    "store_manifest",
]

log = logging.getLogger(__name__)

_LINE = re.compile(rb'\{"crc32":"([0-9a-f]{8})","kind":"([a-z_]+)","data":(.*)\}\n', re.DOTALL)
_FINISHED = ("ok", "truncated", "error")


def _encode(kind: str, payload: bytes) -> bytes:
    return b'{"crc32":"%08x","kind":"%s","data":%s}\n' % (zlib.crc32(payload), kind.encode(), payload)


def _decode(line: bytes) -> tuple[str, Any]:
    """(kind, data) of one complete line; raises ValueError with the reason when it is damaged."""
    m = _LINE.fullmatch(line)
    if m is None:
        raise ValueError("not a store record (bad framing)")
    payload = m.group(3)
    if zlib.crc32(payload) != int(m.group(1), 16):
        raise ValueError("checksum mismatch")
    try:
        data = json.loads(payload)
    except ValueError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    return m.group(2).decode(), data


def _scan_plain(path: Path) -> Iterator[tuple[int, int, bytes | None]]:
    """(line number, end offset, line or None if the line is a torn tail) for each line of a plain file."""
    offset = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            offset += len(line)
            yield lineno, offset, line if line.endswith(b"\n") else None


def _scan_gzip(path: Path) -> Iterator[tuple[int, int, bytes | None]]:
    """Like :func:`_scan_plain` for a file of concatenated gzip members (one per batch).

    A line's end offset is the end of its member (a member is written whole or is the torn tail).
    """
    data = path.read_bytes()
    pos = 0
    lineno = 0
    while pos < len(data):
        d = zlib.decompressobj(wbits=31)
        try:
            out = d.decompress(data[pos:])
        except zlib.error as e:
            raise StoreError(f"{path}: gzip member at byte {pos} is corrupt ({e}); the file was damaged") from None
        if not d.eof:  # the last member was cut short by a crash
            yield lineno + 1, pos, None
            return
        end = len(data) - len(d.unused_data)
        lines = out.splitlines(keepends=True)
        for i, line in enumerate(lines):
            lineno += 1
            last = i == len(lines) - 1
            yield lineno, end if last else pos, line if line.endswith(b"\n") else None
        pos = end


def _scan(path: Path, compressed: bool) -> Iterator[tuple[int, int, bytes | None]]:
    return _scan_gzip(path) if compressed else _scan_plain(path)


def _is_compressed(path: Path, compress: bool | None) -> bool:
    return path.suffix == ".gz" if compress is None else compress


def read_records(
    path: str | os.PathLike[str], *, compress: bool | None = None, tolerate_tail: bool = True
) -> Iterator[tuple[str, Any]]:
    """Yield ``(kind, data)`` for every record of a store file, verifying each line.

    Args:
        path: the store file.
        compress: gzip or not (default: by the ``.gz`` suffix).
        tolerate_tail: skip a torn final line/batch (what a crash leaves) instead of raising.

    Raises:
        StoreError: a damaged line before the tail (or a torn tail with ``tolerate_tail=False``).
    """
    p = Path(path)
    if not p.exists():
        raise StoreError(f"no trajectory store at {p}")
    compressed = _is_compressed(p, compress)
    pending: tuple[int, bytes] | None = None  # the previous line: damage there is fatal only if more follows
    for lineno, _end, line in _scan(p, compressed):
        if pending is not None:
            n, prev = pending
            try:
                yield _decode(prev)
            except ValueError as e:
                if n == 1 and "framing" in str(e):  # not damage: a JSONL file some other program wrote
                    raise StoreError(
                        f"{p} is not a swarmgym trajectory store (line 1 is not a store record); stores are "
                        "what swarmgym run --out / TrajectoryStore write"
                    ) from None
                raise StoreError(f"{p}: line {n} is corrupt ({e}); the file was damaged after it was written") from None
            pending = None
        if line is None:
            if not tolerate_tail:
                raise StoreError(f"{p}: line {lineno} is incomplete (a crash cut the last write short)")
            return
        pending = (lineno, line)
    if pending is not None:
        n, prev = pending
        try:
            yield _decode(prev)
        except ValueError as e:
            if not tolerate_tail:
                raise StoreError(f"{p}: last line {n} is corrupt ({e})") from None
            log.warning("%s: ignoring damaged last line %d (%s)", p, n, e)


def orphan_ids(parents: dict[str, str | None]) -> set[str]:
    """Ids of trajectories whose parent (or an ancestor's parent) is not among ``parents``.

    Args:
        parents: trajectory id -> parent id (None for a top-level trajectory), for every stored trajectory.
    """
    status: dict[str, bool] = {}  # id -> reaches a stored top-level trajectory
    for tid in parents:
        chain: list[str] = []
        cur = tid
        while True:
            if cur in status:
                ok = status[cur]
                break
            if cur not in parents:  # a parent that was never stored
                ok = False
                break
            chain.append(cur)
            up = parents[cur]
            if up is None:
                ok = True
                break
            if len(chain) > len(parents):  # a cycle (cannot happen in a real store): not a tree
                ok = False
                break
            cur = up
        for c in chain:
            status[c] = ok
    return {t for t, ok in status.items() if not ok}


def _marked_orphans(path: Path, compressed: bool) -> set[str]:
    """Ids listed in the file's ``orphans`` records (only those lines are decoded)."""
    marked: set[str] = set()
    for _n, _end, line in _scan(path, compressed):
        if line is not None and b'"kind":"orphans"' in line[:40]:
            try:
                _, data = _decode(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                marked.update(data.get("ids", ()))
    return marked


def read_trajectories(
    path: str | os.PathLike[str], *, top_level_only: bool = False, include_orphans: bool = False
) -> Iterator[Trajectory]:
    """Yield the stored trajectories (children included unless ``top_level_only``; children marked as
    orphans on resume left out unless ``include_orphans``)."""
    p = Path(path)
    marked = set() if include_orphans or top_level_only or not p.exists() else _marked_orphans(
        p, _is_compressed(p, None))
    for n, (kind, data) in enumerate(read_records(path), 1):
        if kind != "trajectory":
            continue
        if not isinstance(data, dict):
            raise StoreError(f"{path}: record {n} is a trajectory record without a trajectory ({type(data).__name__})")
        if not top_level_only or data.get("parent_id") is None:
            if marked and data.get("id") in marked:
                continue
            try:
                yield Trajectory.model_validate(data)
            except ValueError as e:  # pydantic's ValidationError: an intact line that is not a Trajectory
                raise StoreError(f"{path}: record {n} is not a valid trajectory: {e}") from None


def store_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The manifests of a store file, one per session (the first is the original run)."""
    return [data for kind, data in read_records(path) if kind == "manifest"]


class TrajectoryStore:
    """Append-only, checksummed, fsynced JSONL store of trajectories (see the module docstring).

    Args:
        path: file to write (``.gz`` → gzip-compressed batches).
        resume: continue an existing file: verify it, cut a torn tail, and report finished pairs through
            :meth:`done_keys`.
        overwrite: replace an existing file.
        compress: force gzip on/off (default: by suffix).
        batch_size: :meth:`append` reports ``needs_flush`` after this many buffered records.
        fsync: fsync after every batch (turn off only for throwaway runs).

    Raises:
        StoreError: the file exists and neither ``resume`` nor ``overwrite`` was given, or it is corrupt.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> with TrajectoryStore(os.path.join(d, "run.jsonl")) as s:
        ...     s.append(Trajectory(task_id="t0"))
        >>> sorted(TrajectoryStore(os.path.join(d, "run.jsonl"), resume=True).done_keys())
        [('t0', 0)]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resume: bool = False,
        overwrite: bool = False,
        compress: bool | None = None,
        batch_size: int = 256,
        fsync: bool = True,
    ) -> None:
        self.path = Path(path)
        self.compressed = _is_compressed(self.path, compress)
        self.batch_size = max(1, int(batch_size))
        self.fsync = fsync
        self.resumed = False
        self.repaired_bytes = 0
        """Bytes of a torn tail cut off when the store was opened with ``resume=True``."""
        self.written = 0
        """Records written by this instance."""
        self.orphans_marked = 0
        """Children of never-stored parents found (and marked) when the store was resumed."""
        self._done: set[tuple[str, int]] = set()
        self._buf: list[bytes] = []
        self._alock: Any = None
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and not (resume or overwrite):
            raise StoreError(
                f"{self.path} already exists: resume it (resume=True / --resume) or choose another file "
                "(overwrite=True replaces it)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        parents: dict[str, str | None] = {}
        marked: set[str] = set()
        if exists and resume:
            self._recover(parents, marked)
            self.resumed = True
        mode = "ab" if resume else "wb"
        self._f = open(self.path, mode)  # noqa: SIM115  (closed by close())
        orphans = orphan_ids(parents) - marked if parents else set()
        if orphans:
            self.orphans_marked = len(orphans)
            log.warning("%s: %d child trajectories belong to parents that were never stored (an interrupted run);"
                        " marked as orphans", self.path, len(orphans))
            record = {"ids": sorted(orphans), "reason": "parent never stored: the run was interrupted before it ended"}
            self._buf.append(_encode("orphans", json.dumps(record, separators=(",", ":")).encode()))
            self.flush()

    def _recover(self, parents: dict[str, str | None], marked: set[str]) -> None:
        """Verify the file, collect finished keys and the tree links, and cut a torn tail off."""
        valid_end = 0
        pending: tuple[int, int, bytes] | None = None
        size = self.path.stat().st_size

        def take(n: int, end: int, line: bytes, is_last: bool) -> bool:
            try:
                kind, data = _decode(line)
            except ValueError as e:
                if is_last:
                    log.warning("%s: cutting damaged last line %d (%s)", self.path, n, e)
                    return False
                raise StoreError(
                    f"{self.path}: line {n} is corrupt ({e}); the file was damaged after it was written"
                ) from None
            if not isinstance(data, dict):  # an intact record of an unexpected shape: readers report it
                return True
            if kind == "trajectory":
                parent = data.get("parent_id")
                parents[data.get("id", "")] = parent
                if parent is None and data.get("status") in _FINISHED:
                    self._done.add((data.get("task_id", ""), int(data.get("sample_index", 0))))
            elif kind == "orphans":
                marked.update(data.get("ids", ()))
            return True

        for lineno, end, line in _scan(self.path, self.compressed):
            if pending is not None:
                if take(*pending, is_last=False):
                    valid_end = max(valid_end, pending[1])
                pending = None
            if line is None:
                break
            pending = (lineno, end, line)
        if pending is not None and take(*pending, is_last=True):
            valid_end = max(valid_end, pending[1])
        if valid_end < size:
            self.repaired_bytes = size - valid_end
            log.warning("%s: cut a torn tail of %d bytes left by an interrupted write", self.path, self.repaired_bytes)
            with open(self.path, "r+b") as f:
                f.truncate(valid_end)
                f.flush()
                os.fsync(f.fileno())

    # ------------------------------------------------------------------ writing

    def done_keys(self) -> set[tuple[str, int]]:
        """``(task_id, sample_index)`` of finished (not cancelled) top-level trajectories already stored."""
        return set(self._done)

    @property
    def pending(self) -> int:
        """Records buffered but not yet written."""
        return len(self._buf)

    @property
    def needs_flush(self) -> bool:
        return len(self._buf) >= self.batch_size

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Buffer a manifest record (env, arguments, versions, seed) for this session."""
        self._buf.append(_encode("manifest", json.dumps(manifest, default=str, separators=(",", ":")).encode()))

    def append(self, traj: Trajectory) -> None:
        """Buffer one trajectory (serialised now, so the caller may drop it)."""
        self._buf.append(_encode("trajectory", traj.model_dump_json().encode()))
        if traj.parent_id is None and traj.status in _FINISHED:
            self._done.add((traj.task_id, traj.sample_index))

    def _write(self, lines: list[bytes]) -> None:
        data = b"".join(lines)
        if self.compressed:
            import gzip

            data = gzip.compress(data, compresslevel=6, mtime=0)
        try:
            self._f.write(data)
            self._f.flush()
            if self.fsync:
                os.fsync(self._f.fileno())
        except OSError as e:
            raise StoreError(
                f"cannot write the trajectory store {self.path}: {e.strerror or e} (free disk space?)"
            ) from e
        self.written += len(lines)

    def flush(self) -> None:
        """Write and fsync the buffered records (blocking)."""
        if self._buf:
            lines, self._buf = self._buf, []
            self._write(lines)

    async def aflush(self) -> None:
        """Write and fsync the buffered records in a worker thread (batches keep their order)."""
        import anyio

        if self._alock is None:
            self._alock = anyio.Lock()
        async with self._alock:
            if self._buf:
                lines, self._buf = self._buf, []
                await anyio.to_thread.run_sync(self._write, lines)

    def close(self) -> None:
        """Flush and close (idempotent)."""
        if not self._f.closed:
            try:
                self.flush()
            finally:
                self._f.close()

    def __enter__(self) -> TrajectoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Trajectory]:
        """Read back every stored trajectory (flushes first)."""
        self.flush()
        return read_trajectories(self.path)

    def __reduce__(self) -> Any:
        # An open file is not picklable: a pickled store re-opens the same file for appending elsewhere.
        self.flush()
        return (_reopen, (str(self.path), self.compressed, self.batch_size, self.fsync))


def _reopen(path: str, compress: bool, batch_size: int, fsync: bool) -> TrajectoryStore:
    return TrajectoryStore(path, resume=True, compress=compress, batch_size=batch_size, fsync=fsync)


class MemoryStore:
    """An in-memory store with the same interface (tests, notebooks); ``trajectories`` keeps everything."""

    def __init__(self) -> None:
        self.trajectories: list[Trajectory] = []
        self.manifests: list[dict[str, Any]] = []
        self._done: set[tuple[str, int]] = set()
        self.batch_size = 1 << 30

    def done_keys(self) -> set[tuple[str, int]]:
        return set(self._done)

    pending = 0
    needs_flush = False

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        self.manifests.append(manifest)

    def append(self, traj: Trajectory) -> None:
        self.trajectories.append(traj)
        if traj.parent_id is None and traj.status in _FINISHED:
            self._done.add((traj.task_id, traj.sample_index))

    def flush(self) -> None:
        pass

    async def aflush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def children_of(self, traj_id: str) -> list[Trajectory]:
        """Stored children of one trajectory."""
        return [t for t in self.trajectories if t.parent_id == traj_id]
