"""Process pool that runs ``resize_image`` and survives crashing workers."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from wit_builder.fetch.resizer import ResizeOptions, ResizeResult, configure_worker, resize_image
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)


class DecodePool:
    """``ProcessPoolExecutor`` of image decoders, restarted when a worker dies.

    Workers start with the "spawn" method because the parent runs an event loop and
    resolver threads, which a forked child must not inherit. A worker that dies (a
    segfault in a decoder, the kernel's OOM killer) breaks the whole executor and
    fails every pending task. The pool then starts a new executor and retries each
    failed image once, and an image that breaks the new executor too is recorded as
    decode_error.
    """

    def __init__(self, processes: int | None = None, max_pixels: int | None = None):
        self.processes = processes or os.cpu_count() or 1
        self.max_pixels = max_pixels
        self.restarts = 0
        self._executor: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        initargs = (self.max_pixels,) if self.max_pixels else ()
        return ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=configure_worker if initargs else None,
            initargs=initargs,
        )

    @property
    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = self._start()
        return self._executor

    async def resize(self, data: bytes, content_type: str | None, options: ResizeOptions) -> ResizeResult:
        """Run ``resize_image`` in a worker process and return its result."""
        # NOTE: there is no per-image decode timeout, so a decoder that hangs blocks its
        # worker for the rest of the run.
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            executor = self.executor
            try:
                return await loop.run_in_executor(executor, resize_image, data, content_type, options)
            except BrokenProcessPool:
                self._restart(executor)
                if attempt == 2:
                    return ResizeResult(
                        FetchStatus.DECODE_ERROR, "decoder worker process died twice while decoding this image"
                    )
        raise AssertionError("unreachable")

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        # Tasks that failed with the same broken executor restart it only once.
        if self._executor is not broken:
            return
        self.restarts += 1
        logger.warning("a decoder worker process died; restarting the pool (restart %d)", self.restarts)
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> "DecodePool":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
