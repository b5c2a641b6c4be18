"""Generated repo-fix tasks for ``swarmgym/SWE-v0``: small Python packages with one planted bug.

Each *template* is a tiny package (a module, a README, visible tests that pass with or without the bug)
plus an issue text that describes the symptom (never the fix), the hidden tests the judge runs, and the
fix (an exact ``old → new`` replacement the oracle applies). Each template is instantiated under several
package names with different constants, so the tasks are distinct but fully deterministic: no download,
no randomness at run time.

What reaches the sandbox is only :attr:`SWEProblem.files` (no VCS history, no hidden tests, no fix); the
hidden tests never do: the judge runs them in its own process against the repository's code, which runs in
the sandbox and answers imports, attribute accesses and calls with plain data or opaque handles.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

__all__ = ["SWEProblem", "generate_problems", "TEMPLATES"]


@dataclass(frozen=True)
class SWEProblem:
    """One generated task."""

    id: str
    issue: str
    """The bug report the model sees."""
    files: dict[str, str]
    """The repository as copied into the workspace (buggy)."""
    hidden_tests: str
    """A unittest module the judge runs after submit, in its own process (its imports of the package resolve
    to the repository's code in the sandbox: :mod:`swarmgym.judges.remote_unittest`)."""
    fix: tuple[tuple[str, str, str], ...]
    """``(path, old, new)`` exact replacements that fix the bug (oracle only)."""
    meta: dict[str, str] = field(default_factory=dict)


def _d(s: str) -> str:
    return textwrap.dedent(s).lstrip("\n")


# Each template: (name, module file name, module source with {pkg}/{k} placeholders, buggy snippet,
# fixed snippet, issue text, hidden tests, visible tests). ``{k}`` is a per-variant constant.
TEMPLATES: list[dict[str, str]] = [
    {
        "name": "median",
        "module": "stats.py",
        "source": _d(
            '''
            """Small statistics helpers."""


            def mean(values):
                """Arithmetic mean of a non-empty list."""
                return sum(values) / len(values)


            def median(values):
                """Median of a non-empty list (the mean of the two middle values for even lengths)."""
                s = sorted(values)
                n = len(s)
                if n % 2 == 1:
                    return s[n // 2]
                return s[n // 2]
            '''
        ),
        "old": "        return s[n // 2]\n    return s[n // 2]\n",
        "new": "        return s[n // 2]\n    return (s[n // 2 - 1] + s[n // 2]) / 2\n",
        "issue": "`{pkg}.stats.median` gives the wrong result for lists with an even number of items: "
        "`median([1, 2, 3, {k}])` should be the mean of the two middle values but it is not.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.stats import median, mean

            class T(unittest.TestCase):
                def test_even(self):
                    self.assertEqual(median([1, 2, 3, {k}]), 2.5)
                    self.assertEqual(median([{k}, 1]), ({k} + 1) / 2)
                def test_odd(self):
                    self.assertEqual(median([3, 1, 2]), 2)
                def test_mean(self):
                    self.assertEqual(mean([2, 4]), 3)
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.stats import mean, median

            class T(unittest.TestCase):
                def test_mean(self):
                    self.assertEqual(mean([1, 2, 3]), 2)
                def test_median_odd(self):
                    self.assertEqual(median([5, 1, 3]), 3)
            """
        ),
    },
    {
        "name": "clamp",
        "module": "numbers.py",
        "source": _d(
            '''
            """Number helpers."""


            def clamp(x, lo, hi):
                """Limit x to the closed interval [lo, hi]."""
                if x < lo:
                    return hi
                if x > hi:
                    return hi
                return x
            '''
        ),
        "old": "    if x < lo:\n        return hi\n",
        "new": "    if x < lo:\n        return lo\n",
        "issue": "`{pkg}.numbers.clamp(-{k}, 0, 10)` returns 10 instead of 0: values below the range are "
        "not clamped to the lower bound.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.numbers import clamp

            class T(unittest.TestCase):
                def test_below(self):
                    self.assertEqual(clamp(-{k}, 0, 10), 0)
                def test_above(self):
                    self.assertEqual(clamp(99, 0, 10), 10)
                def test_inside(self):
                    self.assertEqual(clamp({k} % 10, 0, 10), {k} % 10)
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.numbers import clamp

            class T(unittest.TestCase):
                def test_inside(self):
                    self.assertEqual(clamp(5, 0, 10), 5)
            """
        ),
    },
    {
        "name": "leap",
        "module": "calendar_utils.py",
        "source": _d(
            '''
            """Calendar helpers."""


            def is_leap_year(year):
                """Gregorian leap year rule."""
                if year % 400 == 0:
                    return True
                if year % 100 == 0:
                    return True
                return year % 4 == 0


            def days_in_year(year):
                return 366 if is_leap_year(year) else 365
            '''
        ),
        "old": "    if year % 100 == 0:\n        return True\n",
        "new": "    if year % 100 == 0:\n        return False\n",
        "issue": "`{pkg}.calendar_utils.is_leap_year({k}00)` returns True, but century years are leap years only "
        "when divisible by 400 (so `days_in_year` is wrong too).",
        "hidden": _d(
            """
            import unittest
            from {pkg}.calendar_utils import is_leap_year, days_in_year

            class T(unittest.TestCase):
                def test_century(self):
                    self.assertFalse(is_leap_year(1900))
                    self.assertEqual(is_leap_year({k}00), {k}00 % 400 == 0)
                def test_400(self):
                    self.assertTrue(is_leap_year(2000))
                def test_plain(self):
                    self.assertTrue(is_leap_year(2024))
                    self.assertEqual(days_in_year(2023), 365)
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.calendar_utils import is_leap_year

            class T(unittest.TestCase):
                def test_plain(self):
                    self.assertTrue(is_leap_year(2024))
                    self.assertFalse(is_leap_year(2023))
            """
        ),
    },
    {
        "name": "fizzbuzz",
        "module": "fizz.py",
        "source": _d(
            '''
            """The classic game, parameterised."""


            def classify(n, a=3, b=5):
                """'FizzBuzz' if n is divisible by a and b, 'Fizz' by a, 'Buzz' by b, else str(n)."""
                if n % a == 0:
                    return "Fizz"
                if n % b == 0:
                    return "Buzz"
                if n % (a * b) == 0:
                    return "FizzBuzz"
                return str(n)
            '''
        ),
        "old": '    if n % a == 0:\n        return "Fizz"\n    if n % b == 0:\n        return "Buzz"\n    if n % (a * b) == 0:\n        return "FizzBuzz"\n',
        "new": '    if n % (a * b) == 0:\n        return "FizzBuzz"\n    if n % a == 0:\n        return "Fizz"\n    if n % b == 0:\n        return "Buzz"\n',
        "issue": "`{pkg}.fizz.classify(15)` returns 'Fizz' instead of 'FizzBuzz' (same for {k}*15).",
        "hidden": _d(
            """
            import unittest
            from {pkg}.fizz import classify

            class T(unittest.TestCase):
                def test_both(self):
                    self.assertEqual(classify(15), "FizzBuzz")
                    self.assertEqual(classify({k} * 15), "FizzBuzz")
                def test_single(self):
                    self.assertEqual(classify(9), "Fizz")
                    self.assertEqual(classify(10), "Buzz")
                    self.assertEqual(classify(7), "7")
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.fizz import classify

            class T(unittest.TestCase):
                def test_fizz(self):
                    self.assertEqual(classify(3), "Fizz")
            """
        ),
    },
    {
        "name": "paginate",
        "module": "paging.py",
        "source": _d(
            '''
            """Pagination (pages are numbered from 1)."""


            def page(items, number, size={k}):
                """Items on page ``number`` (1-based) when showing ``size`` per page."""
                start = number * size
                return items[start:start + size]


            def page_count(items, size={k}):
                return (len(items) + size - 1) // size
            '''
        ),
        "old": "    start = number * size\n",
        "new": "    start = (number - 1) * size\n",
        "issue": "`{pkg}.paging.page(items, 1)` skips the first {k} items: page 1 should start at the first item.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.paging import page, page_count

            class T(unittest.TestCase):
                def test_first(self):
                    items = list(range(100))
                    self.assertEqual(page(items, 1), items[:{k}])
                    self.assertEqual(page(items, 2), items[{k}:2 * {k}])
                def test_count(self):
                    self.assertEqual(page_count(list(range({k} + 1))), 2)
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.paging import page_count

            class T(unittest.TestCase):
                def test_count(self):
                    self.assertEqual(page_count([]), 0)
            """
        ),
    },
    {
        "name": "palindrome",
        "module": "text.py",
        "source": _d(
            '''
            """Text helpers."""


            def normalize(s):
                """Lower-case letters and digits only."""
                return "".join(ch for ch in s if ch.isalnum())


            def is_palindrome(s):
                """True if s reads the same backwards, ignoring case, spaces and punctuation."""
                t = normalize(s)
                return t == t[::-1]
            '''
        ),
        "old": '    return "".join(ch for ch in s if ch.isalnum())\n',
        "new": '    return "".join(ch.lower() for ch in s if ch.isalnum())\n',
        "issue": "`{pkg}.text.is_palindrome('Never odd or even')` returns False; the docstring says case is ignored.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.text import is_palindrome, normalize

            class T(unittest.TestCase):
                def test_case(self):
                    self.assertTrue(is_palindrome("Never odd or even"))
                    self.assertTrue(is_palindrome("A man, a plan, a canal: Panama"))
                def test_normalize(self):
                    self.assertEqual(normalize("Ab-{k}"), "ab{k}")
                def test_negative(self):
                    self.assertFalse(is_palindrome("swarm{k}"))
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.text import is_palindrome

            class T(unittest.TestCase):
                def test_simple(self):
                    self.assertTrue(is_palindrome("racecar"))
            """
        ),
    },
    {
        "name": "inventory",
        "module": "inventory.py",
        "source": _d(
            '''
            """A tiny stock keeper."""


            class OutOfStock(Exception):
                pass


            class Inventory:
                def __init__(self):
                    self.items = {{}}

                def add(self, name, qty):
                    self.items[name] = self.items.get(name, 0) + qty

                def remove(self, name, qty):
                    """Take qty of name out; raise OutOfStock if there is not enough."""
                    have = self.items.get(name, 0)
                    if qty > have + 1:
                        raise OutOfStock(name)
                    self.items[name] = have - qty
            '''
        ),
        "old": "        if qty > have + 1:\n",
        "new": "        if qty > have:\n",
        "issue": "`{pkg}.inventory.Inventory.remove` lets stock go negative: after `add('bolt', {k})`, "
        "`remove('bolt', {k} + 1)` succeeds instead of raising OutOfStock.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.inventory import Inventory, OutOfStock

            class T(unittest.TestCase):
                def test_too_many(self):
                    inv = Inventory()
                    inv.add("bolt", {k})
                    with self.assertRaises(OutOfStock):
                        inv.remove("bolt", {k} + 1)
                    self.assertEqual(inv.items["bolt"], {k})
                def test_exact(self):
                    inv = Inventory()
                    inv.add("nut", 2)
                    inv.remove("nut", 2)
                    self.assertEqual(inv.items["nut"], 0)
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.inventory import Inventory

            class T(unittest.TestCase):
                def test_add(self):
                    inv = Inventory()
                    inv.add("a", 1)
                    self.assertEqual(inv.items, {{"a": 1}})
            """
        ),
    },
    {
        "name": "transpose",
        "module": "matrix.py",
        "source": _d(
            '''
            """Lists-of-lists matrices."""


            def transpose(m):
                """Rows become columns (works for any rectangular matrix)."""
                rows = len(m)
                cols = len(m)
                return [[m[r][c] for r in range(rows)] for c in range(cols)]


            def shape(m):
                return (len(m), len(m[0]) if m else 0)
            '''
        ),
        "old": "    cols = len(m)\n",
        "new": "    cols = len(m[0]) if m else 0\n",
        "issue": "`{pkg}.matrix.transpose` fails on non-square matrices, e.g. a 2x{k} matrix raises IndexError "
        "or loses columns.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.matrix import transpose, shape

            class T(unittest.TestCase):
                def test_wide(self):
                    m = [list(range({k})), list(range({k}, 2 * {k}))]
                    self.assertEqual(shape(transpose(m)), ({k}, 2))
                    self.assertEqual(transpose(transpose(m)), m)
                def test_square(self):
                    self.assertEqual(transpose([[1, 2], [3, 4]]), [[1, 3], [2, 4]])
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.matrix import transpose

            class T(unittest.TestCase):
                def test_square(self):
                    self.assertEqual(transpose([[1, 2], [3, 4]]), [[1, 3], [2, 4]])
            """
        ),
    },
    {
        "name": "interest",
        "module": "finance.py",
        "source": _d(
            '''
            """Money helpers."""


            def compound(principal, rate_percent, years):
                """Value after ``years`` of yearly compounding at ``rate_percent`` percent."""
                return principal * (1 + rate_percent) ** years


            def simple(principal, rate_percent, years):
                return principal * (1 + rate_percent / 100 * years)
            '''
        ),
        "old": "    return principal * (1 + rate_percent) ** years\n",
        "new": "    return principal * (1 + rate_percent / 100) ** years\n",
        "issue": "`{pkg}.finance.compound(100, {k}, 1)` returns a huge number; it should be 100 plus {k} percent.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.finance import compound, simple

            class T(unittest.TestCase):
                def test_compound(self):
                    self.assertAlmostEqual(compound(100, {k}, 1), 100 + {k})
                    self.assertAlmostEqual(compound(100, 10, 2), 121)
                def test_simple(self):
                    self.assertAlmostEqual(simple(100, 10, 2), 120)
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.finance import simple

            class T(unittest.TestCase):
                def test_simple(self):
                    self.assertAlmostEqual(simple(100, 5, 1), 105)
            """
        ),
    },
    {
        "name": "chunks",
        "module": "iters.py",
        "source": _d(
            '''
            """Iteration helpers."""


            def chunks(seq, n):
                """Split seq into lists of n items; the last one may be shorter."""
                return [list(seq[i:i + n]) for i in range(0, len(seq) - n, n)]


            def flatten(lists):
                return [x for sub in lists for x in sub]
            '''
        ),
        "old": "    return [list(seq[i:i + n]) for i in range(0, len(seq) - n, n)]\n",
        "new": "    return [list(seq[i:i + n]) for i in range(0, len(seq), n)]\n",
        "issue": "`{pkg}.iters.chunks(list(range(10)), {k})` drops items at the end; the last (shorter) chunk is missing.",
        "hidden": _d(
            """
            import unittest
            from {pkg}.iters import chunks, flatten

            class T(unittest.TestCase):
                def test_roundtrip(self):
                    data = list(range(10))
                    self.assertEqual(flatten(chunks(data, {k})), data)
                def test_exact(self):
                    self.assertEqual(chunks([1, 2, 3, 4], 2), [[1, 2], [3, 4]])
                def test_empty(self):
                    self.assertEqual(chunks([], 3), [])
            """
        ),
        "visible": _d(
            """
            import unittest
            from {pkg}.iters import flatten

            class T(unittest.TestCase):
                def test_flatten(self):
                    self.assertEqual(flatten([[1], [2, 3]]), [1, 2, 3])
            """
        ),
    },
]

VARIANTS: tuple[tuple[str, int], ...] = (("acme", 3), ("toolbox", 4), ("pyutil", 7))


def _readme(pkg: str, module: str) -> str:
    return (
        f"# {pkg}\n\nA small utility package.\n\n- `{pkg}/{module}`\n\n"
        f"Run the tests with `python3 -m unittest discover -s tests -t .`\n"
    )


def generate_problems() -> list[SWEProblem]:
    """All tasks, in a fixed order (template-major, then variant)."""
    out: list[SWEProblem] = []
    for t in TEMPLATES:
        for pkg, k in VARIANTS:
            fmt = {"pkg": pkg, "k": k}
            source = t["source"].format(**fmt)
            old = t["old"].format(**fmt)
            new = t["new"].format(**fmt)
            if source.count(old) != 1:
                raise AssertionError(f"template {t['name']}: fix does not apply exactly once")
            path = f"{pkg}/{t['module']}"
            files = {
                "README.md": _readme(pkg, t["module"]),
                f"{pkg}/__init__.py": f'"""{pkg}: small utilities."""\n',
                path: source,
                "tests/__init__.py": "",
                "tests/test_basic.py": t["visible"].format(**fmt),
            }
            out.append(
                SWEProblem(
                    id=f"swe-{t['name']}-{pkg}",
                    issue=t["issue"].format(**fmt),
                    files=files,
                    hidden_tests=t["hidden"].format(**fmt),
                    fix=((path, old, new),),
                    meta={"template": t["name"], "package": pkg},
                )
            )
    return out
