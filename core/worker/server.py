"""A worker for the network or another user's session: TCP (token required) or a Unix socket.

Each connection gets its own Session on its own thread; jobs from all connections share `jobs` slots, so two
retouchers on one GPU machine do not both fill its memory. Models are shared through the process-wide caches
of `core.models`, which every connection's thread reads.

A TCP peer must answer the server's nonce with HMAC-SHA256(token, nonce) before anything else: the token never
crosses the wire. Pixels do; across an untrusted network tunnel the port through SSH.

The hosts' shared local worker (plugin.local) is this server on a Unix socket with --private (the socket is
0600 in an owner-only folder and peers of another user are refused, so no token) and --idle-timeout (it exits
once no host has sent a request for that long and no job runs).

Hostile peers cannot stop it or hold it: at most `max_connections` at once (more are told 'busy' and closed),
the whole handshake (hello to a checked MAC) must finish within `handshake_timeout` seconds, a failing accept()
(too many open files) is logged and retried, and a Unix socket is never taken from a live server nor removed
unless it is still this server's own (same inode).
"""
from __future__ import annotations

import errno
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

HANDSHAKE_TIMEOUT_S = 10.0  # hello, auth frame, pong: milliseconds for a real client, even across the world
MAX_CONNECTIONS = 64        # hosts hold one connection each; beyond this it is a flood
_ACCEPT_BACKOFF_S = 0.1     # after a failed accept(): EMFILE and friends clear only when connections close


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
    sock.listen(128)
    return sock


class _UnixListener(socket.socket):
    """A listening Unix socket that knows its public path and that path's inode (it may be bound elsewhere)."""
    public_path = None
    ident = None


def listen_unix(path: str) -> socket.socket:
    """A listening Unix socket at `path`, owner-only. A live server's socket is never taken over (connect
    answers, or its backlog is full: both mean someone serves there); only a socket nobody listens on
    (connection refused: its server died) is replaced. The socket is bound and listening under a temporary
    name first and then hard-linked to `path`, which fails if the path exists: no window where a second server
    finds it bound but not yet listening, and two servers starting at once get one winner."""
    for _attempt in range(3):
        tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".aip{os.getpid()}.s")
        sock = _bind_listen(tmp, path)
        try:
            os.link(tmp, path)
        except FileExistsError:
            sock.close()
            _remove_stale(path)
            continue
        except OSError:  # a file system without hard links: bind in place (exclusive too, but not atomic)
            sock.close()
            _remove_stale(path)
            sock = _bind_listen(path, path)
        finally:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        info = os.lstat(path)
        sock.public_path, sock.ident = path, (info.st_dev, info.st_ino)
        return sock
    raise UserError(f"{path} keeps reappearing: another AI Portrait server is starting there", "busy")


def _bind_listen(where: str, path: str) -> socket.socket:
    sock = _UnixListener(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # owner-only from the first moment, not after a chmod race
    try:
        if where != path:
            try:
                os.unlink(where)  # our own leftover temporary name (same pid)
            except OSError:
                pass
        sock.bind(where)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"another AI Portrait server is starting on {path}", "busy") from None
        raise UserError(f"cannot listen on {path}: {exc.strerror}", "usage") from None
    finally:
        os.umask(old)
    sock.listen(128)
    return sock


def _remove_stale(path: str) -> None:
    """Remove `path` if it is a socket nobody listens on; UserError if a server is there or it is no socket."""
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(before.st_mode):
        raise UserError(f"{path} exists and is not a socket: choose another path", "usage")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
        refused = None
    except ConnectionRefusedError:
        refused = True     # a socket file without a listener: its server died
    except FileNotFoundError:
        return
    except OSError as exc:
        refused = exc      # EAGAIN (backlog full), a timeout, EACCES: somebody is there
    finally:
        probe.close()
    if refused is not True:
        why = "" if refused is None else f" (it does not answer: {getattr(refused, 'strerror', None) or refused})"
        raise UserError(f"another AI Portrait server is listening on {path}{why}", "busy")
    try:
        now = os.lstat(path)
    except FileNotFoundError:
        return
    if (now.st_dev, now.st_ino) == (before.st_dev, before.st_ino):  # still the dead one, not a newcomer's
        os.unlink(path)


def _unlink_if_ours(path: str, ident) -> None:
    try:
        info = os.lstat(path)
        if (info.st_dev, info.st_ino) == ident:
            os.unlink(path)
    except OSError:
        pass


def address_of(sock: socket.socket) -> str:
    if sock.family == getattr(socket, "AF_UNIX", None):
        return "unix:" + (getattr(sock, "public_path", None) or sock.getsockname())
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
          idle_timeout: float = 0.0, private: bool = False, max_connections: int = MAX_CONNECTIONS,
          handshake_timeout: float = HANDSHAKE_TIMEOUT_S) -> int:
    """Accept connections until SIGTERM/SIGINT, or until `idle_timeout` seconds (> 0) pass with no request
    from any connection and no job running. `private` (a Unix socket): peers of another user are refused."""
    slots = threading.BoundedSemaphore(max(1, int(jobs)))
    stop = threading.Event()
    address = address_of(sock)
    activity = _Activity()
    open_conns = threading.BoundedSemaphore(max(1, int(max_connections)))
    unix_path = getattr(sock, "public_path", None)
    unix_ident = getattr(sock, "ident", None)
    protocol.sweep_stale_shared()  # files of hosts and workers that were killed (this server uses none)

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
    told = set()
    while not stop.is_set():
        try:
            conn, _peer = sock.accept()
        except OSError as exc:
            if stop.is_set() or exc.errno in (errno.EBADF, errno.EINVAL):  # our socket was closed: stop
                break
            # EMFILE, ENFILE, ENOBUFS, ECONNABORTED: a condition, not the end; say so once per kind
            if exc.errno not in told:
                told.add(exc.errno)
                sys.stderr.write(f"AI Portrait worker: accept failed ({exc.strerror}); retrying\n")
                sys.stderr.flush()
            stop.wait(_ACCEPT_BACKOFF_S)
            continue
        if private and own_uid is not None:
            uid = peer_uid(conn)
            if uid is not None and uid not in (own_uid, 0):
                sys.stderr.write(f"refused a connection from uid {uid}: this worker serves uid {own_uid} only\n")
                conn.close()
                continue
        if not open_conns.acquire(blocking=False):
            _refuse_busy(conn)
            continue
        activity.touch()
        try:
            threading.Thread(target=_connection, args=(conn, token, slots, device, max_request, activity,
                                                      open_conns, handshake_timeout),
                             daemon=True, name="ai-portrait-conn").start()
        except RuntimeError:  # no thread to be had: shed this one, keep serving the others
            open_conns.release()
            conn.close()
    if unix_path:
        _unlink_if_ours(unix_path, unix_ident)  # a server that replaced a dead us keeps its socket
    return 0


def _refuse_busy(conn: socket.socket) -> None:
    """Tell a connection over the cap why it is closed (without ever blocking on it) and close it."""
    try:
        conn.setblocking(False)
        head = protocol.encode_header({"type": "error", "id": None, "code": "busy",
                                       "message": "The AI Portrait server has too many connections: try again"})
        conn.send(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head)
    except OSError:
        pass
    finally:
        conn.close()


def _connection(conn: socket.socket, token, slots, device, max_request, activity=None, open_conns=None,
                handshake_timeout: float = HANDSHAKE_TIMEOUT_S) -> None:
    deadline = None
    try:
        if conn.family != getattr(socket, "AF_UNIX", None):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if token:
            # One deadline for the whole handshake: a per-read timeout lets a peer keep its slot for ever by
            # sending a byte now and then. Shutting the socket down wakes the session's blocked read.
            conn.settimeout(handshake_timeout)
            deadline = threading.Timer(handshake_timeout, _shut, args=(conn,))
            deadline.daemon = True
            deadline.start()

        def authed():
            if deadline is not None:
                deadline.cancel()
            # after authentication the connection may idle for as long as the user keeps the dialog open
            conn.settimeout(None)

        session = Session(protocol.SocketChannel(conn), max_request=max_request, token=token, device=device,
                          slots=slots, on_auth=authed, label="socket",
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
    except Exception:  # a bug in one connection must not take the others (or the server) down
        import traceback
        traceback.print_exc()
    finally:
        if deadline is not None:
            deadline.cancel()
        try:
            conn.close()
        except OSError:
            pass
        if open_conns is not None:
            open_conns.release()


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
