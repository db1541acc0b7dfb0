"""Serve real photos on 127.0.0.1 with seeded latency and failures, for the fetch benchmark.

Every path ``/<16 hex digits>.jpg`` is an image. The hex digits are the first 8 bytes of
the BLAKE2b hash of an original image URL (``url_path``), and they pick one photo of the
image folder (``image_index``). Each path has a fixed plan (``plan_for``), drawn from
the seed and the path alone, so every client and every run gets the same plan:

- a delay before the response, uniform between ``--min-latency-ms`` and
  ``--max-latency-ms``;
- an outcome: HTTP 404, HTTP 500, a connection reset (RST instead of a response), or
  the photo with status 200.

``/robots.txt`` and unknown paths get an immediate 404, and ``/__stats`` returns the
request counts of all worker processes as JSON. The server is a small HTTP/1.1
implementation on asyncio protocols with keep-alive, so that it costs the clients'
CPUs as little as possible. ``--workers`` processes accept on one listening socket and
share the photos, which the parent reads once before it forks them.

The first line on standard output is a JSON object with the base URL and the process
ids. SIGTERM or SIGINT stops the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass
from multiprocessing.sharedctypes import RawArray
from pathlib import Path

logger = logging.getLogger("image_server")

DEFAULT_IMAGE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k" / "images"
MAX_HEADER_BYTES = 64 * 1024
#: Request counters of each worker, in this order, in one shared array.
COUNTERS = ("requests", "ok", "not_found", "server_error", "reset", "robots", "other", "body_bytes")


@dataclass(frozen=True)
class FailureRates:
    """Fractions of image paths that get each injected failure."""

    not_found: float = 0.02
    server_error: float = 0.01
    reset: float = 0.01

    def __post_init__(self) -> None:
        for name in ("not_found", "server_error", "reset"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"invalid failure rate {name}={getattr(self, name)!r}: expected 0 to 1")
        if self.not_found + self.server_error + self.reset > 1:
            raise ValueError("invalid failure rates: their sum is above 1")


@dataclass(frozen=True)
class Plan:
    """Planned response to one image path: the delay in seconds and the outcome."""

    delay_s: float
    #: One of "ok", "not_found", "server_error", "reset".
    outcome: str


def url_path(original_url: str) -> str:
    """Return the server path that stands for ``original_url``: ``/<16 hex digits>.jpg``."""
    return "/" + hashlib.blake2b(original_url.encode("utf-8"), digest_size=8).hexdigest() + ".jpg"


def image_index(path: str, image_count: int) -> int:
    """Return the index of the photo that an image path serves, in the sorted image list."""
    return int(path[1:17], 16) % image_count


def plan_for(path: str, seed: int, min_delay_s: float, max_delay_s: float, rates: FailureRates) -> Plan:
    """Draw the delay and outcome of ``path`` from a hash of the seed and the path."""
    digest = hashlib.blake2b(f"{seed}:{path}".encode("utf-8"), digest_size=16).digest()
    delay_draw, outcome_draw = (value / 2**64 for value in struct.unpack(">QQ", digest))
    delay_s = min_delay_s + delay_draw * (max_delay_s - min_delay_s)
    if outcome_draw < rates.not_found:
        outcome = "not_found"
    elif outcome_draw < rates.not_found + rates.server_error:
        outcome = "server_error"
    elif outcome_draw < rates.not_found + rates.server_error + rates.reset:
        outcome = "reset"
    else:
        outcome = "ok"
    return Plan(delay_s, outcome)


def list_images(image_dir: Path) -> list[Path]:
    """Return the .jpg files of ``image_dir`` sorted by name. Raises FileNotFoundError when there are none."""
    images = sorted(image_dir.glob("*.jpg"))
    if not images:
        raise FileNotFoundError(f"no .jpg files in {image_dir}: pass the photo folder with --images")
    return images


@dataclass
class ServerSettings:
    """Settings that every worker process shares."""

    images: list[bytes]
    seed: int
    min_delay_s: float
    max_delay_s: float
    rates: FailureRates
    counters: object  # RawArray of int64, len(COUNTERS) per worker
    workers: int


class ImageHttpProtocol(asyncio.Protocol):
    """One client connection: parses GET requests in order and responds to each after its planned delay."""

    def __init__(self, settings: ServerSettings, worker: int):
        self.settings = settings
        self.offset = worker * len(COUNTERS)
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.busy = False
        self.pending: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.pending is not None:
            self.pending.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next_request()

    def _count(self, name: str, amount: int = 1) -> None:
        self.settings.counters[self.offset + COUNTERS.index(name)] += amount

    def _next_request(self) -> None:
        """Respond to the next complete request in the buffer, unless one is still waiting for its delay."""
        if self.busy or self.transport is None:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self._respond(431, b"request header too large", keep_alive=False)
            return
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        request_line, _, headers = head.partition(b"\r\n")
        parts = request_line.split()
        if len(parts) != 3:
            self._respond(400, b"invalid request line", keep_alive=False)
            return
        method, target, version = parts
        lower_headers = headers.lower()
        if version == b"HTTP/1.1":
            keep_alive = b"connection: close" not in lower_headers
        else:
            keep_alive = b"connection: keep-alive" in lower_headers
        self._count("requests")
        if method != b"GET":
            self._count("other")
            self._respond(405, b"only GET is served", keep_alive=False)
            return

        path = target.split(b"?", 1)[0].decode("ascii", "replace")
        if path == "/__stats":
            self._respond(200, json.dumps(totals(self.settings.counters, self.settings.workers)).encode(), keep_alive,
                          "application/json")
            return
        if path == "/robots.txt":
            self._count("robots")
            self._respond(404, b"no robots.txt here", keep_alive)
            return
        if len(path) != 21 or not path.endswith(".jpg") or not _is_hex(path[1:17]):
            self._count("other")
            self._respond(404, b"unknown path", keep_alive)
            return

        settings = self.settings
        plan = plan_for(path, settings.seed, settings.min_delay_s, settings.max_delay_s, settings.rates)
        self.busy = True
        loop = asyncio.get_running_loop()
        self.pending = loop.call_later(plan.delay_s, self._send_planned, path, plan.outcome, keep_alive)

    def _send_planned(self, path: str, outcome: str, keep_alive: bool) -> None:
        self.pending = None
        self.busy = False
        if self.transport is None:
            return
        if outcome == "reset":
            self._count("reset")
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()
            return
        if outcome == "not_found":
            self._count("not_found")
            self._respond(404, b"not found", keep_alive)
        elif outcome == "server_error":
            self._count("server_error")
            self._respond(500, b"internal server error", keep_alive)
        else:
            self._count("ok")
            image = self.settings.images[image_index(path, len(self.settings.images))]
            self._count("body_bytes", len(image))
            self._respond(200, image, keep_alive, "image/jpeg")
        self._next_request()

    def _respond(self, status: int, body: bytes, keep_alive: bool, content_type: str = "text/plain") -> None:
        reason = _REASONS.get(status, "Error")
        connection = "keep-alive" if keep_alive else "close"
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {connection}\r\n\r\n"
        )
        self.transport.write(head.encode("ascii"))
        self.transport.write(body)
        if not keep_alive:
            self.transport.close()
            self.transport = None


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 431: "Request Header Fields Too Large",
            500: "Internal Server Error"}


def _is_hex(text: str) -> bool:
    return all(character in "0123456789abcdef" for character in text)


def totals(counters: object, workers: int) -> dict[str, int]:
    """Sum the counters of every worker."""
    width = len(COUNTERS)
    return {name: sum(counters[worker * width + index] for worker in range(workers)) for index, name in enumerate(COUNTERS)}


def _worker_main(listener: socket.socket, settings: ServerSettings, worker: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    server = loop.run_until_complete(
        loop.create_server(lambda: ImageHttpProtocol(settings, worker), sock=listener, backlog=1024)
    )
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.close()


def serve(args: argparse.Namespace) -> int:
    """Load the photos, fork the workers and wait until a signal or a dead worker stops the server."""
    paths = list_images(args.images)
    images = [path.read_bytes() for path in paths]
    settings = ServerSettings(
        images=images,
        seed=args.seed,
        min_delay_s=args.min_latency_ms / 1000,
        max_delay_s=args.max_latency_ms / 1000,
        rates=FailureRates(args.not_found_rate, args.server_error_rate, args.reset_rate),
        counters=RawArray("q", len(COUNTERS) * args.workers),
        workers=args.workers,
    )
    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except PermissionError as error:
            logger.warning("cannot set the nice value %d (%s); the server runs at the default priority", args.nice, error)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    listener.setblocking(False)
    port = listener.getsockname()[1]

    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_worker_main, args=(listener, settings, worker), name=f"image-server-{worker}", daemon=True)
        for worker in range(args.workers)
    ]
    for process in workers:
        process.start()
    listener.close()

    stopping = False

    def stop(_signal_number: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid(),
                      "worker_pids": [process.pid for process in workers], "images": len(images)}), flush=True)
    logger.info("serving %d photos on http://127.0.0.1:%d with %d worker processes (seed %d)",
                len(images), port, args.workers, args.seed)

    while not stopping and all(process.is_alive() for process in workers):
        multiprocessing.connection.wait([process.sentinel for process in workers], 0.2)
    dead = [process for process in workers if not process.is_alive()]
    for process in workers:
        if process.is_alive():
            process.terminate()
    for process in workers:
        process.join(timeout=5)
    logger.info("stopped; requests: %s", totals(settings.counters, args.workers))
    if dead and not stopping:
        logger.error("worker process %d exited with %s; server stopped", dead[0].pid, dead[0].exitcode)
        return 1
    return 0


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGE_DIR, help="folder of .jpg photos to serve")
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one (default: 0)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the delays and failures (default: 0)")
    parser.add_argument("--min-latency-ms", type=float, default=50.0, help="minimum delay before a response (default: 50)")
    parser.add_argument("--max-latency-ms", type=float, default=300.0, help="maximum delay before a response (default: 300)")
    parser.add_argument("--not-found-rate", type=float, default=0.02, help="fraction of image paths that get HTTP 404 (default: 0.02)")
    parser.add_argument("--server-error-rate", type=float, default=0.01, help="fraction of image paths that get HTTP 500 (default: 0.01)")
    parser.add_argument("--reset-rate", type=float, default=0.01, help="fraction of image paths whose connection is reset (default: 0.01)")
    parser.add_argument(
        "--nice", type=int, default=0, help="nice value of the server processes; negative values need root (default: 0)"
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"invalid --workers {args.workers}: it must be at least 1")
    if not 0 <= args.min_latency_ms <= args.max_latency_ms:
        parser.error(f"invalid latency range {args.min_latency_ms}-{args.max_latency_ms} ms")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s", datefmt="%H:%M:%S")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
