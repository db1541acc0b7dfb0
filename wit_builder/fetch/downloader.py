"""Download many URLs concurrently with global and per-host limits.

Requests are issued in host-interleaved order, so that a run of URLs from one host
does not leave every worker waiting on that host's slots. Results come back as each
download finishes (``iter_downloads``) or as a list in input order (``download_all``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import AsyncIterator, Sequence
from urllib.parse import urlsplit

import aiohttp

from wit_builder.net.client import HostLimiter, HttpConfig, HttpResult, http_get, make_session
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)


def _host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def interleave_by_host(urls: Sequence[str]) -> list[int]:
    """Return the indices of ``urls`` ordered round-robin over their hosts.

    Within one host the input order is kept.
    """
    by_host: dict[str, collections.deque[int]] = collections.defaultdict(collections.deque)
    for index, url in enumerate(urls):
        by_host[_host_of(url)].append(index)

    order: list[int] = []
    queues = list(by_host.values())
    while queues:
        for queue in queues:
            order.append(queue.popleft())
        queues = [queue for queue in queues if queue]
    return order


async def iter_downloads(
    session: aiohttp.ClientSession,
    urls: Sequence[str],
    config: HttpConfig,
    limiter: HostLimiter | None = None,
) -> AsyncIterator[tuple[int, HttpResult]]:
    """Download ``urls`` and yield ``(index, result)`` pairs as downloads finish.

    ``config.max_concurrency`` workers share the work, and ``limiter`` (one per run
    by default) caps requests per host. Finished results wait in a queue of
    ``max_concurrency`` entries, so a consumer that stops reading also stops the
    downloads, which bounds the memory held in bodies. Leaving the loop early
    cancels the workers.
    """
    if limiter is None:
        limiter = HostLimiter.from_config(config)
    order = iter(interleave_by_host(urls))
    finished: asyncio.Queue[tuple[int, HttpResult]] = asyncio.Queue(maxsize=config.max_concurrency)

    async def work() -> None:
        for index in order:
            result = await _download_one(session, urls[index], config, limiter)
            await finished.put((index, result))

    workers = [asyncio.create_task(work()) for _ in range(min(config.max_concurrency, len(urls)))]
    try:
        for _ in range(len(urls)):
            yield await finished.get()
    finally:
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def _download_one(
    session: aiohttp.ClientSession, url: str, config: HttpConfig, limiter: HostLimiter
) -> HttpResult:
    try:
        return await http_get(session, url, config, limiter)
    except asyncio.CancelledError:
        raise
    except Exception as error:  # noqa: BLE001 - one sample must not stop the others
        # http_get maps network and HTTP problems to statuses, so this is a bug. Log
        # the traceback and record the sample as failed so that the run continues.
        logger.exception("internal error while downloading %s", url)
        return HttpResult(
            url=url,
            final_url=url,
            status=FetchStatus.CONNECTION_ERROR,
            error=f"internal error: {type(error).__name__}: {error}",
        )


async def download_all(
    urls: Sequence[str], config: HttpConfig, session: aiohttp.ClientSession | None = None
) -> list[HttpResult]:
    """Download ``urls`` and return their results in input order.

    Opens (and closes) a session from ``config`` unless one is given.
    """
    results: list[HttpResult | None] = [None] * len(urls)
    async with contextlib.nullcontext(session) if session is not None else make_session(config) as active:
        async for index, result in iter_downloads(active, urls, config):
            results[index] = result

    counts = collections.Counter(result.status.value for result in results)
    logger.info("downloaded %d URLs: %s", len(urls), ", ".join(f"{name} {count}" for name, count in counts.most_common()))
    return results
