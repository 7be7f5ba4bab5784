"""The spawned local worker: the protocol on private copies of stdin/stdout, an idle timeout, exit with the host.

Stray output is the classic way to corrupt a pipe protocol (a library that prints), so the protocol moves to a
duplicate of file descriptor 1 and fd 1 itself is pointed at stderr; fd 0 is pointed at /dev/null so nothing else
can read the requests. The worker ends when its stdin closes (the host exited or crashed) or after
`idle_timeout` seconds without a request while no job runs; it exits 0 then, so the client knows it was not a
crash.

Shared payload files: the worker removes its own and its host's file when the host goes away (a killed host
cannot remove its own), and at start sweeps away the files of processes that died (protocol.sweep_stale_shared).
"""
from __future__ import annotations

import os
import sys
import threading
import time

from plugin import protocol

from .session import Session

_PIPE_BYTES = 1 << 20  # Linux pipes default to 64 KiB; a bigger one halves the syscalls for 384 MB images


def _private_fds():
    """(read fd, write fd) for the protocol, with fds 0 and 1 made harmless."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for fd in (proto_in, proto_out):
        protocol.widen_pipe(fd, _PIPE_BYTES)
    # Only the test operators read this (to inject garbage on purpose).
    os.environ["AI_PORTRAIT_PROTOCOL_FD"] = str(proto_out)
    return proto_in, proto_out


def serve_stdio(*, idle_timeout: float = 600.0, max_request: int = protocol.DEFAULT_MAX_REQUEST_BYTES,
                device=None) -> int:
    proto_in, proto_out = _private_fds()
    protocol.sweep_stale_shared()
    reader = os.fdopen(proto_in, "rb", buffering=0)
    writer = os.fdopen(proto_out, "wb", buffering=0)
    last = [time.monotonic()]
    channel = protocol.PipeChannel(reader, writer, shared=True)
    session = Session(channel, max_request=max_request, device=device,
                      on_activity=lambda: last.__setitem__(0, time.monotonic()), label="stdio")

    def watchdog():
        while not session.closed.wait(1.0 if idle_timeout > 5 else 0.1):
            if session.busy:
                last[0] = time.monotonic()
            elif time.monotonic() - last[0] > idle_timeout:
                sys.stderr.write("ai-portrait worker: idle for %.0f s, exiting\n" % idle_timeout)
                sys.stderr.flush()
                channel.release_shared(peer_gone=True)  # the host sees the pipe close and makes a new one
                os._exit(0)

    if idle_timeout and idle_timeout > 0:
        threading.Thread(target=watchdog, daemon=True, name="idle-watchdog").start()
    session.serve()
    # The host closed the pipe or sent 'shutdown'. A job that ignores cancel must not keep the process alive.
    t = session._job_thread
    if t is not None:
        t.join(timeout=2.0)
    _end_children()
    # Whether the host closed the pipe, crashed or was killed, it is done with its file: a killed host left
    # it behind (151 MB per crash), so remove it with ours.
    channel.release_shared(peer_gone=True)
    sys.stderr.flush()
    os._exit(0)


def _end_children() -> None:
    """Take down what a stuck job started (a download, a helper process): when the worker leads its own process
    group, as a spawned worker does, everything else in that group is ours."""
    if not hasattr(os, "killpg") or os.getpgrp() != os.getpid():
        return
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
    except OSError:
        pass
