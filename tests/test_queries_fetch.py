"""Tests of `wit queries fetch` against a MediaWiki-like API server on 127.0.0.1.

The server (tests/mediawiki_server.py) serves real articles from the bundled enwiki
fragment and logs every request, so the checks on requests, headers, timing and the
cache read the server's own log.
"""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path

import pytest

from mediawiki_server import (
    FAULT_HTTP_500,
    FAULT_INVALID_JSON,
    FAULT_SLOW,
    MiniWiki,
    build_sample_wiki,
    make_app,
)
from wit_builder import __version__
from wit_builder.localserver import BackgroundServer
from wit_builder.parquet import read_records, write_records
from wit_builder.queries.fetch import (
    STATUS_CONNECTION_ERROR,
    STATUS_HTTP_ERROR,
    STATUS_INVALID_JSON,
    STATUS_MISSING,
    STATUS_NOT_ARTICLE,
    STATUS_OK,
    STATUS_TIMEOUT,
    FetchConfig,
    FetchSetupError,
    WikipediaFetcher,
    category_title,
)
from wit_builder.queries.fetch_cli import add_fetch_parser, merge_entries, run_fetch
from wit_builder.records import QueryEntry

CONTACT = "https://example.org/wit-builder-tests"
FAST_RATE = 1000.0
# Sentences of the real articles as the server serves them, after markup stripping.
AARDVARK_PHRASE = "burrowing, nocturnal mammal"
AA_RIVER_PHRASE = "small European rivers"


@pytest.fixture(scope="module")
def sample_wiki(samples_dir) -> MiniWiki:
    return build_sample_wiki(samples_dir)


@pytest.fixture(scope="module")
def server(sample_wiki):
    with BackgroundServer(lambda: make_app(sample_wiki)) as running:
        yield running


@pytest.fixture
def wiki(sample_wiki, server) -> MiniWiki:
    """The served wiki with an empty request log and default behaviour."""
    sample_wiki.clear_log()
    sample_wiki.faults.clear()
    sample_wiki.batch_limit = 500
    sample_wiki.slow_s = 1.0
    yield sample_wiki
    sample_wiki.faults.clear()


@pytest.fixture
def api_url(server) -> str:
    return server.base_url + "w/api.php"


def make_fetcher(api_url: str, **settings) -> WikipediaFetcher:
    options = {"contact": CONTACT, "api_url": api_url, "allow_private": True, "rate": FAST_RATE, "max_retries": 0}
    options.update(settings)
    return WikipediaFetcher(FetchConfig(**options))


def fetch(api_url: str, titles: list[str], category: str | None = None, depth: int = 0, **settings):
    with make_fetcher(api_url, **settings) as fetcher:
        return fetcher.fetch(titles, category=category, depth=depth)


def fetch_args(api_url: str, out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wit queries")
    add_fetch_parser(parser.add_subparsers(dest="queries_command"))
    return parser.parse_args(
        ["fetch", "--api-url", api_url, "--allow-private", "--contact", CONTACT, "--rate", str(FAST_RATE),
         "--max-retries", "0", "--out", str(out), *extra]
    )


def article_titles(report) -> list[str]:
    return [article.title for article in report.articles]


# Titles, text and links


def test_titles_fetch_text_and_article_links(wiki, api_url):
    report = fetch(api_url, ["Aardvark", "Aa River"])

    assert article_titles(report) == ["Aardvark", "Aa River"]
    aardvark, aa_river = report.articles
    assert AARDVARK_PHRASE in aardvark.text
    assert AA_RIVER_PHRASE in aa_river.text
    assert "Africa" in aardvark.links
    assert "Wikipedia:Verifiability" not in aardvark.links
    assert report.missing_titles == []
    assert report.errors == []


def test_extract_sections_as_plain_text(wiki, api_url):
    report = fetch(api_url, ["Aardvark"])

    text = report.articles[0].text
    assert "==" not in text
    assert "\nTaxonomy\n" in text or "\nName\n" in text


def test_links_follow_continuation(wiki, api_url):
    wiki.batch_limit = 10
    report = fetch(api_url, ["Aardvark"])

    link_requests = [record for record in wiki.request_log() if record.query.get("prop") == "links"]
    assert len(link_requests) > 10
    assert "plcontinue" in link_requests[-1].query
    expected = [title for namespace, title in wiki.pages["Aardvark"].links if namespace == 0]
    assert report.articles[0].links == expected


def test_requests_carry_library_params(wiki, api_url):
    fetch(api_url, ["Aa River"])

    log = wiki.request_log()
    assert {record.path for record in log} == {"/w/api.php"}
    extracts = [record for record in log if record.query.get("prop") == "extracts"]
    assert len(extracts) == 1
    assert extracts[0].query["format"] == "json"
    assert extracts[0].query["redirects"] == "1"
    assert extracts[0].query["explaintext"] == "1"


# Title case, redirects and missing titles


def test_first_letter_case_insensitive(wiki, api_url):
    report = fetch(api_url, ["aardvark"])

    assert article_titles(report) == ["Aardvark"]
    assert report.resolved == {"aardvark": "Aardvark"}
    assert report.redirects == {}


def test_other_letters_case_sensitive(wiki, api_url):
    report = fetch(api_url, ["AARDVARK", "aA River"])

    assert report.articles == []
    assert report.missing_titles == ["AARDVARK", "aA River"]


def test_redirect_resolved_and_recorded(wiki, api_url):
    report = fetch(api_url, ["Orycteropus afer", "Aardvark"])

    assert article_titles(report) == ["Aardvark"]
    assert report.redirects == {"Orycteropus afer": "Aardvark"}
    assert report.resolved == {"Orycteropus afer": "Aardvark", "Aardvark": "Aardvark"}
    assert AARDVARK_PHRASE in report.articles[0].text


def test_missing_title_reported_not_empty(wiki, api_url, caplog):
    with caplog.at_level("WARNING", logger="wit_builder.queries.fetch"):
        report = fetch(api_url, ["Aa River", "No such article"])

    assert report.missing_titles == ["No such article"]
    assert article_titles(report) == ["Aa River"]
    assert report.errors == []
    assert "No such article" not in report.resolved
    assert "1 missing titles" in caplog.text


def test_missing_title_costs_one_request(wiki, api_url):
    fetch(api_url, ["No such article"])

    assert len(wiki.request_log()) == 1


def test_non_article_title_recorded(wiki, api_url):
    report = fetch(api_url, ["Category:Films"])

    assert report.articles == []
    assert report.missing_titles == []
    assert [(error.title, error.status) for error in report.errors] == [("Category:Films", STATUS_NOT_ARTICLE)]


# Categories


@pytest.mark.parametrize(
    ("depth", "expected"),
    [
        (0, ["Adventure"]),
        (1, ["Adventure", "Actrius"]),
        (2, ["Adventure", "Actrius", "Allan Dwan"]),
        (5, ["Adventure", "Actrius", "Allan Dwan"]),
    ],
)
def test_category_depth(wiki, api_url, depth, expected):
    report = fetch(api_url, [], category="Culture", depth=depth)

    assert article_titles(report) == expected
    assert report.category == "Category:Culture"
    assert report.missing_categories == []


def test_category_cycle_listed_once(wiki, api_url):
    report = fetch(api_url, [], category="Category:Culture", depth=5)

    listed = [listing.title for listing in report.categories]
    assert listed == ["Category:Culture", "Category:Films", "Category:Film directors"]


def test_category_members_only_namespace_0(wiki, api_url):
    report = fetch(api_url, [], category="Category:Mammals", depth=0)

    assert article_titles(report) == ["Aardvark"]
    listing = report.categories[0]
    assert listing.subcategories == ["Category:Hyenas"]
    assert listing.other_members == 1


def test_category_subcategory_at_depth_1(wiki, api_url):
    report = fetch(api_url, [], category="mammals", depth=1)

    assert article_titles(report) == ["Aardvark", "Aardwolf"]


def test_category_members_follow_continuation(wiki, api_url):
    wiki.batch_limit = 1
    report = fetch(api_url, [], category="Category:Mammals", depth=0)

    member_requests = [record for record in wiki.request_log() if record.query.get("list") == "categorymembers"]
    assert len(member_requests) == 3
    assert article_titles(report) == ["Aardvark"]


def test_missing_category_reported_not_empty(wiki, api_url):
    report = fetch(api_url, [], category="No such category")

    assert report.missing_categories == ["Category:No such category"]
    assert report.categories[0].status == STATUS_MISSING
    assert report.articles == []
    assert report.errors == []


def test_empty_category_not_missing(wiki, api_url):
    report = fetch(api_url, [], category="Empty")

    assert report.missing_categories == []
    assert report.categories[0].status == STATUS_OK
    assert report.categories[0].page_exists is True
    assert report.articles == []


def test_category_and_titles_deduplicated(wiki, api_url):
    report = fetch(api_url, ["Actrius", "Alain Connes"], category="Films", depth=0)

    assert article_titles(report) == ["Actrius", "Alain Connes"]
    extracts = [record for record in wiki.request_log() if record.query.get("prop") == "extracts"]
    assert len(extracts) == 2


def test_category_title_prefix_and_case():
    assert category_title("mammals") == "Category:Mammals"
    assert category_title("category:film_directors") == "Category:Film directors"
    assert category_title("Category:Films") == "Category:Films"


# User agent, address guard and rate limit


def test_user_agent_names_contact(wiki, api_url):
    report = fetch(api_url, ["Aa River", "No such article"], category="Films")

    agents = {record.headers.get("User-Agent", "") for record in wiki.request_log()}
    assert len(agents) == 1
    agent = agents.pop()
    assert agent.startswith(f"wit-builder/{__version__} ({CONTACT}) ")
    assert "Wikipedia-API/" in agent
    assert report.user_agent == agent


@pytest.mark.parametrize("contact", [None, "", "   "])
def test_missing_contact_rejected(wiki, api_url, contact):
    with pytest.raises(FetchSetupError, match="--contact"):
        make_fetcher(api_url, contact=contact)


@pytest.mark.parametrize("contact", ["someone", "ftp://example.org", "https://example.org\r\nX-Injected: 1"])
def test_invalid_contact_rejected(wiki, api_url, contact):
    with pytest.raises(FetchSetupError, match="invalid --contact"):
        make_fetcher(api_url, contact=contact)


def test_email_contact_accepted(wiki, api_url):
    with make_fetcher(api_url, contact="ops@example.org") as fetcher:
        assert fetcher.user_agent.startswith(f"wit-builder/{__version__} (ops@example.org) ")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_api_url_needs_allow_private(wiki, server, host):
    url = f"http://{host}:{server.port}/w/api.php"
    with pytest.raises(FetchSetupError, match="--allow-private"):
        make_fetcher(url, allow_private=False)
    assert wiki.request_log() == []


def test_cli_rejects_loopback_before_requests(wiki, api_url, tmp_path):
    args = fetch_args(api_url, tmp_path / "out", "--title", "Aardvark")
    args.allow_private = False

    with pytest.raises(FetchSetupError, match="127.0.0.1 is a blocked address.*--allow-private"):
        run_fetch(args)
    assert wiki.request_log() == []
    assert not (tmp_path / "out").exists()


def test_invalid_language_rejected(wiki, api_url):
    with pytest.raises(FetchSetupError, match="invalid language code"):
        make_fetcher(api_url, language="en.evil.example/")


def test_rate_limit_measured_on_server(wiki, api_url):
    rate = 8.0
    fetch(api_url, ["Aa River", "Actrius", "No such article"], rate=rate)

    times = [record.timestamp for record in wiki.request_log()]
    assert len(times) == 5
    gaps = [later - earlier for earlier, later in zip(times, times[1:])]
    # The server stamps a request when its handler starts, a little after the client
    # sent it, so a gap may come out slightly shorter than the client's spacing.
    assert min(gaps) >= 0.8 / rate
    assert times[-1] - times[0] >= 0.95 * (len(times) - 1) / rate


def test_retries_pass_rate_limit(wiki, api_url):
    wiki.faults["Aa River"] = FAULT_HTTP_500
    rate = 10.0
    report = fetch(api_url, ["Aa River"], rate=rate, max_retries=2, retry_wait_s=0.0)

    times = [record.timestamp for record in wiki.request_log()]
    assert len(times) == 3
    assert min(later - earlier for earlier, later in zip(times, times[1:])) >= 0.8 / rate
    assert report.errors[0].http_status == 500


# Cache


def test_cached_rerun_sends_no_request(wiki, api_url, tmp_path):
    cache = tmp_path / "cache"
    titles = ["aardvark", "No such article", "Orycteropus afer"]
    first = fetch(api_url, titles, category="Culture", depth=2, cache_dir=cache)
    first_requests = len(wiki.request_log())
    wiki.clear_log()

    second = fetch(api_url, titles, category="Culture", depth=2, cache_dir=cache)

    assert first_requests > 0
    assert first.requests == first_requests
    assert wiki.request_log() == []
    assert second.requests == 0
    assert second.cache_hits == 3 + 3 + 3
    assert article_titles(second) == article_titles(first)
    assert [article.text for article in second.articles] == [article.text for article in first.articles]
    assert second.missing_titles == ["No such article"]
    assert second.redirects == {"Orycteropus afer": "Aardvark"}
    assert all(article.from_cache for article in second.articles)


def test_cache_keeps_no_errors(wiki, api_url, tmp_path):
    cache = tmp_path / "cache"
    wiki.faults["Aa River"] = FAULT_HTTP_500
    fetch(api_url, ["Aa River", "Actrius"], cache_dir=cache)
    wiki.faults.clear()
    wiki.clear_log()

    report = fetch(api_url, ["Aa River", "Actrius"], cache_dir=cache)

    requested = {record.query.get("titles") for record in wiki.request_log()}
    assert requested == {"Aa River"}
    assert article_titles(report) == ["Aa River", "Actrius"]


def test_cache_separates_languages(wiki, api_url, tmp_path):
    cache = tmp_path / "cache"
    fetch(api_url, ["Aa River"], cache_dir=cache)
    wiki.clear_log()

    fetch(api_url, ["Aa River"], cache_dir=cache, language="de")

    assert len(wiki.request_log()) == 2


# Per-page errors


@pytest.mark.parametrize(
    ("fault", "status"),
    [(FAULT_HTTP_500, STATUS_HTTP_ERROR), (FAULT_INVALID_JSON, STATUS_INVALID_JSON), (FAULT_SLOW, STATUS_TIMEOUT)],
)
def test_page_error_recorded_run_continues(wiki, api_url, fault, status):
    wiki.faults["Actrius"] = fault
    wiki.slow_s = 0.6
    report = fetch(api_url, ["Aa River", "Actrius", "Alain Connes"], timeout_s=0.2)

    assert article_titles(report) == ["Aa River", "Alain Connes"]
    assert [(error.title, error.kind, error.status) for error in report.errors] == [("Actrius", "article", status)]
    assert report.missing_titles == []


def test_http_error_status_recorded(wiki, api_url):
    wiki.faults["Actrius"] = FAULT_HTTP_500
    report = fetch(api_url, ["Actrius"])

    error = report.errors[0]
    assert error.http_status == 500
    assert "HTTP 500" in error.message


def test_connection_refused_recorded(wiki):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    report = fetch(f"http://127.0.0.1:{closed_port}/w/api.php", ["Aa River"])

    assert report.articles == []
    assert [(error.title, error.status) for error in report.errors] == [("Aa River", STATUS_CONNECTION_ERROR)]


def test_max_pages_stops_fetch(wiki, api_url):
    report = fetch(api_url, ["Aa River"], category="Culture", depth=2, max_pages=2)

    assert article_titles(report) == ["Aa River", "Adventure"]
    assert report.not_fetched == 2


def test_category_error_recorded(wiki, api_url):
    wiki.faults["Category:Films"] = FAULT_HTTP_500
    report = fetch(api_url, [], category="Culture", depth=2)

    assert article_titles(report) == ["Adventure"]
    assert [(error.title, error.kind, error.status) for error in report.errors] == [
        ("Category:Films", "categorymembers", STATUS_HTTP_ERROR)
    ]
    assert report.missing_categories == []


# Command line and output files


def test_cli_writes_query_list(wiki, api_url, tmp_path):
    out = tmp_path / "out"
    args = fetch_args(
        api_url, out, "--title", "aardvark", "--title", "No such article", "--category", "Culture", "--depth", "1",
        "--cache", str(tmp_path / "cache"),
    )

    assert run_fetch(args) == 0

    for name in ("queries.parquet", "queries.txt", "build.json", "stats.json"):
        assert (out / name).is_file()
    queries = (out / "queries.txt").read_text(encoding="utf-8").splitlines()
    assert "aardvark" in queries
    assert "Actrius" in queries
    inputs = json.loads((out / "build.json").read_text(encoding="utf-8"))["inputs"]
    assert inputs["missing_titles"] == ["No such article"]
    assert inputs["articles"] == ["Aardvark", "Adventure", "Actrius"]
    assert inputs["resolved"]["aardvark"] == "Aardvark"
    assert inputs["user_agent"] == wiki.request_log()[0].headers["User-Agent"]
    assert inputs["api_url"] == api_url
    assert inputs["requests"] == len(wiki.request_log())


def test_cli_titles_file(wiki, api_url, tmp_path):
    titles = tmp_path / "titles.txt"
    titles.write_text("Aa River\n\nActrius\nAa River\n", encoding="utf-8")
    args = fetch_args(api_url, tmp_path / "out", "--titles-file", str(titles), "--no-cache")

    assert run_fetch(args) == 0

    inputs = json.loads((tmp_path / "out" / "build.json").read_text(encoding="utf-8"))["inputs"]
    assert inputs["titles_requested"] == ["Aa River", "Actrius"]


def test_cli_nothing_fetched_writes_nothing(wiki, api_url, tmp_path):
    args = fetch_args(api_url, tmp_path / "out", "--title", "No such article", "--no-cache")

    assert run_fetch(args) == 1
    assert not (tmp_path / "out" / "queries.parquet").exists()


def test_cli_requires_input(wiki, api_url, tmp_path):
    with pytest.raises(FetchSetupError, match="nothing to fetch"):
        run_fetch(fetch_args(api_url, tmp_path / "out"))


def test_cli_depth_requires_category(wiki, api_url, tmp_path):
    with pytest.raises(FetchSetupError, match="--depth"):
        run_fetch(fetch_args(api_url, tmp_path / "out", "--title", "Aardvark", "--depth", "1"))


def test_cli_requires_contact(wiki, api_url, tmp_path):
    args = fetch_args(api_url, tmp_path / "out", "--title", "Aardvark")
    args.contact = None

    with pytest.raises(FetchSetupError, match="--contact"):
        run_fetch(args)
    assert wiki.request_log() == []


def test_cli_extend_keeps_old_entries(wiki, api_url, tmp_path):
    old = tmp_path / "old"
    existing = [
        QueryEntry(query="zebra", kind="unigram", count=40),
        QueryEntry(query="aardvark", kind="unigram", count=7),
        QueryEntry(query="Savanna", kind="title", count=2),
    ]
    write_records(old / "queries.parquet", existing, QueryEntry)
    out = tmp_path / "out"
    args = fetch_args(api_url, out, "--title", "Aardvark", "--extend", str(old), "--no-cache")

    assert run_fetch(args) == 0

    merged = read_records(out / "queries.parquet", QueryEntry)
    assert merged[:3] == existing
    queries = [entry.query for entry in merged]
    assert len(queries) == len(set(queries))
    assert len(merged) > 3
    assert (out / "queries.txt").read_text(encoding="utf-8").splitlines() == queries
    extend = json.loads((out / "build.json").read_text(encoding="utf-8"))["extend"]
    assert extend["existing"] == 3
    assert extend["queries"] == len(merged)
    assert extend["already_present"] >= 1


def test_cli_extend_missing_list_rejected(wiki, api_url, tmp_path):
    args = fetch_args(api_url, tmp_path / "out", "--title", "Aardvark", "--extend", str(tmp_path / "none"))

    with pytest.raises(FileNotFoundError, match="--extend"):
        run_fetch(args)
    assert wiki.request_log() == []


def test_merge_entries_keeps_order():
    existing = [QueryEntry("b", "unigram", 5), QueryEntry("a", "unigram", 3)]
    new = [QueryEntry("a", "unigram", 9), QueryEntry("c", "bigram", 4, pmi=9.5)]

    merged = merge_entries(existing, new)

    assert merged == [existing[0], existing[1], new[1]]
