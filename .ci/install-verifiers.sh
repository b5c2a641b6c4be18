#!/usr/bin/env bash
# Pre-build the virtualenv with verifiers (the rollout benchmark's baseline, never a swarmgym dependency),
# so `swarmgym bench rollout --quick` in CI measures instead of installing. Idempotent: the benchmark's own
# check (version and import) decides whether anything is done. Cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/swarmgym/bench/verifiers-<version>.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
cd "$(dirname "$0")/.."
"$PYTHON" - <<'PY'
import sys, time
sys.path.insert(0, ".")  # the checkout root, for `import benchmarks` (as `swarmgym bench` does)
from benchmarks.rollout import VENV_DIR, VERIFIERS_VERSION, _ensure_verifiers

t0 = time.monotonic()
print(f"install-verifiers: verifiers=={VERIFIERS_VERSION} in {VENV_DIR}", flush=True)
py, how = _ensure_verifiers()
if py is None:
    sys.exit(f"install-verifiers: failed: {how}")
print(f"install-verifiers: {how} ({time.monotonic() - t0:.1f} s)")
PY
