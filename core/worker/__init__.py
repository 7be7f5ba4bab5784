"""The core side of the host bridge: serves `plugin.protocol` over a spawned worker's pipes or a socket.

    stdio.py    `python -m core worker --stdio`: the local worker a host spawns, with an idle timeout
    server.py   `python -m core serve --tcp HOST:PORT --token-file F | --unix PATH`: a worker for the network
    session.py  one conversation: requests in, progress/result/error frames out, cancel at Job.progress
    testops.py  tiny deterministic operators (sleep/scale, failures) for the bridge's and the hosts' tests,
                registered only with --test-ops or AI_PORTRAIT_TEST_OPS=1

Errors: a UserError becomes an error frame with its code and message; Cancelled a 'cancelled' frame; anything
else an 'internal' error frame whose message says it is a bug, with the traceback as detail.
"""
from .session import Session, decode_inputs  # noqa: F401
