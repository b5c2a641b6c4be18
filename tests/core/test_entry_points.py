"""Third-party envs through the ``swarmgym.envs`` entry-point group, with a real installed distribution.

A throwaway package is built from a temp dir and pip-installed into a fresh venv that sees the *running*
interpreter's site-packages (the active venv's, or the system's: swarmgym, pip, setuptools), never the base
interpreter's by accident; a subprocess of that venv's python checks the envs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PLUGIN_MODULE = '''
"""A third-party env package."""
import swarmgym
from swarmgym import AgentEnv, Task
from swarmgym.judges.base import FunctionJudge


def make_env(**kwargs):
    """The Echo env: reward 1 when the model repeats the prompt."""
    return AgentEnv(
        [Task(id="echo-0", prompt="say banana", answer="banana")],
        judge=FunctionJudge(lambda task, traj: float(traj.final_text == task.answer)),
        **kwargs,
    )


def register_all():
    """A hook entry point: registers its envs itself."""
    swarmgym.register("thirdparty/Hook-v0", make_env, description="registered by a hook")
'''

PYPROJECT = '''
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "swarmgym-thirdparty-echo"
version = "0.0.1"

[project.entry-points."swarmgym.envs"]
"thirdparty/Echo-v0" = "thirdparty_echo:make_env"
thirdparty = "thirdparty_echo:register_all"

[tool.setuptools]
py-modules = ["thirdparty_echo"]
'''

CHECK = '''
import gymnasium, swarmgym
envs = swarmgym.registered_envs()
assert "thirdparty/Echo-v0" in envs, sorted(envs)
assert envs["thirdparty/Hook-v0"] == "registered by a hook"
assert "swarmgym/Math-v0" in envs
env = swarmgym.make("thirdparty/Echo-v0")
assert isinstance(env, swarmgym.AgentEnv) and env.env_id == "thirdparty/Echo-v0"
obs, info = env.reset(seed=0)
print(obs["messages"][-1].content)
obs, reward, terminated, truncated, info = env.step("banana")
print(reward, terminated)
env.close()
hooked = gymnasium.make("thirdparty/Hook-v0").unwrapped  # plugins are loaded: plain gymnasium sees them too
print(type(hooked).__name__)
hooked.close()
'''

BROKEN_PYPROJECT = PYPROJECT.replace("swarmgym-thirdparty-echo", "swarmgym-thirdparty-broken").replace(
    'thirdparty = "thirdparty_echo:register_all"', 'broken = "thirdparty_missing_module:register_all"'
)


def make_venv(root: Path) -> Path:
    """A venv that sees this interpreter's site-packages (and their .pth files: editable installs) after its own.

    ``--system-site-packages`` would expose the *base* interpreter's packages, which inside an activated
    virtualenv lacks swarmgym and its build tools; a .pth line running ``site.addsitedir`` exposes exactly
    what the running tests see.
    """
    import site
    import sysconfig

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    lines = [f"import site; site.addsitedir({d!r})" for d in dict.fromkeys(dirs) if os.path.isdir(d)]
    Path(own, "zz_parent_site.pth").write_text("\n".join(lines) + "\n")
    return python


def install(python: Path, pkg: Path) -> None:
    out = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--disable-pip-version-check", str(pkg)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def write_pkg(root: Path, pyproject: str) -> Path:
    pkg = root / "pkg"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(textwrap.dedent(pyproject))
    (pkg / "thirdparty_echo.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    return pkg


def test_entry_point_envs_from_an_installed_distribution(tmp_path: Path) -> None:
    python = make_venv(tmp_path)
    install(python, write_pkg(tmp_path, PYPROJECT))
    out = subprocess.run([str(python), "-W", "error", "-c", CHECK], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:3] == ["say banana", "1.0 True", "AgentEnv"]
    # the distribution is installed in the venv only: the test interpreter does not see it
    from importlib.metadata import entry_points

    assert not [ep for ep in entry_points(group="swarmgym.envs") if ep.name.startswith("thirdparty")]


def test_broken_entry_point_is_a_clear_registry_error(tmp_path: Path) -> None:
    python = make_venv(tmp_path)
    install(python, write_pkg(tmp_path, BROKEN_PYPROJECT))
    code = (
        "import swarmgym\n"
        "from swarmgym.errors import RegistryError\n"
        "try:\n"
        "    swarmgym.registered_envs()\n"
        "except RegistryError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    msg = out.stdout.strip()
    assert "entry point 'broken'" in msg and "thirdparty_missing_module" in msg and "swarmgym.envs" in msg
