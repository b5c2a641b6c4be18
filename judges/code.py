"""Code-test judge: run hidden unit tests against the model's code, in a sandbox, with timeouts.

Tests come from the task's metadata:

- ``tests``: a list of test snippets (``"assert add(1, 2) == 3"``), each run independently against the
  solution's namespace; or
- ``check``: ``{"code": test_module, "fn": "check", "entry_point": "add"}`` — a HumanEval-style module whose
  ``check(candidate)`` body is run statement by statement with ``candidate`` bound to the entry point, each
  statement containing an ``assert`` counting as one test (``assert True`` placeholders do not count);
- ``prefix`` (optional): code placed before the solution (HumanEval's prompt: imports and the signature).

Reward: the fraction of tests passed (``mode="fraction"``) or 1 only when all pass (``mode="all"``).

Where it runs: in ``ctx.sandbox`` when the episode has one (the harness is written there and run with
``sandbox.exec``); otherwise in a fresh ``python -I`` subprocess in a temporary directory with resource
limits, its own session (killed as a group on timeout) and a minimal environment — so the judge always
works, but only the sandbox isolates the host. See :mod:`swarmgym.judges._harness` for what the harness
defends against.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.lowlevel import RunVar

from ..wire import JudgeResult, Task, Trajectory
from ._harness import HARNESS
from .base import JudgeContext
from .extract import extract_code

__all__ = ["CodeTestJudge", "TestOutcome", "count_check_tests", "run_tests"]

MAX_OUTPUT_BYTES = 1 << 20  # kept from the subprocess's stdout (the tail: results come last)
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("swarmgym_code_judge_limiter")


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What the harness reported."""

    passed: tuple[bool, ...]
    total: int
    error: str | None = None
    timed_out: bool = False
    stderr: str = ""

    @property
    def n_passed(self) -> int:
        return sum(self.passed)

    @property
    def fraction(self) -> float:
        return self.n_passed / self.total if self.total else 0.0


def _limiter() -> anyio.CapacityLimiter:
    try:
        return _LIMITER.get()
    except LookupError:
        lim = anyio.CapacityLimiter(max(2, (os.cpu_count() or 2) * 2))
        _LIMITER.set(lim)
        return lim


def _parse(stdout: str, nonce: str) -> dict[str, Any] | None:
    last = None
    prefix = nonce + " "
    for line in stdout.splitlines():
        if line.startswith(prefix):
            last = line[len(prefix):]
    if last is None:
        return None
    try:
        d = json.loads(last)
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def _outcome(d: dict[str, Any] | None, total: int, timed_out: bool, stderr: str, note: str = "") -> TestOutcome:
    if d is None:
        err = note or ("timed out" if timed_out else "the test run produced no result (crashed or exited early)")
        return TestOutcome((), total, err, timed_out, stderr[-2000:])
    passed = tuple(bool(x) for x in d.get("passed", []))[:total]
    err = d.get("error")
    if timed_out and len(passed) < total:
        err = err or "timed out"
    return TestOutcome(passed, total, err, timed_out, stderr[-2000:])


async def _run_subprocess(script: str, payload: str, nonce: str, timeout: float, python: str,
                          flags: Sequence[str]) -> tuple[str, str, bool]:
    tmp = tempfile.mkdtemp(prefix="swarmgym-judge-")
    try:
        h = os.path.join(tmp, "harness.py")
        p = os.path.join(tmp, "payload.json")
        with open(h, "w", encoding="utf-8") as f:
            f.write(script)
        with open(p, "w", encoding="utf-8") as f:
            f.write(payload)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "SWARMGYM_RESULT_NONCE": nonce}
        proc = await anyio.open_process([python, *flags, h, p], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        out = bytearray()
        err = bytearray()
        timed_out = False

        async def drain(stream: Any, buf: bytearray) -> None:
            async for chunk in stream:
                buf += chunk
                if len(buf) > 2 * MAX_OUTPUT_BYTES:  # keep the tail: the last result line is what counts
                    del buf[: len(buf) - MAX_OUTPUT_BYTES]

        try:
            with anyio.move_on_after(timeout) as scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(drain, proc.stdout, out)
                    tg.start_soon(drain, proc.stderr, err)
                await proc.wait()
            if scope.cancelled_caught:
                timed_out = True
        finally:
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                with anyio.CancelScope(shield=True):
                    await proc.wait()
            else:  # the solution may have left children behind in its session
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            await proc.aclose()
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), timed_out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


async def _run_sandbox(sandbox: Any, script: str, payload: str, nonce: str, timeout: float, python: str,
                       flags: Sequence[str]) -> tuple[str, str, bool]:
    d = f".swarmgym-judge-{nonce[:12]}"
    await sandbox.write_file(f"{d}/harness.py", script)
    await sandbox.write_file(f"{d}/payload.json", payload)
    try:
        res = await sandbox.exec(f"cd {d} && {python} {' '.join(flags)} harness.py payload.json", timeout,
                                 env={"SWARMGYM_RESULT_NONCE": nonce})
    finally:
        try:
            await sandbox.exec(f"rm -rf {d}", 30)
        except Exception:  # cleanup is best effort; the pool resets the sandbox anyway
            pass
    return res.stdout, res.stderr, bool(getattr(res, "timed_out", False))


async def run_tests(
    solution: str,
    *,
    tests: Sequence[str] | None = None,
    check: Mapping[str, Any] | None = None,
    timeout_s: float = 30.0,
    per_test_timeout_s: float | None = 10.0,
    memory_mb: int = 1024,
    sandbox: Any = None,
    python: str | None = None,
    site_packages: bool = False,
) -> TestOutcome:
    """Run tests against ``solution`` and report what passed.

    Args:
        solution: the program (prefix + model code).
        tests: independent test snippets; or
        check: ``{"code", "fn", "entry_point"}`` for HumanEval-style tests.
        timeout_s: wall-clock limit for the whole run (solution + all tests).
        per_test_timeout_s: limit per test (and for executing the solution itself).
        memory_mb: address-space limit for the run (0 = none).
        sandbox: run there (``write_file`` + ``exec``) instead of a local subprocess.
        python: interpreter (default: ``sys.executable`` locally, ``python3`` in a sandbox).
        site_packages: let the solution import installed packages (``python -I``); by default only the
            standard library (``python -I -S``: more isolated, and 3x faster to start).
    """
    if (tests is None) == (check is None):
        raise ValueError("give exactly one of tests=[...] or check={...}")
    if check is not None and not isinstance(check.get("code"), str):
        raise ValueError("check needs 'code' (the test module source)")
    nonce = secrets.token_hex(16)
    payload = json.dumps({
        "solution": solution,
        "tests": list(tests) if tests is not None else None,
        "check": dict(check) if check is not None else None,
        "per_test_timeout": per_test_timeout_s or 0,
        "memory_mb": memory_mb,
        "cpu_s": int(timeout_s) + 1,
    })
    flags = ("-I",) if site_packages else ("-I", "-S")
    if sandbox is not None:
        stdout, stderr, timed_out = await _run_sandbox(sandbox, HARNESS, payload, nonce, timeout_s,
                                                       python or "python3", flags)
    else:
        async with _limiter():
            stdout, stderr, timed_out = await _run_subprocess(HARNESS, payload, nonce, timeout_s,
                                                              python or sys.executable, flags)
    d = _parse(stdout, nonce)
    # never trust a count the untrusted process could have written
    total = len(tests) if tests is not None else count_check_tests(check)  # type: ignore[arg-type]
    return _outcome(d, total, timed_out, stderr)


def count_check_tests(check: Mapping[str, Any]) -> int:
    """Number of tests in a HumanEval-style ``check`` function (statements containing a real assert)."""
    import ast

    try:
        tree = ast.parse(check["code"])
    except SyntaxError:
        return 1  # broken tests: one test that fails
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               and n.name == check.get("fn", "check")), None)
    if fn is None:
        return 1
    return sum(
        1 for stmt in fn.body
        if any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant) for n in ast.walk(stmt))
    )


def _pick_code(text: str, entry_point: str | None) -> str | None:
    if not entry_point:
        return extract_code(text)
    blocks = re.findall(r"```[\w+-]*[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    defining = [b for b in blocks if re.search(rf"^\s*(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(", b, re.MULTILINE)]
    if defining:
        return defining[-1]
    return extract_code(text)


class CodeTestJudge:
    """Runs the task's hidden tests against the code in the final answer.

    Args:
        mode: ``"fraction"`` (share of tests passed) or ``"all"`` (1 only if all pass).
        timeout_s: wall-clock limit per judged answer.
        per_test_timeout_s: limit per test.
        memory_mb: address-space limit of the test process.
        use_sandbox: run in ``ctx.sandbox`` when the episode has one (default True).
        python: interpreter override.
        site_packages: let solutions import installed packages (default: standard library only).

    Facets: ``tests`` (reward), ``pass_fraction``, ``all_passed``, ``timeout``, ``has_code``.
    """

    name = "tests"

    def __init__(self, *, mode: Literal["fraction", "all"] = "fraction", timeout_s: float = 30.0,
                 per_test_timeout_s: float | None = 10.0, memory_mb: int = 1024, use_sandbox: bool = True,
                 python: str | None = None, site_packages: bool = False, name: str | None = None) -> None:
        if mode not in ("fraction", "all"):
            raise ValueError(f"mode must be 'fraction' or 'all', got {mode!r}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.mode = mode
        self.timeout_s = timeout_s
        self.per_test_timeout_s = per_test_timeout_s
        self.memory_mb = memory_mb
        self.use_sandbox = use_sandbox
        self.python = python
        self.site_packages = site_packages
        if name:
            self.name = name

    def program(self, task: Task, text: str) -> str | None:
        """The program to test: ``metadata["prefix"]`` + the code in ``text`` (None when there is no code)."""
        check = task.metadata.get("check") or {}
        code = _pick_code(text, check.get("entry_point") if isinstance(check, Mapping) else None)
        if code is None or not code.strip():
            return None
        prefix = task.metadata.get("prefix") or ""
        return f"{prefix}\n{code}" if prefix else code

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        md = task.metadata
        tests, check = md.get("tests"), md.get("check")
        if tests is None and check is None:
            raise ValueError("task has no tests: set metadata['tests'] (list of snippets) or metadata['check']")
        if isinstance(tests, str):
            tests = [tests]
        prog = self.program(task, trajectory.final_text)
        if prog is None:
            return JudgeResult(reward=0.0, facets={self.name: 0.0, "pass_fraction": 0.0, "all_passed": 0.0,
                                                   "timeout": 0.0, "has_code": 0.0}, info={"error": "no code found"})
        sandbox = ctx.sandbox if self.use_sandbox else None
        res = await run_tests(prog, tests=tests, check=check, timeout_s=self.timeout_s,
                              per_test_timeout_s=self.per_test_timeout_s, memory_mb=self.memory_mb,
                              sandbox=sandbox, python=self.python, site_packages=self.site_packages)
        all_ok = float(res.total > 0 and res.n_passed == res.total)
        r = res.fraction if self.mode == "fraction" else all_ok
        info: dict[str, Any] = {"passed": res.n_passed, "total": res.total, "where": "sandbox" if sandbox else "subprocess"}
        if res.error:
            info["error"] = res.error[:1000]
        if res.stderr and not all_ok:
            info["stderr"] = res.stderr[-1000:]
        return JudgeResult(reward=r, facets={self.name: r, "pass_fraction": res.fraction, "all_passed": all_ok,
                                             "timeout": float(res.timed_out), "has_code": 1.0}, info=info)
