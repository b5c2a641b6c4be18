"""The candidate side of the code judge, kept as source strings, and the plain-data codec both sides share.

The candidate's program never runs in the process that holds the tests or the result record. It runs in a
*candidate process* (a fresh ``python -I`` subprocess, or the sandbox's Python kernel) whose only job is
"define the solution, then call one of its functions on these arguments and send back the return value".
Everything that comes back is untrusted bytes: the judge decodes it with :func:`decode` into genuine
``None``/``bool``/``int``/``float``/``str``/``bytes``/``complex`` and ``list``/``tuple``/``dict``/``set``/
``frozenset`` objects built by the judge itself, and the tests' ``assert``\\ s run on those in the judge
process. So the worst a hostile candidate can do is lie about its own return values, which is exactly what
the tests check.

Wire format (one JSON document per message): ``null``, booleans, strings and floats are themselves
(non-finite floats tagged), ints are themselves up to 2**53 and hex-tagged beyond (no 4300-digit limit),
lists are arrays, and every other value is a one-key object naming its type: ``{"tuple": […]}``,
``{"set": […]}``, ``{"frozenset": […]}``, ``{"dict": [[k, v], …]}``, ``{"bytes": hex}``,
``{"complex": [re, im]}``, ``{"int": hex}``, ``{"float": "nan"}``. The encoder checks *exact* types, so a
subclass of ``int`` or ``str`` with an overridden ``__eq__`` (or any object) is refused as "not plain data".
Only in remote-object mode (both sides pass ``ref=``; :mod:`swarmgym.judges.remote_unittest`) does a
non-plain value travel, as ``{"ref": handle}``: a handle the receiver turns into an opaque stand-in.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CODEC", "KERNEL", "OBJECTS", "RUNNER", "decode", "dumps", "encode", "loads", "NotPlainData"]

CODEC = r'''
class NotPlainData(TypeError):
    pass

_BIG = 1 << 53
_MAX_DEPTH = 200

def encode(x, depth=0, ref=None):
    """x as JSON-ready data; NotPlainData for anything that is not plain data (exact types only).

    ``ref`` (remote-object mode): called on each non-plain value instead, its result sent as ``{"ref": …}``."""
    if depth > _MAX_DEPTH:
        raise NotPlainData("nested deeper than %d" % _MAX_DEPTH)
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if -_BIG < x < _BIG else {"int": format(x, "x")}
    if t is float:
        return x if x - x == 0.0 else {"float": repr(x)}
    if t is list:
        return [encode(v, depth + 1, ref) for v in x]
    if t is tuple:
        return {"tuple": [encode(v, depth + 1, ref) for v in x]}
    if t is dict:
        return {"dict": [[encode(k, depth + 1, ref), encode(v, depth + 1, ref)] for k, v in x.items()]}
    if t is set:
        return {"set": [encode(v, depth + 1, ref) for v in x]}
    if t is frozenset:
        return {"frozenset": [encode(v, depth + 1, ref) for v in x]}
    if t is bytes:
        return {"bytes": x.hex()}
    if t is complex:
        return {"complex": [repr(x.real), repr(x.imag)]}
    if ref is not None:
        return {"ref": ref(x)}
    raise NotPlainData("not plain data: %s" % t.__name__)

def decode(v, depth=0, ref=None):
    """The value of JSON-decoded data: builds fresh objects of the plain types only.

    ``ref`` (remote-object mode): turns the body of a ``{"ref": …}`` into the receiver's stand-in; without it
    a ref is refused."""
    if depth > _MAX_DEPTH:
        raise NotPlainData("nested deeper than %d" % _MAX_DEPTH)
    t = type(v)
    if v is None or t is bool or t is str or t is int or t is float:
        return v
    if t is list:
        return [decode(x, depth + 1, ref) for x in v]
    if t is dict and len(v) == 1:
        (tag, body), = v.items()
        if tag == "tuple" and type(body) is list:
            return tuple(decode(x, depth + 1, ref) for x in body)
        if tag == "set" and type(body) is list:
            return set(decode(x, depth + 1, ref) for x in body)
        if tag == "frozenset" and type(body) is list:
            return frozenset(decode(x, depth + 1, ref) for x in body)
        if tag == "dict" and type(body) is list:
            out = {}
            for pair in body:
                if type(pair) is not list or len(pair) != 2:
                    raise NotPlainData("bad dict item")
                out[decode(pair[0], depth + 1, ref)] = decode(pair[1], depth + 1, ref)
            return out
        if tag == "bytes" and type(body) is str:
            return bytes.fromhex(body)
        if tag == "complex" and type(body) is list and len(body) == 2 and all(type(p) is str for p in body):
            return complex(float(body[0]), float(body[1]))
        if tag == "int" and type(body) is str and len(body) < 100000:
            return int(body, 16)
        if tag == "float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "ref" and ref is not None:
            return ref(body)
    raise NotPlainData("not an encoded plain value: %s" % t.__name__)
'''

# The candidate side: load the solution, then answer calls. Used by the subprocess runner and the kernel.
SERVE = r'''
import builtins as _builtins
import json as _json

_solution_ns = {"__name__": "__solution__", "__builtins__": _builtins}

def _fail(e):
    return {"raise": [type(e).__name__, str(e)[:300]]}

def load(code, names):
    """Run the solution; report which of ``names`` it defines (callables) and the plain values of others."""
    try:
        exec(compile(code, "<solution>", "exec"), _solution_ns)
    except BaseException as e:
        return _json.dumps(_fail(e))
    kinds = {}
    for n in names:
        if n not in _solution_ns:
            kinds[n] = ["missing"]
        elif callable(_solution_ns[n]):
            kinds[n] = ["function"]
        else:
            try:
                kinds[n] = ["value", encode(_solution_ns[n])]
            except BaseException as e:
                kinds[n] = ["error", str(e)[:300]]
    return _json.dumps({"loaded": kinds})

def call(name, args_json):
    try:
        args, kwargs = decode(_json.loads(args_json))
        result = _solution_ns[name](*args, **kwargs)
        return _json.dumps({"ok": encode(result)})
    except BaseException as e:
        return _json.dumps(_fail(e))
'''

RUNNER = CODEC + SERVE + r'''
def _main():
    import os, sys
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the solution's prints go to the captured stderr, never into the protocol stream
    inp = os.fdopen(os.dup(0), "rb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    sys.stdin = open(os.devnull)
    first = _json.loads(inp.readline())
    try:
        import resource
        mem = int(first.get("memory_mb") or 0)
        if mem > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mem << 20, mem << 20))
        cpu = int(first.get("cpu_s") or 0)
        if cpu > 0:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
    except Exception:
        pass
    proto.write(load(first["code"], first["names"]) + "\n")
    proto.flush()
    for line in inp:
        req = _json.loads(line)
        proto.write(call(req["name"], req["args"]) + "\n")
        proto.flush()

_main()
'''

# The kernel variant: the same functions, defined once in a private dict of the sandbox's Python kernel.
KERNEL = CODEC + SERVE

# The candidate side of remote objects (swarmgym.judges.remote_unittest): a table of the candidate's objects
# by handle. Plain values travel as values, everything else as {"ref": [handle, info]}; the judge sends
# handles back as {"ref": handle}. Each operation answers {"ok": value} or {"raise": [mro, message]}, the
# exception's class chain as [module, qualname] pairs so the judge can raise a stand-in of the same name.
OBJECTS = CODEC + r'''
import importlib as _importlib
import json as _json
import os as _os
import sys as _sys

_objs = {}
_ids = {}

def _mro(t):
    return [[str(c.__module__), str(c.__qualname__)] for c in t.__mro__ if c is not object][:20]

def _ref(x):
    h = _ids.get(id(x))
    if h is None:
        h = len(_objs) + 1
        _objs[h] = x  # kept alive, so its id is never reused
        _ids[id(x)] = h
    if isinstance(x, type) and issubclass(x, BaseException):
        return [h, {"exc": _mro(x)}]
    return [h, {"type": type(x).__qualname__[:100]}]

def _deref(body):
    if type(body) is not int or body not in _objs:
        raise NotPlainData("unknown handle")
    return _objs[body]

def _reply(f):
    try:
        return _json.dumps({"ok": encode(f(), 0, _ref)})
    except BaseException as e:
        try:
            text = str(e)[:300]
        except BaseException:
            text = "?"
        return _json.dumps({"raise": [_mro(type(e)), text]})

def start(path):
    _os.chdir(path)
    _sys.path.insert(0, path)
    return "ready"

def imp(name):
    return _reply(lambda: _importlib.import_module(name))

def get(h, name):
    def f():
        o = _deref(h)
        try:
            return getattr(o, name)
        except AttributeError:
            if type(o) is type(_sys):  # `from pkg import submodule`
                return _importlib.import_module(o.__name__ + "." + name)
            raise
    return _reply(f)

def put(h, name, value):
    return _reply(lambda: setattr(_deref(h), name, decode(_json.loads(value), 0, _deref)))

def item(h, key):
    return _reply(lambda: _deref(h)[decode(_json.loads(key), 0, _deref)])

def call(h, args):
    def f():
        a, kw = decode(_json.loads(args), 0, _deref)
        return _deref(h)(*a, **kw)
    return _reply(f)
'''


_codec: dict[str, Any] = {}
exec(compile(CODEC, "<swarmgym codec>", "exec"), _codec)  # one source for both sides of the boundary
encode = _codec["encode"]
decode = _codec["decode"]
NotPlainData: type[TypeError] = _codec["NotPlainData"]


def dumps(value: Any, ref: Any = None) -> str:
    """``value`` encoded as a JSON document (NotPlainData for non-plain values, unless ``ref`` maps them)."""
    return json.dumps(encode(value, 0, ref), allow_nan=False)


def loads(text: str | bytes, ref: Any = None) -> Any:
    """The plain value of an untrusted JSON document (NotPlainData / ValueError when it is not one)."""
    return decode(json.loads(text, parse_constant=_no_constant), 0, ref)


def _no_constant(name: str) -> Any:
    raise ValueError(f"JSON constant {name} is not allowed (non-finite floats are tagged)")
