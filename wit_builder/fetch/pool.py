"""Worker processes that run ``resize_image`` with a CPU time limit per image.

Decoders are C code fed with untrusted bytes: one can crash, loop or stall. Each
worker is a separate process, so the damage stays in that process:

- CPU time: before each image the worker sets its soft ``RLIMIT_CPU`` to the CPU
  time it has used so far plus ``cpu_seconds``. A decoder that burns CPU gets
  SIGXCPU from the kernel, whose default action ends the process even while it is
  inside C code;
- wall-clock time: a decoder that blocks without using CPU is killed by the parent
  after ``wall_seconds``;
- crashes: a segfault or the OOM killer ends only that worker.

In each case the image is recorded (decode_timeout or decode_error), the dead worker
is replaced by a new one and the run continues. Unlike ``ProcessPoolExecutor``, which
fails every pending task with BrokenProcessPool when one worker dies, a death here
affects only the image that the worker was decoding.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import resource
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from wit_builder.fetch.resizer import DEFAULT_MAX_PIXELS, ResizeOptions, ResizeResult, configure_worker, resize_image
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

#: CPU seconds one image may use. Decoding and resizing a photo near the default
#: max_pixels (89 megapixels) takes a few seconds, so this leaves a wide margin.
DEFAULT_CPU_SECONDS = 20
#: Seconds a new worker may take to import its modules and report ready.
_START_TIMEOUT_SECONDS = 120
#: Replacements logged at warning level before the pool logs only every 100th.
_LOGGED_REPLACEMENTS = 10

DecodeFunction = Callable[[bytes, "str | None", ResizeOptions], ResizeResult]


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    connection: Connection


class DecodePool:
    """Pool of decoder processes that runs ``resize_image`` (or ``decode_function``) per image.

    Workers start on first use with the "spawn" method, because the parent runs an
    event loop and resolver threads that a forked child must not inherit. ``resize``
    is the asyncio entry point and ``resize_blocking`` the synchronous one. Both are
    safe to call from many tasks or threads at once; calls wait for an idle worker.

    ``decode_function`` must be a module-level function (it is pickled by name) with
    the signature of ``resize_image``; tests pass one that hangs.
    """

    def __init__(
        self,
        processes: int | None = None,
        max_pixels: int | None = None,
        *,
        cpu_seconds: int = DEFAULT_CPU_SECONDS,
        wall_seconds: float | None = None,
        decode_function: DecodeFunction = resize_image,
    ):
        if cpu_seconds < 1:
            raise ValueError(f"cpu_seconds must be at least 1 (RLIMIT_CPU counts whole seconds), got {cpu_seconds}")
        self.processes = processes or os.cpu_count() or 1
        self.max_pixels = max_pixels or DEFAULT_MAX_PIXELS
        self.cpu_seconds = int(cpu_seconds)
        #: Wall-clock limit per image. Defaults to 3x the CPU limit, because a busy
        #: machine gives each worker less than one core.
        self.wall_seconds = wall_seconds if wall_seconds is not None else 3.0 * cpu_seconds
        self.decode_function = decode_function
        #: Worker processes replaced after they died or were killed.
        self.restarts = 0
        #: Images recorded as decode_timeout.
        self.timeouts = 0

        self._context = multiprocessing.get_context("spawn")
        self._condition = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._starting = 0
        self._closed = False
        self._threads: ThreadPoolExecutor | None = None

    async def resize(self, data: bytes, content_type: str | None, options: ResizeOptions) -> ResizeResult:
        """Decode and resize one image in a worker process and return its result."""
        if self._threads is None:
            self._threads = ThreadPoolExecutor(max_workers=self.processes, thread_name_prefix="decode")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self.resize_blocking, data, content_type, options)

    def resize_blocking(self, data: bytes, content_type: str | None, options: ResizeOptions) -> ResizeResult:
        """Decode and resize one image in a worker process, blocking the calling thread."""
        task = (data, content_type, options)
        for _attempt in (1, 2):
            worker = self._acquire()
            try:
                worker.connection.send(task)
                break
            except OSError:
                # The worker died while idle (killed from outside), so the image never
                # reached it. Try once more on a fresh worker.
                self._discard(worker, "died while idle")
        else:
            return ResizeResult(FetchStatus.DECODE_ERROR, "decoder worker processes died before receiving the image")

        if not worker.connection.poll(self.wall_seconds):
            return self._timeout_result(worker)
        try:
            kind, payload = worker.connection.recv()
        except (EOFError, OSError):
            return self._death_result(worker)
        self._release(worker)

        if kind == "result":
            return payload
        # The decode function raised something that resize_image does not map to a
        # status, which is a bug: log it and record the image.
        logger.error("internal error in decoder worker %d:\n%s", worker.process.pid, payload)
        last_line = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
        return ResizeResult(FetchStatus.DECODE_ERROR, f"internal error in decoder: {last_line}")

    def _timeout_result(self, worker: _Worker) -> ResizeResult:
        """Kill a worker that ran past the wall-clock limit and record its image."""
        self.timeouts += 1
        self._discard(worker, f"ran past the wall-clock limit of {self.wall_seconds:g} s")
        return ResizeResult(
            FetchStatus.DECODE_TIMEOUT,
            f"decoding took longer than {self.wall_seconds:g} s wall-clock time; worker process killed",
        )

    def _death_result(self, worker: _Worker) -> ResizeResult:
        """Record the image of a worker that died: killed at the CPU limit, or crashed."""
        worker.process.join(timeout=10)
        exit_code = worker.process.exitcode
        if exit_code == -signal.SIGXCPU:
            self.timeouts += 1
            self._discard(worker, f"exceeded the CPU time limit of {self.cpu_seconds} s")
            return ResizeResult(
                FetchStatus.DECODE_TIMEOUT,
                f"decoding used more than {self.cpu_seconds} s of CPU time; worker process killed",
            )
        cause = _describe_exit(exit_code)
        self._discard(worker, f"died ({cause})")
        return ResizeResult(FetchStatus.DECODE_ERROR, f"decoder worker process died ({cause}) while decoding this image")

    def _acquire(self) -> _Worker:
        """Return an idle worker, starting one when fewer than ``processes`` run."""
        with self._condition:
            while True:
                if self._closed:
                    raise RuntimeError("DecodePool is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._workers) + self._starting < self.processes:
                    self._starting += 1
                    break
                self._condition.wait()

        # Start the process outside the lock, because spawning takes a fraction of a second.
        try:
            worker = self._start_worker()
        except BaseException:
            with self._condition:
                self._starting -= 1
                self._condition.notify()
            raise
        with self._condition:
            self._starting -= 1
            self._workers.add(worker)
        return worker

    def _start_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child_end, self.max_pixels, self.cpu_seconds, self.decode_function),
            name="wit-decode",
            daemon=True,
        )
        process.start()
        # Close the parent's copy of the child end, so that the parent reads EOF as
        # soon as the worker dies.
        child_end.close()

        # Wait until the worker has imported its modules, so that start-up time does
        # not count against the wall-clock limit of its first image.
        ready = parent_end.poll(_START_TIMEOUT_SECONDS)
        try:
            message = parent_end.recv() if ready else None
        except (EOFError, OSError):
            message = None
        if message != "ready":
            process.kill()
            process.join(timeout=10)
            parent_end.close()
            raise RuntimeError(
                f"decoder worker process failed to start within {_START_TIMEOUT_SECONDS} s "
                f"({_describe_exit(process.exitcode)})"
            )
        return _Worker(process, parent_end)

    def _release(self, worker: _Worker) -> None:
        with self._condition:
            closed = self._closed
            if not closed:
                self._idle.append(worker)
                self._condition.notify()
        if closed:
            self._stop(worker)

    def _discard(self, worker: _Worker, reason: str) -> None:
        """Forget a dead or killed worker, so that the next call starts a replacement."""
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=10)
        worker.connection.close()
        with self._condition:
            self._workers.discard(worker)
            self.restarts += 1
            restarts = self.restarts
            self._condition.notify()
        if restarts <= _LOGGED_REPLACEMENTS or restarts % 100 == 0:
            logger.warning("decoder worker %d %s; replacing it (%d replaced so far)", worker.process.pid, reason, restarts)

    def _stop(self, worker: _Worker) -> None:
        try:
            worker.connection.send(None)
        except OSError:
            pass
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=5)
        worker.connection.close()

    def worker_pids(self) -> list[int]:
        """Return the process ids of the running workers."""
        with self._condition:
            return [worker.process.pid for worker in self._workers]

    def close(self) -> None:
        """Stop every worker. Workers busy with an image are killed."""
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = [worker for worker in self._workers if worker not in idle]
            self._workers.clear()
            self._condition.notify_all()
        for worker in idle:
            self._stop(worker)
        for worker in busy:
            worker.process.kill()
            worker.process.join(timeout=5)
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _describe_exit(exit_code: int | None) -> str:
    if exit_code is None:
        return "still running after kill"
    if exit_code < 0:
        try:
            return f"signal {signal.Signals(-exit_code).name}"
        except ValueError:
            return f"signal {-exit_code}"
    return f"exit code {exit_code}"


def _limit_cpu_time(cpu_seconds: int) -> None:
    """Set the soft RLIMIT_CPU to the CPU time used so far plus ``cpu_seconds``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(used) + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _worker_main(connection: Connection, max_pixels: int, cpu_seconds: int, decode_function: DecodeFunction) -> None:
    """Run decode tasks from ``connection`` until it closes or sends None."""
    # Ctrl-C reaches the whole process group, but the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The default action of SIGXCPU ends the process, even inside C code.
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    # A killed worker must not leave a core file behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    configure_worker(max_pixels)
    connection.send("ready")

    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return

        _limit_cpu_time(cpu_seconds)
        try:
            reply = ("result", decode_function(*task))
        except Exception:  # noqa: BLE001 - the parent records the image and logs the traceback
            reply = ("error", traceback.format_exc())
        try:
            connection.send(reply)
        except (EOFError, OSError):
            return
