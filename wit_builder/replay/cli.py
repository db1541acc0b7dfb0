"""`wit replay WARC...`: serve the archived HTTP responses of WARC files as a local HTTP proxy."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
from pathlib import Path

from aiohttp import web

from wit_builder.replay.archive import ReplayIndex
from wit_builder.replay.server import HANDLER_KEY, INDEX_PATH, make_app

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``replay`` subcommand."""
    parser = subparsers.add_parser(
        "replay",
        help="serve the HTTP responses of WARC files as a local HTTP proxy",
        description=(
            "Index the response and revisit records of WARC files and serve them until interrupted, as an HTTP proxy "
            "keyed by the original URL: GET http://host/path HTTP/1.1 returns the archived status, headers and payload, "
            "and a URL that is not archived returns 404 with 'X-Replay: miss'. Nothing is forwarded to the network. "
            "https URLs are requested the same way (GET https://host/path). CONNECT is rejected with 405 because "
            f"the archive contains no TLS sessions. GET {INDEX_PATH} lists the archived URLs. "
            "Use it with: wit fetch INPUT --out DIR --proxy URL"
        ),
    )
    parser.add_argument("warc", nargs="+", type=Path, metavar="WARC", help="WARC or ARC files, gzipped or not")
    parser.add_argument("--host", default="127.0.0.1", help="IP address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free port (default: %(default)s)")
    parser.add_argument("--print-url", action="store_true", help="print the proxy URL alone on standard output once the server listens")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be an address that is not loopback, so that other machines can read the archive",
    )
    parser.set_defaults(func=run_replay, interrupt_note="the replay server stopped")


def listen_address(host: str, allow_remote: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Return ``host`` as an IP address, or raise ValueError for a name or, without ``allow_remote``, a non-loopback address."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise ValueError(f"invalid --host {host!r}: expected an IP address such as 127.0.0.1 or ::1") from None
    if not address.is_loopback and not allow_remote:
        raise ValueError(f"--host {host} is not a loopback address; add --allow-remote to serve the archive to other machines")
    return address


def proxy_url(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    """Return the URL of a proxy listening on ``address`` and ``port``."""
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"http://{host}:{port}"


async def serve(index: ReplayIndex, address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int, print_url: bool) -> None:
    """Serve ``index`` on ``address`` until SIGINT or SIGTERM, then log the response counts."""
    app = make_app(index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, str(address), port)
        await site.start()
        bound_port = site._server.sockets[0].getsockname()[1]
        url = proxy_url(address, bound_port)

        # Handlers go in before the URL is printed, so a script may signal as soon as it reads the URL.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal_number, stop.set)

        logger.info("replaying %d URLs from %d files on %s; stop with Ctrl-C", len(index), len(index.paths), url)
        if print_url:
            print(url, flush=True)
        await stop.wait()
    finally:
        counts = app[HANDLER_KEY].counts
        await runner.cleanup()
        logger.info("replay server stopped; responses: %s",
                    ", ".join(f"{name} {count}" for name, count in counts.most_common()) or "none")


def run_replay(args: argparse.Namespace) -> int:
    address = listen_address(args.host, args.allow_remote)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"invalid --port {args.port}: expected 0 to 65535")
    index = ReplayIndex.build(args.warc)
    if not len(index):
        raise ValueError(f"no replayable HTTP responses in {', '.join(str(path) for path in args.warc)}")
    asyncio.run(serve(index, address, args.port, args.print_url))
    return 0
