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
affects only the image that the worker was decoding. Images queued behind it go to
another worker.

The parent side runs on the caller's event loop, with no thread per worker: images go
into each worker's pipe, and a reader callback takes the replies. Each worker gets
the next image while it decodes the current one (``PIPELINE_DEPTH``), so it does not
wait for the event loop between images.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import multiprocessing
import os
import resource
import signal
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
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
#: Images sent to one worker before its first reply: the one it decodes and the next.
PIPELINE_DEPTH = 2
#: Images larger than this are sent only to a worker with nothing to do. A worker busy
#: with another image reads its pipe only later, and a larger body could fill the pipe's
#: buffer and block the event loop until then.
PIPELINE_MAX_BYTES = 64 * 1024

DecodeFunction = Callable[[bytes, "str | None", ResizeOptions], ResizeResult]


@dataclass(eq=False)
class _Job:
    """One image for a worker, and the future of its result."""

    task: tuple
    future: asyncio.Future

    @property
    def size(self) -> int:
        return len(self.task[0])


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    connection: Connection
    #: Jobs sent to this worker, oldest first; the first one is being decoded.
    pending: deque[_Job] = field(default_factory=deque)
    #: Wall-clock limit of the first pending job.
    timer: asyncio.TimerHandle | None = None


class DecodePool:
    """Pool of decoder processes that runs ``resize_image`` (or ``decode_function``) per image.

    Workers start on first use with the "spawn" method, because the parent runs an
    event loop and resolver threads that a forked child must not inherit. ``resize``
    is the asyncio entry point; many tasks of one event loop may call it at once. The
    pool serves one event loop at a time and is not safe to use from several threads.
    When a later loop (another ``asyncio.run``) uses it, workers left with unfinished
    images by the earlier loop are replaced. ``resize_blocking`` runs one image for
    callers without an event loop.

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
        self._workers: list[_Worker] = []
        self._starting = 0
        self._queue: deque[_Job] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._starter = concurrent.futures.ThreadPoolExecutor(max_workers=self.processes, thread_name_prefix="decode-start")

    async def resize(self, data: bytes, content_type: str | None, options: ResizeOptions) -> ResizeResult:
        """Decode and resize one image in a worker process and return its result."""
        loop = asyncio.get_running_loop()
        self._bind(loop)
        job = _Job((data, content_type, options), loop.create_future())
        self._queue.append(job)
        self._dispatch()
        try:
            return await job.future
        except asyncio.CancelledError:
            # A queued image is dropped. A sent one is decoded, and its reply is ignored.
            if job in self._queue:
                self._queue.remove(job)
            raise

    def resize_blocking(self, data: bytes, content_type: str | None, options: ResizeOptions) -> ResizeResult:
        """Decode and resize one image on a private event loop, blocking the calling thread.

        For callers without an event loop, one call at a time.
        """
        return asyncio.run(self.resize(data, content_type, options))

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``loop`` from now on, replacing workers that an earlier loop left busy."""
        if self._closed:
            raise RuntimeError("DecodePool is closed")
        if self._loop is loop:
            return
        self._loop = loop
        self._queue.clear()
        self._starting = 0
        for worker in list(self._workers):
            if worker.pending:
                self._discard(worker, "had unfinished images of an earlier event loop", count=False)

    def _dispatch(self) -> None:
        """Send queued images to workers with room, and start workers while fewer than ``processes`` run."""
        if self._closed:
            self._fail_queue()
            return
        while self._queue and len(self._workers) + self._starting < self.processes:
            self._starting += 1
            self._loop.create_task(self._start_async())

        while self._queue:
            job = self._queue[0]
            if job.future.done():
                self._queue.popleft()
                continue
            worker = self._worker_with_room(job)
            if worker is None:
                return
            self._queue.popleft()
            self._send(worker, job)

    def _worker_with_room(self, job: _Job) -> _Worker | None:
        """Return the least busy worker that may take ``job`` now, or None."""
        best = None
        for worker in self._workers:
            room = not worker.pending or (len(worker.pending) < PIPELINE_DEPTH and job.size <= PIPELINE_MAX_BYTES)
            if room and (best is None or len(worker.pending) < len(best.pending)):
                best = worker
        return best

    def _send(self, worker: _Worker, job: _Job) -> None:
        try:
            worker.connection.send(job.task)
        except OSError:
            # The worker died (killed from outside, or it crashed on an earlier image
            # whose reply is not read yet). This image never reached it.
            self._queue.appendleft(job)
            self._worker_failed(worker)
            return
        worker.pending.append(job)
        if len(worker.pending) == 1:
            self._watch(worker)

    def _watch(self, worker: _Worker) -> None:
        """Read the worker's replies on the event loop and start the wall-clock limit of its first image."""
        descriptor = worker.connection.fileno()
        self._loop.add_reader(descriptor, self._on_readable, worker)
        # uvloop makes a watched descriptor non-blocking. Sends and receives must not stop
        # halfway through a message, so the pipe goes back to blocking mode.
        os.set_blocking(descriptor, True)
        worker.timer = self._loop.call_later(self.wall_seconds, self._on_timeout, worker)

    def _unwatch(self, worker: _Worker) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        if not worker.connection.closed:
            self._loop.remove_reader(worker.connection.fileno())

    def _on_readable(self, worker: _Worker) -> None:
        """Take one reply: a result, or EOF when the worker died.

        The reader callback runs again while more replies wait in the pipe.
        """
        if not worker.pending:
            return
        try:
            # A reply can still be arriving, and recv waits for all of it.
            kind, payload = worker.connection.recv()
        except (EOFError, OSError):
            self._worker_failed(worker)
            return

        job = worker.pending.popleft()
        worker.timer.cancel()
        if worker.pending:
            worker.timer = self._loop.call_later(self.wall_seconds, self._on_timeout, worker)
        else:
            self._unwatch(worker)
        if not job.future.done():
            job.future.set_result(self._reply_result(worker, kind, payload))
        self._dispatch()

    def _reply_result(self, worker: _Worker, kind: str, payload: object) -> ResizeResult:
        if kind == "result":
            return payload
        # The decode function raised something that resize_image does not map to a
        # status, which is a bug: log it and record the image.
        logger.error("internal error in decoder worker %d:\n%s", worker.process.pid, payload)
        last_line = payload.strip().splitlines()[-1] if payload.strip() else "unknown error"
        return ResizeResult(FetchStatus.DECODE_ERROR, f"internal error in decoder: {last_line}")

    def _on_timeout(self, worker: _Worker) -> None:
        """Kill a worker whose current image ran past the wall-clock limit, and record that image."""
        worker.timer = None
        self.timeouts += 1
        result = ResizeResult(
            FetchStatus.DECODE_TIMEOUT,
            f"decoding took longer than {self.wall_seconds:g} s wall-clock time; worker process killed",
        )
        self._end_worker(worker, result, f"ran past the wall-clock limit of {self.wall_seconds:g} s")

    def _worker_failed(self, worker: _Worker) -> None:
        """Record the image of a worker that died: killed at the CPU limit, or crashed."""
        worker.process.join(timeout=10)
        exit_code = worker.process.exitcode
        if exit_code == -signal.SIGXCPU:
            self.timeouts += 1
            result = ResizeResult(
                FetchStatus.DECODE_TIMEOUT,
                f"decoding used more than {self.cpu_seconds} s of CPU time; worker process killed",
            )
            self._end_worker(worker, result, f"exceeded the CPU time limit of {self.cpu_seconds} s")
            return
        cause = _describe_exit(exit_code)
        result = ResizeResult(FetchStatus.DECODE_ERROR, f"decoder worker process died ({cause}) while decoding this image")
        self._end_worker(worker, result, f"died ({cause})")

    def _end_worker(self, worker: _Worker, result: ResizeResult, reason: str) -> None:
        """Give ``result`` to the worker's current image, queue the images behind it again, and replace the worker."""
        self._unwatch(worker)
        pending = list(worker.pending)
        worker.pending.clear()
        self._discard(worker, reason)
        if pending:
            current, waiting = pending[0], pending[1:]
            if not current.future.done():
                current.future.set_result(result)
            self._queue.extendleft(reversed(waiting))
        self._dispatch()

    async def _start_async(self) -> None:
        """Start one worker (counted in ``_starting``) in a thread, then give it work."""
        loop = self._loop
        # Spawning and importing take a fraction of a second, so they run in a thread.
        starting = self._starter.submit(self._start_worker)
        try:
            worker = await asyncio.wrap_future(starting)
        except asyncio.CancelledError:
            # The event loop ends (asyncio.run cancels what is left), so no caller takes
            # this worker. Stop it once it is up.
            starting.add_done_callback(_stop_started_worker)
            raise
        except Exception as error:  # noqa: BLE001 - the waiting images get the error
            if self._loop is loop:
                self._starting -= 1
                self._fail_queue(error)
            return
        if self._loop is not loop or self._closed:
            _stop_worker(worker)
            return
        self._starting -= 1
        self._workers.append(worker)
        self._dispatch()

    def _fail_queue(self, error: BaseException | None = None) -> None:
        """Fail every queued image: the pool is closed, or no worker could start."""
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(error if error is not None else RuntimeError("DecodePool is closed"))

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

    def _discard(self, worker: _Worker, reason: str, count: bool = True) -> None:
        """Kill and forget a worker, so that the next image starts a replacement.

        ``count`` False leaves ``restarts`` and the log alone, for a worker that was healthy.
        """
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(timeout=10)
        worker.connection.close()
        if worker in self._workers:
            self._workers.remove(worker)
        if not count:
            logger.debug("decoder worker %d %s; stopped it", worker.process.pid, reason)
            return
        self.restarts += 1
        if self.restarts <= _LOGGED_REPLACEMENTS or self.restarts % 100 == 0:
            logger.warning("decoder worker %d %s; replacing it (%d replaced so far)", worker.process.pid, reason, self.restarts)

    def worker_pids(self) -> list[int]:
        """Return the process ids of the running workers."""
        return [worker.process.pid for worker in self._workers]

    def close(self) -> None:
        """Stop every worker; workers busy with an image are killed. Images still waiting fail with RuntimeError."""
        self._closed = True
        loop_open = self._loop is not None and not self._loop.is_closed()
        workers, self._workers = self._workers, []
        for worker in workers:
            pending = list(worker.pending)
            worker.pending.clear()
            if loop_open:
                self._unwatch(worker)
            if pending:
                worker.process.kill()
                worker.process.join(timeout=5)
                worker.connection.close()
            else:
                _stop_worker(worker)
            if loop_open:
                self._queue.extend(pending)
        if loop_open:
            self._fail_queue()
        self._queue.clear()
        # Workers still starting are stopped by their callbacks or by the check above.
        self._starter.shutdown(wait=True)

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _stop_worker(worker: _Worker) -> None:
    """Ask an idle worker to exit, and kill it if it does not."""
    try:
        worker.connection.send(None)
    except OSError:
        pass
    worker.process.join(timeout=5)
    if worker.process.is_alive():
        worker.process.kill()
        worker.process.join(timeout=5)
    worker.connection.close()


def _stop_started_worker(starting: concurrent.futures.Future) -> None:
    if not starting.cancelled() and starting.exception() is None:
        _stop_worker(starting.result())


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
