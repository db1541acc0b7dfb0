"""Run health of the fetch stage: window counts, warnings with advice, and their rate limit."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fetch_servers import ImageSite, image, status, tiny_jpeg
from wit_builder.fetch.downloader import download_all
from wit_builder.fetch.health import HealthConfig, RunHealth, request_label
from wit_builder.fetch.politeness import PolitenessConfig
from wit_builder.net.client import HttpConfig
from wit_builder.records import FetchStatus

HEALTH_LOGGER = "wit_builder.fetch.health"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def warnings_of(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING and record.name == HEALTH_LOGGER]


@pytest.mark.parametrize(
    "status_value, http_status, label",
    [
        ("ok", 200, "ok"),
        ("http_error", 429, "http_429"),
        ("http_error", 503, "http_5xx"),
        ("http_error", 404, "http_4xx"),
        ("http_error", None, "http_error"),
        (FetchStatus.TIMEOUT, None, "timeout"),
        ("dns_error", None, "dns_error"),
    ],
)
def test_request_label(status_value, http_status, label):
    assert request_label(status_value, http_status) == label


def test_window_keeps_only_recent_requests():
    health = RunHealth(HealthConfig(window=10, log_interval_s=0), clock=FakeClock())
    for _ in range(8):
        health.record("timeout")
    for _ in range(10):
        health.record("ok")

    assert health.counts() == {"ok": 10}
    assert health.total == 18
    assert health.summary() == "ok 100%"


def test_summary_lists_shares():
    health = RunHealth(HealthConfig(window=100, log_interval_s=0), clock=FakeClock())
    for label in ["ok"] * 70 + ["http_429"] * 20 + ["timeout"] * 10:
        health.record(label)

    assert health.summary() == "ok 70% http_429 20% timeout 10%"
    assert health.summary(labels=1) == "ok 70%"


def test_warning_names_problem_and_fix(caplog):
    clock = FakeClock()
    health = RunHealth(HealthConfig(window=500, min_requests=100, warn_fraction=0.2, log_interval_s=0), clock=clock)
    with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
        for number in range(500):
            health.record("http_429" if number % 4 == 0 else "ok")

    messages = warnings_of(caplog)
    assert len(messages) == 1
    assert "of the last" in messages[0]
    assert "HTTP 429 (Too Many Requests)" in messages[0]
    assert "lower --per-host or raise --host-delay" in messages[0]


def test_warning_waits_for_min_requests(caplog):
    health = RunHealth(HealthConfig(window=500, min_requests=100, log_interval_s=0), clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
        for _ in range(99):
            health.record("dns_error")
        assert warnings_of(caplog) == []
        health.record("dns_error")

    (message,) = warnings_of(caplog)
    assert message.startswith("100% of the last 100 requests failed with DNS errors")


def test_warning_rate_limited_per_problem(caplog):
    clock = FakeClock()
    config = HealthConfig(window=50, min_requests=50, warn_fraction=0.2, warn_interval_s=300, log_interval_s=0)
    health = RunHealth(config, clock=clock)
    with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
        for second in range(600):
            clock.now = float(second)
            health.record("timeout" if second % 2 else "connection_error")

    messages = warnings_of(caplog)
    # Each problem warns at 50 requests (second 49) and again 300 s later, no more.
    assert sum("timeouts" in message for message in messages) == 2
    assert sum("connection errors" in message for message in messages) == 2
    assert health.warnings == 4


def test_content_failures_do_not_warn(caplog):
    health = RunHealth(HealthConfig(window=100, min_requests=10, log_interval_s=0), clock=FakeClock())
    with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
        for _ in range(100):
            health.record("http_4xx")
            health.record("not_an_image")

    assert warnings_of(caplog) == []


def test_periodic_log_line(caplog):
    clock = FakeClock()
    health = RunHealth(HealthConfig(window=100, log_interval_s=60), clock=clock)
    with caplog.at_level(logging.INFO, logger=HEALTH_LOGGER):
        for second in range(0, 150):
            clock.now = float(second)
            health.record("ok" if second % 3 else "timeout")

    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
    assert len(lines) == 2  # at 60 s and at 120 s
    assert lines[0].startswith("last 61 requests: ok 40, timeout 21 (1.0 requests/s, 61 in total)")


def test_config_rejects_invalid_values():
    with pytest.raises(ValueError, match="window"):
        HealthConfig(window=0)
    with pytest.raises(ValueError, match="warn_fraction"):
        HealthConfig(warn_fraction=1.5)


def test_downloads_of_throttling_host_warn(caplog):
    jpeg = tiny_jpeg(7)
    routes = {f"/img/{number}.jpg": (status(429) if number % 3 == 0 else image(jpeg)) for number in range(90)}
    with ImageSite(routes) as site:
        urls = [site.url(path) for path in routes]
        http = HttpConfig(allow_private=True, retries=0, max_concurrency=8, max_per_host=4)
        # No spacing, so that the 429s do not slow the test down.
        politeness = PolitenessConfig(host_delay_s=0.0, throttle_delay_s=0.0, max_host_delay_s=0.0, max_throttled_in_row=0)
        health = RunHealth(HealthConfig(window=60, min_requests=60, warn_fraction=0.2, log_interval_s=0))
        with caplog.at_level(logging.WARNING, logger=HEALTH_LOGGER):
            results = asyncio.run(download_all(urls, http, politeness=politeness, health=health))

    assert sum(result.http_status == 429 for result in results) == 30
    assert health.total == 90
    (message,) = warnings_of(caplog)
    assert "of the last 60 requests failed with HTTP 429" in message
    assert "lower --per-host or raise --host-delay" in message
