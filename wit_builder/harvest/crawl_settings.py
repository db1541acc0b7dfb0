"""Crawl settings as users name them, and how a resumed crawl reacts when they changed.

Every run of a crawl stores the settings that decide page outcomes in the frontier. When a
later run loosens one of them, the URLs that failed with the status it caused are queued
again, so a seed on 127.0.0.1 that failed as blocked_address is requested once
``--allow-private`` is on. A change that cannot reach pages finished in earlier runs, such as
a larger ``--max-depth``, gets a warning instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from wit_builder.harvest.frontier import FrontierStore
from wit_builder.harvest.robots import ROBOTS_UNREACHABLE
from wit_builder.records import FetchStatus

if TYPE_CHECKING:
    from wit_builder.harvest.crawler import CrawlConfig

logger = logging.getLogger(__name__)

#: Frontier meta key of the outcome settings of the latest run, as JSON.
SETTINGS_KEY = "settings"

#: Page status of the URLs of a host whose robots.txt Crawl-delay is over max_crawl_delay_s.
CRAWL_DELAY_TOO_LONG = "crawl_delay_too_long"

#: Flag of ``wit harvest crawl`` for each setting it sets. Keys are CrawlConfig fields, and
#: HttpConfig fields with the prefix ``http.``, as in the [harvest.http] table of a run config.
CLI_FLAGS = {
    "max_depth": "--max-depth",
    "max_pages": "--max-pages",
    "max_pages_per_host": "--max-pages-per-host",
    "same_host_only": "--all-hosts",
    "host_delay_s": "--host-delay",
    "max_crawl_delay_s": "--max-crawl-delay",
    "max_page_bytes": "--max-page-bytes",
    "flush_interval_s": "--flush-interval",
    "http.allow_private": "--allow-private",
    "http.timeout_s": "--timeout",
    "http.max_concurrency": "--concurrency",
    "http.max_per_host": "--per-host",
    "http.contact_url": "--user-agent-contact",
}


def setting_name(key: str) -> str:
    """Return the name of a setting for messages: flag and config key, such as "--max-depth / max_depth"."""
    flag = CLI_FLAGS.get(key)
    return key if flag is None else f"{flag} / {key}"


def outcome_settings(config: CrawlConfig) -> dict[str, Any]:
    """Return the settings of ``config`` that decide which URLs fail, keyed as in ``CLI_FLAGS``."""
    return {
        "max_depth": config.max_depth,
        "same_host_only": config.same_host_only,
        "max_page_bytes": config.max_page_bytes,
        "max_crawl_delay_s": config.max_crawl_delay_s,
        "respect_crawl_delay": config.respect_crawl_delay,
        "http.allow_private": config.http.allow_private,
        "http.allow_loopback": config.http.allow_loopback,
        "http.timeout_s": config.http.timeout_s,
        "http.connect_timeout_s": config.http.connect_timeout_s,
        "http.max_redirects": config.http.max_redirects,
    }


def _increased(old: Any, new: Any) -> bool:
    return new > old


def _turned_on(old: Any, new: Any) -> bool:
    return bool(new) and not bool(old)


def _turned_off(old: Any, new: Any) -> bool:
    return bool(old) and not bool(new)


@dataclass(frozen=True)
class RetryRule:
    """Rule that queues failed URLs with ``status`` again when ``loosened(old, new)`` is true for setting ``key``."""

    status: str
    key: str
    loosened: Callable[[Any, Any], bool]


#: Failed statuses that a setting caused, with the change that lets a resumed crawl retry them.
#: robots_unreachable is not listed because every resumed run retries it.
RETRY_RULES = (
    RetryRule(FetchStatus.BLOCKED_ADDRESS.value, "http.allow_private", _turned_on),
    RetryRule(FetchStatus.BLOCKED_ADDRESS.value, "http.allow_loopback", _turned_on),
    RetryRule(FetchStatus.TOO_LARGE.value, "max_page_bytes", _increased),
    RetryRule(FetchStatus.TIMEOUT.value, "http.timeout_s", _increased),
    RetryRule(FetchStatus.TIMEOUT.value, "http.connect_timeout_s", _increased),
    RetryRule(FetchStatus.TOO_MANY_REDIRECTS.value, "http.max_redirects", _increased),
    RetryRule(CRAWL_DELAY_TOO_LONG, "max_crawl_delay_s", _increased),
    RetryRule(CRAWL_DELAY_TOO_LONG, "respect_crawl_delay", _turned_off),
)


@dataclass
class ResumePlan:
    """Changes of a resumed run that follow from settings that differ from the previous run's."""

    #: Failed statuses to queue again, each with the keys of the settings that were loosened.
    retry: dict[str, list[str]] = field(default_factory=dict)
    #: Settings changes that do not reach pages finished in earlier runs.
    warnings: list[str] = field(default_factory=list)


def plan_resume(previous: dict[str, Any], current: dict[str, Any]) -> ResumePlan:
    """Compare the outcome settings of the previous run with the current ones, and return what changes.

    A key missing from ``previous``, as in a frontier written before settings were stored,
    counts as unchanged.
    """
    plan = ResumePlan()
    for rule in RETRY_RULES:
        if rule.key in previous and rule.loosened(previous[rule.key], current[rule.key]):
            plan.retry.setdefault(rule.status, []).append(rule.key)

    # NOTE: the crawler stores no links beyond max_depth and no offsite links with
    # same_host_only, so loosening either one only gets a warning here.
    old_depth = previous.get("max_depth")
    if old_depth is not None and current["max_depth"] > old_depth:
        plan.warnings.append(
            f"{setting_name('max_depth')} grew from {old_depth} to {current['max_depth']}, but the links on pages "
            f"that earlier runs finished at depth {old_depth} were not stored, so those pages lead no deeper; "
            "--restart crawls from scratch"
        )
    if previous.get("same_host_only") and not current["same_host_only"]:
        plan.warnings.append(
            "--all-hosts is set now (same_host_only is off), but the links to other hosts on pages that earlier "
            "runs finished were not stored, so those pages lead to no other host; --restart crawls from scratch"
        )
    return plan


def describe_counts(counts: dict[str, int]) -> str:
    """Format status counts as "blocked_address 2, http_error 1", largest first."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{status} {count}" for status, count in ordered)


def recover_frontier(store: FrontierStore, config: CrawlConfig, runs: int, out_dir: Path, parts_removed: int) -> None:
    """Queue again the in-flight URLs of an interrupted run and the failed URLs that ``config`` may now fetch.

    Every run also retries robots_unreachable, and stores its outcome settings for the next.
    """
    # The settings go into the transaction that queues the URLs they let through, so no kill
    # can leave the new settings stored while those URLs are still failed.
    settings = outcome_settings(config)
    plan = plan_resume(store.load_json(SETTINGS_KEY), settings)
    in_flight, retried = store.recover(
        frozenset({ROBOTS_UNREACHABLE, *plan.retry}), {SETTINGS_KEY: json.dumps(settings, sort_keys=True)}
    )
    if runs == 1:
        return

    logger.info(
        "resuming the crawl in %s (run %d): %d in-flight URLs queued again, %d uncommitted part files removed",
        out_dir, runs, in_flight, parts_removed,
    )
    for status, count in retried.items():
        keys = plan.retry.get(status)
        if keys:
            changed = " and ".join(setting_name(key) for key in keys)
            logger.info("queued %d URLs that failed with %s again, because %s changed since the previous run", count, status, changed)
        else:
            logger.info("queued %d URLs that failed with %s again", count, status)
    for warning in plan.warnings:
        logger.warning("%s", warning)


def log_hints(store: FrontierStore, config: CrawlConfig, runs: int, requested_this_run: int) -> None:
    """Warn about failures that a setting can avoid, and explain a resumed run that requested no pages."""
    failed = store.failed_status_counts()
    blocked = failed.get(FetchStatus.BLOCKED_ADDRESS.value, 0)
    if blocked and not config.http.allow_private:
        logger.warning(
            "%d URLs failed with blocked_address: their hosts are loopback, private or reserved addresses, "
            "which only %s allows (for local test servers)",
            blocked, setting_name("http.allow_private"),
        )

    if runs == 1 or requested_this_run > 0:
        return
    requested = sum(row.pages_fetched for row in store.hosts().values())
    if requested >= config.max_pages:
        logger.warning(
            "the resumed crawl requested no pages because earlier runs reached %s %d; raise it to continue",
            setting_name("max_pages"), config.max_pages,
        )
    elif failed:
        logger.warning(
            "the resumed crawl requested no pages; the frontier has %d failed URLs (%s), which a resumed crawl "
            "requests again only after a setting that caused the failure is loosened; --restart crawls from scratch",
            sum(failed.values()), describe_counts(failed),
        )
