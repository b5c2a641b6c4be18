"""judges/remote_unittest.py against the real sandbox kernel: remote handles, stand-in exceptions, refusals."""

from __future__ import annotations

import textwrap

import anyio
import pytest
from swarmgym.testing.require import require_sandbox

from swarmgym.judges._harness import NotPlainData, loads
from swarmgym.judges.remote_unittest import kernel_transport, run_remote_unittest

LIB = '''
class Base(Exception):
    pass

class Sub(Base):
    pass

class SkipTest(Exception):  # claims to be unittest's
    pass
SkipTest.__module__ = "unittest.case"

class Counter:
    def __init__(self, start=0):
        self.n = start
        self.data = {"a": [1, 2]}
    def bump(self, by=1):
        self.n += by
        return self
    def __getitem__(self, k):
        return self.data[k]
    def fail(self, kind):
        raise {"sub": Sub, "value": ValueError, "skip": SkipTest, "exit": SystemExit}[kind]("boom")

class Liar:
    def __eq__(self, other):
        return True

def liar():
    return Liar()

def identity(x):
    return x
'''


def _run(tests: str, lib: str = LIB, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    from swarmgym.toolsets.sandbox.factory import create_sandbox

    async def main():  # type: ignore[no-untyped-def]
        sb = await create_sandbox("local")
        try:
            await sb.write_file("lib/__init__.py", lib)
            return await run_remote_unittest(textwrap.dedent(tests), {"lib"}, kernel_transport(sb),
                                             setup=sb.workspace, timeout_s=timeout_s, per_call_s=3.0)
        finally:
            await sb.close()

    return anyio.run(main)


@pytest.fixture(autouse=True)
def _local() -> None:
    require_sandbox("local")


def test_handles_exceptions_and_refusals() -> None:
    out, timed_out = _run('''
        import unittest
        from lib import Base, Sub, SkipTest, Counter, liar, identity
        import lib

        class T(unittest.TestCase):
            def test_object_by_handle(self):
                c = Counter(2)
                self.assertIs(c.bump(3), c)           # the same candidate object, the same handle
                self.assertEqual(c.n, 5)
                self.assertEqual(c["a"], [1, 2])      # item access goes remote
                c.n = 10                              # so does attribute assignment
                self.assertEqual(c.bump().n, 11)
                self.assertEqual(identity(c).n, 11)   # handles travel back as arguments
            def test_custom_exception_hierarchy(self):
                with self.assertRaises(Base):         # a stand-in subclass is caught by its base's stand-in
                    Counter().fail("sub")
                with self.assertRaises(ValueError):   # built-ins are themselves
                    Counter().fail("value")
                self.assertTrue(issubclass(Sub, Base) and issubclass(Base, Exception))
                self.assertEqual(Sub.__name__, "Sub")
            def test_module_attribute_access(self):
                self.assertEqual(lib.identity((1, "x")), (1, "x"))
            def test_always_equal_is_refused(self):
                self.assertEqual(liar(), 42)
            def test_truth_of_an_object_is_refused(self):
                self.assertTrue(liar())
            def test_forged_skip_is_a_failure(self):
                Counter().fail("skip")
            def test_system_exit_escapes_assert_raises(self):
                with self.assertRaises(Exception):
                    Counter().fail("exit")
    ''')
    res = dict(zip((n.rsplit(".", 1)[-1] for n in out.names), out.passed))
    assert res == {
        "test_object_by_handle": True,
        "test_custom_exception_hierarchy": True,
        "test_module_attribute_access": True,
        "test_always_equal_is_refused": False,
        "test_truth_of_an_object_is_refused": False,
        "test_forged_skip_is_a_failure": False,
        "test_system_exit_escapes_assert_raises": False,
    }, out.failures
    assert not timed_out and out.error is None
    why = "\n".join(out.failures)
    assert "SkipTest: boom" in why and "not plain data" in why and "raised SystemExit" in why


def test_a_candidate_that_hangs_fails_the_rest_and_the_run_ends() -> None:
    out, _ = _run('''
        import unittest
        from lib import spin, ok

        class T(unittest.TestCase):
            def test_a(self):
                self.assertEqual(ok(), 1)
            def test_b(self):
                spin()
            def test_c(self):
                self.assertEqual(ok(), 1)
    ''', lib="def ok():\n    return 1\ndef spin():\n    while True:\n        pass\n")
    assert out.passed == (True, False, False), out.failures


def test_an_import_that_fails_fails_every_test_with_the_reason() -> None:
    out, _ = _run('''
        import unittest
        from lib import missing

        class T(unittest.TestCase):
            def test_a(self):
                pass
            def test_b(self):
                pass
    ''')
    assert out.passed == (False, False) and "lib.missing" in (out.error or ""), out


def test_the_codec_refuses_refs_without_ref_mode() -> None:
    # the code judge decodes without ref=: a reply smuggling a handle is not plain data there
    with pytest.raises(NotPlainData):
        loads('{"ref": [1, {"type": "X"}]}')
