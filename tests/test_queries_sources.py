"""Tests of the extra query sources: WordNet synset names and Wikimedia pageview counts."""

from __future__ import annotations

import bz2
import gzip
import logging
from pathlib import Path

import pytest

from wit_builder.queries import wordnet
from wit_builder.queries.pageviews import PageViewFileError, PageViews, pageview_files, read_pageviews
from wit_builder.queries.wordnet import (
    WNSEARCHDIR_ENV,
    WORDNET_DIR_ENV,
    WordNetFormatError,
    WordNetNames,
    find_wordnet_folder,
    query_of_word,
    read_synset_names,
)

# Synset counts of WordNet 3.0 per ss_type, counted in its data files. The per part of
# speech sums match wnstats(7WN): 82,115 nouns, 13,767 verbs, 18,156 adjectives, 3,621 adverbs.
WORDNET_30_SYNSETS = {"n": 82115, "v": 13767, "a": 7463, "s": 10693, "r": 3621}
# Distinct queries that NLTK 3.10.4's synset names give on the same files.
WORDNET_30_DISTINCT_NAMES = 86571

# Real lines of the WordNet 3.0 data files (Debian wordnet-base 1:3.0-37). WordNet's
# licence allows copying them if its notice and disclaimer come along, so every
# synthetic data file starts with the full licence header of the real files.
LICENCE_LINES = (
    '  1 This software and database is being provided to you, the LICENSEE, by  \n'
    '  2 Princeton University under the following license.  By obtaining, using  \n'
    '  3 and/or copying this software and database, you agree that you have  \n'
    '  4 read, understood, and will comply with these terms and conditions.:  \n'
    '  5   \n'
    '  6 Permission to use, copy, modify and distribute this software and  \n'
    '  7 database and its documentation for any purpose and without fee or  \n'
    '  8 royalty is hereby granted, provided that you agree to comply with  \n'
    '  9 the following copyright notice and statements, including the disclaimer,  \n'
    '  10 and that the same appear on ALL copies of the software, database and  \n'
    '  11 documentation, including modifications that you make for internal  \n'
    '  12 use or for distribution.  \n'
    '  13   \n'
    '  14 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.  \n'
    '  15   \n'
    '  16 THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON  \n'
    '  17 UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR  \n'
    '  18 IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON  \n'
    '  19 UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-  \n'
    '  20 ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE  \n'
    '  21 OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT  \n'
    '  22 INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR  \n'
    '  23 OTHER RIGHTS.  \n'
    '  24   \n'
    '  25 The name of Princeton University or Princeton may not be used in  \n'
    '  26 advertising or publicity pertaining to distribution of the software  \n'
    '  27 and/or database.  Title to copyright in this software, database and  \n'
    '  28 any associated documentation shall at all times remain with  \n'
    '  29 Princeton University and LICENSEE agrees to preserve same.  \n'
)
NOUN_LINES = (
    "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 ~ 00002137 n 0000 ~ 04424418 n 0000 "
    "| that which is perceived or known or inferred to have its own distinct existence (living or nonliving)  \n"
    "07614500 13 n 02 ice_cream 0 icecream 0 007 @ 07611358 n 0000 ~ 07614825 n 0000 ~ 07615052 n 0000 "
    "~ 07615190 n 0000 ~ 07615460 n 0000 ~ 07615569 n 0000 ~ 07615671 n 0000 "
    "| frozen dessert containing cream and sugar and flavoring  \n"
    "09008454 15 n 05 St._Petersburg 0 Leningrad 0 Peterburg 0 Petrograd 0 Saint_Petersburg 0 002 "
    "@i 08524735 n 0000 #p 09006413 n 0000 | a city in the European part of Russia; 2nd largest Russian city; "
    "located at the head of the Gulf of Finland; former capital of Russia  \n"
    "09075007 15 n 02 St._Petersburg 1 Saint_Petersburg 1 002 @i 08524735 n 0000 #p 09071690 n 0000 "
    "| a city in western Florida on Tampa Bay; a popular winter resort  \n"
    "10023039 18 n 01 dog 0 001 @ 09908025 n 0000 | informal term for a man; \"you lucky dog\"  \n"
    "13750844 23 n 0a thousand 0 one_thousand 0 1000 0 M 1 K 6 chiliad 0 G 1 grand 0 thou 0 yard 2 002 "
    "@ 13745420 n 0000 ~ 13751036 n 0000 | the cardinal number that is the product of 10 and 100  \n"
)
VERB_LINES = "00312575 30 v 01 dusk 0 001 @ 00312380 v 0000 01 + 01 00 | become dusk  \n"
ADJECTIVE_LINES = (
    "00116463 00 a 01 unangry(p) 0 001 ! 00113818 a 0101 | not angry  \n"
    "01033542 00 s 01 after(a) 0 001 & 01033371 a 0000 | located farther aft  \n"
)
ADVERB_LINES = "00038489 02 r 01 in_vacuo 0 000 | in a vacuum  \n"
# Line number of the first line after the licence header and the noun lines above.
LINE_AFTER_NOUNS = LICENCE_LINES.count("\n") + NOUN_LINES.count("\n") + 1


def write_wordnet_folder(folder: Path, noun_lines: str = NOUN_LINES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    contents = {
        "data.noun": noun_lines,
        "data.verb": VERB_LINES,
        "data.adj": ADJECTIVE_LINES,
        "data.adv": ADVERB_LINES,
    }
    for name, lines in contents.items():
        (folder / name).write_text(LICENCE_LINES + lines, encoding="ascii")
    return folder


@pytest.fixture(scope="module")
def real_wordnet() -> Path:
    """Folder of an installed WordNet 3.0 database; tests skip without one."""
    folder = find_wordnet_folder()
    if folder is None:
        pytest.skip("no WordNet database found; install it with 'apt-get install wordnet-base' or set $WORDNET_DIR")
    return folder


# WordNet: synthetic folder of real lines


def test_wordnet_synthetic_names_and_counts(tmp_path):
    result = read_synset_names(write_wordnet_folder(tmp_path / "dict"))

    assert result.names == {
        "entity": 1,
        "ice cream": 1,
        "st. petersburg": 2,
        "dog": 1,
        "thousand": 1,
        "dusk": 1,
        "unangry": 1,
        "after": 1,
        "in vacuo": 1,
    }
    assert result.synsets_by_type == {"n": 6, "v": 1, "a": 1, "s": 1, "r": 1}
    assert result.synset_count == 10
    assert result.version == "3.0"
    assert result.folder == tmp_path / "dict"


def test_wordnet_query_of_word():
    assert query_of_word("Hot_dog") == "hot dog"
    assert query_of_word("used_to(p)") == "used to"
    assert query_of_word("putative(a)") == "putative"
    assert query_of_word("elect(ip)") == "elect"
    assert query_of_word(".22_caliber") == ".22 caliber"
    assert query_of_word("St._Petersburg") == "st. petersburg"


def test_wordnet_missing_data_file(tmp_path):
    folder = write_wordnet_folder(tmp_path / "dict")
    (folder / "data.adv").unlink()

    with pytest.raises(FileNotFoundError, match=r"data\.adv not found") as error:
        read_synset_names(folder)
    assert "wordnet-base" in str(error.value)


def test_wordnet_rejects_line_of_wrong_type(tmp_path):
    folder = write_wordnet_folder(tmp_path / "dict", noun_lines=NOUN_LINES + VERB_LINES)

    with pytest.raises(WordNetFormatError, match=rf"data\.noun:{LINE_AFTER_NOUNS}: synset type 'v'"):
        read_synset_names(folder)


@pytest.mark.parametrize(
    "bad_line",
    [
        "not a synset line\n",
        "0000174x 03 n 01 entity 0 000 | an offset that is not decimal\n",
        "00001740 03 n zz entity 0 000 | a word count that is not hexadecimal\n",
        "00001740 03 n 00 entity 0 000 | a synset without words\n",
    ],
)
def test_wordnet_rejects_malformed_line(tmp_path, bad_line):
    folder = write_wordnet_folder(tmp_path / "dict", noun_lines=NOUN_LINES + bad_line)

    with pytest.raises(WordNetFormatError, match=rf"data\.noun:{LINE_AFTER_NOUNS}:"):
        read_synset_names(folder)


def test_wordnet_rejects_binary_file(tmp_path):
    folder = write_wordnet_folder(tmp_path / "dict")
    (folder / "data.verb").write_bytes(b"\x1f\x8b\x08\x00\xff\xfe")

    with pytest.raises(WordNetFormatError, match=r"data\.verb is not a WordNet data file"):
        read_synset_names(folder)


def test_find_wordnet_folder_from_env(tmp_path, monkeypatch):
    folder = write_wordnet_folder(tmp_path / "dict")
    monkeypatch.delenv(WNSEARCHDIR_ENV, raising=False)
    monkeypatch.setenv(WORDNET_DIR_ENV, str(folder))

    assert find_wordnet_folder() == folder


def test_find_wordnet_folder_env_without_files(tmp_path, monkeypatch):
    monkeypatch.setenv(WORDNET_DIR_ENV, str(tmp_path))

    with pytest.raises(FileNotFoundError, match=r"\$WORDNET_DIR is .*data\.noun, data\.verb, data\.adj, data\.adv"):
        find_wordnet_folder()


def test_find_wordnet_folder_wnsearchdir(tmp_path, monkeypatch):
    folder = write_wordnet_folder(tmp_path / "dict")
    monkeypatch.delenv(WORDNET_DIR_ENV, raising=False)
    monkeypatch.setenv(WNSEARCHDIR_ENV, str(folder))

    assert find_wordnet_folder() == folder


def test_find_wordnet_folder_none(tmp_path, monkeypatch):
    monkeypatch.delenv(WORDNET_DIR_ENV, raising=False)
    monkeypatch.delenv(WNSEARCHDIR_ENV, raising=False)
    monkeypatch.setattr(wordnet, "DEFAULT_WORDNET_FOLDERS", (tmp_path / "absent", tmp_path))

    assert find_wordnet_folder() is None


# WordNet: the installed WordNet 3.0 database


@pytest.fixture(scope="module")
def real_names(real_wordnet) -> WordNetNames:
    return read_synset_names(real_wordnet)


def test_wordnet_real_synset_counts(real_names):
    result = real_names

    assert result.version == "3.0"
    assert result.synsets_by_type == WORDNET_30_SYNSETS
    assert result.synset_count == 117659
    assert sum(result.names.values()) == result.synset_count
    assert len(result.names) == WORDNET_30_DISTINCT_NAMES


def test_wordnet_real_names(real_names):
    result = real_names
    first_names = list(result.names)

    # Names are in file order, noun file first, adverb file last.
    assert first_names[0] == "entity"
    assert first_names[-1] == "wrongfully"
    assert result.names["dog"] == 2  # dog.n.01 and dog.n.03
    assert result.names["ice cream"] == 1
    assert result.names["new york"] == 3
    assert result.names["run"] == 35
    assert result.names["used to"] == 1  # data.adj spells it "used_to(p)"
    assert result.names["st. petersburg"] == 2
    assert result.names[".22 caliber"] == 1
    # "hot dog" is a lemma of frank.n.02, not the first word of any synset.
    assert "hot dog" not in result.names
    assert "frank" in result.names
    assert all(name == name.lower() for name in first_names)
    assert not any("_" in name or "(" in name for name in first_names)


# Pageviews


def write_pageview_file(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif path.suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    else:
        path.write_bytes(data)
    return path


HOUR_0 = [
    "en Main_Page 242332 0",
    "en.m Main_Page 100000 0",
    "en Cat 300 0",
    "en.m Cat 120 0",
    "en.m cat 5 0",
    "de Katze 50 0",
    "en.b Cookbook 70 0",
    "en.d cat 60 0",
    "commons.m Main_Page 900 0",
    "en Zürich 40 0",
    "en 東京 30 0",
    "en Albert_Einstein 12 0",
]
HOUR_1 = [
    "en Main_Page 200000 0",
    "en Cat 80 0",
    "en.m Zürich 2 0",
    "en.m Special:Search 700 0",
    "de.m Katze 11 0",
]


def test_pageviews_sum_desktop_and_mobile(tmp_path):
    files = [
        write_pageview_file(tmp_path / "pageviews-20240101-000000.gz", HOUR_0),
        write_pageview_file(tmp_path / "pageviews-20240101-010000", HOUR_1),
    ]

    result = read_pageviews(files)

    assert isinstance(result, PageViews)
    assert result.wiki == "en"
    assert result.views == {
        "Main Page": 542332,
        "Special:Search": 700,
        "Cat": 505,
        "Zürich": 42,
        "東京": 30,
        "Albert Einstein": 12,
    }
    assert list(result.views) == ["Main Page", "Special:Search", "Cat", "Zürich", "東京", "Albert Einstein"]
    assert result.total_views == 543621
    assert result.files_read == files
    assert result.lines_read == len(HOUR_0) + len(HOUR_1)
    assert result.lines_malformed == 0
    assert result.lines_by_domain_code == {
        "en": 7,
        "en.m": 5,
        "de": 1,
        "en.b": 1,
        "en.d": 1,
        "commons.m": 1,
        "de.m": 1,
    }


def test_pageviews_other_wiki(tmp_path):
    write_pageview_file(tmp_path / "pageviews-20240101-000000.gz", HOUR_0)
    write_pageview_file(tmp_path / "pageviews-20240101-010000.gz", HOUR_1)

    result = read_pageviews(tmp_path, wiki="de")

    assert result.views == {"Katze": 61}


def test_pageviews_min_views(tmp_path):
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000.gz", HOUR_0)

    result = read_pageviews(path, min_views=40)

    assert result.views == {"Main Page": 342332, "Cat": 425, "Zürich": 40}
    assert result.titles_below_min_views == 2


def test_pageviews_only_titles(tmp_path):
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000", HOUR_0)

    result = read_pageviews(path, only_titles={"Cat", "Albert Einstein"})

    assert result.views == {"Cat": 425, "Albert Einstein": 12}
    assert result.lines_of_other_titles == 4


def test_pageviews_malformed_lines(tmp_path, caplog):
    lines = [
        "en Cat 3 0",
        "en Cat 3",
        "en Cat three 0",
        "en Cat -3 0",
        "en Cat 3 0 extra",
        "en Two words 3 0",
        "",
        "en.m Cat 4 0",
    ]
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000.bz2", lines)
    invalid_utf8 = tmp_path / "pageviews-20240101-010000"
    invalid_utf8.write_bytes(b"en Caf\xe9 9 0\nen Dog 1 0\n")

    with caplog.at_level(logging.WARNING, logger="wit_builder.queries.pageviews"):
        result = read_pageviews([path, invalid_utf8])

    assert result.views == {"Cat": 7, "Dog": 1}
    assert result.lines_read == 10
    assert result.lines_malformed == 7
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 7 malformed lines of 10 in 2 pageview files" in warnings[0].getMessage()
    assert "pageviews-20240101-000000.bz2:2" in warnings[0].getMessage()


def test_pageviews_title_dash_skipped(tmp_path):
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000", ["en - 900 0", "en _ 3 0", "en Cat 1 0"])

    result = read_pageviews(path)

    assert result.views == {"Cat": 1}
    assert result.lines_without_title == 2


def test_pageviews_compression_detected_by_content(tmp_path):
    gzip_without_suffix = tmp_path / "pageviews-20240101-000000"
    gzip_without_suffix.write_bytes(gzip.compress(b"en Cat 2 0\n"))

    result = read_pageviews(gzip_without_suffix)

    assert result.views == {"Cat": 2}


def test_pageviews_truncated_file(tmp_path):
    data = gzip.compress("".join(line + "\n" for line in HOUR_0).encode("utf-8"))
    path = tmp_path / "pageviews-20240101-000000.gz"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(PageViewFileError, match=r"pageviews-20240101-000000\.gz.*Download it again"):
        read_pageviews(path)


def test_pageview_files_folder_glob_and_duplicates(tmp_path):
    first = write_pageview_file(tmp_path / "pageviews-20240101-000000.gz", HOUR_0)
    second = write_pageview_file(tmp_path / "pageviews-20240101-010000.gz", HOUR_1)
    write_pageview_file(tmp_path / "projectviews-20240101-000000", ["en - 999999 0"])

    assert pageview_files(tmp_path) == [first, second]
    assert pageview_files(str(tmp_path / "pageviews-*-01*.gz")) == [second]
    assert pageview_files([second, tmp_path]) == [second, first]


def test_pageviews_sums_each_file_once(tmp_path):
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000.gz", ["en Cat 2 0"])

    result = read_pageviews([path, path, tmp_path])

    assert result.views == {"Cat": 2}
    assert result.files_read == [path]


def test_pageview_files_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="pageview file not found"):
        pageview_files(tmp_path / "pageviews-20240101-000000.gz")
    with pytest.raises(FileNotFoundError, match="no pageviews-\\* files in folder"):
        pageview_files(tmp_path)
    with pytest.raises(FileNotFoundError, match="no files match the pattern"):
        pageview_files(str(tmp_path / "pageviews-*.gz"))


@pytest.mark.parametrize("wiki", ["", "en.m", "EN", "en wiki"])
def test_pageviews_invalid_wiki(tmp_path, wiki):
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000", ["en Cat 1 0"])

    with pytest.raises(ValueError, match="invalid wiki"):
        read_pageviews(path, wiki=wiki)


def test_pageviews_invalid_min_views(tmp_path):
    path = write_pageview_file(tmp_path / "pageviews-20240101-000000", ["en Cat 1 0"])

    with pytest.raises(ValueError, match="invalid min_views"):
        read_pageviews(path, min_views=-1)
