"""Baseline for ``benchmarks/code_judge.py``: the single-process code judge this project used before the
process boundary (commit 23f77fd), kept verbatim only to be measured against. Do not use it to judge:
its candidate shares a process with the result record and can forge it (see
``tests/judges/test_code_redteam.py``).
"""

# ruff: noqa
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
from anyio.lowlevel import RunVar

from swarmgym.judges.code import TestOutcome, count_check_tests

__all__ = ["run_tests_single_process"]

MAX_OUTPUT_BYTES = 1 << 20
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("swarmgym_old_code_judge_limiter")

HARNESS = r'''
import ast, builtins, json, os, signal, sys, traceback

def _main():
    nonce = os.environ.pop("SWARMGYM_RESULT_NONCE", "")
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        payload = json.load(f)
    os.unlink(path)
    try:
        import resource
        mem = int(payload.get("memory_mb") or 0)
        if mem > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mem << 20, mem << 20))
        cpu = int(payload.get("cpu_s") or 0)
        if cpu > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
    except Exception:
        pass
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    result = {"passed": [], "total": 0, "error": None}

    def emit():
        out.write(nonce + " " + json.dumps(result) + "\n")
        out.flush()

    class _Timeout(BaseException):
        pass

    def _alarm(signum, frame):
        raise _Timeout("test timed out")

    signal.signal(signal.SIGALRM, _alarm)
    per_test = float(payload.get("per_test_timeout") or 0)
    safe_builtins = dict(builtins.__dict__)

    def run(code, ns, label):
        if per_test > 0:
            signal.setitimer(signal.ITIMER_REAL, per_test)
        try:
            exec(compile(code, label, "exec"), ns)
            return None
        except _Timeout:
            return "timeout"
        except BaseException as e:
            return type(e).__name__ + ": " + str(e)[:300]
        finally:
            if per_test > 0:
                signal.setitimer(signal.ITIMER_REAL, 0)

    sol_ns = {"__name__": "__solution__", "__builtins__": builtins}
    tests = payload.get("tests")
    check = payload.get("check")
    # Which statements are tests is decided before the solution runs.
    plan = []
    if check:
        tree = ast.parse(check["code"])
        fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                   and n.name == check.get("fn", "check")), None)
        if fn is None:
            result["error"] = "harness: no function %r in the test code" % check.get("fn", "check")
            result["total"] = 1
            emit()
            return
        module = ast.Module(body=[n for n in tree.body if n is not fn], type_ignores=[])
        for stmt in fn.body:
            is_test = any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant)
                          for n in ast.walk(stmt))
            plan.append((ast.Module(body=[stmt], type_ignores=[]), is_test))
    else:
        module = None
        plan = [(t, True) for t in tests]
    result["total"] = sum(1 for _, t in plan if t)
    emit()

    err = run(payload["solution"], sol_ns, "<solution>")
    if err is not None:
        result["error"] = "solution: " + err
        emit()
        return
    test_ns = {k: v for k, v in sol_ns.items() if k != "__builtins__"}
    test_ns["__builtins__"] = safe_builtins
    test_ns["__name__"] = "__tests__"
    if module is not None:
        err = run(module, test_ns, "<tests>")
        if err is not None:
            result["error"] = "test setup: " + err
            emit()
            return
        ep = check.get("entry_point")
        if ep not in sol_ns:
            result["error"] = "solution does not define %r" % ep
            emit()
            return
        test_ns["candidate"] = sol_ns[ep]
    for i, (code, is_test) in enumerate(plan):
        err = run(code, test_ns, "<test %d>" % i)
        if is_test:
            result["passed"].append(err is None)
            if err is not None and result["error"] is None:
                result["error"] = "test %d: %s" % (i, err)
            emit()
        elif err is not None:
            result["error"] = "test setup %d: %s" % (i, err)
            emit()
            return

_main()
'''


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


async def run_tests_single_process(
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


