"""One warm local worker per user, shared by every host (standard library only, POSIX).

A spawned worker lives as long as its host's process: GIMP starts a plug-in process per run, so each run paid
for a cold worker (Python, torch, the models: about 2 s on a 512² picture against 0.4–0.6 s warm). Instead the
hosts share a server (`python -m core serve --unix PATH --private --idle-timeout S`) that the first host to need
it starts and every later run, in any host, reuses until it has had no request for `idle_timeout_s`.

    folder   $XDG_RUNTIME_DIR/ai-portrait, else <temp>/ai-portrait-<uid>: created 0700 and refused unless it is
             this user's with no access for others (nobody else can plant a socket there)
    socket   worker-<key>.sock, created 0600 by the server; the server also refuses peers of another user
             (SO_PEERCRED), so no token is needed on it
    key      a hash of what makes a worker different (interpreter, checkout, device, memory budget, extra
             arguments and environment): two configurations never share a worker
    lock     worker-<key>.lock (flock) while one host starts the server: two hosts starting at once get one
    log      worker-<key>.log: the server's stderr, whose last lines explain a failed start
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

_CONNECT_TIMEOUT_S = 5.0


class LocalWorkerError(Exception):
    """The shared worker's folder cannot be used safely, or the server did not start (message for a dialog,
    `detail`: the end of the server's log)."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail


def supported():
    return hasattr(socket, "AF_UNIX") and hasattr(os, "getuid") and not sys.platform.startswith("win")


def folder():
    """The owner-only folder holding the shared worker's socket, lock and log (created when missing)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        path = os.path.join(runtime, "ai-portrait")
    else:
        path = os.path.join(tempfile.gettempdir(), "ai-portrait-%d" % os.getuid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise LocalWorkerError("cannot create the AI Portrait worker folder %s: %s" % (path, exc.strerror))
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise LocalWorkerError("the AI Portrait worker folder %s is not a folder of yours that only you can use "
                               "(owner uid %d, mode %o): remove it" % (path, info.st_uid, stat.S_IMODE(info.st_mode)))
    return path


def key(cmd, env_extra):
    """A short hash naming one worker configuration."""
    text = json.dumps({"cmd": list(cmd), "env": sorted((env_extra or {}).items())}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def paths(worker_key):
    base = os.path.join(folder(), "worker-" + worker_key)
    return base + ".sock", base + ".lock", base + ".log"


def connect(path, timeout=_CONNECT_TIMEOUT_S):
    """A connected Unix socket to `path`, or None when no server listens there. A full backlog (EAGAIN) means
    a live server that is slow to accept: wait for it rather than start a second one (which would refuse)."""
    deadline = time.monotonic() + timeout
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EAGAIN and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTSOCK):
                return None
            raise
        sock.settimeout(None)
        return sock


class _Lock:
    def __init__(self, path):
        self.path = path
        self.fd = None

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def connect_or_start(cmd, args, env, cwd, worker_key, start_timeout_s, idle_timeout_s):
    """A socket connected to the shared worker for this configuration, starting it when none answers.

    cmd: the interpreter and `-m core`; args: more `serve` arguments (device, test operators); env, cwd: the
    server's environment and working folder. Returns (socket, started: bool)."""
    sock_path, lock_path, log_path = paths(worker_key)
    sock = connect(sock_path)
    if sock is not None:
        return sock, False
    with _Lock(lock_path):
        sock = connect(sock_path)  # another host started it while we waited for the lock
        if sock is not None:
            return sock, False
        full = list(cmd) + ["serve", "--unix", sock_path, "--private",
                            "--idle-timeout", str(float(idle_timeout_s or 0))] + list(args)
        log = open(log_path, "wb")
        try:
            # Started through a shell that backgrounds it and exits: the server is nobody's child here (no
            # zombie in a long-lived host once it idles out), leads its own session and outlives this host's
            # process (GIMP ends the plug-in after each run). The shell prints its process id.
            launcher = subprocess.run(["/bin/sh", "-c", 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!',
                                       "sh", log_path] + full,
                                      stdout=subprocess.PIPE, stderr=log, env=env, cwd=cwd, close_fds=True,
                                      start_new_session=True, timeout=60)
            pid = int(launcher.stdout.decode().split()[-1])
        except (OSError, ValueError, IndexError, subprocess.SubprocessError) as exc:
            raise LocalWorkerError("cannot start the AI Portrait worker with %s: %s"
                                   % (cmd[0], getattr(exc, "strerror", None) or exc))
        finally:
            log.close()
        deadline = time.monotonic() + start_timeout_s
        while time.monotonic() < deadline:
            sock = connect(sock_path)
            if sock is not None:
                return sock, True
            if not alive(pid):
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        tail = _tail(log_path)
        raise LocalWorkerError("the AI Portrait worker (%s) could not start%s (its log: %s)"
                               % (cmd[0], (": " + tail[-1]) if tail else "", log_path), "\n".join(tail))


def alive(pid):
    """The process exists and has not exited (a zombie waiting for its parent counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _tail(path, lines=40):
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as fh:
            text = fh.read()[-8000:]
    except OSError:
        return []
    return [l.rstrip() for l in text.splitlines() if l.strip()][-lines:]
