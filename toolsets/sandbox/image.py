"""Offline build of the default docker sandbox image, and listing of built images.

There is no registry to pull from, so the image is made from Debian packages: ``debootstrap`` a minimal
bookworm root filesystem (python3, bash, coreutils, git), strip apt caches, and ``docker import`` it. The
tag is ``swarmgym-sandbox:<hash>``, where the hash covers everything the build depends on (the recipe
below, the suite, the package list, this file's version), so a build is skipped when an image with that tag
exists, and a changed recipe gets a new tag instead of silently reusing an old image. ``latest`` always
points at the last build. Users may pass any local image instead (``SandboxConfig(image=...)``); it must
contain ``/usr/bin/python3``. The Debian mirror is the one this machine's apt uses (``--mirror`` or
``$SWARMGYM_DEBIAN_MIRROR`` override it).

Command line (what CI runs; idempotent)::

    python -m swarmgym.toolsets.sandbox.image build [--force] [--name NAME] [--mirror URL]
    python -m swarmgym.toolsets.sandbox.image ls
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from ...errors import SandboxError

__all__ = ["build", "ls", "default_image", "recipe_hash", "apt_debian_mirror", "apt_source_entries", "IMAGE_REPO", "main"]

IMAGE_REPO = "swarmgym-sandbox"
LABEL = "swarmgym.sandbox"
SUITE = "bookworm"
PACKAGES = ("python3", "bash", "coreutils", "git", "ca-certificates", "procps")
RECIPE_VERSION = "1"


def recipe_hash(suite: str = SUITE, packages: tuple[str, ...] = PACKAGES) -> str:
    """12 hex digits identifying the image recipe."""
    h = hashlib.sha256(json.dumps({"v": RECIPE_VERSION, "suite": suite, "packages": sorted(packages)}).encode())
    return h.hexdigest()[:12]


def default_image() -> str:
    """Tag of the image the docker backend uses by default."""
    return f"{IMAGE_REPO}:{recipe_hash()}"


def _client() -> Any:
    try:
        import docker
    except ImportError:
        raise SandboxError("the docker backend needs the docker extra: pip install 'swarmgym[docker]'") from None
    try:
        c = docker.from_env(timeout=300)
        c.ping()
    except Exception as e:
        raise SandboxError(
            f"cannot reach the Docker engine ({e}); start dockerd or set DOCKER_HOST, or use the local backend"
        ) from None
    return c


# Debian suite names (codenames and aliases); a sources entry for another suite (a vendor repo such as
# "cloud-sdk-bookworm", Ubuntu's "jammy", nodesource's "nodistro") does not serve what debootstrap needs.
_DEBIAN_SUITES = frozenset(
    "buster bullseye bookworm trixie forky duke sid oldoldstable oldstable stable testing unstable".split()
)


def _is_debian_suite(suite: str) -> bool:
    base = suite.split("-", 1)[0]  # bookworm-updates, bookworm-backports → bookworm
    return base in _DEBIAN_SUITES and not suite.endswith("-security")


def _one_line_entries(text: str) -> list[tuple[str, str, list[str]]]:
    """``(uri, suite, components)`` of every ``deb`` line of a sources.list file (deb-src and comments skipped)."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):  # options: deb [arch=amd64 signed-by=…] uri suite comps…
            rest = rest.split("]", 1)[1] if "]" in rest else ""
        parts = rest.split()
        if len(parts) >= 2:
            out.append((parts[0], parts[1], parts[2:]))
    return out


def _deb822_entries(text: str) -> list[tuple[str, str, list[str]]]:
    """``(uri, suite, components)`` of every enabled ``Types: deb`` stanza of a ``*.sources`` file."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0] in " \t" and key:  # folded continuation line
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        comps = fields.get("components", "").split()
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                out.append((uri, suite, comps))
    return out


def apt_source_entries(etc_apt: str = "/etc/apt") -> list[tuple[str, str, list[str]]]:
    """``(uri, suite, components)`` of every binary source apt reads, in apt's order: ``sources.list``,
    then ``sources.list.d/*.list`` (one-line format) and ``*.sources`` (deb822) sorted by name."""
    files = [os.path.join(etc_apt, "sources.list")]
    d = os.path.join(etc_apt, "sources.list.d")
    if os.path.isdir(d):
        files += sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith((".list", ".sources")))
    out = []
    for path in files:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        out += _deb822_entries(text) if path.endswith(".sources") else _one_line_entries(text)
    return out


def apt_debian_mirror(etc_apt: str = "/etc/apt") -> str | None:
    """The Debian mirror this machine's apt is configured with, or None: the first source serving a Debian
    suite (not ``-security``) with the ``main`` component; a vendor repository or a security mirror cannot
    bootstrap a system."""
    for uri, suite, comps in apt_source_entries(etc_apt):
        if _is_debian_suite(suite) and "main" in comps and uri.startswith(("http://", "https://", "file:/")):
            return uri.rstrip("/")
    return None


def _mirror(override: str | None = None, etc_apt: str = "/etc/apt") -> str:
    """The mirror to debootstrap from: ``override`` (``--mirror``), then ``$SWARMGYM_DEBIAN_MIRROR``, then the
    machine's apt sources. No mirror host is built in: a machine may reach only its own mirror.

    Raises:
        SandboxError: none of the three names a Debian mirror (the message says how to give one).
    """
    if override:
        return override
    env = os.environ.get("SWARMGYM_DEBIAN_MIRROR")
    if env:
        return env
    found = apt_debian_mirror(etc_apt)
    if found:
        return found
    raise SandboxError(
        f"no Debian mirror found in the apt sources under {etc_apt} (none serves a Debian suite with 'main'): "
        "pass --mirror URL or set SWARMGYM_DEBIAN_MIRROR=URL (e.g. your Debian mirror's http://HOST/debian)"
    )


def ls() -> list[dict[str, Any]]:
    """Sandbox images in the local engine: ``[{"tag", "id", "size_mb", "created"}]``."""
    c = _client()
    out = []
    for img in c.images.list(filters={"label": LABEL}):
        for tag in img.tags or ["<none>"]:
            out.append(
                {
                    "tag": tag,
                    "id": img.short_id,
                    "size_mb": round(img.attrs.get("Size", 0) / 1e6, 1),
                    "created": img.attrs.get("Created", ""),
                }
            )
    return sorted(out, key=lambda d: d["tag"])


def _image_exists(client: Any, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def build(name: str | None = None, force: bool = False, *, mirror: str | None = None, log: Any = None) -> str:
    """Build the default sandbox image unless it exists; returns its tag.

    Args:
        name: tag to give the image (default ``swarmgym-sandbox:<recipe hash>``; ``latest`` is also set).
        force: rebuild even if the tag exists.
        mirror: Debian mirror URL (default: ``$SWARMGYM_DEBIAN_MIRROR``, else the one apt here uses).
        log: ``callable(str)`` for progress lines (default: stderr).

    Raises:
        SandboxError: docker or debootstrap is missing, or the build failed (the message says which step).
    """
    say = log or (lambda s: print(s, file=sys.stderr, flush=True))
    client = _client()
    tag = name or default_image()
    if ":" not in tag.rsplit("/", 1)[-1]:
        tag += ":latest"
    if not force and _image_exists(client, tag):
        say(f"image {tag} exists (recipe {recipe_hash()}); nothing to do")
        return tag
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SandboxError("building the sandbox image needs debootstrap: apt-get install -y debootstrap")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap needs root: run `sudo swarmgym sandbox build` (or build as root in CI)")
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="swarmgym-image-")
    rootfs = os.path.join(work, "rootfs")
    try:
        mirror = _mirror(mirror)
        say(f"debootstrap {SUITE} ({', '.join(PACKAGES)}) from {mirror} …")
        cmd = [
            debootstrap,
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            rootfs,
            mirror,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-15:])
            raise SandboxError(f"debootstrap failed (exit {p.returncode}):\n{tail}")
        _strip_rootfs(rootfs)
        tar = os.path.join(work, "rootfs.tar")
        say("packing the root filesystem …")
        p = subprocess.run(
            ["tar", "--numeric-owner", "--xattrs", "-C", rootfs, "-cf", tar, "."], capture_output=True, text=True
        )
        if p.returncode != 0:
            raise SandboxError(f"tar failed: {p.stderr.strip()}")
        say(f"docker import as {tag} …")
        repo, _, version = tag.rpartition(":")
        changes = [
            f"LABEL {LABEL}=1",
            f"LABEL swarmgym.recipe={recipe_hash()}",
            "USER 65534:65534",
            "WORKDIR /workspace",
            'ENV PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" LANG=C.UTF-8',
            'CMD ["/usr/bin/python3"]',
        ]
        client.api.import_image_from_file(tar, repository=repo, tag=version, changes=changes)
        if not _image_exists(client, tag):
            raise SandboxError(f"docker import did not produce {tag}")
        client.images.get(tag).tag(IMAGE_REPO, "latest")
        say(f"built {tag} in {time.monotonic() - t0:.0f} s")
        return tag
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _strip_rootfs(rootfs: str) -> None:
    """Drop what a sandbox never needs (package caches and lists, docs) and add the workspace dir."""
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"):
        d = os.path.join(rootfs, rel)
        if os.path.isdir(d):
            for name in os.listdir(d):
                p = os.path.join(d, name)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    try:
                        os.unlink(p)
                    except OSError:
                        pass
    ws = os.path.join(rootfs, "workspace")
    os.makedirs(ws, exist_ok=True)
    os.chown(ws, 65534, 65534)


def main(argv: list[str] | None = None) -> int:
    """``python -m swarmgym.toolsets.sandbox.image {build,ls}``."""
    ap = argparse.ArgumentParser(prog="python -m swarmgym.toolsets.sandbox.image")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the default sandbox image (skipped when it exists)")
    b.add_argument("--name", default=None, help="image tag (default swarmgym-sandbox:<recipe hash>)")
    b.add_argument("--force", action="store_true", help="rebuild even if the image exists")
    b.add_argument("--mirror", default=None,
                   help="Debian mirror URL (default: $SWARMGYM_DEBIAN_MIRROR, else the machine's apt sources)")
    sub.add_parser("ls", help="list sandbox images")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(build(args.name, args.force, mirror=args.mirror))
        else:
            for row in ls():
                print(f"{row['tag']}\t{row['id']}\t{row['size_mb']} MB\t{row['created']}")
    except SandboxError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
