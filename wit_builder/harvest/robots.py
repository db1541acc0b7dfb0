"""robots.txt rules of one origin, parsed as RFC 9309 specifies and fetched through the shared HTTP client.

How the outcome of the robots.txt request decides what the crawler may fetch:

- 2xx: the rules are parsed. A file longer than ``MAX_ROBOTS_BYTES`` is cut at the last
  line break before that size and the rest is ignored. RFC 9309 section 2.5 lets a crawler
  set such a parsing limit, of at least 500 KiB.
- 4xx other than 429, or more redirects than ``max_redirects``: the file is unavailable,
  so there are no rules and every path is allowed (RFC 9309 section 2.3.1.3).
- 5xx, 429, timeout, connection error or truncated body: the file is unreachable and the
  whole origin is disallowed (RFC 9309 section 2.3.1.4). A 429 counts as a server error
  here, because it reports an overloaded server rather than a missing file.
  The crawler records those pages as ``robots_unreachable`` for the rest of the run and
  queues them again when the crawl resumes, when robots.txt is requested once more.
- blocked address, DNS error or invalid URL: ``failure`` keeps the result, and every page
  of the origin gets its status without a request.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp

from wit_builder.net.client import HttpConfig, HttpResult, http_get
from wit_builder.records import FetchStatus

logger = logging.getLogger(__name__)

#: Product token that robots.txt groups are matched against, case-insensitively.
ROBOTS_USER_AGENT = "wit-builder"

#: Bytes of robots.txt parsed. RFC 9309 sets the minimum parsing limit at 500 KiB.
MAX_ROBOTS_BYTES = 512 * 1024

#: Page status of the URLs of an origin whose robots.txt is unreachable.
ROBOTS_UNREACHABLE = "robots_unreachable"

# RFC 3986 unreserved characters: percent-escapes of these are decoded before matching.
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")

# Statuses after which robots.txt counts as unreachable, so the origin is disallowed.
_UNREACHABLE_STATUSES = frozenset(
    {FetchStatus.TIMEOUT, FetchStatus.CONNECTION_ERROR, FetchStatus.TRUNCATED, FetchStatus.HTTP_ERROR, FetchStatus.PROTOCOL_ERROR}
)


class RobotsOutcome(str, enum.Enum):
    """Outcome of the robots.txt request of one origin."""

    PARSED = "parsed"
    UNAVAILABLE = "unavailable"
    UNREACHABLE = "unreachable"
    FAILED = "failed"


@dataclass(frozen=True)
class RobotsRule:
    """One Allow or Disallow line of the group that applies to the crawler."""

    allow: bool
    #: Path pattern after percent-encoding normalization; its length ranks matches.
    pattern: str
    regex: re.Pattern


@dataclass
class RobotsRules:
    """The robots.txt outcome of one origin (scheme, host and port)."""

    origin: str
    outcome: RobotsOutcome = RobotsOutcome.UNAVAILABLE
    rules: tuple[RobotsRule, ...] = ()
    #: Crawl-delay in seconds of the group that applies, None when the group has none.
    crawl_delay_s: float | None = None
    #: Result of the robots.txt request when the origin could not be reached at all.
    failure: HttpResult | None = None
    #: robots.txt was longer than MAX_ROBOTS_BYTES, so only its start was parsed.
    truncated: bool = False

    def allows(self, url: str) -> bool:
        """Return whether the crawler may fetch ``url``; always False for an unreachable or failed origin.

        The longest matching pattern decides, and Allow wins a tie (RFC 9309 section 2.2.2).
        /robots.txt itself is always allowed.
        """
        if self.outcome in (RobotsOutcome.UNREACHABLE, RobotsOutcome.FAILED):
            return False
        target = url_match_target(url)
        if target == "/robots.txt":
            return True

        best: RobotsRule | None = None
        for rule in self.rules:
            if not rule.regex.match(target):
                continue
            if best is None or (len(rule.pattern), rule.allow) > (len(best.pattern), best.allow):
                best = rule
        return best is None or best.allow

    def blocked_status(self) -> str | None:
        """Return the page status for every URL of the origin, or None when rules decide per URL."""
        if self.outcome is RobotsOutcome.UNREACHABLE:
            return ROBOTS_UNREACHABLE
        if self.outcome is RobotsOutcome.FAILED and self.failure is not None:
            return self.failure.status.value
        return None


def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` of a URL, lower case."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def normalize_path(path: str) -> str:
    """Percent-encode a path or pattern so that equal paths compare equal (RFC 9309 section 2.2.2).

    Characters outside US-ASCII are encoded as UTF-8 escapes, escapes of unreserved
    characters are decoded, and the hex digits of the other escapes are made upper case.
    """
    encoded = "".join(char if ord(char) < 128 else quote(char, safe="") for char in path)

    def _escape(match: re.Match) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else f"%{match.group(1).upper()}"

    return _PERCENT_ESCAPE.sub(_escape, encoded)


def url_match_target(url: str) -> str:
    """Return the normalized path and query of ``url``, the string that patterns are matched against."""
    parts = urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return normalize_path(target)


def compile_pattern(pattern: str) -> re.Pattern:
    """Compile a robots.txt path pattern: ``*`` matches any characters and a final ``$`` ends the path."""
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(regex + ("$" if anchored else ""), re.DOTALL)


@dataclass
class _Group:
    agents: list[str] = dataclasses.field(default_factory=list)
    rules: list[RobotsRule] = dataclasses.field(default_factory=list)
    crawl_delays: list[float] = dataclasses.field(default_factory=list)


def _agent_token(value: str) -> str:
    """Return the product token of a User-agent value, lower case: "Wit-Builder/1.0" gives "wit-builder"."""
    words = value.split()
    return words[0].split("/", 1)[0].lower() if words else ""


def _parse_crawl_delay(value: str) -> float | None:
    try:
        delay = float(value)
    except ValueError:
        return None
    return delay if math.isfinite(delay) and delay >= 0 else None


def _parse_rule(key: str, value: str) -> RobotsRule | None:
    if not value:
        # An empty Disallow allows everything, which is the same as no rule.
        return None
    if not value.startswith(("/", "*")):
        value = "/" + value
    pattern = normalize_path(value)
    return RobotsRule(allow=key == "allow", pattern=pattern, regex=compile_pattern(pattern))


def _parse_groups(text: str) -> list[_Group]:
    """Split robots.txt text into groups of User-agent lines and the rules that follow them."""
    groups: list[_Group] = []
    current: _Group | None = None
    reading_agents = False
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        key, separator, value = line.partition(":")
        if not separator:
            continue
        key = key.strip().lower()
        value = value.strip()

        if key == "user-agent":
            # A User-agent line after a rule starts a new group.
            if current is None or not reading_agents:
                current = _Group()
                groups.append(current)
            current.agents.append(_agent_token(value))
            reading_agents = True
            continue
        if key not in ("allow", "disallow", "crawl-delay") or current is None:
            # Sitemap and unknown lines, and rules before the first User-agent line, are ignored.
            continue

        reading_agents = False
        if key == "crawl-delay":
            delay = _parse_crawl_delay(value)
            if delay is not None:
                current.crawl_delays.append(delay)
            continue
        rule = _parse_rule(key, value)
        if rule is not None:
            current.rules.append(rule)
    return groups


def parse_robots(origin: str, body: bytes, user_agent: str = ROBOTS_USER_AGENT) -> RobotsRules:
    """Parse a robots.txt body (UTF-8, invalid bytes replaced) into the rules for ``user_agent``.

    The groups naming the product token apply, merged when there are several. Without
    them the ``*`` groups apply, and without those every path is allowed. Crawl-delay is
    not part of RFC 9309. The largest valid value of the applying groups is kept.
    """
    truncated = len(body) > MAX_ROBOTS_BYTES
    if truncated:
        # Cut at a line break so that a rule is never read half.
        head = body[:MAX_ROBOTS_BYTES]
        body = head[: head.rfind(b"\n") + 1]
    text = body.decode("utf-8", errors="replace").removeprefix("\ufeff")

    groups = _parse_groups(text)
    token = user_agent.lower()
    applying = [group for group in groups if token in group.agents]
    if not applying:
        applying = [group for group in groups if "*" in group.agents]

    rules = tuple(rule for group in applying for rule in group.rules)
    delays = [delay for group in applying for delay in group.crawl_delays]
    return RobotsRules(
        origin=origin,
        outcome=RobotsOutcome.PARSED,
        rules=rules,
        crawl_delay_s=max(delays) if delays else None,
        truncated=truncated,
    )


def robots_http_config(config: HttpConfig) -> HttpConfig:
    """Return the HTTP settings for robots.txt: the crawl's, with the body cut at MAX_ROBOTS_BYTES + 1."""
    # With one byte over the parsing limit, parse_robots can detect a longer file.
    return dataclasses.replace(config, max_bytes=MAX_ROBOTS_BYTES + 1, truncate_long_bodies=True)


def interpret_robots_result(origin: str, result: HttpResult, level: int = logging.WARNING) -> RobotsRules:
    """Turn the result of a robots.txt request into rules, following the outcomes in the module docstring.

    Outcomes that deserve attention are logged at ``level``; a caller that counts them
    itself passes logging.DEBUG.
    """
    if result.ok and result.body is not None:
        rules = parse_robots(origin, result.body)
        if rules.truncated:
            logger.log(level, "%s/robots.txt is longer than %d bytes: the rest is ignored", origin, MAX_ROBOTS_BYTES)
        return rules

    http_status = result.http_status
    if http_status is not None and 400 <= http_status < 500 and http_status != 429:
        logger.debug("%s/robots.txt returned HTTP %d: no rules, all paths allowed", origin, http_status)
        return RobotsRules(origin=origin, outcome=RobotsOutcome.UNAVAILABLE)
    if result.status is FetchStatus.TOO_MANY_REDIRECTS:
        logger.log(level, "%s/robots.txt is behind too many redirects (%s): unavailable, all paths allowed", origin, result.error)
        return RobotsRules(origin=origin, outcome=RobotsOutcome.UNAVAILABLE)
    if (http_status is not None and (http_status >= 500 or http_status == 429)) or result.status in _UNREACHABLE_STATUSES:
        logger.log(level, "%s/robots.txt is unreachable (%s): the origin is disallowed for this run", origin, result.error)
        return RobotsRules(origin=origin, outcome=RobotsOutcome.UNREACHABLE)

    logger.log(level, "failed to fetch %s/robots.txt (%s: %s): skipping the origin", origin, result.status.value, result.error)
    return RobotsRules(origin=origin, outcome=RobotsOutcome.FAILED, failure=result)


async def fetch_robots(session: aiohttp.ClientSession, origin: str, config: HttpConfig) -> RobotsRules:
    """Request ``origin/robots.txt`` and interpret the result; ``config`` should come from ``robots_http_config``."""
    result = await http_get(session, f"{origin}/robots.txt", config)
    return interpret_robots_result(origin, result)
