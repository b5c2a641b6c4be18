#!/usr/bin/env bash
# Install the [ray] extra (Ray, for the Ray backend's tests and `swarmgym bench ray`) into the CI python.
# Idempotent: nothing is done when `import ray` already works; pip's own wheel cache makes a rerun cheap.
set -euo pipefail
PY="${PYTHON:-python3}"
cd "$(dirname "$0")/.."
if "$PY" -c "import ray" 2>/dev/null; then
    echo "install-ray: $("$PY" -c 'import ray; print("ray", ray.__version__)') already installed"
    exit 0
fi
"$PY" -m pip install -q --disable-pip-version-check -e ".[ray]"
"$PY" -c "import ray; print('install-ray: ray', ray.__version__)"
