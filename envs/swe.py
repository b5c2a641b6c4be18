"""``swarmgym/SWE-v0``: fix a planted bug in a small generated Python repository.

Each episode gets a fresh sandbox whose workspace holds the repository (and nothing else: no history, no
hidden tests, no fix). The model reads the issue, explores with ``bash`` and ``view``, edits with
``str_replace``/``insert``/``create_file`` and calls ``submit``. The judge then kills whatever the model left
running and runs the hidden tests in its own process against the repository's code, which runs in the
sandbox and answers with plain data (see :class:`SWEJudge`); reward 1 when every hidden test passes (and the
work was submitted). The oracle applies the known fix, so it solves every
task. Tasks come from :mod:`swarmgym.envs.swe_tasks` (30 tasks, deterministic).
"""

from __future__ import annotations

from typing import Any

from ..judges.base import JudgeContext
from ..judges.remote_unittest import kernel_transport, run_remote_unittest
from ..toolsets.base import ToolContext, Toolset
from ..toolsets.files import FileEditToolset
from ..toolsets.shell import ShellToolset
from ..wire import JudgeResult, Message, Task, Trajectory
from .core import AgentEnv, EpisodeLimits
from .swe_tasks import SWEProblem, generate_problems

__all__ = ["make_env", "SWETasks", "SWEJudge", "RepoSetup", "repo_packages", "swe_oracle", "SYSTEM_PROMPT"]

SYSTEM_PROMPT = (
    "You are a software engineer fixing a bug in the Python repository in /workspace. Use the bash tool to "
    "explore and run tests (python3 -m unittest discover -s tests -t .), view to read files, and str_replace, "
    "insert or create_file to edit them. Make the smallest change that fixes the issue, check it, then call "
    "submit. Hidden tests will check your fix."
)

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


def repo_packages(files: dict[str, str]) -> frozenset[str]:
    """Top-level importable names of a repository (``pkg/__init__.py`` and ``module.py`` at the root)."""
    out = set()
    for path in files:
        parts = path.split("/")
        if len(parts) == 1 and parts[0].endswith(".py"):
            out.add(parts[0][:-3])
        elif len(parts) == 2 and parts[1] == "__init__.py":
            out.add(parts[0])
    return frozenset(out)


class SWEJudge:
    """Runs the task's hidden tests on the judge's side against the repository as the model left it.

    The hidden tests (trusted task data) run here, in the judge's process, and never enter the sandbox. The
    repository's code runs in the sandbox's Python kernel — fresh, after every process the model left was
    killed — and answers the tests' imports, attribute accesses and calls with plain data or opaque handles
    (:mod:`swarmgym.judges.remote_unittest`). So nothing in the repository can reach the test runner or the
    result record: patching ``unittest``, printing a result line, exiting early, returning always-equal
    objects or searching the disk for the tests all fail (``tests/judges/test_swe_redteam.py``).

    Facets: ``tests_passed`` (fraction of hidden tests passing), ``submitted``, ``correct`` (the reward).

    Args:
        require_submit: reward 0 unless the model called ``submit`` (the tests still run and are reported).
        timeout_s: deadline of the whole hidden test run.
        per_call_s: deadline of one request to the repository's code (an import, a call).
    """

    name = "swe"

    def __init__(self, require_submit: bool = True, timeout_s: float = 60.0, per_call_s: float = 10.0) -> None:
        self.require_submit = require_submit
        self.timeout_s = timeout_s
        self.per_call_s = per_call_s

    async def score(self, task: Task, trajectory: Trajectory, ctx: JudgeContext) -> JudgeResult:
        sb = ctx.sandbox
        if sb is None:
            raise RuntimeError("SWEJudge needs the episode's sandbox (make the env with sandbox=SandboxPool(...))")
        submitted = bool(ctx.state.get("files", {}).get("submitted"))
        kill = getattr(sb, "kill_processes", None)
        if kill is not None:  # nothing the model started may run next to the candidate (the kernel restarts too)
            await kill()
        md = task.metadata
        packages = frozenset(md.get("packages") or repo_packages(md.get("files", {})))
        res, timed_out = await run_remote_unittest(
            md["hidden_tests"], packages, kernel_transport(sb), setup=sb.workspace,
            timeout_s=self.timeout_s, per_call_s=self.per_call_s,
        )
        passed = res.n_passed / max(res.total, 1)
        ok = res.total > 0 and res.n_passed == res.total
        reward = float(ok and (submitted or not self.require_submit))
        info: dict[str, Any] = {}
        if res.error:
            info["reason"] = f"hidden tests did not run: {res.error}"
        if res.failures:
            info["failed_tests"] = list(res.failures)
        if timed_out:
            info["timed_out"] = True
        return JudgeResult(
            reward=reward,
            facets={"tests_passed": passed, "submitted": float(submitted), "correct": reward},
            info=info,
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
