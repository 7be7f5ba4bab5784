"""Test helper: find and stop the shared local workers (plugin.local) a host test started in its own runtime
folder, so none outlives the test session."""
import os
import signal
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from plugin import local, protocol  # noqa: E402


def worker_pids(folder):
    """The process ids of the servers answering on the sockets in `folder` (their hello says)."""
    pids = []
    if not os.path.isdir(folder):
        return pids
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".sock"):
            continue
        sock = local.connect(os.path.join(folder, name), timeout=5.0)
        if sock is None:
            continue
        try:
            sock.settimeout(10.0)
            frame = protocol.read_frame(protocol.SocketChannel(sock), 0)
            if frame is not None and frame[0].get("pid"):
                pids.append(int(frame[0]["pid"]))
        except (OSError, protocol.ProtocolError):
            pass
        finally:
            sock.close()
    return pids


def stop_all(folder):
    """SIGTERM every shared worker in `folder`; returns their pids."""
    pids = worker_pids(folder)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    return pids
