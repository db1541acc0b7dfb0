"""robots.txt rules per origin, fetched once through the shared HTTP client.

Outcomes follow RFC 9309: a 2xx robots.txt is parsed, a 4xx means no rules (allow all),
and a 5xx means the whole site is disallowed. When the host cannot be reached at all
(DNS error, blocked address, timeout, ...), ``RobotsRules.failure`` keeps that result so
the crawler can report each page of the host with the same status without requesting it.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.robotparser
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from wit_builder.net.client import HostLimiter, HttpConfig, HttpResult, http_get
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

#: Product token that robots.txt groups are matched against.
ROBOTS_USER_AGENT = "wit-builder"

#: Bytes of robots.txt parsed. RFC 9309 sets the minimum parsing limit at 500 KiB.
MAX_ROBOTS_BYTES = 512 * 1024

# RFC 9309 lets a crawler treat a robots.txt behind too many redirects as unavailable (allow all).
_UNAVAILABLE_STATUSES = frozenset({FetchStatus.TOO_MANY_REDIRECTS})


@dataclass
class RobotsRules:
    """The robots.txt outcome of one origin (scheme, host and port)."""

    origin: str
    parser: urllib.robotparser.RobotFileParser | None = None
    disallow_all: bool = False
    failure: HttpResult | None = None

    def allows(self, url: str, user_agent: str = ROBOTS_USER_AGENT) -> bool:
        """Return whether ``user_agent`` may fetch ``url``; always False when the host failed."""
        if self.failure is not None or self.disallow_all:
            return False
        if self.parser is None:
            return True
        return self.parser.can_fetch(user_agent, url)

    def crawl_delay(self, user_agent: str = ROBOTS_USER_AGENT) -> float | None:
        """Return the Crawl-delay in seconds that applies to ``user_agent``, or None.

        NOTE: urllib.robotparser reads only whole seconds and ignores values such as "0.5".
        """
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(user_agent)
        return float(delay) if delay is not None else None


def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` of a URL, lower case."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def parse_robots(origin: str, body: bytes) -> RobotsRules:
    """Parse a robots.txt body (UTF-8, invalid bytes replaced) into rules.

    NOTE: urllib.robotparser applies the first matching Allow/Disallow line of a group,
    while RFC 9309 applies the longest match. Files that list a narrow Allow after a broad
    Disallow are read more strictly than RFC 9309 reads them. Wildcards are not supported.
    """
    text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace").removeprefix("\ufeff")
    parser = urllib.robotparser.RobotFileParser(f"{origin}/robots.txt")
    parser.parse(text.splitlines())
    return RobotsRules(origin=origin, parser=parser)


async def fetch_robots(
    session: aiohttp.ClientSession, origin: str, config: HttpConfig, limiter: HostLimiter | None = None
) -> RobotsRules:
    """Fetch and interpret ``origin/robots.txt``."""
    result = await http_get(session, f"{origin}/robots.txt", config, limiter)

    if result.ok and result.body is not None:
        return parse_robots(origin, result.body)
    if result.http_status is not None and 400 <= result.http_status < 500:
        logger.debug("%s/robots.txt returned HTTP %d: no rules, all paths allowed", origin, result.http_status)
        return RobotsRules(origin=origin)
    if result.status in _UNAVAILABLE_STATUSES:
        logger.warning("%s/robots.txt is unavailable (%s): all paths allowed", origin, result.error)
        return RobotsRules(origin=origin)
    if result.http_status is not None and result.http_status >= 500:
        logger.warning("%s/robots.txt returned HTTP %d: the whole site is treated as disallowed", origin, result.http_status)
        return RobotsRules(origin=origin, disallow_all=True)
    if result.status is FetchStatus.TOO_LARGE:
        logger.warning("%s/robots.txt is larger than max_bytes: the whole site is treated as disallowed", origin)
        return RobotsRules(origin=origin, disallow_all=True)

    logger.warning("cannot fetch %s/robots.txt (%s: %s): skipping the host", origin, result.status.value, result.error)
    return RobotsRules(origin=origin, failure=result)


class RobotsCache:
    """Fetch each origin's robots.txt once, also when many tasks ask for it at the same time."""

    def __init__(self, session: aiohttp.ClientSession, config: HttpConfig, limiter: HostLimiter | None = None):
        self._session = session
        self._config = config
        self._limiter = limiter
        self._rules: dict[str, asyncio.Task[RobotsRules]] = {}

    @property
    def fetched(self) -> int:
        """Number of origins whose robots.txt was requested."""
        return len(self._rules)

    async def rules_for(self, url: str) -> RobotsRules:
        """Return the rules of the origin of ``url``, fetching its robots.txt on first use."""
        origin = origin_of(url)
        task = self._rules.get(origin)
        if task is None:
            task = asyncio.ensure_future(fetch_robots(self._session, origin, self._config, self._limiter))
            self._rules[origin] = task
        return await asyncio.shield(task)
