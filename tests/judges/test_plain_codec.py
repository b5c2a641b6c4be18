"""The plain-data codec that carries values across the code judge's process boundary."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swarmgym.judges._harness import NotPlainData, dumps, loads

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary() | \
    st.complex_numbers(allow_nan=False)
hashables = st.recursive(scalars, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3), max_leaves=8)
values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.tuples(c, c) | st.dictionaries(hashables, c, max_size=3)
    | st.sets(hashables, max_size=3) | st.frozensets(hashables, max_size=3),
    max_leaves=20,
)


def _same(a: object, b: object) -> bool:
    """Equal *and* of the same exact types all the way down (== alone would accept 1 == 1.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[index,union-attr]
    return a == b


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip_keeps_values_and_types(v: object) -> None:
    assert _same(loads(dumps(v)), v)


def test_special_values() -> None:
    for v in (2**200, -(2**200), 10**5000, float("inf"), float("-inf"), (1,), (), frozenset({(1, 2)}), b"\x00"):
        assert _same(loads(dumps(v)), v)
    assert math.isnan(loads(dumps(float("nan"))))
    assert _same(loads(dumps({1: [True, None], (2, "x"): {3.5}})), {1: [True, None], (2, "x"): {3.5}})


class EqInt(int):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = int.__hash__


class Anything:
    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize("bad", [EqInt(1), Anything(), [Anything()], {"k": Anything()}, type("S", (str,), {})("x"),
                                 range(3), (x for x in ()), print, object()])
def test_non_plain_values_are_refused(bad: object) -> None:
    with pytest.raises(NotPlainData):
        dumps(bad)


@pytest.mark.parametrize("wire", ['{"tuple": [1], "x": 2}', '{"eq": 1}', '{"set": [[1]]}', '{"int": 5}', 'NaN',
                                  '{"float": "1e3"}', '{"bytes": "zz"}', '{"dict": [[1]]}', "[" * 300 + "]" * 300])
def test_untrusted_wire_data_is_rejected(wire: str) -> None:
    with pytest.raises((NotPlainData, ValueError, TypeError, RecursionError)):
        loads(wire)


def test_decoded_objects_are_fresh_plain_objects() -> None:
    out = loads(json.dumps({"tuple": [1, "a", [2.5]]}))
    assert type(out) is tuple and type(out[2]) is list and out == (1, "a", [2.5])
