"""Hardening of the socket server (issue 22): hostile peers cannot stop it (accept errors), hold it (connection
cap, one deadline for the whole handshake), make it reserve memory, kill a connection with a strange MAC, or take
a Unix socket from a live server; the server proves it knows the token."""
import os
import resource
import secrets
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from plugin import protocol
from plugin.client import Client
from tests.test_worker_server import ROOT, TOKEN, image, stop_server

CAP = 8
HANDSHAKE_S = 2.0


def _start(tmp, *args, new_flags=()):
    """Start `serve`; with new_flags (options older code lacks) when this code has them."""
    ready = tmp / "ready"
    for flags in (list(new_flags), []):
        proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--test-ops", "--ready-file", str(ready),
                                 *args, *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        deadline = time.monotonic() + 180
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if ready.exists():
            return proc, ready.read_text().strip()
        err = proc.stderr.read().decode()
        proc.kill()
        proc.wait()
        if "unrecognized arguments" not in err:
            raise AssertionError("server did not start: " + err)
    raise AssertionError("server did not start")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hard")
    (tmp / "token").write_text(TOKEN + "\n")
    proc, address = _start(tmp, "--tcp", "127.0.0.1:0", "--token-file", str(tmp / "token"),
                           "--max-request-mb", "1500",
                           new_flags=["--max-connections", str(CAP), "--handshake-timeout", str(HANDSHAKE_S)])
    host, port = address[len("tcp://"):].rsplit(":", 1)
    yield proc, (host, int(port)), address
    stop_server(proc)


def _fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _rss_mb(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def _authed(where):
    s = socket.create_connection(where, timeout=10)
    ch = protocol.SocketChannel(s)
    hello = protocol.read_frame(ch)[0]
    cnonce = secrets.token_hex(16)
    protocol.write_frame(ch, {"op": "auth", "id": 0, "mac": protocol.auth_mac(TOKEN, hello["nonce"]),
                              "cnonce": cnonce})
    pong = protocol.read_frame(ch)[0]
    assert pong["type"] == "pong"
    return s, ch, hello, cnonce, pong


def _closed_by_peer(s, wait):
    """True once the peer closed `s` (EOF or reset) within `wait` seconds, reading and dropping any frames."""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], max(0.0, end - time.monotonic()))
        if not r:
            return False
        try:
            if not s.recv(65536):
                return True
        except OSError:
            return True
    return False


def _good_client_works(address):
    img = image(8, 8, 5)
    with Client(config={}, server=address, token=TOKEN) as c:
        assert c.echo([img])[0].tobytes() == img.tobytes()


def test_the_server_proves_it_knows_the_token(server):
    _proc, where, _address = server
    s, _ch, hello, cnonce, pong = _authed(where)
    s.close()
    assert protocol.check_proof(TOKEN, hello["nonce"], cnonce, pong.get("proof"))


def test_a_non_ascii_mac_is_refused_with_a_clean_error(server):
    proc, where, address = server
    with socket.create_connection(where, timeout=10) as s:
        ch = protocol.SocketChannel(s)
        protocol.read_frame(ch)
        protocol.write_frame(ch, {"op": "auth", "id": 0, "mac": "é" * 64})
        reply = protocol.read_frame(ch)
        assert reply is not None and reply[0]["type"] == "error" and reply[0]["code"] == "bad-token"
    assert proc.poll() is None


def test_a_slowloris_handshake_is_cut_at_the_deadline(server):
    """One byte every 0.25 s used to keep a slot for ever (the timeout applied per read)."""
    proc, where, _address = server
    with socket.create_connection(where, timeout=10) as s:
        ch = protocol.SocketChannel(s)
        hello = protocol.read_frame(ch)[0]
        head = protocol.encode_header({"op": "auth", "id": 0, "mac": protocol.auth_mac(TOKEN, hello["nonce"])})
        data = protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head
        closed = False
        for k in range(40):  # 10 s of trickling, five times the deadline, never a complete frame
            try:
                s.sendall(data[k:k + 1])
            except OSError:
                closed = True
                break
            if _closed_by_peer(s, 0.25):
                closed = True
                break
        assert closed, "the server kept a connection that trickled its handshake for 10 s"
    assert proc.poll() is None


def test_connections_over_the_cap_are_told_busy_and_the_server_stays_bounded(server):
    proc, where, address = server
    base = _fds(proc.pid)
    socks = [socket.create_connection(where, timeout=10) for _ in range(CAP + 6)]
    try:
        time.sleep(0.5)
        busy = 0
        for s in socks:
            s.settimeout(5)
            frame = protocol.read_frame(protocol.SocketChannel(s))
            if frame is not None and frame[0].get("code") == "busy":
                busy += 1
        assert busy >= 6, "only %d of %d connections over the cap were refused" % (busy, 6)
        assert _fds(proc.pid) <= base + CAP + 2
    finally:
        for s in socks:
            s.close()
    assert proc.poll() is None
    time.sleep(0.3)
    _good_client_works(address)


def test_an_authenticated_declaration_reserves_no_memory(server):
    """A 26-byte header declaring 1.4 GB used to make the server zero-fill 1.4 GB."""
    proc, where, _address = server
    before = _rss_mb(proc.pid)
    s, ch, _hello, _c, _pong = _authed(where)
    try:
        head = protocol.encode_header({"op": "echo", "id": 1})
        s.sendall(protocol.PREFIX.pack(protocol.MAGIC, len(head), 1400 << 20) + head + b"x" * 4096)
        time.sleep(1.5)
        grown = _rss_mb(proc.pid) - before
    finally:
        s.close()
    assert grown < 200, "the server reserved %.0f MB for a declaration" % grown
    assert proc.poll() is None


def test_failing_accepts_too_many_open_files_are_survived(server):
    proc, where, address = server
    soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (_fds(proc.pid) + 2, hard))
    socks = []
    try:
        for _ in range(6):  # the third and later connections hit EMFILE in accept()
            socks.append(socket.create_connection(where, timeout=10))
        time.sleep(1.0)
        assert proc.poll() is None, "the server exited (status %s) when accept() failed" % proc.poll()
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (soft, hard))
    time.sleep(0.5)
    _good_client_works(address)
    assert proc.poll() is None


# ---------------------------------------------------------------------------------------------------------------
# Item 5: Unix sockets


def test_a_live_but_busy_socket_is_not_taken_over_and_a_dead_one_is_replaced(tmp_path):
    """A listener whose backlog is full (a server stuck in accept) answers EAGAIN: it is alive, not stale."""
    busy_path, stale_path = str(tmp_path / "busy.sock"), str(tmp_path / "stale.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(busy_path)
    live.listen(0)
    fillers = []
    while True:
        f = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(busy_path)
            fillers.append(f)
        except BlockingIOError:
            f.close()
            break
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(stale_path)
    dead.close()  # a socket file whose server died
    ino = os.stat(busy_path).st_ino
    (tmp_path / "b").mkdir()
    second = subprocess.Popen([sys.executable, "-m", "core", "serve", "--unix", busy_path, "--ready-file",
                               str(tmp_path / "b" / "ready")], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        proc, address = _start(tmp_path, "--unix", stale_path)  # the dead server's file is replaced
        try:
            assert address == "unix:" + stale_path
            with Client(config={}, server=address) as c:
                assert c.ping()["type"] == "pong"
            # someone removes our socket and a newcomer binds the path: leaving, we must not delete its socket
            os.unlink(stale_path)
            newcomer = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            newcomer.bind(stale_path)
            newcomer.listen(1)
        finally:
            stop_server(proc)
        assert os.path.exists(stale_path), "the leaving server deleted the newcomer's socket"
        newcomer.close()
        try:
            rc = second.wait(timeout=45)
        except subprocess.TimeoutExpired:
            rc = None
        err = second.stderr.read().decode() if rc is not None else ""
        assert rc == 2 and "another AI Portrait server is listening" in err, (rc, err)
        assert os.stat(busy_path).st_ino == ino, "the live socket was replaced"
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
            second.wait()
        second.stderr.close()
        for f in fillers:
            f.close()
        live.close()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".aip")]  # no temporary socket names left
