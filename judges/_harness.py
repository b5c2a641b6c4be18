"""The test harness script the code judge runs next to the untrusted solution (kept as a string).

It runs in a fresh interpreter (``python -I``), inside the episode's sandbox when there is one. Steps:

1. read the payload (solution, tests) and delete the file, take the result nonce from the environment
   and remove it, lower resource limits (memory, CPU time, file size);
2. snapshot ``builtins`` so a solution that patches ``abs`` or ``isinstance`` cannot change what the tests
   compute, then execute the solution (``__name__`` is not ``"__main__"``, stdin is empty);
3. run each test with a per-test alarm, writing the cumulative result after each one as a line
   ``<nonce> {json}`` to a duplicate of the original stdout, so a hard kill keeps the results so far.

This is not a security boundary (a solution can inspect the harness's frames); the sandbox is. It makes the
easy reward hacks fail: printing a fake result line, exiting early with status 0, reading the tests from
disk, monkeypatching builtins.
"""

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
