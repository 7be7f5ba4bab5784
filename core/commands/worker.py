"""`python -m core worker --stdio` (the local worker a host spawns) and `python -m core serve` (a socket server).

    python -m core serve --tcp 127.0.0.1:8765 --token-file ~/.config/ai-portrait/token
    python -m core serve --unix /run/user/1000/ai-portrait.sock
    python -m core serve --unix PATH --private --idle-timeout 600   (what plugin.local starts for the hosts)
TCP always requires a token file and binds loopback unless a host is given.
"""
from __future__ import annotations

import os
import sys

from ..device import THREADS_ENV, parse_threads
from ..errors import UserError
from . import command

TEST_OPS_ENV = "AI_PORTRAIT_TEST_OPS"


def _common(ap) -> None:
    ap.add_argument("--device", default=None, help="compute device for every request that names none")
    ap.add_argument("--max-request-mb", type=float, default=None,
                    help="refuse requests larger than this (default 4096 MB), before allocating them")
    ap.add_argument("--test-ops", action="store_true", help="also register the bridge's test operators")
    ap.add_argument("--threads", default=None, metavar="N|auto",
                    help="CPU threads per job (default auto: one per core other programs leave free, measured "
                         "at each job; also AI_PORTRAIT_THREADS)")


def _prepare(args) -> int:
    if args.threads is not None:
        # Read again at every job (device.apply_thread_policy); checked here so a typo fails at start.
        os.environ[THREADS_ENV] = str(parse_threads(args.threads) or "auto")
    if args.device is not None:
        from ..worker.session import check_device
        args.device = check_device(args.device)  # 'cpu:zz' fails here with exit 2, not in every job
    if args.test_ops or os.environ.get(TEST_OPS_ENV) == "1":
        from ..worker.testops import register_test_ops
        register_test_ops()
    from plugin import protocol
    if args.max_request_mb is None:
        return protocol.DEFAULT_MAX_REQUEST_BYTES
    if args.max_request_mb <= 0:
        raise UserError("--max-request-mb must be positive", "usage")
    return int(args.max_request_mb * 1e6)


def _setup_worker(ap) -> None:
    ap.add_argument("--stdio", action="store_true", required=True,
                    help="speak the protocol on stdin/stdout (how hosts spawn a local worker)")
    ap.add_argument("--idle-timeout", type=float, default=600.0, metavar="SECONDS",
                    help="exit after this long without a request (models stay warm until then); 0 = never")
    _common(ap)


def _run_worker(args) -> int:
    max_request = _prepare(args)
    from ..worker.stdio import serve_stdio
    return serve_stdio(idle_timeout=args.idle_timeout, max_request=max_request, device=args.device)


def _setup_serve(ap) -> None:
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="listen on TCP (a bare PORT binds 127.0.0.1 only)")
    where.add_argument("--unix", metavar="PATH", help="listen on a Unix socket (created owner-only)")
    ap.add_argument("--token-file", metavar="FILE",
                    help="file holding the shared secret (required for TCP; created with a new token if missing)")
    ap.add_argument("--jobs", type=int, default=2, help="jobs run at the same time across connections (default 2; 1 on a small GPU)")
    ap.add_argument("--ready-file", metavar="FILE", help="write the listening address here once ready")
    ap.add_argument("--idle-timeout", type=float, default=0.0, metavar="SECONDS",
                    help="exit after this long without a request from any host (models stay warm until then); "
                         "0 = never (default)")
    ap.add_argument("--private", action="store_true",
                    help="with --unix: refuse connections from other users (the hosts' shared local worker)")
    ap.add_argument("--max-connections", type=int, default=None, metavar="N",
                    help="connections served at once (default 64); more are answered 'busy' and closed")
    ap.add_argument("--handshake-timeout", type=float, default=None, metavar="SECONDS",
                    help="with a token: a client must have authenticated this long after connecting "
                         "(default 10 s)")
    _common(ap)


def _run_serve(args) -> int:
    max_request = _prepare(args)
    from ..worker import server
    token = server.read_token(args.token_file) if args.token_file else None
    if args.idle_timeout < 0:  # checked before listening: a refused start leaves no socket behind
        raise UserError("--idle-timeout must be 0 (never) or positive", "usage")
    conns = server.MAX_CONNECTIONS if args.max_connections is None else args.max_connections
    handshake = server.HANDSHAKE_TIMEOUT_S if args.handshake_timeout is None else args.handshake_timeout
    if conns < 1 or not handshake > 0:
        raise UserError("--max-connections must be 1 or more and --handshake-timeout positive", "usage")
    if args.tcp:
        if token is None:
            raise UserError("a TCP server needs --token-file: anyone who can reach the port could otherwise run "
                            "jobs on this machine", "usage")
        host, port = server.parse_tcp(args.tcp)
        if host not in ("127.0.0.1", "::1", "localhost"):
            sys.stderr.write(f"warning: listening on {host}, reachable from other machines; pixels travel "
                             "unencrypted (use an SSH tunnel across untrusted networks)\n")
        sock = server.listen_tcp(host, port)
    else:
        if not hasattr(__import__("socket"), "AF_UNIX"):
            raise UserError("Unix sockets are not available on this system: use --tcp", "usage")
        sock = server.listen_unix(args.unix)
    return server.serve(sock, token=token, jobs=args.jobs, device=args.device, max_request=max_request,
                        ready_file=args.ready_file, idle_timeout=args.idle_timeout,
                        private=bool(args.private and args.unix), max_connections=conns,
                        handshake_timeout=handshake)


command("worker", "run as the local worker a GIMP or Krita plug-in spawns (protocol on stdin/stdout)",
        _setup_worker, _run_worker)
command("serve", "serve hosts over TCP (token required) or a Unix socket, e.g. on a GPU machine",
        _setup_serve, _run_serve)
