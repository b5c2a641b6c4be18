#!/usr/bin/env bash
# verl 0.9.1's agent-loop module, for the verl export test (tests/training/test_verl_real.py), installed with
# --no-deps into its own folder, NOT into the system python: verl imports hydra, whose generated grammar needs
# antlr4-python3-runtime 4.9 while math-verify (a swarmgym dependency) needs 4.13. The test runs verl in a
# subprocess with this folder ahead of site-packages on PYTHONPATH. Idempotent: a marker names the pinned set.
# Folder: ${SWARMGYM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swarmgym}/verl
set -euo pipefail
PY="${PYTHON:-python3}"
ROOT="${SWARMGYM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/swarmgym}/verl"
# The rest of what that import needs goes into the system python as usual (none of it needs antlr; torch,
# transformers, numpy and pydantic come with swarmgym's `hf` extra). Already-satisfied ones are left alone.
SYSTEM_DEPS=("ray>=2.41" "datasets>=3" pandas "accelerate>=1.0" pillow pyyaml regex psutil jsonschema fastapi uvicorn)
"$PY" -m pip install -q --disable-pip-version-check "${SYSTEM_DEPS[@]}"
# Only what `import verl.experimental.agent_loop.tool_agent_loop` needs; versions inside verl's own pins.
PKGS=(verl==0.9.1 tensordict==0.10.0 pyvers==0.2.3 omegaconf==2.3.0 hydra-core==1.3.2
      antlr4-python3-runtime==4.9.3 codetiming==1.4.0 cachetools==8.0.3)
MARKER="$ROOT/complete-$(printf '%s\n' "${PKGS[@]}" | sha256sum | cut -c1-16)"
if [ -f "$MARKER" ]; then
  echo "verl already installed in $ROOT"
  exit 0
fi
mkdir -p "$(dirname "$ROOT")"
TMP="$(mktemp -d "$ROOT.tmp.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$TMP" "${PKGS[@]}"
# Check the import in the same way the test runs it (the folder ahead of site-packages).
( cd / && PYTHONPATH="$TMP" "$PY" -c \
  'import antlr4, verl.experimental.agent_loop.tool_agent_loop as t; assert antlr4.__file__.startswith("'"$TMP"'"); print("verl", t.__name__, "ok")' )
# pip must not have touched the system python's antlr (math-verify needs 4.13)
"$PY" -c 'import importlib.metadata as m; v = m.version("antlr4-python3-runtime"); assert not v.startswith("4.9"), v'
rm -rf "$ROOT"
mv "$TMP" "$ROOT"
trap - EXIT
touch "$ROOT/$(basename "$MARKER")"
echo "verl installed in $ROOT"
