"""Small checks `.ci/run` needs (standard library only: some run in a bare venv before anything is installed).

    python .ci/helpers.py deps-key EXTRAS             hash of what the wheelhouse must hold
    python .ci/helpers.py readme-command README.md     the first command under "## Two commands"
    python .ci/helpers.py check-run "CMD" DIR          the trajectories CMD wrote in DIR: all there, all ok
    python .ci/helpers.py base-check PYPROJECT         (in a venv without extras) import every module and
                                                       run one oracle episode of each built-in env
    python .ci/helpers.py bench-gate JSON LIST         exit 1 when the benchmark missed a target that LIST
                                                       (.ci/bench-timing-targets.txt) does not exempt
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shlex
import sys
import tomllib
from pathlib import Path


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def deps_key(extras: str, pyproject: str = "pyproject.toml") -> str:
    """Changes when a dependency, the extras, the build requirements or the interpreter change (not when
    unrelated parts of pyproject.toml do), so a warm wheelhouse is reused across most commits."""
    data = tomllib.loads(Path(pyproject).read_text())
    project = data["project"]
    wanted = sorted(e for e in extras.split(",") if e)
    blob = {
        "python": sys.version.split()[0],
        "platform": platform.machine(),
        "build": data.get("build-system", {}).get("requires", []),
        "deps": project.get("dependencies", []),
        "extras": {e: project.get("optional-dependencies", {}).get(e) for e in wanted},
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def readme_command(readme: str) -> str:
    """The first non-comment line of the first ```bash block under the "## Two commands" heading."""
    text = Path(readme).read_text()
    m = re.search(r"^## Two commands\s*$(.*?)(?=^## )", text + "\n## ", re.M | re.S)
    if not m:
        raise SystemExit(f"{readme}: no '## Two commands' section")
    block = re.search(r"^```bash\n(.*?)^```", m.group(1), re.M | re.S)
    if not block:
        raise SystemExit(f"{readme}: no ```bash block under '## Two commands'")
    for line in block.group(1).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()
    raise SystemExit(f"{readme}: the bash block under '## Two commands' has no command")


def check_run(cmd: str, cwd: str) -> str:
    """Read ``-n`` and ``--out`` from the ``swarmgym run`` part of ``cmd`` and check the file, row by row,
    without swarmgym's own reader: exactly N trajectories, each with status ok."""
    words = shlex.split(cmd)
    if "swarmgym" not in words or words[words.index("swarmgym") + 1] != "run":
        raise SystemExit(f"no `swarmgym run` in the README command: {cmd}")
    args = words[words.index("swarmgym") + 2:]
    n = int(args[args.index("-n") + 1]) if "-n" in args else None
    out = args[args.index("--out") + 1] if "--out" in args else None
    if n is None or out is None:
        raise SystemExit(f"the README command must say -n and --out for CI to check it: {cmd}")
    path = Path(cwd) / out
    if not path.is_file():
        raise SystemExit(f"the README command wrote no {out}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    trajs = [r["data"] for r in rows if r.get("kind") == "trajectory"]
    bad = [t.get("error") or t.get("status") for t in trajs if t.get("status") != "ok"]
    if len(trajs) != n or bad:
        raise SystemExit(f"{out}: {len(trajs)} trajectories for -n {n}; {len(bad)} not ok: {bad[:3]}")
    return f"{out}: {n} trajectories, all ok"


def base_check(pyproject: str) -> None:
    """Without extras: every module imports, or fails only for a module an extra provides; every built-in env
    runs one oracle episode, or says it needs an extra."""
    import contextlib
    import importlib
    import io
    import pkgutil
    import tempfile

    project = tomllib.loads(Path(pyproject).read_text())["project"]
    extra_only = {_norm(re.match(r"[A-Za-z0-9][\w.-]*", r).group(0))
                  for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    import swarmgym

    problems, needs_extra = [], []
    for mod in pkgutil.walk_packages(swarmgym.__path__, "swarmgym."):
        if mod.name.split(".")[1] in ("tests", "benchmarks", "__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except ModuleNotFoundError as e:
            (needs_extra if _norm((e.name or "").split(".")[0]) in extra_only else problems).append(f"{mod.name}: {e}")
        except Exception as e:
            problems.append(f"{mod.name}: {type(e).__name__}: {e}")
    from swarmgym.cli import main

    ran = []
    for env_id in sorted(swarmgym.registered_envs()):
        err = io.StringIO()
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["run", env_id, "--policy", "oracle", "-n", "1", "--out", f"{d}/t.jsonl", "--no-live"])
        if rc == 0:
            ran.append(env_id)
        elif "swarmgym[" in err.getvalue():
            needs_extra.append(f"{env_id}: {err.getvalue().strip()[:200]}")
        else:
            problems.append(f"{env_id}: exit {rc}: {err.getvalue().strip()[:300]}")
    print(f"base install: {len(ran)} envs ran an oracle episode ({', '.join(ran)})")
    for line in needs_extra:
        print(f"  needs an extra (fine): {line}")
    if problems:
        raise SystemExit("base install problems:\n  " + "\n  ".join(problems))


def bench_gate(result_json: str, timing_list: str) -> int:
    """Print the benchmark's missed targets; 1 when one of them is not a listed timing target."""
    doc = json.loads(Path(result_json).read_text())
    bench = doc.get("benchmark", Path(result_json).stem)
    exempt = {ln.split("#", 1)[0].strip() for ln in Path(timing_list).read_text().splitlines()} - {""}
    gate = 0
    for t in doc.get("targets", []):
        if t.get("met"):
            continue
        key = f"{bench}:{t.get('name')}"
        timing = key in exempt
        gate |= not timing
        kind = "timing, reported" if timing else "FAILS CI"
        print(f"      missed {key} = {t.get('value')} (goal {t.get('goal')}): {kind}")
    return gate


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    if cmd == "deps-key":
        print(deps_key(*rest))
    elif cmd == "readme-command":
        print(readme_command(*rest))
    elif cmd == "check-run":
        print(check_run(*rest))
    elif cmd == "base-check":
        base_check(*rest)
    elif cmd == "bench-gate":
        sys.exit(bench_gate(*rest))
    else:
        raise SystemExit(__doc__)
