"""Large payloads to and from a local worker go through shared memory (a pipe copies every byte through the
kernel twice); they stay bit-exact, older peers keep the plain pipe, sockets never name files, nothing leaks."""
import os
import threading

import numpy as np
import pytest

from plugin import protocol
from plugin.pixels import Image
from tests.test_worker import make_client, rgba, wait_gone


def shared_files():
    d = protocol.shared_dir()
    return {n for n in os.listdir(d) if n.startswith(protocol.SHARED_PREFIX)}


def test_large_echo_goes_through_shared_memory_bit_exactly_and_leaves_nothing():
    before = shared_files()
    c = make_client()
    try:
        big = rgba(1024, 1536, "f32", seed=5)          # 24 MB, over the shared threshold
        small = rgba(8, 8, "u16", seed=6)
        for _ in range(2):                             # the second call reuses both files
            back = c.echo([big, small])
            assert [b.tobytes() for b in back] == [big.tobytes(), small.tobytes()]
        during = shared_files() - before
        assert len(during) == 2, during                # one file each way: the host's and the worker's
        out = c.run("test_scale", {"image": big}, {"factor": 0.5, "steps": 1})
        expect = np.frombuffer(big.tobytes(), "<f4").reshape(1024, 1536, 4) * np.float32([0.5, 0.5, 0.5, 1])
        assert np.array_equal(np.frombuffer(out.image.tobytes(), "<f4").reshape(1024, 1536, 4), expect)
        pid = c.worker_pid
    finally:
        c.close()
    assert wait_gone(pid)
    assert shared_files() - before == set()


def test_killed_worker_leaves_no_shared_file():
    before = shared_files()
    c = make_client()
    big = rgba(1024, 1024, "f32", seed=7)
    assert c.echo([big])[0].tobytes() == big.tobytes()
    pid = c.worker_pid
    os.killpg(pid, 9)
    with pytest.raises(Exception):
        c.echo([big])
    c.close()
    assert shared_files() - before == set()


def _pipe_pair(shared_a, shared_b):
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    a = protocol.PipeChannel(os.fdopen(r1, "rb", buffering=0), os.fdopen(w2, "wb", buffering=0), shared=shared_a)
    b = protocol.PipeChannel(os.fdopen(r2, "rb", buffering=0), os.fdopen(w1, "wb", buffering=0), shared=shared_b)
    return a, b


def _send_and_receive(sender, receiver, payload):
    got = {}
    t = threading.Thread(target=lambda: got.update(frame=protocol.read_frame(receiver)))
    t.start()
    protocol.write_frame(sender, {"op": "echo", "id": 1}, [payload])
    t.join(10)
    return got["frame"]


def test_an_older_peer_that_never_said_it_reads_shared_gets_the_plain_pipe():
    new, old = _pipe_pair(True, False)
    try:
        payload = np.arange(2 << 20, dtype="<u4").tobytes()  # 8 MB
        # the old side has said nothing: the new side must send inline
        header, data = _send_and_receive(new, old, payload)
        assert "shm" not in header and bytes(data) == payload
        # the old side's frames carry no shm_ok, so even after hearing from it the new side stays inline
        _send_and_receive(old, new, b"x")
        assert not new.peer_reads_shared
        header, data = _send_and_receive(new, old, payload)
        assert bytes(data) == payload
    finally:
        new.close(), old.close()


def test_two_new_peers_switch_to_shared_after_hello():
    a, b = _pipe_pair(True, True)
    before = shared_files()
    try:
        _send_and_receive(b, a, b"hello")              # b says it reads shared frames (shm_ok)
        assert a.peer_reads_shared
        payload = np.arange(2 << 20, dtype="<u4").tobytes()
        header, data = _send_and_receive(a, b, payload)
        assert bytes(data) == payload and len(shared_files() - before) == 1
    finally:
        a.close(), b.close()
    assert shared_files() - before == set()


def test_a_shared_payload_outside_our_files_is_refused(tmp_path):
    a, b = _pipe_pair(True, True)
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 100)
    try:
        head = protocol.encode_header({"op": "echo", "id": 3, "shm": {"path": str(secret), "size": 100}})
        a.write_all(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head)
        with pytest.raises(protocol.ProtocolError, match="outside AI Portrait's own files") as err:
            protocol.read_frame(b)
        assert err.value.recoverable
    finally:
        a.close(), b.close()


def test_sockets_never_accept_shared_payloads():
    import socket
    s1, s2 = socket.socketpair()
    a, b = protocol.SocketChannel(s1), protocol.SocketChannel(s2)
    try:
        path = os.path.join(protocol.shared_dir(), protocol.SHARED_PREFIX + "x")
        head = protocol.encode_header({"op": "echo", "id": 4, "shm": {"path": path, "size": 10}})
        a.write_all(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head)
        with pytest.raises(protocol.ProtocolError, match="not accepted on this connection"):
            protocol.read_frame(b)
    finally:
        a.close(), b.close()


def test_shared_payload_over_the_limit_is_refused_before_allocation():
    a, b = _pipe_pair(True, True)
    try:
        path = os.path.join(protocol.shared_dir(), protocol.SHARED_PREFIX + "nothing")
        head = protocol.encode_header({"op": "echo", "id": 5, "shm": {"path": path, "size": 10 << 30}})
        a.write_all(protocol.PREFIX.pack(protocol.MAGIC, len(head), 0) + head)

        def alloc(n):
            raise AssertionError("allocated")
        with pytest.raises(protocol.FrameTooLarge):
            protocol.read_frame(b, max_payload=1 << 30, alloc=alloc)
    finally:
        a.close(), b.close()


def test_a_host_that_drops_its_client_without_closing_leaves_no_file(tmp_path):
    import subprocess
    import sys
    from tests.test_worker import ROOT
    script = tmp_path / "host.py"
    script.write_text(
        "import sys, numpy as np\n"
        f"sys.path.insert(0, {ROOT!r})\n"
        "from plugin.client import Client\nfrom plugin.pixels import Image\n"
        f"c = Client(config={{}}, python={sys.executable!r}, core_root={ROOT!r}, device='cpu')\n"
        "img = Image.from_numpy(np.ones((1024, 1024, 4), np.float32))\n"
        "assert c.echo([img])[0].tobytes() == img.tobytes()\n"
        "del c\n")
    before = shared_files()
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    import time
    deadline = time.monotonic() + 10  # the worker removes its own file once it sees the pipe close
    while shared_files() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert shared_files() - before == set()
