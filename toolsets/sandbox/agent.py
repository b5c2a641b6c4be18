"""The in-sandbox agent: one long-lived process per sandbox, speaking JSON lines over stdin/stdout.

This file is *source shipped into the sandbox*, not a module swarmgym imports for its own use: the host
reads it as text and sends it to ``python3 -S -c BOOTSTRAP`` on the sandbox's stdin (see
:data:`BOOTSTRAP`), so the sandbox image needs nothing but a python3 interpreter. It must therefore use the
standard library only and run on any CPython ≥ 3.7.

Why an agent at all: a tool call that spawns a fresh ``docker exec`` or ``bwrap`` costs 5-100 ms; a request
to a process that is already running inside the sandbox costs about 0.1 ms. The agent:

* runs shell commands (``exec``) in their own session/process group, reads their output through pipes
  into a :class:`Capped` buffer (head and tail kept, the middle counted and dropped: the full output never
  exists in memory, here or on the host) and kills the whole group when the deadline passes;
* hosts the stateful Python namespace (``python``) in a *kernel*: a child forked from the agent (cheap,
  copy-on-write, no interpreter start) that keeps its globals between calls. A timeout kills the kernel's
  process group; the next call forks a fresh kernel and says that the state was lost;
* reads and writes files, resets the sandbox (kills every other process, restores the workspace) and
  reports a fingerprint (workspace hash + stray processes) the host uses to verify a reset.

The agent is single-threaded (one ``selectors`` loop): forking the kernel from a threaded process would be
unsafe, and a select loop lets several ``exec`` requests run at once without threads.

Protocol: each request is one JSON object per line ``{"id": n, "op": ..., ...}``; each response is one line
``{"id": n, "ok": true, ...}`` or ``{"id": n, "ok": false, "error": "..."}``. The first line the agent
writes is ``{"ready": true, "pid": ...}``.
"""

import base64
import errno
import json
import os
import selectors
import signal
import stat
import subprocess
import sys
import time

# ast, traceback and hashlib cost ~30 ms of imports; the agent's start time is every sandbox's cold start,
# so they load where used (the kernel imports ast/traceback after its fork, on the first cell).
try:  # the C sha256 without OpenSSL's import cost (named _sha2 from Python 3.12 on)
    from _sha256 import sha256 as _sha256
except ImportError:
    try:
        from _sha2 import sha256 as _sha256
    except ImportError:
        from hashlib import sha256 as _sha256

try:
    import resource
except ImportError:  # pragma: no cover - not on Linux
    resource = None  # type: ignore[assignment]

# The host sends ``<length>\n<source bytes>`` on stdin; this one-liner reads exactly that many bytes with
# os.read (never through sys.stdin's buffer, which could swallow the first request) and runs the source.
BOOTSTRAP = (
    "import os\n"
    "h=b''\n"
    "while not h.endswith(b'\\n'):\n"
    "    c=os.read(0,1)\n"
    "    if not c: raise SystemExit(3)\n"
    "    h+=c\n"
    "n=int(h);s=b''\n"
    "while len(s)<n:\n"
    "    c=os.read(0,n-len(s))\n"
    "    if not c: raise SystemExit(3)\n"
    "    s+=c\n"
    "exec(compile(s,'swarmgym-agent','exec'),{'__name__':'__swarmgym_agent__'})\n"
)

READ_CHUNK = 65536


class Capped(object):
    """Keeps the first and last ``limit/2`` bytes of a stream and counts what it dropped."""

    def __init__(self, limit):
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data):
        self.total += len(data)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data and self.tail_limit:
            self.tail += data
            # Trim lazily (at twice the limit) so a stream of small writes costs amortised O(1) per byte.
            if len(self.tail) > 2 * self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    def render(self):
        tail = bytes(self.tail[-self.tail_limit :]) if self.tail_limit else b""
        cut = self.total - len(self.head) - len(tail)
        if cut <= 0:
            return bytes(self.head + tail).decode("utf-8", "replace"), 0
        marker = "\n[... %d bytes of output truncated (kept the first %d and the last %d) ...]\n" % (
            cut,
            len(self.head),
            len(tail),
        )
        return bytes(self.head).decode("utf-8", "replace") + marker + tail.decode("utf-8", "replace"), cut


def _signame(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


def _describe_exit(code):
    """Human description of a Popen returncode (negative = killed by a signal)."""
    if code is None:
        return ""
    if code < 0:
        name = _signame(-code)
        if -code == signal.SIGKILL:
            return "killed by SIGKILL (out of memory, a limit, or a timeout)"
        if -code == signal.SIGXCPU:
            return "killed by SIGXCPU (CPU time limit exceeded)"
        if -code == signal.SIGXFSZ:
            return "killed by SIGXFSZ (file size limit exceeded)"
        return "killed by " + name
    if code == 137:
        return "exit 137: killed by SIGKILL (out of memory, a limit, or a timeout)"
    return ""


class Job(object):
    """A running shell command."""

    def __init__(self, req_id, proc, deadline, limit):
        self.id = req_id
        self.proc = proc
        self.deadline = deadline
        self.out = Capped(limit)
        self.err = Capped(limit)
        self.open = 2
        self.exited_at = None
        self.timed_out = False
        self.t0 = time.monotonic()


class StreamSplitter(object):
    """Feeds a kernel output stream into the current cell's buffer, cutting at the end-of-cell sentinel."""

    def __init__(self, sentinel):
        self.sentinel = sentinel
        self.carry = b""
        self.seen = 0
        self.sink = None

    def feed(self, data):
        data = self.carry + data
        self.carry = b""
        while True:
            i = data.find(self.sentinel)
            if i < 0:
                break
            if self.sink is not None:
                self.sink.add(data[:i])
            self.seen += 1
            data = data[i + len(self.sentinel) :]
        keep = len(self.sentinel) - 1
        # Hold back a possible sentinel prefix at the end of the chunk.
        if len(data) > keep:
            if self.sink is not None:
                self.sink.add(data[:-keep])
            self.carry = data[-keep:]
        else:
            self.carry = data


class Kernel(object):
    """Host side (inside the agent) of the forked stateful-python process."""

    def __init__(self, pid, ctl_w, ctl_r, out_r, err_r, sentinel):
        self.pid = pid
        self.ctl_w = ctl_w
        self.ctl_r = ctl_r
        self.out_r = out_r
        self.err_r = err_r
        self.ctl_buf = b""
        self.out = StreamSplitter(sentinel)
        self.err = StreamSplitter(sentinel)
        self.cells = 0
        self.dead = False


def _kernel_main(ctl_r, ctl_w, cfg, sentinel):
    """Body of the forked kernel process: run cells in one persistent namespace."""
    import ast
    import builtins
    import io
    import traceback

    try:  # the agent runs with -S (fast start); user code expects site-packages and exit()/quit()
        import site

        site.main()
    except Exception:
        pass
    ns = {"__name__": "__main__", "__builtins__": builtins}
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", 0), encoding="utf-8", errors="replace", line_buffering=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", 0), encoding="utf-8", errors="replace", line_buffering=True)
    sys.stdin = open(os.devnull)
    value_limit = cfg["output_limit"]
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(ctl_r, READ_CHUNK)
            if not chunk:
                os._exit(0)
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        req = json.loads(line.decode("utf-8"))
        value = None
        error = None
        try:
            tree = ast.parse(req["code"], "<cell>", "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, "<cell>", "exec"), ns)
            if last is not None:
                v = eval(compile(last, "<cell>", "eval"), ns)
                if v is not None:
                    ns["_"] = v
                    value = repr(v)
                    if len(value) > value_limit:
                        value = value[: value_limit // 2] + (
                            "\n[... %d characters of the value truncated ...]\n" % (len(value) - value_limit)
                        ) + value[-(value_limit // 2) :]
        except BaseException as e:  # the cell's failure is its result, whatever it is
            tb = e.__traceback__
            # Drop the kernel's own frames: show only what happened in the cell (and what it called).
            while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
                tb = tb.tb_next
            error = "".join(traceback.format_exception(type(e), e, tb)).rstrip()
            if len(error) > value_limit:
                error = error[: value_limit // 2] + "\n[...]\n" + error[-(value_limit // 2) :]
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        for fd in (1, 2):
            try:
                os.write(fd, sentinel)
            except OSError:
                pass
        out = json.dumps({"value": value, "error": error}).encode("utf-8") + b"\n"
        while out:
            out = out[os.write(ctl_w, out) :]


class Agent(object):
    def __init__(self, cfg):
        self.cfg = cfg
        self.workspace = cfg["workspace"]
        self.limit = int(cfg.get("output_limit", 65536))
        self.pidns = bool(cfg.get("pidns", False))
        self.sel = selectors.DefaultSelector()
        self.inbuf = b""
        self.outbuf = bytearray()
        self.jobs = {}
        self.kernel = None
        self.py_queue = []  # pending python requests (the kernel runs one cell at a time)
        self.py_current = None  # (req, t0, deadline, out_capped, err_capped, result, done_at)
        self.template = {}
        self.sentinel = b"\x00\x1bSWARMGYM-CELL-END-" + os.urandom(8).hex().encode() + b"\x00"
        self.running = True
        self.known_groups = set()
        os.set_blocking(0, False)
        os.set_blocking(1, False)
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.wake_r = r
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(w)
        self.sel.register(0, selectors.EVENT_READ, ("host", None))
        self.sel.register(r, selectors.EVENT_READ, ("wake", None))

    # ------------------------------------------------------------------ plumbing

    def send(self, msg):
        self.outbuf += json.dumps(msg, separators=(",", ":")).encode("utf-8") + b"\n"
        self.flush()

    def flush(self):
        while self.outbuf:
            try:
                n = os.write(1, self.outbuf)
            except BlockingIOError:
                break
            except OSError:
                self.running = False
                return
            del self.outbuf[:n]
        want = bool(self.outbuf)
        try:
            key = self.sel.get_key(1)
        except KeyError:
            key = None
        if want and key is None:
            self.sel.register(1, selectors.EVENT_WRITE, ("hostout", None))
        elif not want and key is not None:
            self.sel.unregister(1)

    def reply(self, req, **kw):
        kw["id"] = req.get("id")
        kw.setdefault("ok", True)
        self.send(kw)

    def fail(self, req, message):
        self.send({"id": req.get("id"), "ok": False, "error": message})

    def path(self, p):
        if not p:
            return self.workspace
        return p if p.startswith("/") else os.path.join(self.workspace, p)

    def child_limits(self, cpu=True):
        """Resource limits applied in every child (commands and the kernel) before it runs user code."""
        if resource is None:
            return
        lim = self.cfg.get("rlimits") or {}
        for name, value in lim.items():
            if name == "RLIMIT_CPU" and not cpu:
                continue
            r = getattr(resource, name, None)
            if r is None or value is None:
                continue
            try:
                resource.setrlimit(r, (int(value), int(value)))
            except (ValueError, OSError):
                pass

    # ------------------------------------------------------------------ main loop

    def run(self):
        self.send({"ready": True, "pid": os.getpid()})
        while self.running:
            timeout = self.next_timeout()
            try:
                events = self.sel.select(timeout)
            except InterruptedError:
                events = []
            for key, mask in events:
                kind, obj = key.data
                if kind == "host":
                    self.on_host()
                elif kind == "hostout":
                    self.flush()
                elif kind == "wake":
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except (BlockingIOError, InterruptedError):
                        pass
                elif kind in ("out", "err"):
                    self.on_job_output(obj, kind, key.fd)
                elif kind in ("kout", "kerr", "kctl"):
                    self.on_kernel(kind, key.fd)
            self.check_jobs()
            self.check_python()
        self.kill_all()

    def next_timeout(self):
        now = time.monotonic()
        deadlines = []
        for job in self.jobs.values():
            if job.exited_at is not None:
                deadlines.append(job.exited_at + 0.2)
            else:
                deadlines.append(job.deadline)
        cur = self.py_current
        if cur is not None:
            deadlines.append(cur["deadline"])
            if cur["result"] is not None:
                deadlines.append(cur["done_at"] + 0.5)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - now)

    def on_host(self):
        try:
            data = os.read(0, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            self.running = False
            return
        self.inbuf += data
        while b"\n" in self.inbuf:
            line, self.inbuf = self.inbuf.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                req = json.loads(line.decode("utf-8"))
            except ValueError as e:
                self.send({"id": None, "ok": False, "error": "bad request: %s" % e})
                continue
            try:
                self.dispatch(req)
            except Exception as e:
                self.fail(req, "%s: %s" % (type(e).__name__, e))

    def dispatch(self, req):
        op = req.get("op")
        handler = getattr(self, "op_" + str(op), None)
        if handler is None:
            self.fail(req, "unknown op %r" % op)
            return
        handler(req)

    # ------------------------------------------------------------------ exec

    def op_exec(self, req):
        env = dict(self.cfg.get("env") or {})
        env.update(req.get("env") or {})
        cwd = self.path(req.get("cwd") or "")
        limit = int(req.get("output_limit") or self.limit)
        try:
            proc = subprocess.Popen(
                [self.cfg.get("shell", "/bin/bash"), "-c", req["cmd"]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
                preexec_fn=self.child_limits,
            )
        except OSError as e:
            self.fail(req, "could not start the command: %s" % e)
            return
        job = Job(req.get("id"), proc, time.monotonic() + float(req.get("timeout") or 30.0), limit)
        self.jobs[job.id] = job
        self.known_groups.add(proc.pid)
        for f, kind in ((proc.stdout, "out"), (proc.stderr, "err")):
            os.set_blocking(f.fileno(), False)
            self.sel.register(f.fileno(), selectors.EVENT_READ, (kind, job))

    def on_job_output(self, job, kind, fd):
        try:
            data = os.read(fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            (job.out if kind == "out" else job.err).add(data)
            return
        self.sel.unregister(fd)
        (job.proc.stdout if kind == "out" else job.proc.stderr).close()
        job.open -= 1

    def check_jobs(self):
        now = time.monotonic()
        for job in list(self.jobs.values()):
            if job.exited_at is None:
                if job.proc.poll() is not None:
                    job.exited_at = now
                elif now >= job.deadline:
                    job.timed_out = True
                    try:
                        os.killpg(job.proc.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    job.proc.wait()
                    job.exited_at = now
            if job.exited_at is not None and (job.open == 0 or now >= job.exited_at + 0.2):
                self.finish_job(job)

    def finish_job(self, job):
        del self.jobs[job.id]
        for f in (job.proc.stdout, job.proc.stderr):
            if not f.closed:
                try:
                    self.sel.unregister(f.fileno())
                except (KeyError, ValueError):
                    pass
                f.close()
        out, out_cut = job.out.render()
        err, err_cut = job.err.render()
        code = job.proc.returncode
        self.send(
            {
                "id": job.id,
                "ok": True,
                "exit_code": None if job.timed_out else code,
                "stdout": out,
                "stderr": err,
                "stdout_truncated": out_cut,
                "stderr_truncated": err_cut,
                "timed_out": job.timed_out,
                "note": "" if job.timed_out else _describe_exit(code),
                "duration_s": time.monotonic() - job.t0,
            }
        )

    # ------------------------------------------------------------------ python kernel

    def start_kernel(self):
        ctl_in_r, ctl_in_w = os.pipe()  # agent -> kernel
        ctl_out_r, ctl_out_w = os.pipe()  # kernel -> agent
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the kernel
            try:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.setsid()
                os.dup2(out_w, 1)
                os.dup2(err_w, 2)
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)
                keep = {0, 1, 2, ctl_in_r, ctl_out_w}
                for fd in range(3, 1024):
                    if fd not in keep:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                os.set_blocking(ctl_in_r, True)
                os.set_blocking(ctl_out_w, True)
                self.child_limits(cpu=False)
                try:
                    os.chdir(self.workspace)
                except OSError:
                    pass
                _kernel_main(ctl_in_r, ctl_out_w, self.cfg, self.sentinel)
            finally:
                os._exit(1)
        for fd in (ctl_in_r, ctl_out_w, out_w, err_w):
            os.close(fd)
        for fd in (ctl_out_r, out_r, err_r):
            os.set_blocking(fd, False)
        k = Kernel(pid, ctl_in_w, ctl_out_r, out_r, err_r, self.sentinel)
        self.sel.register(ctl_out_r, selectors.EVENT_READ, ("kctl", k))
        self.sel.register(out_r, selectors.EVENT_READ, ("kout", k))
        self.sel.register(err_r, selectors.EVENT_READ, ("kerr", k))
        self.kernel = k
        self.known_groups.add(pid)

    def op_python(self, req):
        self.py_queue.append(req)
        self.check_python()

    def check_python(self):
        now = time.monotonic()
        cur = self.py_current
        if cur is not None:
            k = self.kernel
            if cur["result"] is None and (k is None or k.dead):
                self.finish_python(died=True)
            elif cur["result"] is None and now >= cur["deadline"]:
                self.finish_python(timed_out=True)
            elif cur["result"] is not None:
                synced = k.out.seen >= k.cells and k.err.seen >= k.cells
                if synced or now >= cur["done_at"] + 0.5:
                    self.finish_python()
        if self.py_current is None and self.py_queue:
            req = self.py_queue.pop(0)
            restarted = False
            if self.kernel is None:
                restarted = self.cfg.get("_kernel_started", False)
                self.start_kernel()
                self.cfg["_kernel_started"] = True
            k = self.kernel
            limit = int(req.get("output_limit") or self.limit)
            cur = {
                "req": req,
                "t0": now,
                "deadline": now + float(req.get("timeout") or 30.0),
                "out": Capped(limit),
                "err": Capped(limit),
                "result": None,
                "done_at": None,
                "restarted": restarted,
            }
            k.out.sink = cur["out"]
            k.err.sink = cur["err"]
            k.cells += 1
            self.py_current = cur
            line = json.dumps({"code": req.get("code", "")}).encode("utf-8") + b"\n"
            try:
                os.set_blocking(k.ctl_w, True)
                os.write(k.ctl_w, line)
            except OSError:
                k.dead = True
                self.finish_python(died=True)

    def on_kernel(self, kind, fd):
        k = self.kernel
        try:
            data = os.read(fd, READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if k is None or fd not in (k.ctl_r, k.out_r, k.err_r):
            return
        if not data:
            self.sel.unregister(fd)
            if kind == "kctl":
                k.dead = True
            return
        if kind == "kout":
            k.out.feed(data)
        elif kind == "kerr":
            k.err.feed(data)
        else:
            k.ctl_buf += data
            while b"\n" in k.ctl_buf:
                line, k.ctl_buf = k.ctl_buf.split(b"\n", 1)
                if self.py_current is not None and self.py_current["result"] is None:
                    self.py_current["result"] = json.loads(line.decode("utf-8"))
                    self.py_current["done_at"] = time.monotonic()

    def kill_kernel(self):
        k = self.kernel
        if k is None:
            return None
        self.kernel = None
        try:
            os.killpg(k.pid, signal.SIGKILL)
        except OSError:
            pass
        status = None
        try:
            _, status = os.waitpid(k.pid, 0)
        except ChildProcessError:
            pass
        for fd in (k.ctl_r, k.out_r, k.err_r):
            try:
                self.sel.unregister(fd)
            except (KeyError, ValueError):
                pass
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.close(k.ctl_w)
        except OSError:
            pass
        self.known_groups.discard(k.pid)
        return status

    def finish_python(self, timed_out=False, died=False):
        cur = self.py_current
        self.py_current = None
        note = ""
        value = error = None
        if timed_out or died:
            # Collect what the streams already hold before the kernel goes away.
            k = self.kernel
            if k is not None:
                for fd, splitter in ((k.out_r, k.out), (k.err_r, k.err)):
                    for _ in range(64):
                        try:
                            data = os.read(fd, READ_CHUNK)
                        except OSError:
                            break
                        if not data:
                            break
                        splitter.feed(data)
            status = self.kill_kernel()
            if timed_out:
                note = "the python process was killed at the timeout; its variables are lost"
            else:
                desc = ""
                if status is not None:
                    if os.WIFSIGNALED(status):
                        desc = _describe_exit(-os.WTERMSIG(status))
                    elif os.WIFEXITED(status):
                        desc = "exited with code %d" % os.WEXITSTATUS(status)
                note = "the python process died (%s); its variables are lost" % (desc or "unknown cause")
                error = note
        else:
            value = cur["result"].get("value")
            error = cur["result"].get("error")
        if self.kernel is not None:
            self.kernel.out.sink = None
            self.kernel.err.sink = None
        out, out_cut = cur["out"].render()
        err, err_cut = cur["err"].render()
        if cur["restarted"]:
            note = ("python state was reset (a previous call was killed); " + note).rstrip("; ")
        self.send(
            {
                "id": cur["req"].get("id"),
                "ok": True,
                "stdout": out,
                "stderr": err,
                "stdout_truncated": out_cut,
                "stderr_truncated": err_cut,
                "value": value,
                "error": error,
                "timed_out": timed_out,
                "note": note,
                "duration_s": time.monotonic() - cur["t0"],
            }
        )
        if timed_out or died:
            self.cfg["_kernel_started"] = True

    # ------------------------------------------------------------------ files

    def op_read(self, req):
        p = self.path(req["path"])
        max_bytes = int(req.get("max_bytes") or 8 * 1024 * 1024)
        try:
            st = os.stat(p)
            if stat.S_ISDIR(st.st_mode):
                self.fail(req, "IsADirectoryError: %s is a directory" % req["path"])
                return
            with open(p, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as e:
            self.fail(req, "%s: %s" % (type(e).__name__, e.strerror or e))
            return
        self.reply(
            req,
            data=base64.b64encode(data[:max_bytes]).decode("ascii"),
            size=st.st_size,
            truncated=len(data) > max_bytes,
        )

    def op_write(self, req):
        p = self.path(req["path"])
        data = base64.b64decode(req.get("data", ""))
        try:
            parent = os.path.dirname(p)
            if parent:
                os.makedirs(parent, exist_ok=True)
            with open(p, "ab" if req.get("append") else "wb") as f:
                f.write(data)
            if req.get("mode") is not None:
                os.chmod(p, int(req["mode"]))
        except OSError as e:
            self.fail(req, "%s: %s" % (type(e).__name__, e.strerror or e))
            return
        self.reply(req, size=len(data))

    def op_stat(self, req):
        p = self.path(req["path"])
        try:
            st = os.stat(p)
        except OSError as e:
            self.reply(req, exists=False, error=e.strerror or str(e))
            return
        self.reply(
            req, exists=True, is_dir=stat.S_ISDIR(st.st_mode), size=st.st_size, realpath=os.path.realpath(p)
        )

    def op_ls(self, req):
        """List a directory tree (up to ``depth`` levels, hidden entries skipped)."""
        root = self.path(req.get("path") or "")
        depth = int(req.get("depth") or 2)
        limit = int(req.get("limit") or 1000)
        entries = []
        try:
            for dirpath, dirnames, filenames in os.walk(root):
                rel = os.path.relpath(dirpath, root)
                level = 0 if rel == "." else rel.count("/") + 1
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                if level >= depth:
                    dirnames[:] = []
                for d in dirnames:
                    entries.append(os.path.normpath(os.path.join(rel, d)) + "/")
                for fname in sorted(filenames):
                    if not fname.startswith("."):
                        entries.append(os.path.normpath(os.path.join(rel, fname)))
                if len(entries) > limit:
                    break
        except OSError as e:
            self.fail(req, "%s: %s" % (type(e).__name__, e.strerror or e))
            return
        self.reply(req, entries=sorted(entries)[:limit], truncated=len(entries) > limit)

    # ------------------------------------------------------------------ reset and verification

    def op_ping(self, req):
        self.reply(req, pid=os.getpid())

    def op_template(self, req):
        """Set the files a reset restores (``{relpath: base64}``) and restore them now."""
        self.template = dict(req.get("files") or {})
        self.restore_workspace()
        self.reply(req, hash=self.workspace_hash())

    def strays(self):
        """Processes other than the agent, its ancestors and pid 1 (only meaningful in a pid namespace)."""
        if not self.pidns:
            out = []
            for pgid in list(self.known_groups):
                try:
                    os.killpg(pgid, 0)
                    out.append({"pid": pgid, "cmd": "(process group)"})
                except OSError:
                    self.known_groups.discard(pgid)
            return out
        mine = set()
        pid = os.getpid()
        while pid > 1:
            mine.add(pid)
            try:
                with open("/proc/%d/stat" % pid) as f:
                    pid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
        mine.add(1)
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) not in mine:
                try:
                    with open("/proc/%s/cmdline" % name, "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
                except OSError:
                    continue
                out.append({"pid": int(name), "cmd": cmd[:200]})
        return out

    def kill_all(self):
        """Kill every process but the agent: commands, the kernel, and anything they left behind."""
        for job in list(self.jobs.values()):
            try:
                os.killpg(job.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        self.kill_kernel()
        if self.pidns:
            # In our own pid namespace, kill(-1) reaches every process except pid 1 and ourselves; repeat
            # because a fork bomb can create processes while the kernel walks the task list.
            for _ in range(50):
                try:
                    os.kill(-1, signal.SIGKILL)
                except OSError:
                    pass
                self.reap()
                if not self.strays():
                    break
                time.sleep(0.01)
        else:
            for pgid in list(self.known_groups):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except OSError:
                    pass
        self.reap()
        for job in list(self.jobs.values()):
            job.timed_out = True
            job.exited_at = time.monotonic()
            self.finish_job(job)

    def reap(self):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def restore_workspace(self):
        ws = self.workspace
        for name in os.listdir(ws):
            _rmtree(os.path.join(ws, name))
        for rel, b64 in sorted(self.template.items()):
            p = os.path.join(ws, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "wb") as f:
                f.write(base64.b64decode(b64))

    def workspace_hash(self):
        h = _sha256()
        for dirpath, dirnames, filenames in os.walk(self.workspace):
            dirnames.sort()
            rel = os.path.relpath(dirpath, self.workspace)
            h.update(b"D" + rel.encode("utf-8", "surrogateescape") + b"\0")
            for fname in sorted(filenames):
                p = os.path.join(dirpath, fname)
                h.update(b"F" + fname.encode("utf-8", "surrogateescape") + b"\0")
                try:
                    if os.path.islink(p):
                        h.update(b"L" + os.readlink(p).encode("utf-8", "surrogateescape"))
                        continue
                    with open(p, "rb") as f:
                        while True:
                            chunk = f.read(1 << 20)
                            if not chunk:
                                break
                            h.update(chunk)
                except OSError:
                    h.update(b"?")
        return h.hexdigest()

    def op_reset(self, req):
        self.py_queue = []
        if self.py_current is not None:
            self.finish_python(timed_out=True)
        self.kill_all()
        self.cfg["_kernel_started"] = False
        errors = []
        try:
            self.restore_workspace()
        except OSError as e:
            errors.append("workspace: %s" % e)
        for d in self.cfg.get("scratch_dirs") or []:
            try:
                for name in os.listdir(d):
                    _rmtree(os.path.join(d, name))
            except OSError as e:
                if e.errno != errno.ENOENT:
                    errors.append("%s: %s" % (d, e))
        self.reply(req, hash=self.workspace_hash(), strays=self.strays(), errors=errors)

    def op_kill(self, req):
        """Kill every process but the agent, keeping the workspace (judges call this before checking)."""
        self.py_queue = []
        if self.py_current is not None:
            self.finish_python(timed_out=True)
        self.kill_all()
        self.reply(req, strays=self.strays())

    def op_state(self, req):
        self.reply(req, hash=self.workspace_hash(), strays=self.strays())

    def op_shutdown(self, req):
        self.reply(req)
        self.running = False


def _rmtree(p):
    """Remove a file or tree, making directories writable first (a tool may have chmod'ed them)."""
    try:
        st = os.lstat(p)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        try:
            os.chmod(p, 0o700)
        except OSError:
            pass
        for name in os.listdir(p):
            _rmtree(os.path.join(p, name))
        os.rmdir(p)
    else:
        os.unlink(p)


def main(cfg):
    if resource is not None:
        try:  # never dump core files into the workspace
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        except (ValueError, OSError):
            pass
    agent = Agent(cfg)
    try:
        agent.run()
    finally:
        try:
            agent.kill_all()
        except Exception:
            pass
