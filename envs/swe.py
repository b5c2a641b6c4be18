"""``swarmgym/SWE-v0``: fix a planted bug in a small generated Python repository.

Each episode gets a fresh sandbox whose workspace holds the repository (and nothing else: no history, no
hidden tests, no fix). The model reads the issue, explores with ``bash`` and ``view``, edits with
``str_replace``/``insert``/``create_file`` and calls ``submit``. The judge then kills whatever the model left
running, writes the hidden tests to a private directory of the sandbox and runs them there; reward 1 when
every hidden test passes (and the work was submitted). The oracle applies the known fix, so it solves every
task. Tasks come from :mod:`swarmgym.envs.swe_tasks` (30 tasks, deterministic).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from ..judges.base import JudgeContext
from ..toolsets.base import ToolContext, Toolset
from ..toolsets.files import FileEditToolset
from ..toolsets.shell import ShellToolset
from ..wire import JudgeResult, Message, Task, Trajectory
from .core import AgentEnv, EpisodeLimits
from .swe_tasks import SWEProblem, generate_problems

__all__ = ["make_env", "SWETasks", "SWEJudge", "RepoSetup", "swe_oracle", "SYSTEM_PROMPT"]

SYSTEM_PROMPT = (
    "You are a software engineer fixing a bug in the Python repository in /workspace. Use the bash tool to "
    "explore and run tests (python3 -m unittest discover -s tests -t .), view to read files, and str_replace, "
    "insert or create_file to edit them. Make the smallest change that fixes the issue, check it, then call "
    "submit. Hidden tests will check your fix."
)

HIDDEN_DIR = "/tmp/.swarmgym_hidden"

# The nonce reaches the runner in a file it deletes before the repository's code is imported (an
# environment variable would stay readable in /proc/self/environ), and exactly one result line must appear: code under test that prints a forged result
# needs the nonce, and one that also prints the real line is caught. (Code running in the same process as
# the tests can always subvert an in-process harness; this raises the bar, it does not remove it.)
_RUNNER = '''
import json, os, sys, unittest
_p = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nonce")
with open(_p) as _f:
    nonce = _f.read().strip()
os.unlink(_p)
hidden = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.getcwd())
suite = unittest.defaultTestLoader.discover(hidden, pattern="hidden_test*.py", top_level_dir=hidden)
with open(os.devnull, "w") as null:
    res = unittest.TextTestRunner(stream=null, verbosity=0).run(suite)
bad = [str(t) for t, _ in res.failures + res.errors]
print("SWARMGYM-RESULT-" + nonce + " " + json.dumps({"total": res.testsRun, "failed": len(bad), "which": bad[:20]}))
'''


def _task(p: SWEProblem) -> Task:
    prompt = (
        f"Issue in the repository in /workspace:\n\n{p.issue}\n\n"
        "Fix the bug in the package code (do not just edit the tests), then call submit."
    )
    return Task(
        id=p.id,
        prompt=prompt,
        answer=None,
        metadata={
            "source": "swe-generated",
            "files": p.files,
            "hidden_tests": p.hidden_tests,
            "fix": [list(f) for f in p.fix],
            **p.meta,
        },
    )


class SWETasks:
    """The generated SWE tasks as a task source (built once, on first use)."""

    def __init__(self) -> None:
        self._tasks: list[Task] | None = None

    def _all(self) -> list[Task]:
        if self._tasks is None:
            self._tasks = [_task(p) for p in generate_problems()]
        return self._tasks

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, i: int) -> Task:
        return self._all()[i]


class RepoSetup(Toolset):
    """No tools: copies the task's repository into the sandbox's workspace when the episode starts."""

    async def setup(self, ctx: ToolContext) -> None:
        if ctx.sandbox is None or ctx.task is None:
            return
        for path, content in ctx.task.metadata.get("files", {}).items():
            await ctx.sandbox.write_file(path, content)


class SWEJudge:
    """Runs the task's hidden tests inside the episode's sandbox after the episode ends.

    Facets: ``tests_passed`` (fraction of hidden tests passing), ``submitted``, ``correct`` (the reward).

    Args:
        require_submit: reward 0 unless the model called ``submit`` (the tests still run and are reported).
        timeout_s: deadline of the hidden test run.
    """

    name = "swe"

    def __init__(self, require_submit: bool = True, timeout_s: float = 60.0) -> None:
        self.require_submit = require_submit
        self.timeout_s = timeout_s

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        sb = ctx.sandbox
        if sb is None:
            raise RuntimeError("SWEJudge needs the episode's sandbox (make the env with sandbox=SandboxPool(...))")
        submitted = bool(ctx.state.get("files", {}).get("submitted"))
        kill = getattr(sb, "kill_processes", None)
        if kill is not None:  # nothing the model started may touch the tests while they run
            await kill()
        nonce = secrets.token_hex(8)
        await sb.exec(f"rm -rf {HIDDEN_DIR}", timeout=30)
        await sb.write_file(f"{HIDDEN_DIR}/hidden_test_{nonce}.py", task.metadata["hidden_tests"])
        await sb.write_file(f"{HIDDEN_DIR}/run.py", _RUNNER)
        await sb.write_file(f"{HIDDEN_DIR}/nonce", nonce)
        r = await sb.exec(f"python3 {HIDDEN_DIR}/run.py", timeout=self.timeout_s, cwd=sb.workspace)
        marker = f"SWARMGYM-RESULT-{nonce} "
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith(marker)]
        line = lines[0] if len(lines) == 1 and r.exit_code == 0 else None
        if line is None:
            why = "timed out" if r.timed_out else (r.stderr.strip()[-500:] or f"exit code {r.exit_code}")
            if len(lines) > 1:
                why = "the code under test printed a forged result line"
            return JudgeResult(
                reward=0.0,
                facets={"tests_passed": 0.0, "submitted": float(submitted), "correct": 0.0},
                info={"reason": f"hidden tests did not run: {why}"},
            )
        res = json.loads(line[len(marker) :])
        total = max(int(res["total"]), 1)
        passed = (int(res["total"]) - int(res["failed"])) / total
        ok = res["failed"] == 0 and res["total"] > 0
        reward = float(ok and (submitted or not self.require_submit))
        return JudgeResult(
            reward=reward,
            facets={"tests_passed": passed, "submitted": float(submitted), "correct": reward},
            info={"failed_tests": res["which"]} if res["which"] else {},
        )


def swe_oracle(task: Task, messages: list[Message]) -> Any:
    """Run the visible tests, apply the known fix, submit."""
    n = sum(1 for m in messages if m.role == "assistant")
    if n == 0:
        call = {"name": "bash", "arguments": {"command": "python3 -m unittest discover -s tests -t . 2>&1 | tail -3"}}
    elif n == 1:
        path, old, new = task.metadata["fix"][0]
        call = {"name": "str_replace", "arguments": {"path": path, "old_str": old, "new_str": new}}
    else:
        call = {"name": "submit", "arguments": {}}
    return {"role": "assistant", "content": None, "tool_calls": [{"id": f"call_{n}", **call}]}


def make_env(
    *,
    backend: str = "local",
    pool_size: int = 8,
    require_submit: bool = True,
    command_timeout_s: float = 30.0,
    system_prompt: str = SYSTEM_PROMPT,
    limits: EpisodeLimits | None = None,
    **kwargs: Any,
) -> AgentEnv:
    """Build ``swarmgym/SWE-v0`` (extra kwargs go to :class:`AgentEnv`).

    Args:
        backend: sandbox backend of the default pool (``"local"`` or ``"docker"``).
        pool_size: sandboxes kept (one per concurrent episode).
        require_submit: reward only submitted work.
        command_timeout_s: per-command timeout of the bash tool.
        sandbox: pass your own pool (``SandboxPool(...)``) to share it.
    """
    from ..toolsets.sandbox import SandboxPool

    sandbox = kwargs.pop("sandbox", None) or SandboxPool(backend, size=pool_size, prewarm=min(2, pool_size))
    return AgentEnv(
        kwargs.pop("tasks", None) or SWETasks(),
        toolsets=kwargs.pop("toolsets", None)
        or [RepoSetup(), ShellToolset(timeout=command_timeout_s), FileEditToolset()],
        judge=kwargs.pop("judge", None) or SWEJudge(require_submit=require_submit),
        system_prompt=system_prompt,
        limits=limits or EpisodeLimits(max_turns=30, tool_timeout_s=command_timeout_s + 15),
        sandbox=sandbox,
        oracle=kwargs.pop("oracle", swe_oracle),
        env_id=kwargs.pop("env_id", "swarmgym/SWE-v0"),
        **kwargs,
    )
