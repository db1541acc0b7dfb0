"""robots.txt for the image downloader: the URLs that the rules of an origin reject, and why.

The rules are parsed by ``wit_builder.harvest.robots`` (RFC 9309) for the product
token "wit-builder". The downloader requests robots.txt once per origin and calls
``robots_rejection`` for each URL of the origin before queueing it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from wit_builder.harvest.robots import ROBOTS_USER_AGENT, RobotsOutcome, RobotsRules
from wit_builder.records import FetchStatus


def host_key(url: str) -> str | None:
    """Return the key that per-host limits use: the lower-case host name, with ":port" when the URL sets one.

    Returns None for a URL without a host name, or not http or https, which the
    downloader requests without any pacing, because ``http_get`` rejects it at once.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return f"{host}:{port}" if port is not None else host


def robots_rejection(url: str, rules: RobotsRules, max_crawl_delay_s: float | None) -> tuple[FetchStatus, str] | None:
    """Return the status and error that the robots.txt ``rules`` give ``url``, or None when it may be fetched.

    An unreachable robots.txt rejects the whole origin with robots_unreachable, and a
    robots.txt request that failed (DNS error, blocked address) gives every URL its
    status. ``max_crawl_delay_s`` rejects origins with a longer Crawl-delay; None accepts any.
    """
    if rules.outcome is RobotsOutcome.UNREACHABLE:
        return FetchStatus.ROBOTS_UNREACHABLE, f"{rules.origin}/robots.txt is unreachable, so the origin is disallowed"
    if rules.outcome is RobotsOutcome.FAILED and rules.failure is not None:
        return rules.failure.status, f"robots.txt request failed: {rules.failure.error}"
    if max_crawl_delay_s is not None and rules.crawl_delay_s is not None and rules.crawl_delay_s > max_crawl_delay_s:
        return FetchStatus.ROBOTS_DISALLOWED, (
            f"{rules.origin}/robots.txt sets Crawl-delay {rules.crawl_delay_s:g} s, "
            f"more than max_crawl_delay_s {max_crawl_delay_s:g} s"
        )
    if not rules.allows(url):
        return FetchStatus.ROBOTS_DISALLOWED, f"{rules.origin}/robots.txt disallows this URL for {ROBOTS_USER_AGENT}"
    return None
