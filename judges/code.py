"""Code-test judge: run hidden unit tests against the model's code, with the tests on the trusted side.

Tests come from the task's metadata:

- ``tests``: a list of test snippets (``"assert add(1, 2) == 3"``), each one test; or
- ``check``: ``{"code": test_module, "fn": "check", "entry_point": "add"}`` — a HumanEval-style module whose
  ``check(candidate)`` body is run statement by statement with ``candidate`` bound to the entry point, each
  statement containing an ``assert`` counting as one test (``assert True`` placeholders do not count);
- ``prefix`` (optional): code placed before the solution (HumanEval's prompt: imports and the signature).

Reward: the fraction of tests passed (``mode="fraction"``) or 1 only when all pass (``mode="all"``).

Design: results cross a process boundary as plain data
-------------------------------------------------------
The candidate's code runs in its own *candidate process*; the tests, the comparisons and the result record
live in the judge's process and never enter the candidate's. Each test statement runs here, in a worker
thread, with ``candidate`` (and any other name the tests use that only the solution defines) bound to a
*remote function*: calling it sends the arguments as plain data to the candidate process, which calls the
solution's function and sends the return value back as plain data (:mod:`swarmgym.judges._harness`). The
reply is decoded into fresh objects of the plain types only, then the test's ``assert`` compares them here.

So nothing the candidate does can reach the verdict: walking the stack (``sys._getframe``, ``inspect``)
finds only the candidate's own frames; patching ``builtins``, ``assert`` or the harness's module changes the
candidate process only; ``os._exit(0)``, ``sys.exit(0)``, ``atexit`` hooks and signal handlers end or
delay the candidate process, which fails the tests still to run; printed "results" go to a captured stderr
nobody parses; an object whose ``__eq__`` is always true (or an ``int``/``str`` subclass) cannot be encoded
and fails the test; the tests are never written to a file or sent to the candidate, so there is nothing
to read from disk or memory. The worst a hostile candidate can do is lie about its own return values,
which is what the tests check. A call that raises in the candidate raises the same built-in exception
type here (tests may expect ``ValueError``); a timeout, a crash or a non-plain result raises
:class:`CandidateFailed`, a ``BaseException`` a test's ``except Exception`` cannot swallow. After a
timeout or crash the candidate process is restarted (at most ``MAX_RESTARTS`` times) so later tests of a
partial-credit run still count.

Why not guard the old way: HumanEval's own ``execution.py`` runs program and tests in one child process
(``exec`` of prompt + completion + test, then ``result.append("passed")`` in the same interpreter) behind a
``reliability_guard`` that disables destructive ``os`` functions: it protects the host, not the verdict.
Public write-ups of reward hacking in code RL name the vectors this design closes: objects whose ``__eq__``
is always true, ``sys.exit(0)``/``os._exit(0)`` before the asserts, patching the test framework's report,
overwriting the evaluation function. We move the verdict out of the candidate's reach instead of guarding it;
``tests/judges/test_code_redteam.py`` keeps a table of these hacks, each proven to score 0.

Where the candidate runs: in ``ctx.sandbox`` when the episode has one (the sandbox's Python kernel hosts the
candidate, each call is one ``run_python`` cell); otherwise in a fresh ``python -I`` subprocess with
resource limits, its own session (killed as a group), a minimal environment, stdin closed, and — when the
judge runs as root and the interpreter is reachable — as uid 65534 (``nobody``), so it cannot read or
ptrace the judge's process. Limits of the subprocess mode: the candidate can read whatever files its uid
can (a dataset installed world-readable, say), and when it keeps the judge's uid (not root, or an
interpreter uid 65534 cannot run) it can read the judge's memory through ``/proc`` and find the tests
there; ``TestOutcome.isolation`` says which case applies. Only the sandbox closes both. In the sandbox the
candidate shares the kernel with the episode's own ``python`` tool (if the env has one): what the model
defined there can only change its own return values.

The trusted side runs the task's ``prefix`` and the test module in the judge process (they are task data,
like the tests: HumanEval's ``poly`` helper comes from the prompt, not from the candidate, which could
otherwise redefine it). Tests therefore must exchange only plain data with the solution: a test that
passes a callable, or expects an object with methods back, cannot be judged this way (it fails with a clear
"not plain data" error). Test code shares the judge process's modules (``random`` included).
"""

from __future__ import annotations

import ast
import builtins
import functools
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.lowlevel import RunVar

from ..wire import JudgeResult, Task, Trajectory
from ._harness import KERNEL, RUNNER, NotPlainData, dumps, loads
from .base import JudgeContext
from .extract import extract_code

__all__ = ["CandidateFailed", "CodeTestJudge", "TestOutcome", "count_check_tests", "run_tests"]

MAX_REPLY_BYTES = 16 << 20
"""Largest reply (one encoded return value) taken from the candidate."""
MAX_RESTARTS = 3
"""Candidate processes restarted after a timeout or crash within one run (then the remaining tests fail)."""
_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("swarmgym_code_judge_limiter")
_NOBODY = 65534


class CandidateFailed(BaseException):
    """A call into the candidate timed out, crashed it, or returned something that is not plain data.

    A ``BaseException``, so a test's ``except Exception`` cannot turn it into a pass.
    """


class CandidateError(Exception):
    """The candidate raised an exception that is not a built-in one (its type name is in the message)."""


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """What the tests reported."""

    passed: tuple[bool, ...]
    total: int
    error: str | None = None
    timed_out: bool = False
    stderr: str = ""
    isolation: str = ""
    """Where the candidate ran: ``sandbox``, ``subprocess as uid 65534`` or ``subprocess, same uid as the judge``."""

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


# ------------------------------------------------------------------------------------------ the test plan


@dataclass(frozen=True, slots=True)
class _Plan:
    setup: tuple[Any, ...]  # compiled trusted code run first (prefix, then the test module minus check)
    steps: tuple[tuple[Any, bool], ...]  # (compiled statement, counts as a test)
    remote: tuple[str, ...]  # names the tests use that only the solution can define
    entry_point: str | None
    error: str | None = None


def _is_test(stmt: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) and not isinstance(n.test, ast.Constant) for n in ast.walk(stmt))


def _bound_names(tree: ast.AST) -> set[str]:
    out: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.arg):
            out.add(n.arg)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
    return out


def _loaded_names(trees: Sequence[ast.AST]) -> list[str]:
    seen: dict[str, None] = {}
    for t in trees:
        for n in ast.walk(t):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load):
                seen[n.id] = None
    return list(seen)


def _compile(node: ast.AST, label: str) -> Any:
    mod = ast.Module(body=[node] if not isinstance(node, ast.Module) else node.body, type_ignores=[])
    return compile(mod, label, "exec")


@functools.lru_cache(maxsize=512)
def _plan(tests: tuple[str, ...] | None, check_code: str | None, fn: str, entry_point: str | None,
          prefix: str) -> _Plan:
    """Compile the trusted side once per problem: which statements are tests, which names are remote."""
    setup: list[Any] = []
    trusted_trees: list[ast.AST] = []
    if prefix:
        try:  # a prefix that is not runnable alone (a bare signature) simply provides nothing here
            t = ast.parse(prefix)
            setup.append(_compile(t, "<prefix>"))
            trusted_trees.append(t)
        except SyntaxError:
            pass
    steps: list[tuple[Any, bool]] = []
    step_trees: list[ast.AST] = []
    if check_code is not None:
        try:
            tree = ast.parse(check_code)
        except SyntaxError as e:
            return _Plan((), (), (), entry_point, f"test code does not parse: {e}")
        fnode = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.name == fn), None)
        if fnode is None:
            return _Plan((), (), (), entry_point, f"no function {fn!r} in the test code")
        module = ast.Module(body=[n for n in tree.body if n is not fnode], type_ignores=[])
        setup.append(compile(module, "<tests>", "exec"))
        trusted_trees.append(module)
        for i, stmt in enumerate(fnode.body):
            steps.append((_compile(stmt, f"<test {i}>"), _is_test(stmt)))
            step_trees.append(stmt)
    else:
        for i, src in enumerate(tests or ()):
            try:
                t = ast.parse(src)
            except SyntaxError as e:
                return _Plan((), (), (), entry_point, f"test {i} does not parse: {e}")
            steps.append((_compile(t, f"<test {i}>"), True))
            step_trees.append(t)
    bound = set(dir(builtins)) | {"candidate"}
    for t in (*trusted_trees, *step_trees):
        bound |= _bound_names(t)
    remote = [n for n in _loaded_names(step_trees) if n not in bound]
    if entry_point and entry_point not in remote:
        remote.insert(0, entry_point)
    return _Plan(tuple(setup), tuple(steps), tuple(remote), entry_point)


# --------------------------------------------------------------------------------- candidate processes


class _LocalCandidate:
    """The candidate in a fresh ``python -I`` subprocess, spoken to over its stdin/stdout (blocking, from
    the judge's worker thread)."""

    def __init__(self, python: str, flags: Sequence[str], memory_mb: int, cpu_s: int, uid: int | None) -> None:
        self.argv = [python, *flags, "-c", RUNNER]
        self.memory_mb = memory_mb
        self.cpu_s = cpu_s
        self.uid = uid
        self.proc: subprocess.Popen[bytes] | None = None
        self.tmp: str | None = None
        self.err: Any = None
        self.buf = b""
        self.stderr_tail = ""

    def load(self, code: str, names: Sequence[str], timeout: float) -> str | None:
        tmp = self.tmp = tempfile.mkdtemp(prefix="swarmgym-judge-")
        if self.uid is not None:
            os.chown(tmp, self.uid, self.uid)
        self.err = open(os.path.join(tmp, "stderr"), "w+b")  # noqa: SIM115 - closed in kill()
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}
        kw: dict[str, Any] = {}
        if self.uid is not None:
            kw = {"user": self.uid, "group": self.uid, "extra_groups": []}
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     cwd=tmp, env=env, start_new_session=True, close_fds=True, **kw)
        first = {"code": code, "names": list(names), "memory_mb": self.memory_mb, "cpu_s": self.cpu_s}
        return self._request(json.dumps(first), timeout)

    def call(self, name: str, args: str, timeout: float) -> str | None:
        return self._request(json.dumps({"name": name, "args": args}), timeout)

    def _request(self, line: str, timeout: float) -> str | None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return None
        deadline = time.monotonic() + timeout
        data = (line + "\n").encode()
        try:
            fd_in = proc.stdin.fileno()  # type: ignore[union-attr]
            while data:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([], [fd_in], [], left)[1]:
                    return None
                data = data[os.write(fd_in, data[:65536]):]
        except OSError:  # the candidate closed its end (exited)
            return None
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk or len(self.buf) > MAX_REPLY_BYTES:
                return None
            self.buf += chunk
        reply, self.buf = self.buf.split(b"\n", 1)
        return reply.decode("utf-8", "replace")

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the whole session: children the solution left too
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
            for f in (proc.stdin, proc.stdout):
                if f is not None:
                    f.close()
        if self.err is not None:
            try:
                self.err.seek(max(0, os.fstat(self.err.fileno()).st_size - 2000))
                self.stderr_tail = self.err.read().decode("utf-8", "replace")
            except OSError:
                pass
            self.err.close()
            self.err = None
        if self.tmp is not None:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
        self.buf = b""



def cell_str(res: Any) -> str | None:
    """The str a sandbox cell evaluated to (its repr read back as a literal, never eval'd), or None for a
    timeout, an error, no value or a value of another type: the only answer a candidate's process gives."""
    if res.timed_out or res.error is not None or res.value is None:
        return None
    try:
        v = ast.literal_eval(res.value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return v if type(v) is str else None

class _KernelCandidate:
    """The candidate in the sandbox's Python kernel, under a private name; one ``run_python`` cell per call
    (driven from the judge's worker thread through the event loop)."""

    def __init__(self, sandbox: Any) -> None:
        self.sandbox = sandbox
        self.var = "_swarmgym_judge_" + os.urandom(6).hex()
        self.stderr_tail = ""

    def _cell(self, code: str, timeout: float) -> str | None:
        res = anyio.from_thread.run(self.sandbox.run_python, code, timeout)
        if getattr(res, "stderr", ""):
            self.stderr_tail = (self.stderr_tail + res.stderr)[-2000:]
        return cell_str(res)

    def load(self, code: str, names: Sequence[str], timeout: float) -> str | None:
        v = self.var
        return self._cell(f"{v} = {{}}\nexec({KERNEL!r}, {v})\n{v}['load']({code!r}, {list(names)!r})", timeout)

    def call(self, name: str, args: str, timeout: float) -> str | None:
        return self._cell(f"{self.var}['call']({name!r}, {args!r})", timeout)

    def kill(self) -> None:
        pass  # the kernel belongs to the sandbox; a timed-out cell already killed it


# ------------------------------------------------------------------------------- the trusted test runner


class _Remote:
    """The candidate process plus restart bookkeeping, shared by the remote functions of one run."""

    def __init__(self, factory: Callable[[], Any], solution: str, names: Sequence[str], deadline: float,
                 per_test: float) -> None:
        self.factory = factory
        self.solution = solution
        self.names = list(names)
        self.deadline = deadline
        self.per_test = per_test
        self.test_deadline = deadline
        self.proc: Any = None
        self.dead = False
        self.restarts = 0
        self.timed_out = False
        self.stderr_tail = ""
        self.lock = threading.Lock()

    def budget(self) -> float:
        return max(0.0, min(self.test_deadline, self.deadline) - time.monotonic())

    def start(self) -> dict[str, Any] | str:
        """Start the candidate and load the solution: ``{name: [kind, value?]}`` or an error message."""
        with self.lock:
            self.proc = self.factory()
        reply = self.proc.load(self.solution, self.names, self.budget())
        if reply is None:
            self.dead = True
            self.timed_out = self.budget() <= 0
            return "timed out loading the solution" if self.timed_out else "the solution crashed or exited while loading"
        try:
            msg = json.loads(reply)
        except ValueError:
            self.dead = True
            return "the candidate sent an unreadable reply"
        if isinstance(msg, dict) and isinstance(msg.get("raise"), list):
            self.dead = True
            return "solution: " + ": ".join(str(x) for x in msg["raise"][:2])
        kinds = msg.get("loaded") if isinstance(msg, dict) else None
        if not isinstance(kinds, dict):
            self.dead = True
            return "the candidate sent an unreadable reply"
        self.dead = False
        return kinds

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        try:
            payload = dumps([list(args), kwargs])
        except NotPlainData as e:
            raise CandidateFailed(f"the test passes a value that is not plain data to {name}(): {e}") from None
        if self.dead and not self._restart():
            raise CandidateFailed("the candidate process is gone")
        reply = self.proc.call(name, payload, self.budget())
        if reply is None:
            self.timed_out = self.budget() <= 0
            self._kill()
            raise CandidateFailed(f"{name}() timed out" if self.timed_out else f"{name}() crashed the candidate")
        try:
            msg = json.loads(reply)
            if not isinstance(msg, dict) or len(msg) != 1:
                raise ValueError("not a reply")
            if "ok" in msg:
                return loads(json.dumps(msg["ok"]))
            kind, text = msg["raise"]
        except (ValueError, TypeError, KeyError, RecursionError, NotPlainData) as e:
            raise CandidateFailed(f"{name}() returned something that is not plain data: {e}") from None
        exc = getattr(builtins, str(kind), None)
        if isinstance(exc, type) and issubclass(exc, Exception) and exc.__module__ == "builtins":
            raise exc(str(text))
        raise CandidateError(f"{kind}: {text}")

    def _restart(self) -> bool:
        if self.restarts >= MAX_RESTARTS or self.budget() <= 0:
            return False
        self.restarts += 1
        self._kill()
        self.test_deadline = max(self.test_deadline, time.monotonic() + min(self.per_test, 5.0))
        return isinstance(self.start(), dict)

    def _kill(self) -> None:
        self.dead = True
        with self.lock:
            proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            self.stderr_tail = (self.stderr_tail + proc.stderr_tail)[-2000:]

    def close(self) -> None:
        self._kill()


class _RemoteFunction:
    """Stands for a function of the solution; calling it calls it in the candidate process."""

    __slots__ = ("_remote", "_name")

    def __init__(self, remote: _Remote, name: str) -> None:
        self._remote = remote
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._remote.call(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<candidate function {self._name}>"


def _run_sync(plan: _Plan, remote: _Remote) -> tuple[list[bool], str | None]:
    """The trusted side of one run (in a worker thread): set up, bind the remote names, run each test."""
    total = sum(1 for _, t in plan.steps if t)
    ns: dict[str, Any] = {"__name__": "__tests__", "__builtins__": builtins}
    passed: list[bool] = []
    for code in plan.setup:
        try:
            exec(code, ns)
        except Exception as e:
            if code.co_filename == "<prefix>":
                continue  # the prefix only offers helpers; the tests say whether they needed them
            return [False] * total, f"test setup: {type(e).__name__}: {e}"[:500]
    remote.test_deadline = time.monotonic() + remote.per_test
    loaded = remote.start()
    if isinstance(loaded, str):
        return [False] * total, loaded
    ep = plan.entry_point
    if ep is not None and (loaded.get(ep) or ["missing"])[0] != "function":
        return [False] * total, f"solution does not define {ep!r}"
    for name, kind in loaded.items():
        if not isinstance(kind, list) or not kind:
            continue
        if kind[0] == "function":
            ns[name] = _RemoteFunction(remote, name)
        elif kind[0] == "value" and len(kind) == 2:
            try:
                ns[name] = loads(json.dumps(kind[1]))
            except (ValueError, TypeError, RecursionError, NotPlainData):
                pass
    if ep is not None:
        ns["candidate"] = ns[ep]
    error = None
    for i, (code, is_test) in enumerate(plan.steps):
        remote.test_deadline = time.monotonic() + remote.per_test
        try:
            if remote.budget() <= 0 and remote.deadline <= time.monotonic():
                raise CandidateFailed("timed out")
            exec(code, ns)
            err = None
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # a failing test, whatever it raised
            err = f"{type(e).__name__}: {e}"[:300]
        if is_test:
            passed.append(err is None)
            if err is not None and error is None:
                error = f"test {i}: {err}"
        elif err is not None:
            return passed + [False] * (total - len(passed)), f"test setup {i}: {err}"
    return passed, error


def _local_uid(python: str) -> int | None:
    """65534 when running as root and ``python`` works as that uid (checked once per interpreter)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    return _works_as_nobody(python)


@functools.lru_cache(maxsize=8)
def _works_as_nobody(python: str) -> int | None:
    try:
        r = subprocess.run([python, "-I", "-S", "-c", "pass"], user=_NOBODY, group=_NOBODY, extra_groups=[],
                           cwd="/", env={"PATH": "/usr/bin:/bin"}, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return _NOBODY if r.returncode == 0 else None


async def run_tests(
    solution: str,
    *,
    tests: Sequence[str] | None = None,
    check: Mapping[str, Any] | None = None,
    prefix: str = "",
    timeout_s: float = 30.0,
    per_test_timeout_s: float | None = 10.0,
    memory_mb: int = 1024,
    sandbox: Any = None,
    python: str | None = None,
    site_packages: bool = False,
) -> TestOutcome:
    """Run tests against ``solution`` and report what passed (see the module docstring for the design).

    Args:
        solution: the program (prefix + model code), run in the candidate process.
        tests: independent test snippets; or
        check: ``{"code", "fn", "entry_point"}`` for HumanEval-style tests.
        prefix: trusted task code run on the judge's side before the tests (HumanEval's prompt).
        timeout_s: wall-clock limit for the whole run (solution + all tests).
        per_test_timeout_s: limit per test (and for loading the solution).
        memory_mb: address-space limit of the candidate subprocess (0 = none).
        sandbox: run the candidate in this sandbox's Python kernel instead of a local subprocess.
        python: interpreter of the local candidate (default ``sys.executable``).
        site_packages: let the local candidate import installed packages (``python -I``); by default only
            the standard library (``python -I -S``: more isolated, and 3x faster to start).
    """
    if (tests is None) == (check is None):
        raise ValueError("give exactly one of tests=[...] or check={...}")
    if check is not None and not isinstance(check.get("code"), str):
        raise ValueError("check needs 'code' (the test module source)")
    if check is not None:
        plan = _plan(None, check["code"], check.get("fn", "check"), check.get("entry_point"), prefix or "")
        total = count_check_tests(check)
    else:
        plan = _plan(tuple(tests or ()), None, "check", None, prefix or "")
        total = len(tests or ())
    if plan.error is not None:
        return TestOutcome((False,) * total, total, plan.error)
    per_test = float(per_test_timeout_s or timeout_s)
    start = time.monotonic()
    deadline = start + timeout_s
    if sandbox is not None:
        factory: Callable[[], Any] = functools.partial(_KernelCandidate, sandbox)
        isolation = "sandbox"
    else:
        py = python or sys.executable
        flags = ("-I",) if site_packages else ("-I", "-S")
        uid = _local_uid(py)
        isolation = f"subprocess as uid {uid}" if uid is not None else "subprocess, same uid as the judge"
        factory = functools.partial(_LocalCandidate, py, flags, memory_mb, int(timeout_s) + 1, uid)
    remote = _Remote(factory, solution, plan.remote, deadline, per_test)
    try:
        if sandbox is None:
            async with _limiter():
                remote.deadline = deadline = time.monotonic() + timeout_s  # the wait for a slot is free
                passed, error = await _in_thread(plan, remote, timeout_s)
        else:
            passed, error = await _in_thread(plan, remote, timeout_s)
    finally:
        remote.close()
    passed = passed[:total] + [False] * max(0, total - len(passed))
    timed_out = remote.timed_out or time.monotonic() >= deadline
    if timed_out and error is None and not all(passed):
        error = "timed out"
    return TestOutcome(tuple(passed), total, error, timed_out, remote.stderr_tail[-2000:], isolation)


async def _in_thread(plan: _Plan, remote: _Remote, timeout_s: float) -> tuple[list[bool], str | None]:
    # The trusted side blocks on the candidate (and runs the tests' own code): a worker thread, so the event
    # loop keeps serving other episodes. A backstop deadline kills the candidate, which ends the thread.
    result: tuple[list[bool], str | None] | None = None
    with anyio.move_on_after(timeout_s + 5.0):
        try:
            result = await anyio.to_thread.run_sync(_run_sync, plan, remote, abandon_on_cancel=True)
        finally:
            if result is None:
                remote.deadline = 0.0
                remote.close()
    if result is None:
        remote.timed_out = True
        return [], "timed out"
    return result


def count_check_tests(check: Mapping[str, Any]) -> int:
    """Number of tests in a HumanEval-style ``check`` function (statements containing a real assert)."""
    try:
        tree = ast.parse(check["code"])
    except SyntaxError:
        return 1  # broken tests: one test that fails
    fn = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
               and n.name == check.get("fn", "check")), None)
    if fn is None:
        return 1
    return sum(1 for stmt in fn.body if _is_test(stmt))


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
        res = await run_tests(prog, tests=tests, check=check, prefix=md.get("prefix") or "", timeout_s=self.timeout_s,
                              per_test_timeout_s=self.per_test_timeout_s, memory_mb=self.memory_mb,
                              sandbox=sandbox, python=self.python, site_packages=self.site_packages)
        all_ok = float(res.total > 0 and res.n_passed == res.total)
        r = res.fraction if self.mode == "fraction" else all_ok
        info: dict[str, Any] = {"passed": res.n_passed, "total": res.total, "where": "sandbox" if sandbox else "subprocess",
                                "isolation": res.isolation}
        if res.error:
            info["error"] = res.error[:1000]
        if res.stderr and not all_ok:
            info["stderr"] = res.stderr[-1000:]
        return JudgeResult(reward=r, facets={self.name: r, "pass_fraction": res.fraction, "all_passed": all_ok,
                                             "timeout": float(res.timed_out), "has_code": 1.0}, info=info)
