#!/usr/bin/env bash
# What the viewer's browser tests need (tests/viewer/test_browser.py): Debian's Chromium, Playwright from
# PyPI to drive it (Playwright cannot download its own browsers here; the tests point it at this binary
# via executable_path), and matplotlib for the plots (the `viz` extra). Idempotent: installs only what is
# missing; apt and pip keep their own caches.
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo  # .ci/run works as a user in a venv too
PY="${PYTHON:-python3}"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.3}"

if ! command -v chromium >/dev/null 2>&1; then
  echo "install-browser: chromium (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium >/dev/null
fi

if ! "$PY" -c "import playwright" >/dev/null 2>&1; then
  echo "install-browser: playwright==${PLAYWRIGHT_VERSION} (PyPI)"
  "$PY" -m pip install -q --disable-pip-version-check "playwright==${PLAYWRIGHT_VERSION}"
fi

if ! "$PY" -c "import matplotlib" >/dev/null 2>&1; then
  echo "install-browser: matplotlib (the viz extra)"
  "$PY" -m pip install -q --disable-pip-version-check "matplotlib>=3.7"
fi

# prove the pair works: Playwright drives this Chromium, headless
"$PY" - <<'PY'
import shutil
from playwright.sync_api import sync_playwright

exe = shutil.which("chromium")
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
    page = b.new_page()
    page.set_content("<p id=x>ok</p>")
    assert page.inner_text("#x") == "ok"
    print(f"install-browser: playwright {b.version} drives {exe}")
    b.close()
PY
