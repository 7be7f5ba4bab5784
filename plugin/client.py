"""The host's handle on the core worker: spawn or connect, send requests, relay progress, cancel, recover.

Standard library only, Python 3.8+. One Client serves one host; its calls are serialised by a lock. A local
worker is spawned from the configured interpreter in its own process group with a scrubbed environment, kept
alive between calls (models stay warm) and replaced after any failure. With `shared=True` (the hosts) the
local worker is instead the user's one shared server on a Unix socket (plugin.local), started on demand and
kept warm across runs, documents, hosts and host restarts until idle. A remote worker is reached over TCP
(HMAC challenge with the shared token) or a Unix socket.

Failures always surface as WorkerError(code, message) with a message fit for a dialog (and `detail` holding
the worker's stderr tail or traceback); a cancel surfaces as WorkerCancelled, a WorkerError subclass. The host
applies a result only after run() returned it, so after a cancel or a failure its layers are untouched.
"""
from __future__ import annotations

import atexit
import collections
import itertools
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref

from . import config as _config
from . import protocol
from .pixels import Image

# Variables that make another Python, or another set of native libraries, leak into the worker: hosts set them
# for their own embedded interpreter (Krita's AppImage, GIMP on Windows/macOS, conda shells, Flatpak).
SCRUB_EXACT = {
    "QT_PLUGIN_PATH", "QT_QPA_PLATFORM_PLUGIN_PATH", "QML2_IMPORT_PATH", "QML_IMPORT_PATH", "QT_CONF_PATH",
    "GI_TYPELIB_PATH", "GIO_EXTRA_MODULES", "GIO_MODULE_DIR", "GTK_PATH", "GTK_EXE_PREFIX", "GTK_DATA_PREFIX",
    "GDK_PIXBUF_MODULE_FILE", "GDK_PIXBUF_MODULEDIR", "GST_PLUGIN_PATH", "GST_PLUGIN_SYSTEM_PATH",
    "BABL_PATH", "GEGL_PATH", "TCL_LIBRARY", "TK_LIBRARY", "SSL_CERT_DIR", "MALLOC_PERTURB_", "APPDIR",
    "APPIMAGE", "ARGV0", "OWD", "VIRTUAL_ENV", "CONDA_PREFIX", "__PYVENV_LAUNCHER__",
}
SCRUB_PREFIXES = ("PYTHON", "LD_", "DYLD_")
DEFAULT_CANCEL_GRACE_S = 5.0
DEFAULT_START_TIMEOUT_S = 180.0  # the first import of torch on a cold disk is slow
_POLL_S = 0.05
_MAX_REPLY_BYTES = 1 << 36  # a declaration costs nothing: the reader's buffer grows as the bytes arrive
STORED_AS = ("u8", "u16", "f16", "f32")  # the precisions a host may report for an input (core.registry's)


class WorkerError(Exception):
    """A failure the host shows in a dialog: `code` for logic, `message` for people, `detail` for a report."""

    def __init__(self, code, message, detail=""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


class WorkerCancelled(WorkerError):
    def __init__(self, message="Cancelled"):
        super().__init__("cancelled", message)


class Result:
    def __init__(self, image, info):
        self.image = image  # plugin.pixels.Image
        self.info = info    # dict: operator, params, seed and the operator's facts

    def __repr__(self):
        return "Result(%r, info keys %s)" % (self.image, sorted(self.info))


def scrubbed_environment(base=None):
    env = dict(os.environ if base is None else base)
    for key in list(env):
        upper = key.upper()
        if upper in SCRUB_EXACT or upper.startswith(SCRUB_PREFIXES):
            del env[key]
    return env


# ---------------------------------------------------------------------------------------------------------------
# A live link to one worker


class _Link:
    """Frames in on a reader thread (so waiting can poll for cancel), frames out under a lock."""

    def __init__(self, channel, label, proc=None, pool=None):
        self.channel = channel
        self.pool = pool or bytearray
        self.label = label
        self.proc = proc
        self.inbox = queue.Queue()
        self.hello = None
        self.stderr_tail = collections.deque(maxlen=80)
        self.dead = False
        self._wlock = threading.Lock()
        self.reader = threading.Thread(target=self._read_loop, daemon=True, name="ai-portrait-reader")
        self.reader.start()
        if proc is not None and proc.stderr is not None:
            threading.Thread(target=self._drain_stderr, daemon=True, name="ai-portrait-stderr").start()

    def _read_loop(self):
        try:
            while True:
                frame = protocol.read_frame(self.channel, _MAX_REPLY_BYTES, self.pool)
                if frame is None:
                    self.inbox.put(("eof", None))
                    return
                self.inbox.put(("frame", frame))
                frame = None  # hold no reference while waiting: the pool reuses buffers nobody holds
        except protocol.ProtocolError as exc:
            self.inbox.put(("garbage", exc))
        except (OSError, ValueError, MemoryError) as exc:
            self.inbox.put(("eof", exc))

    def _drain_stderr(self):
        echo = os.environ.get("AI_PORTRAIT_DEBUG") == "1"
        try:
            for line in iter(self.proc.stderr.readline, b""):
                text = line.decode("utf-8", "replace").rstrip()
                self.stderr_tail.append(text)
                if echo:
                    sys.stderr.write("[worker] %s\n" % text)
        except (OSError, ValueError):
            pass

    def send(self, header, buffers=()):
        with self._wlock:
            protocol.write_frame(self.channel, header, buffers)

    def get(self, timeout):
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def stderr_text(self):
        time.sleep(0.05)  # let the drain thread catch the last lines of a dying worker
        return "\n".join(self.stderr_tail)

    def exit_status(self, wait=1.0):
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        """End the worker and everything it started (its process group); close the link."""
        self.dead = True
        if self.proc is not None and self.proc.poll() is None:
            _kill_tree(self.proc)
        self.channel.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                pass
            for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    if f is not None:
                        f.close()
                except (OSError, ValueError):
                    pass

    def shutdown(self, wait=2.0):
        """Ask politely, then kill: used when the host closes the client."""
        if self.dead:
            return
        try:
            self.send({"op": "shutdown", "id": None})
            if self.proc is not None:
                self.proc.wait(timeout=wait)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
        self.kill()


def _kill_tree(proc):
    if sys.platform.startswith("win"):
        subprocess.call(["taskkill", "/F", "/T", "/PID", str(proc.pid)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the worker leads its own session: pgid == pid
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except OSError:
            pass


_LIVE_CLIENTS = weakref.WeakSet()


@atexit.register
def _close_all():  # the host is exiting: leave no worker behind (it would also exit on stdin EOF)
    for client in list(_LIVE_CLIENTS):
        try:
            client.close()
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------------------------
# The client


class Client:
    """See plugin/__init__.py for the contract. Keyword arguments override the settings file's keys."""

    def __init__(self, config=None, python=None, core_root=None, server=None, token=None, device=None,
                 idle_timeout_s=None, memory_budget_mb=None, extra_args=(), extra_env=None,
                 cancel_grace_s=DEFAULT_CANCEL_GRACE_S, start_timeout_s=DEFAULT_START_TIMEOUT_S,
                 reuse_buffers=True, shared=False):
        cfg = dict(_config.DEFAULTS)
        try:
            cfg.update(_config.load_config() if config is None else config)
        except _config.ConfigError as exc:
            raise WorkerError("not-configured", str(exc)) from None
        overrides = {"python": python, "core_root": core_root, "server": server, "token": token,
                     "device": device, "idle_timeout_s": idle_timeout_s, "memory_budget_mb": memory_budget_mb}
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        if not cfg.get("core_root"):
            cfg["core_root"] = _config.default_core_root()
        self.config = cfg
        try:
            self.server = _config.parse_server(cfg.get("server"))
        except _config.ConfigError as exc:
            raise WorkerError("not-configured", str(exc)) from None
        self.extra_args = list(extra_args)
        self.extra_env = dict(extra_env or {})
        # shared=True (what the hosts ask for): the per-user warm worker on a Unix socket (plugin.local),
        # unless the settings say shared_worker false, a server is configured, or the platform has no such thing
        from . import local as _local
        self.shared = bool(shared and cfg.get("shared_worker", True) and not self.server and _local.supported())
        self.cancel_grace_s = float(cancel_grace_s)
        self.start_timeout_s = float(start_timeout_s)
        # One result buffer is kept and reused once the host dropped the previous result: first-touch page
        # faults of fresh memory can cost more than the transfer itself. Costs the largest result's size.
        self._pool = protocol.BufferPool() if reuse_buffers else None
        self._link = None
        self._last_used = 0.0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        _LIVE_CLIENTS.add(self)

    # -- public API ----------------------------------------------------------------------------------------------

    def list_operators(self):
        """The registry as JSON (a list of operator dicts), as `python -m core list --json` prints it."""
        reply, _ = self._request({"op": "list"})
        return reply.get("operators", [])

    def ping(self):
        reply, _ = self._request({"op": "ping"})
        return reply

    def echo(self, images):
        """Send Images and get them back as the worker received them (tests the transport bit for bit)."""
        descs, bufs = [], []
        for k, img in enumerate(images):
            descs.append(protocol.describe("echo%d" % k, img.width, img.height, img.channels, img.dtype,
                                           img.byteorder))
            bufs.append(img.data)
        reply, payload = self._request({"op": "echo", "buffers": descs}, bufs)
        return _images(reply, payload)

    def run(self, operator, inputs, params=None, mask=None, seed=0, progress=None, cancel=None,
            output_dtype="f32", device=None, stored_as=None):
        """Run `operator` on `inputs` ({name: Image, or [Image, ...] for frames}); returns a Result.

        Inputs travel in their own dtype (u8, u16, f16, f32) and the worker converts them to float32 with the
        same rules as plugin.pixels; the result comes back as `output_dtype` (float32 unless asked).
        stored_as: {input name: 'u8' | 'u16' | 'f16' | 'f32'}, how the host stored that input (the layer's own
        precision, which may differ from the dtype it travels in: GIMP sends 8-bit layers as float); it goes
        in each of the input's buffer descriptors, so the core can tell a float depth layer (metres) from a
        16-bit one (disparity)."""
        if cancel is not None and cancel.is_set():
            raise WorkerCancelled()
        stored_as = dict(stored_as or {})
        for name, how in stored_as.items():
            if how is not None and how not in STORED_AS:
                raise ValueError("stored_as[%r] must be one of %s, not %r" % (name, ", ".join(STORED_AS), how))
        descs, bufs = [], []
        for name, value in inputs.items():
            if value is None:
                continue
            extra = {"stored_as": stored_as[name]} if stored_as.get(name) else {}
            if isinstance(value, (list, tuple)):
                for img in value:
                    _add_buffer(descs, bufs, name, _as_image(img, name), list=True, **extra)
            else:
                _add_buffer(descs, bufs, name, _as_image(value, name), **extra)
        if mask is not None:
            _add_buffer(descs, bufs, "mask", _as_image(mask, "mask"), role="mask")
        header = {"op": "run", "operator": operator, "params": dict(params or {}), "seed": int(seed),
                  "device": device or self.config.get("device"), "buffers": descs, "output_dtype": output_dtype}
        reply, payload = self._request(header, bufs, progress=progress, cancel=cancel)
        images = _images(reply, payload)
        if not images:
            raise WorkerError("internal", "The worker answered without an image (a bug, please report it)")
        return Result(images[0], reply.get("info") or {})

    def close(self):
        """Stop the worker (politely, then by force) or drop the connection."""
        with self._lock:
            if self._link is not None:
                self._link.shutdown()
                self._link = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def worker_pid(self):
        """The worker's process id: the spawned one's, or the one a local socket server reported."""
        link = self._link
        if link is None:
            return None
        if link.proc is not None:
            return link.proc.pid
        return (link.hello or {}).get("pid")

    # -- requests ------------------------------------------------------------------------------------------------

    def _request(self, header, buffers=(), progress=None, cancel=None):
        with self._lock:
            total = sum(memoryview(b).nbytes for b in buffers)
            limit = int(float(self.config.get("max_request_mb") or 4096) * 1e6)
            for attempt in (0, 1):
                link = self._ensure_link()
                limit = min(limit, int(link.hello.get("max_request_bytes") or limit))
                if total > limit:
                    raise WorkerError("too-large", "The request is too large for the worker (%.0f MB; the limit is "
                                      "%.0f MB): use a smaller image or a selection" % (total / 1e6, limit / 1e6))
                header = dict(header, id=next(self._ids))
                try:
                    return self._exchange(link, header, buffers, progress, cancel)
                except _IdleExit:
                    continue  # the worker had just timed out when we asked: ask a fresh one, once
                finally:
                    self._last_used = time.monotonic()
            raise WorkerError("worker-crashed", "The AI Portrait worker keeps exiting: see its log")

    def _exchange(self, link, header, buffers, progress, cancel):
        rid = header["id"]
        try:
            link.send(header, buffers)
        except (OSError, ValueError):
            self._fail_link(link, before_reply=True)
        cancel_deadline = None
        answered = False
        while True:
            if cancel is not None and cancel_deadline is None and cancel.is_set():
                cancel_deadline = time.monotonic() + self.cancel_grace_s
                try:
                    link.send({"op": "cancel", "id": rid, "target": rid})
                except (OSError, ValueError):
                    self._drop(link)
                    raise WorkerCancelled()
            item = link.get(_POLL_S)
            if item is None:
                if cancel_deadline is not None and time.monotonic() > cancel_deadline:
                    self._drop(link)  # it did not stop at a checkpoint: kill it (and its children)
                    raise WorkerCancelled("Cancelled (the worker did not stop in time and was restarted)")
                continue
            kind, data = item
            if kind == "garbage":
                self._drop(link)
                raise WorkerError("bad-output", "The AI Portrait worker sent unreadable data and was restarted; "
                                  "try again (see its log if this repeats)", "%s\n%s" % (data, link.stderr_text()))
            if kind == "eof":
                if cancel_deadline is not None:
                    self._drop(link)
                    raise WorkerCancelled()
                self._fail_link(link, before_reply=not answered)
            reply, payload = data
            if reply.get("id") != rid:
                continue  # the unasked hello, or a late frame of an earlier, abandoned request
            answered = True
            rtype = reply.get("type")
            if rtype == "progress":
                if progress is not None and cancel_deadline is None:
                    try:
                        progress(float(reply.get("fraction") or 0.0), str(reply.get("message") or ""))
                    except BaseException:
                        self._drop(link)  # state unknown: the host's callback failed mid-request
                        raise
                continue
            if cancel_deadline is not None or rtype == "cancelled":
                raise WorkerCancelled()
            if rtype == "error":
                raise WorkerError(reply.get("code") or "error", reply.get("message") or "unknown error",
                                  reply.get("detail") or "")
            return reply, payload

    def _fail_link(self, link, before_reply):
        """The link broke: turn it into the right WorkerError (or _IdleExit) and forget the worker."""
        status = link.exit_status(wait=2.0)
        tail = link.stderr_text()
        self._drop(link)
        if link.proc is None:
            if before_reply:
                raise _IdleExit()  # the server may have restarted: reconnect once
            raise WorkerError("connection-lost", "The connection to the AI Portrait %s was lost"
                              % (("server at %s" % self.config.get("server")) if self.server
                                 else "shared local worker"), tail)
        if status == 0 and before_reply:
            raise _IdleExit()
        if status is not None and status < 0 and -status == getattr(signal, "SIGKILL", 9):
            raise WorkerError("worker-killed", "The AI Portrait worker was killed, most likely because the system "
                              "ran out of memory: try a smaller image or selection", tail)
        if status is None:
            status_text = "no exit status"
        elif status < 0:
            status_text = "signal %d" % -status
        else:
            status_text = "exit status %d" % status
        line = _telling_line(tail)
        raise WorkerError("worker-crashed", "The AI Portrait worker stopped unexpectedly (%s)%s; it will be "
                          "restarted on the next try" % (status_text, (": " + line) if line else ""), tail)

    def _drop(self, link):
        link.kill()
        if self._link is link:
            self._link = None

    # -- starting ------------------------------------------------------------------------------------------------

    def _ensure_link(self):
        link = self._link
        if link is not None:
            stale = link.dead or (link.proc is not None and link.proc.poll() is not None)
            idle = float(self.config.get("idle_timeout_s") or 0)
            if link.proc is not None and idle > 0 and time.monotonic() - self._last_used > max(idle - 2.0, 0.5 * idle):
                stale = True  # about to time out by itself: replace it rather than race its exit
            if not stale:
                return link
            self._drop(link)
        link = self._connect() if self.server else self._connect_local() if self.shared else self._spawn()
        self._link = link
        return link

    def _await_hello(self, link, what, timeout=None):
        timeout = self.start_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = link.get(_POLL_S * 4)
            if item is None:
                if link.proc is not None and link.proc.poll() is not None:
                    break
                continue
            kind, data = item
            if kind == "frame" and data[0].get("type") == "hello":
                link.hello = data[0]
                return
            break
        else:
            link.kill()
            raise WorkerError("worker-start", "The AI Portrait worker (%s) did not answer within %.0f s" %
                              (what, timeout), link.stderr_text())
        tail = link.stderr_text()
        link.kill()
        line = _telling_line(tail)
        raise WorkerError("worker-start", "The AI Portrait worker (%s) could not start%s" %
                          (what, (": " + line) if line else ""), tail)

    def _spawn(self):
        python, root = self._checked_setup()
        protocol.sweep_stale_shared()  # payload files a killed host or worker of ours left behind
        where = _config.config_path()
        cmd = [python, "-m", "core", "worker", "--stdio",
               "--idle-timeout", str(float(self.config.get("idle_timeout_s") or 0))] + self._worker_args()
        env = self._worker_env(root)
        kwargs = {}
        if sys.platform.startswith("win"):
            kwargs["creationflags"] = (getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                                       | getattr(subprocess, "CREATE_NO_WINDOW", 0))
        else:
            kwargs["start_new_session"] = True  # its own process group: cancel can kill it with its children
        try:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    bufsize=0, cwd=root, env=env, close_fds=True, **kwargs)
        except OSError as exc:
            raise WorkerError("worker-start", "Cannot start the AI Portrait worker with %s: %s (fix 'python' in %s "
                              "or run install.py again)" % (python, exc.strerror or exc, where)) from None
        for f in (proc.stdin, proc.stdout):
            protocol.widen_pipe(f.fileno())
        # A local worker shares this machine's memory: large pixel buffers go through a shared file, not the pipe.
        link = _Link(protocol.PipeChannel(proc.stdout, proc.stdin, shared=True), "local worker", proc, self._pool)
        self._await_hello(link, python)
        return link

    def _checked_setup(self):
        """(python, core_root) from the settings, or WorkerError('not-configured') saying what to fix."""
        python = self.config.get("python")
        root = self.config.get("core_root")
        where = _config.config_path()
        if not python:
            raise WorkerError("not-configured", "AI Portrait is not set up: no worker Python in %s "
                              "(run install.py)" % where)
        if not root or not os.path.isdir(os.path.join(root, "core")):
            raise WorkerError("not-configured", "AI Portrait's core folder was not found (core_root = %r in %s): "
                              "run install.py again" % (root, where))
        return python, root

    def _worker_args(self):
        args = ["--device", str(self.config["device"])] if self.config.get("device") else []
        return args + self.extra_args

    def _worker_env(self, root):
        env = scrubbed_environment()
        env["PYTHONPATH"] = root
        env["PYTHONIOENCODING"] = "utf-8"
        env["PYTHONFAULTHANDLER"] = "1"  # a native crash leaves a traceback in the stderr tail
        if self.config.get("memory_budget_mb"):
            env["AI_PORTRAIT_MEMORY_BUDGET_MB"] = str(self.config["memory_budget_mb"])
        env.update(self.extra_env)
        return env

    def _connect_local(self):
        """The per-user shared worker (plugin.local): connect, or start it and connect."""
        from . import local
        python, root = self._checked_setup()
        env = self._worker_env(root)
        # what makes a worker different: the settings, and the variables that change what it registers
        # (test operators) or how it computes; not the host's whole environment
        telling = {k: v for k, v in env.items() if k.startswith("AI_PORTRAIT_") or k == "PYTHONPATH"}
        telling.update(self.extra_env)
        args = self._worker_args()
        worker_key = local.key([python, root, self.config.get("memory_budget_mb")] + args, telling)
        try:
            sock, started = local.connect_or_start([python, "-m", "core"], args, env, root, worker_key,
                                                   self.start_timeout_s, self.config.get("idle_timeout_s"))
        except local.LocalWorkerError as exc:
            raise WorkerError("worker-start", str(exc), exc.detail) from None
        except OSError as exc:
            raise WorkerError("connection", "Cannot reach the shared AI Portrait worker: %s"
                              % (exc.strerror or exc)) from None
        link = _Link(protocol.SocketChannel(sock), "shared local worker", pool=self._pool)
        link.started = started
        self._await_hello(link, "shared local worker", timeout=min(self.start_timeout_s, 30.0))
        if link.hello.get("auth"):
            link.kill()
            raise WorkerError("bad-token", "The shared AI Portrait worker asks for a token: remove %s and retry"
                              % local.folder())
        return link

    def _connect(self):
        kind, host, port = self.server
        address = self.config.get("server")
        try:
            if kind == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10.0)
                sock.connect(host)
            else:
                sock = socket.create_connection((host, port), timeout=10.0)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)
        except (OSError, AttributeError) as exc:
            raise WorkerError("connection", "Cannot reach the AI Portrait server at %s (%s): is "
                              "'python -m core serve' running there?" % (address, getattr(exc, "strerror", None)
                                                                           or exc)) from None
        link = _Link(protocol.SocketChannel(sock), "server %s" % address, pool=self._pool)
        self._await_hello(link, address, timeout=min(self.start_timeout_s, 15.0))  # a server is already up
        token = self.config.get("token")
        if link.hello.get("auth") or token:
            self._authenticate(link, token, address)
        return link

    def _authenticate(self, link, token, address):
        """Answer the server's nonce and, with our own nonce, make it prove that it knows the token too: a
        client that has a token sends no pixels to a server that cannot (one that says it needs no token, or
        accepts any answer, is an impostor or a misconfiguration)."""
        where = _config.config_path()
        if not token:
            link.kill()
            raise WorkerError("bad-token", "The AI Portrait server at %s requires a token: set 'token' in %s"
                              % (address, where))
        nonce = link.hello.get("nonce")
        if not link.hello.get("auth") or not protocol.is_nonce(nonce):
            link.kill()
            raise WorkerError("bad-token", "The AI Portrait server at %s did not ask for the token set in %s, so "
                              "it cannot prove it is your server; nothing was sent (check 'server', or remove "
                              "'token' if this server really runs without one)" % (address, where))
        cnonce = protocol.new_nonce()
        try:
            link.send({"op": "auth", "id": 0, "mac": protocol.auth_mac(token, nonce), "cnonce": cnonce})
        except OSError:
            link.kill()
            raise WorkerError("connection-lost", "The AI Portrait server at %s closed the connection" % address)
        item = link.get(30.0)
        if item is None or item[0] != "frame" or item[1][0].get("type") != "pong":
            reply = item[1][0] if item is not None and item[0] == "frame" else {}
            link.kill()
            raise WorkerError(reply.get("code") or "bad-token", reply.get("message")
                              or "The AI Portrait server at %s refused the token" % address)
        if not protocol.check_proof(token, nonce, cnonce, item[1][0].get("proof")):
            link.kill()
            raise WorkerError("bad-token", "The AI Portrait server at %s accepted the token but could not prove "
                              "it knows it (an impostor, or a server older than this plug-in: update it); "
                              "nothing was sent" % address)


class _IdleExit(Exception):
    pass


def _telling_line(text):
    """The line of a stderr tail that says most: the last exception line ('ModuleNotFoundError: No module named
    torch' when the configured Python is the wrong one), else the last line."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head:
            return line[:300]
    return lines[-1][:300] if lines else ""


def _as_image(value, name):
    if isinstance(value, Image):
        return value
    if hasattr(value, "__array_interface__"):  # a numpy array, when the host has numpy
        return Image.from_numpy(value)
    raise TypeError("input '%s' must be a plugin.pixels.Image (or a numpy array), not %s"
                    % (name, type(value).__name__))


def _add_buffer(descs, bufs, name, img, **extra):
    descs.append(protocol.describe(name, img.width, img.height, img.channels, img.dtype, img.byteorder, **extra))
    bufs.append(img.data)


def _images(reply, payload):
    views = protocol.split_payload(reply, payload)
    out = []
    for desc, view in zip(reply.get("buffers") or [], views):
        h, w, c = desc["shape"]
        out.append(Image(w, h, c, desc["dtype"], view, desc.get("byteorder", "little")))
    return out
