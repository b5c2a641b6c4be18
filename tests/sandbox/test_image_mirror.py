"""The sandbox image's Debian mirror comes from the machine's apt sources (both file formats), checked against
apt's own reading of the same files (``apt-get update --print-uris``, which downloads nothing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from swarmgym.toolsets.sandbox.image import _mirror, apt_debian_mirror, apt_source_entries

ONE_LINE = """\
# a comment line
deb [arch=amd64 signed-by=/usr/share/keyrings/cloud.gpg] https://packages.cloud.google.com/apt cloud-sdk-bookworm main
deb-src http://src.example.org/debian trixie main
deb http://security.example.org/debian-security trixie-security main
deb [ signed-by=/usr/share/keyrings/debian.gpg ] http://ftp.fr.debian.org/debian/ trixie main contrib  # trailing
deb http://ftp.fr.debian.org/debian/ trixie-updates main
"""

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example.net/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example.net/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example.net/debian
Suites: bookworm
Components: main

Types: deb deb-src
URIs: https://deb.nodesource.com/node_20.x
  https://second.example.net/node
Suites: nodistro
Components: main
"""


def _etc(tmp_path: Path, sources_list: str = "", parts: dict[str, str] | None = None) -> Path:
    etc = tmp_path / "etc-apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list").write_text(sources_list)
    for name, text in (parts or {}).items():
        (etc / "sources.list.d" / name).write_text(text)
    return etc


def _apt_reads(etc: Path, tmp_path: Path) -> set[tuple[str, str, str]]:
    """``(uri, suite, component)`` of the binary indexes apt itself would fetch for these files."""
    if shutil.which("apt-get") is None:
        if os.environ.get("SWARMGYM_REQUIRE_REAL") == "1":
            pytest.fail("SWARMGYM_REQUIRE_REAL=1 but apt-get is missing")
        pytest.skip("needs apt-get (a Debian machine)")
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    out = subprocess.run(
        ["apt-get", "update", "--print-uris", f"-o=Dir::Etc::sourcelist={etc / 'sources.list'}",
         f"-o=Dir::Etc::sourceparts={etc / 'sources.list.d'}", f"-o=Dir::State::Lists={lists}",
         "-o=Debug::NoLocking=1", "-o=APT::Architectures=amd64", "-o=APT::Architecture=amd64"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = set()
    for m in re.finditer(r"'(\S+?)/dists/(\S+?)/(\S+?)/binary-amd64/Packages", out.stdout):
        got.add((m.group(1).rstrip("/"), m.group(2), m.group(3)))
    assert got, out.stdout  # apt read something, or the comparison below could not fail
    return got


def _ours(etc: Path) -> set[tuple[str, str, str]]:
    return {(uri.rstrip("/"), suite, c) for uri, suite, comps in apt_source_entries(str(etc)) for c in comps}


def test_one_line_format_agrees_with_apt(tmp_path: Path) -> None:
    etc = _etc(tmp_path, ONE_LINE)
    assert _ours(etc) == _apt_reads(etc, tmp_path)
    # the cloud-sdk vendor repo and the security suite come first, but cannot bootstrap Debian
    assert apt_debian_mirror(str(etc)) == "http://ftp.fr.debian.org/debian"


def test_deb822_format_agrees_with_apt(tmp_path: Path) -> None:
    etc = _etc(tmp_path, "", {"a-node.sources": DEB822.split("\n\n", 3)[3], "debian.sources": DEB822})
    assert _ours(etc) == _apt_reads(etc, tmp_path)
    assert ("http://disabled.example.net/debian", "bookworm", "main") not in _ours(etc)
    # the nodesource file sorts first; its suite is not Debian's
    assert apt_debian_mirror(str(etc)) == "http://mirror.example.net/debian"


def test_both_formats_together_follow_apts_file_order(tmp_path: Path) -> None:
    etc = _etc(tmp_path, ONE_LINE, {"debian.sources": DEB822, "old.list": "deb http://old.example/debian sid main\n"})
    assert _ours(etc) == _apt_reads(etc, tmp_path)
    assert apt_debian_mirror(str(etc)) == "http://ftp.fr.debian.org/debian"  # sources.list is read first
    (etc / "sources.list").write_text("")
    assert apt_debian_mirror(str(etc)) == "http://mirror.example.net/debian"  # debian.sources < old.list


def test_no_debian_source_is_none(tmp_path: Path) -> None:
    ubuntu = "deb http://archive.ubuntu.com/ubuntu jammy main universe\n"
    assert apt_debian_mirror(str(_etc(tmp_path, ubuntu))) is None
    assert apt_debian_mirror(str(tmp_path / "missing")) is None


def test_override_order_and_no_built_in_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarmgym.errors import SandboxError

    monkeypatch.delenv("SWARMGYM_DEBIAN_MIRROR", raising=False)
    with pytest.raises(SandboxError, match="--mirror URL or set SWARMGYM_DEBIAN_MIRROR"):
        _mirror(None, str(tmp_path / "missing"))
    monkeypatch.setenv("SWARMGYM_DEBIAN_MIRROR", "http://env.example/debian")
    assert _mirror(None, str(tmp_path / "missing")) == "http://env.example/debian"
    assert _mirror("http://flag.example/debian", str(tmp_path / "missing")) == "http://flag.example/debian"
