"""Run a trusted ``unittest`` module on the judge's side against code that runs in another process.

Used by ``swarmgym/SWE-v0`` (:class:`swarmgym.envs.swe.SWEJudge`): the hidden tests are task data and run
here, in the judge's process; the repository under test runs in a *candidate process* (the sandbox's Python
kernel, fresh after the model's processes were killed) that only answers requests with plain data. The
test module is executed with an ``__import__`` that resolves the repository's top-level packages to
*remote objects*, so ``from acme.inventory import Inventory, OutOfStock`` works unchanged:

- a plain value (``None``/``bool``/``int``/``float``/``str``/containers of them, exact types) comes back as a
  fresh judge-side object built by the codec of :mod:`swarmgym.judges._harness` — one codec for every judge;
- anything else (a module, a function, a class, an instance) stays in the candidate's handle table and comes
  back as a :class:`RemoteObject`: attribute access, item access, calls and attribute assignment go to the
  candidate by handle; comparing, hashing or testing the truth of one raises :class:`CandidateFailed`, so an
  object with an always-true ``__eq__`` (or an ``int`` subclass) fails every assertion it meets;
- an exception class comes back as a judge-side *stand-in*: a fresh class of the same name whose base is the
  nearest built-in ``Exception`` subclass of the original's chain. An exception raised in the candidate is
  raised here as (an instance of) the same stand-in, so ``assertRaises(OutOfStock)`` works; a built-in
  exception is raised as itself; one that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``)
  raises :class:`CandidateFailed`, a ``BaseException`` no ``assertRaises(Exception)`` can catch.

A test passes only when unittest calls ``addSuccess`` for it (skips, expected failures and errors fail). The
tests, their expected values and the result record never enter the candidate process; it sees the names it
is asked for and the arguments of each call. A timeout or a crash of the candidate fails the test that
caused it and every test after it (the handles died with the process).
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import time
import types
import unittest
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio

from ._harness import OBJECTS, NotPlainData, decode, dumps
from .code import CandidateFailed, cell_str

__all__ = ["RemoteObject", "RemoteSession", "UnittestOutcome", "kernel_transport", "run_remote_unittest"]

MAX_REPLY_CHARS = 8 << 20
_NOT_MAPPED = frozenset({"StopIteration", "StopAsyncIteration"})  # control flow, never a test's expectation

Transport = Callable[[str, float], "str | None"]
"""Runs one request (a Python expression over the candidate's server) and returns its reply text, or None
when the candidate timed out or died."""


@dataclass(frozen=True, slots=True)
class UnittestOutcome:
    """Per-test results of one run, in the module's test order."""

    names: tuple[str, ...]
    passed: tuple[bool, ...]
    error: str | None = None
    """Why the whole run failed (the module did not load, the candidate did not start), else None."""
    failures: tuple[str, ...] = ()
    """``name: reason`` of the first failing tests."""

    @property
    def total(self) -> int:
        return len(self.passed)

    @property
    def n_passed(self) -> int:
        return sum(self.passed)


class RemoteObject:
    """Stands for an object in the candidate process: usable by attribute, item and call, never by value."""

    __slots__ = ("_session", "_handle", "_what")

    def __init__(self, session: RemoteSession, handle: int, what: str) -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_what", what)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):  # protocol probes stay local
            raise AttributeError(name)
        return self._session.request("get", self._handle, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._session.request("put", self._handle, name, self._session.encode(value))

    def __getitem__(self, key: Any) -> Any:
        return self._session.request("item", self._handle, self._session.encode(key))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.request("call", self._handle, self._session.encode([list(args), kwargs]))

    def _refuse(self, *_: Any) -> Any:
        raise CandidateFailed(f"{self!r} is not plain data: it cannot be compared, hashed or tested for truth")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __bool__ = __hash__ = _refuse  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<candidate {self._what}>"


class RemoteSession:
    """The judge's side of one candidate: requests, reply decoding, stand-in exception classes."""

    def __init__(self, transport: Transport, setup: str, deadline: float, per_call_s: float) -> None:
        self.transport = transport
        self.var = "_swarmgym_judge_" + os.urandom(6).hex()
        self.setup = setup
        self.deadline = deadline
        self.per_call_s = per_call_s
        self.dead: str | None = None
        self.started = False
        self.timed_out = False
        self._standins: dict[tuple[str, str], type[Exception]] = {}
        self._class_handles: dict[type, int] = {}
        self._objects: dict[int, RemoteObject] = {}

    def _send(self, expr: str) -> str:
        if self.dead is not None:
            raise CandidateFailed(self.dead)
        budget = min(self.per_call_s, self.deadline - time.monotonic())
        reply = self.transport(expr, budget) if budget > 0 else None
        if reply is None or len(reply) > MAX_REPLY_CHARS:
            self.timed_out = time.monotonic() >= self.deadline
            self.dead = "the candidate timed out, crashed or sent no reply"
            raise CandidateFailed(self.dead)
        return reply

    def start(self) -> None:
        if not self.started:
            self.started = True
            v = self.var
            reply = self._send(f"{v} = {{}}\nexec({OBJECTS!r}, {v})\n{v}['start']({self.setup!r})")
            if reply != "ready":
                self.dead = "the candidate did not start"
                raise CandidateFailed(self.dead)

    def request(self, op: str, *args: Any) -> Any:
        self.start()
        reply = self._send(f"{self.var}[{op!r}]({', '.join(repr(a) for a in args)})")
        try:
            msg = json.loads(reply, parse_constant=_no_constant)
            if type(msg) is not dict or len(msg) != 1:
                raise ValueError("not a reply")
            if "ok" in msg:
                return decode(msg["ok"], 0, self._ref_in)
            mro, text = msg["raise"]
            exc = self._exception(mro, str(text)[:300])
        except (ValueError, TypeError, KeyError, RecursionError, NotPlainData) as e:
            raise CandidateFailed(f"the candidate sent an unreadable reply: {e}"[:300]) from None
        raise exc

    def encode(self, value: Any) -> str:
        try:
            return dumps(value, self._ref_out)
        except NotPlainData as e:
            raise CandidateFailed(f"the test passes a value that is neither plain data nor a candidate object: {e}") from None

    def _ref_out(self, x: Any) -> int:
        if type(x) is RemoteObject and x._session is self:
            return x._handle
        if isinstance(x, type) and x in self._class_handles:
            return self._class_handles[x]
        raise NotPlainData(f"not plain data: {type(x).__name__}")

    def _ref_in(self, body: Any) -> Any:
        if type(body) is not list or len(body) != 2 or type(body[0]) is not int or type(body[1]) is not dict:
            raise NotPlainData("bad handle")
        h, info = body
        if "exc" in info:
            cls = self._standin(info["exc"])
            self._class_handles.setdefault(cls, h)
            return cls
        obj = self._objects.get(h)
        if obj is None:  # one stand-in per handle, so `is` means what it means in the candidate
            what = info.get("type")
            obj = self._objects[h] = RemoteObject(self, h, what[:100] if type(what) is str else "object")
        return obj

    def _standin(self, mro: Any) -> type:
        """The judge-side class for a candidate exception class, from its chain of ``[module, qualname]``."""
        if type(mro) is not list or not mro or len(mro) > 20:
            raise NotPlainData("bad exception chain")
        chain: list[tuple[str, str]] = []
        base: type | None = None
        for pair in mro:
            if type(pair) is not list or len(pair) != 2 or not all(type(p) is str and 0 < len(p) <= 200 for p in pair):
                raise NotPlainData("bad exception chain")
            mod, qn = pair
            if mod == "builtins" and qn not in _NOT_MAPPED:
                b = getattr(builtins, qn, None)
                if isinstance(b, type) and issubclass(b, Exception) and b.__module__ == "builtins":
                    base = b
                    break
                continue
            chain.append((mod, qn))
        if base is None:  # SystemExit, KeyboardInterrupt, a bare BaseException subclass
            return _NotAnException
        for key in reversed(chain):
            cls = self._standins.get(key)
            if cls is None:
                mod, qn = key
                cls = type(qn.rsplit(".", 1)[-1], (base,), {"__module__": mod, "__qualname__": qn})
                self._standins[key] = cls
            base = cls
        return base

    def _exception(self, mro: Any, text: str) -> BaseException:
        cls = self._standin(mro)
        if cls is _NotAnException:
            name = mro[0][1] if isinstance(mro[0], list) else "?"
            return CandidateFailed(f"the candidate raised {name}: {text}")
        return cls(text)

    def importer(self, packages: frozenset[str]) -> Callable[..., Any]:
        """An ``__import__`` that resolves ``packages`` (and their submodules) in the candidate."""

        def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if level == 0 and name.partition(".")[0] in packages:
                mod = self.request("imp", name)
                if not fromlist and "." in name:
                    mod = self.request("imp", name.partition(".")[0])
                if type(mod) is not RemoteObject:
                    raise ImportError(f"the candidate's {name} is not a module")
                return mod
            return builtins.__import__(name, globals, locals, fromlist, level)

        return _import


class _NotAnException(Exception):
    """Marker: the candidate's exception is not an ``Exception`` (never raised)."""


class _Record(unittest.TestResult):
    def __init__(self) -> None:
        super().__init__()
        self.ok: set[str] = set()
        self.why: dict[str, str] = {}

    def addSuccess(self, test: Any) -> None:
        self.ok.add(test.id())

    def _bad(self, test: Any, why: str) -> None:
        self.why.setdefault(test.id(), why[:300])

    def addFailure(self, test: Any, err: Any) -> None:
        self._bad(test, f"{err[0].__name__}: {err[1]}")

    def addError(self, test: Any, err: Any) -> None:
        self._bad(test, f"{err[0].__name__}: {err[1]}")

    def addSkip(self, test: Any, reason: str) -> None:
        self._bad(test, f"skipped: {reason}")

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        self._bad(test, "expected failure (counts as a failure)")

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._bad(test, "unexpected success (counts as a failure)")

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            self._bad(test, f"{subtest}: {err[0].__name__}: {err[1]}")


def _flatten(suite: unittest.TestSuite) -> list[unittest.TestCase]:
    out: list[unittest.TestCase] = []
    for t in suite:
        out.extend(_flatten(t) if isinstance(t, unittest.TestSuite) else [t])
    return out


def _count_tests(source: str) -> int:
    """Test methods in a module that could not be loaded (so the failure still has a denominator)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return 1
    n = sum(1 for c in tree.body if isinstance(c, ast.ClassDef)
            for f in c.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test"))
    return max(n, 1)


def run_remote_unittest_sync(source: str, packages: Iterable[str], session: RemoteSession) -> UnittestOutcome:
    """The trusted side (blocking; run it in a worker thread when the transport needs the event loop)."""
    module = types.ModuleType("swarmgym_hidden_tests")
    module.__dict__["__builtins__"] = {**builtins.__dict__, "__import__": session.importer(frozenset(packages))}
    try:
        exec(compile(source, "<hidden tests>", "exec"), module.__dict__)
        tests = _flatten(unittest.defaultTestLoader.loadTestsFromModule(module))
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # the candidate failed to import, or broken test data
        n = _count_tests(source)
        return UnittestOutcome(tuple(f"test {i}" for i in range(n)), (False,) * n, f"loading the tests: {type(e).__name__}: {e}"[:500])
    if not tests:
        return UnittestOutcome((), (), "the test module has no tests")
    rec = _Record()
    unittest.TestSuite(tests).run(rec)
    names = tuple(t.id() for t in tests)
    passed = tuple(n in rec.ok and n not in rec.why for n in names)
    failures = tuple(f"{n.rsplit('.', 2)[-2]}.{n.rsplit('.', 1)[-1]}: {rec.why.get(n, 'did not run')}"
                     for n, p in zip(names, passed) if not p)[:20]
    return UnittestOutcome(names, passed, None, failures)


async def run_remote_unittest(source: str, packages: Iterable[str], transport: Transport, *, setup: str,
                              timeout_s: float = 60.0, per_call_s: float = 10.0) -> tuple[UnittestOutcome, bool]:
    """Run the unittest module ``source`` with ``packages`` resolved in the candidate behind ``transport``.

    ``setup`` is the argument of the candidate's ``start`` (the directory holding the packages). Returns the
    outcome and whether the deadline was hit.
    """
    session = RemoteSession(transport, setup, time.monotonic() + timeout_s, per_call_s)
    result: UnittestOutcome | None = None
    with anyio.move_on_after(timeout_s + 10.0):  # backstop: every request has its own deadline too
        result = await anyio.to_thread.run_sync(run_remote_unittest_sync, source, packages, session,
                                                abandon_on_cancel=True)
    if result is None:
        session.dead = "timed out"
        n = _count_tests(source)
        return UnittestOutcome(tuple(f"test {i}" for i in range(n)), (False,) * n, "timed out"), True
    return result, session.timed_out


def kernel_transport(sandbox: Any) -> Transport:
    """Requests as cells of ``sandbox``'s Python kernel, from a worker thread (the reply is the cell's value).

    Anything that goes wrong in the sandbox — a timeout, an exception, a dead kernel or agent — is None: the
    candidate's failure, never the judge's."""

    def send(expr: str, timeout: float) -> str | None:
        try:
            res = anyio.from_thread.run(sandbox.run_python, expr, timeout)
        except Exception:
            return None
        return cell_str(res)

    return send


def _no_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed")
