"""`ganforge serve RUN...`: the studio, a browser page and JSON API over trained runs."""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from . import options


def add_parser(commands, name: str) -> None:
    parser = commands.add_parser(
        name, help="browser studio and JSON API over trained runs (sample, interpolate, edit)",
        description="Serve a web page and a JSON API (/api/, schema at /openapi.json) over the runs "
                    "named here: sample and interpolate generation runs, edit images with editing "
                    "and translation runs, see each run's evaluation and report. Binds to "
                    "loopback unless --host says otherwise; there is no authentication.")
    parser.add_argument("runs", metavar="RUN", nargs="+", help="run directories (clients pick them by name)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on [127.0.0.1: this machine only]")
    parser.add_argument("--port", type=int, default=7860, help="port [7860; 0 picks a free one]")
    parser.add_argument("--workers", type=int, default=1, help="threads running networks at once [1]")
    parser.add_argument("--queue", type=int, default=8,
                        help="jobs that may wait for a worker; beyond that the API answers 503 [8]")
    parser.add_argument("--max-upload-mb", type=float, default=8.0,
                        help="largest request body, in MB; beyond it 413 [8]")
    parser.add_argument("--max-side", type=int, default=2048,
                        help="longest image side (uploads, masks, results), in pixels; beyond it 422 [2048]")
    parser.add_argument("--checkpoint", default="last", help="last, best, step-NNNNNN [default: last]")
    parser.add_argument("--device", default="cpu", type=options.device, help="cpu, cuda, ... [default: cpu]")
    parser.add_argument("--quiet", action="store_true", help="no access log")


def listen(host: str, port: int) -> socket.socket:
    """A bound socket (bound here so that a taken port is a one-line error, and port 0 works)."""
    from ..errors import ConfigError
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: must be in 0..65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from ..app import Limits, create_app, load_runs
    from ..app.jobs import warm_up
    from ..errors import ConfigError

    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb {args.max_upload_mb}: must be above 0")
    if args.max_side < 1:
        raise ConfigError(f"--max-side {args.max_side}: must be at least 1")
    runs = load_runs(args.runs, args.checkpoint, args.device)
    limits = Limits(max_upload_bytes=int(args.max_upload_mb * 2**20), max_side=args.max_side)
    app = create_app(runs, limits, workers=args.workers, queue=args.queue)
    sock = listen(args.host, args.port)
    warm_up()
    if not is_loopback(args.host):
        print(f"ganforge serve: warning: listening on {args.host}, reachable from other machines; "
              f"the studio has no authentication", file=sys.stderr)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"ganforge studio on http://{shown}:{port}/ serving {', '.join(r.name for r in runs)} "
          f"(Ctrl-C stops)", flush=True)
    # Connections beyond the queue's needs are refused (503) by uvicorn itself, so uploads
    # waiting to be read are bounded too.
    config = uvicorn.Config(app, log_level="warning" if args.quiet else "info", access_log=not args.quiet,
                            limit_concurrency=2 * (args.workers + args.queue) + 16)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
