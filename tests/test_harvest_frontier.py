"""The SQLite crawl frontier and the per-host queues."""

from __future__ import annotations

import sqlite3
import types

import pytest

from wit_builder.harvest.frontier import (
    FrontierEntry,
    FrontierStore,
    HostQueues,
    PageRecord,
    UrlState,
    host_of,
)
from wit_builder.harvest.robots import RobotsRules

HOST = "http://example.test:80"


@pytest.fixture()
def store(tmp_path):
    with FrontierStore(tmp_path / "frontier.sqlite") as frontier:
        yield frontier


def test_host_of_fills_default_port():
    assert host_of("http://Example.TEST/a") == "http://example.test:80"
    assert host_of("https://example.test/a") == "https://example.test:443"
    assert host_of("http://127.0.0.1:8080/x?y") == "http://127.0.0.1:8080"
    assert host_of("http://[::1]:81/") == "http://[::1]:81"


def test_store_uses_wal(store):
    mode = store.connection.execute("PRAGMA journal_mode").fetchone()[0]

    assert mode == "wal"


def test_add_deduplicates(store):
    first = store.add(HOST + "/a", HOST, 0)
    again = store.add(HOST + "/a", HOST, 1)
    many = store.add_many([(HOST + "/a", HOST, 2, 0), (HOST + "/b", HOST, 1, 0), (HOST + "/b", HOST, 1, 0)])

    assert first is not None
    assert again is None
    assert [entry.url for entry in many] == [HOST + "/b"]
    assert store.state_counts() == {"queued": 2}


def test_queued_in_crawl_order(store):
    rows = [(HOST + "/deep", HOST, 2, 0), (HOST + "/one", HOST, 1, 0), (HOST + "/seed", HOST, 0, 0), (HOST + "/two", HOST, 1, 0)]
    store.add_many(rows)

    assert [entry.url for entry in store.queued()] == [HOST + "/seed", HOST + "/one", HOST + "/two", HOST + "/deep"]
    assert [entry.url for entry in store.queued(max_depth=1)] == [HOST + "/seed", HOST + "/one", HOST + "/two"]


def test_recover_requeues_in_flight(store):
    entries = store.add_many([(HOST + f"/{index}", HOST, 0, 0) for index in range(4)])
    store.mark_in_flight(entries[0].id)
    store.mark_in_flight(entries[1].id)
    store.commit_pages(
        [
            PageRecord(entries[1].id, HOST, UrlState.DONE, "ok", 200, "text/html", requested=True),
            PageRecord(entries[2].id, HOST, UrlState.FAILED, "robots_unreachable"),
            PageRecord(entries[3].id, HOST, UrlState.FAILED, "robots_disallowed"),
        ],
        {},
    )

    assert store.failed_status_counts() == {"robots_unreachable": 1, "robots_disallowed": 1}

    in_flight, retried = store.recover(frozenset({"robots_unreachable", "too_large"}), {"settings": "{}"})

    assert in_flight == 1
    assert retried == {"robots_unreachable": 1}
    assert sorted(store.urls_with_state(UrlState.QUEUED)) == [HOST + "/0", HOST + "/2"]
    assert store.urls_with_state(UrlState.DONE) == [HOST + "/1"]
    assert store.status_counts() == {"ok": 1, "robots_disallowed": 1}
    assert store.failed_status_counts() == {"robots_disallowed": 1}
    assert store.get_meta("settings") == "{}"


def test_commit_pages_counts_requests(store):
    other = "http://other.test:80"
    entries = store.add_many([(HOST + "/a", HOST, 0, 0), (HOST + "/b", HOST, 0, 0), (other + "/c", other, 0, 0)])
    store.commit_pages(
        [
            PageRecord(entries[0].id, HOST, UrlState.DONE, "ok", 200, "text/html", requested=True),
            PageRecord(entries[1].id, HOST, UrlState.FAILED, "http_error", 404, "text/html", requested=True),
            PageRecord(entries[2].id, other, UrlState.FAILED, "robots_disallowed"),
        ],
        {"next_part": "3"},
    )
    hosts = store.hosts()

    assert hosts[HOST].pages_fetched == 2
    assert other not in hosts
    assert store.get_meta("next_part") == "3"
    assert store.http_status_counts() == {200: 1, 404: 1}
    assert store.content_type_counts("ok") == {"text/html": 1}


def test_commit_pages_atomic(store):
    entry = store.add(HOST + "/a", HOST, 0)
    bad = PageRecord(entry.id, HOST, UrlState.DONE, "ok", requested=True)
    bad.state = types.SimpleNamespace(value="finished")  # violates the CHECK constraint of the state column

    with pytest.raises(sqlite3.IntegrityError):
        store.commit_pages([PageRecord(entry.id, HOST, UrlState.DONE, "ok", requested=True), bad], {"next_part": "1"})

    assert store.get_meta("next_part") is None
    assert store.hosts() == {}
    assert store.state_counts() == {"queued": 1}


def test_update_host_rejects_unknown_column(store):
    store.update_host(HOST, seed=1, robots="parsed", crawl_delay_s=2.0)

    with pytest.raises(ValueError, match="unknown host column"):
        store.update_host(HOST, pages_fetched=5)
    assert store.hosts()[HOST].seed
    assert store.hosts()[HOST].crawl_delay_s == 2.0


def test_state_survives_reopen(tmp_path):
    path = tmp_path / "frontier.sqlite"
    with FrontierStore(path) as first:
        entry = first.add(HOST + "/a", HOST, 0)
        first.mark_in_flight(entry.id)
    with FrontierStore(path) as second:
        assert second.urls_with_state(UrlState.IN_FLIGHT) == [HOST + "/a"]


def test_schema_version_mismatch_rejected(tmp_path):
    path = tmp_path / "frontier.sqlite"
    with FrontierStore(path) as first:
        first.set_meta({"schema_version": "999"})

    with pytest.raises(ValueError, match="--restart"):
        FrontierStore(path)


def entry(depth: int, number: int, host: str = HOST) -> FrontierEntry:
    return FrontierEntry(depth=depth, id=number, url=f"{host}/{number}", host=host)


def ready_host(queues: HostQueues, host: str) -> None:
    queues.state(host).rules = RobotsRules(origin=host)


def test_queues_pick_shallowest_first():
    queues = HostQueues(max_per_host=1)
    other = "http://other.test:80"
    for host in (HOST, other):
        ready_host(queues, host)
    queues.push(entry(2, 1))
    queues.push(entry(1, 5, other))

    state = queues.pick(now=0.0)

    assert state.host == other
    assert queues.pop(state).id == 5


def test_queues_respect_delay_and_concurrency():
    queues = HostQueues(max_per_host=1)
    ready_host(queues, HOST)
    queues.push(entry(0, 1))
    state = queues.state(HOST)
    state.next_start = 5.0

    assert queues.pick(now=4.9) is None
    assert queues.next_ready_at() == 5.0
    assert queues.pick(now=5.0) is state

    state.active = 1
    assert queues.pick(now=6.0) is None
    assert queues.next_ready_at() is None
    assert queues.has_work()


def test_queues_page_limit_and_block():
    queues = HostQueues(max_per_host=2, max_pages_per_host=2)
    ready_host(queues, HOST)
    queues.push(entry(0, 1))
    state = queues.state(HOST)
    state.fetched = 2

    assert queues.pick(now=0.0) is None
    assert not queues.has_work()

    state.fetched = 0
    state.blocked_status = "robots_unreachable"
    assert queues.pick(now=0.0) is None
    assert [item.id for item in queues.drain(state)] == [1]
