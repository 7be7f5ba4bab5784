"""A worker for the network or another user's session: TCP (token required) or a Unix socket.

Each connection gets its own Session on its own thread; jobs from all connections share `jobs` slots, so two
retouchers on one GPU machine do not both fill its memory. Models are shared through the process-wide caches
of `core.models`, which every connection's thread reads.

A TCP peer must answer the server's nonce with HMAC-SHA256(token, nonce) before anything else: the token never
crosses the wire. Pixels do; across an untrusted network tunnel the port through SSH.

The hosts' shared local worker (plugin.local) is this server on a Unix socket with --private (the socket is
0600 in an owner-only folder and peers of another user are refused, so no token) and --idle-timeout (it exits
once no host has sent a request for that long and no job runs).
"""
from __future__ import annotations

import os
import signal
import socket
import stat
import sys
import threading
import time
from typing import Optional

from plugin import protocol

from ..errors import UserError
from .session import Session

AUTH_TIMEOUT_S = 30.0


def parse_tcp(spec: str):
    """'PORT' or 'HOST:PORT' ('[::1]:PORT' for IPv6) -> (host, port); a bare port binds loopback only."""
    spec = spec.strip()
    host, sep, port = spec.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", spec
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise UserError(f"--tcp wants HOST:PORT or PORT, not '{spec}'", "usage")
    return host, int(port)


def read_token(path: str) -> str:
    """The shared secret in `path`; a missing file is created with a fresh random token (owner-only) so that
    the first `serve` also prepares what the clients' settings need."""
    if not os.path.exists(path):
        import secrets
        token = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        sys.stderr.write(f"created {path} with a new token: put the same token in the clients' settings\n")
        return token
    try:
        with open(path, "r", encoding="utf-8") as fh:
            token = fh.read().strip()
    except OSError as exc:
        raise UserError(f"cannot read the token file {path}: {exc.strerror}", "bad-file") from None
    if hasattr(os, "getuid") and os.stat(path).st_mode & 0o077:
        sys.stderr.write(f"warning: {path} is readable by other users; chmod 600 it\n")
    if len(token) < 16:
        raise UserError(f"the token in {path} is too short: use at least 16 characters "
                        "(e.g. python -c \"import secrets; print(secrets.token_hex(32))\")", "bad-file")
    return token


def listen_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}", "usage") from None
    sock.listen(16)
    return sock


def listen_unix(path: str) -> socket.socket:
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise UserError(f"{path} exists and is not a socket: choose another path", "usage")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(2.0)
            probe.connect(path)
            raise UserError(f"another AI Portrait server is listening on {path}", "busy")
        except OSError:
            pass  # nobody answers: a stale socket from a server that died
        finally:
            probe.close()
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # owner-only from the first moment, not after a chmod race
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    sock.listen(16)
    return sock


def address_of(sock: socket.socket) -> str:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return "unix:" + sock.getsockname()
    host, port = sock.getsockname()[:2]
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"


def peer_uid(conn: socket.socket) -> Optional[int]:
    """The user id of a Unix socket's peer (Linux SO_PEERCRED), or None where the system does not say."""
    cred = getattr(socket, "SO_PEERCRED", None)
    if cred is None:
        return None
    import struct
    try:
        _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, cred, struct.calcsize("3i")))
    except OSError:
        return None
    return uid


class _Activity:
    """When the last request came, and which sessions run a job: what the idle timeout looks at."""

    def __init__(self):
        self.last = time.monotonic()
        self.sessions = set()
        self.lock = threading.Lock()

    def touch(self):
        self.last = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            if any(s.busy for s in self.sessions):
                self.last = time.monotonic()
        return time.monotonic() - self.last


def serve(sock: socket.socket, *, token: Optional[str], jobs: int = 2, device=None,
          max_request: int = protocol.DEFAULT_MAX_REQUEST_BYTES, ready_file: Optional[str] = None,
          idle_timeout: float = 0.0, private: bool = False) -> int:
    """Accept connections until SIGTERM/SIGINT, or until `idle_timeout` seconds (> 0) pass with no request
    from any connection and no job running. `private` (a Unix socket): peers of another user are refused."""
    slots = threading.BoundedSemaphore(max(1, int(jobs)))
    stop = threading.Event()
    address = address_of(sock)
    activity = _Activity()

    def on_signal(signum, frame):
        stop.set()
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, on_signal)
        except (ValueError, OSError):
            pass
    if ready_file:
        tmp = ready_file + ".tmp"
        with open(tmp, "w") as fh:
            fh.write(address + "\n")
        os.replace(tmp, ready_file)
    sys.stderr.write(f"AI Portrait worker listening on {address} (pid {os.getpid()})\n")
    sys.stderr.flush()
    if idle_timeout and idle_timeout > 0:
        def watchdog():
            while not stop.wait(min(1.0, idle_timeout / 4)):
                if activity.idle_for() > idle_timeout:
                    sys.stderr.write(f"AI Portrait worker: no request for {idle_timeout:.0f} s, exiting\n")
                    sys.stderr.flush()
                    on_signal(None, None)
                    return
        threading.Thread(target=watchdog, daemon=True, name="idle-watchdog").start()
    own_uid = os.getuid() if hasattr(os, "getuid") else None
    while not stop.is_set():
        try:
            conn, _peer = sock.accept()
        except OSError:
            break
        if private and own_uid is not None:
            uid = peer_uid(conn)
            if uid is not None and uid not in (own_uid, 0):
                sys.stderr.write(f"refused a connection from uid {uid}: this worker serves uid {own_uid} only\n")
                conn.close()
                continue
        activity.touch()
        threading.Thread(target=_connection, args=(conn, token, slots, device, max_request, activity),
                         daemon=True, name="ai-portrait-conn").start()
    if address.startswith("unix:"):
        try:
            os.unlink(address[len("unix:"):])
        except OSError:
            pass
    return 0


def _connection(conn: socket.socket, token, slots, device, max_request, activity=None) -> None:
    if conn.family != getattr(socket, "AF_UNIX", None):
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(AUTH_TIMEOUT_S if token else None)
    # after authentication the connection may idle for as long as the user keeps the dialog open
    session = Session(protocol.SocketChannel(conn), max_request=max_request, token=token, device=device,
                      slots=slots, on_auth=lambda: conn.settimeout(None), label="socket",
                      on_activity=activity.touch if activity is not None else None)
    if activity is not None:
        with activity.lock:
            activity.sessions.add(session)
    try:
        session.serve()
    finally:
        if activity is not None:
            with activity.lock:
                activity.sessions.discard(session)
        t = session._job_thread
        if t is not None:
            t.join(timeout=5.0)  # cancelled at its next checkpoint; don't hold the socket for a stuck one
        try:
            conn.close()
        except OSError:
            pass
