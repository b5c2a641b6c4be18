"""The README's custom-env example runs and does what its comments say."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_custom_env_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)
    env = ns["env"]
    try:
        assert ns["reward"] == 1.0
        assert ns["terminated"] is True
        msgs = env.trajectory.messages
        tool_msgs = [m for m in msgs if m.role == "tool"]
        assert [m.content for m in tool_msgs] == [">"]  # compare(3, 1)
    finally:
        env.close()
        import gymnasium

        gymnasium.registry.pop("myorg/Sorting-v0", None)


def test_readme_has_two_setup_commands() -> None:
    text = README.read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    bash = re.findall(r"```bash\n(.*?)```", section, re.S)[0]
    commands = [line for line in bash.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(commands) == 2
    assert "swarmgym run" in commands[0] and "bash .ci/run" in commands[1]
