"""make_key: safe, unique webdataset keys that survive a tar round trip."""

from __future__ import annotations

import pytest
import webdataset as wds

from wit_builder.shards.keys import MAX_KEY_LENGTH, make_key

RAW_KEYS = ["St. Louis", "a.b.c", "a_b_c", "x/y", "über", "", "abc-123_DEF", "a" * 200, "猫.jpg", "__key__"]


@pytest.mark.parametrize("raw", RAW_KEYS)
def test_key_is_safe(raw):
    key = make_key(raw)
    assert key
    assert "." not in key
    assert "/" not in key
    assert key.isascii()
    assert len(key) <= MAX_KEY_LENGTH


def test_safe_keys_unchanged():
    assert make_key("abc-123_DEF") == "abc-123_DEF"
    assert make_key("0123456789abcdef") == "0123456789abcdef"


def test_changed_keys_are_distinct():
    keys = [make_key(raw) for raw in RAW_KEYS]
    assert len(set(keys)) == len(keys)
    assert make_key("a.b.c") != make_key("a_b_c")
    assert make_key("a.b.c").startswith("a_b_c-")
    assert make_key("über").startswith("uber-")


def test_key_is_deterministic():
    assert make_key("St. Louis") == make_key("St. Louis")
    assert make_key("St. Louis") == "St__Louis-fb31a9182f946560"


def test_keys_group_in_webdataset(tmp_path):
    raws = ["St. Louis", "a.b.c", "x/y", "über"]
    path = tmp_path / "keys.tar"
    with wds.TarWriter(str(path), encoder=False) as writer:
        for raw in raws:
            writer.write({"__key__": make_key(raw), "txt": raw.encode("utf-8"), "cls": b"1"})

    samples = list(wds.WebDataset(str(path), shardshuffle=False))

    assert [sample["__key__"] for sample in samples] == [make_key(raw) for raw in raws]
    assert [sample["txt"].decode("utf-8") for sample in samples] == raws
    assert all(sample["cls"] == b"1" for sample in samples)


def test_dotted_raw_key_splits_in_webdataset(tmp_path):
    # The reason make_key exists: webdataset cuts the key at the first dot.
    path = tmp_path / "dotted.tar"
    with wds.TarWriter(str(path), encoder=False) as writer:
        writer.write({"__key__": "St. Louis", "txt": b"caption"})

    samples = list(wds.WebDataset(str(path), shardshuffle=False))

    assert samples[0]["__key__"] == "St"
    assert "txt" not in samples[0]
