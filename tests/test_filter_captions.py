"""Caption filters and caption dedup on hard captions: empty, emoji, digits, CJK."""

from __future__ import annotations

import pytest

from wit_builder.filter.captions import (
    UNKNOWN_LANGUAGE,
    check_caption,
    count_words,
    detect_language,
    language_allowed,
    normalize_caption,
)
from wit_builder.filter.config import FilterConfig
from wit_builder.filter.dedup import CaptionIndex

HARD_CAPTIONS = ["", "   ", "1234", "🙂🙂🙂", "猫"]
NORMAL_CAPTIONS = [
    "A black dog runs across a green field",
    "Ein schwarzer Hund läuft über eine grüne Wiese",
    "Un perro negro corre por un campo verde",
    "一只黑色的狗在绿色的草地上奔跑",
    "Черная собака бежит по зеленому полю",
]


def _check(caption: str, config: FilterConfig | None = None):
    config = config or FilterConfig()
    return check_caption(
        caption,
        min_chars=config.min_caption_chars,
        max_chars=config.max_caption_chars,
        min_words=config.min_caption_words,
        allowed_languages=config.languages,
    )


def _caption_index(config: FilterConfig | None = None) -> CaptionIndex:
    config = config or FilterConfig()
    return CaptionIndex(
        threshold=config.caption_dedup_threshold,
        num_perm=config.caption_num_perm,
        shingle_size=config.caption_shingle_size,
        min_shingles=config.caption_min_shingles,
    )


@pytest.mark.parametrize("caption", HARD_CAPTIONS)
def test_hard_caption_rejected_without_crash(caption):
    check = _check(caption)
    assert check.reason == "caption_too_short"
    assert check.chars == len(caption.strip())
    assert isinstance(check.language, str)


def test_featureless_captions_are_unknown_language():
    for caption in ["", "   ", "1234", "🙂🙂🙂", "...", "\u200b"]:
        assert detect_language(caption) == UNKNOWN_LANGUAGE, caption


def test_single_cjk_character_detected():
    assert detect_language("猫").startswith(("zh", "ja", "ko"))
    assert count_words("猫") == 1


@pytest.mark.parametrize("caption", NORMAL_CAPTIONS)
def test_normal_captions_pass(caption):
    check = _check(caption)
    assert check.reason is None
    assert check.words >= 5
    assert check.language != UNKNOWN_LANGUAGE


def test_language_detection_is_deterministic():
    expected = {caption: detect_language(caption) for caption in NORMAL_CAPTIONS}
    assert expected["A black dog runs across a green field"] == "en"
    assert expected["Ein schwarzer Hund läuft über eine grüne Wiese"] == "de"
    assert expected["Черная собака бежит по зеленому полю"] == "ru"
    for _ in range(3):
        for caption, language in expected.items():
            assert detect_language(caption) == language


def test_word_count_ignores_numbers_and_emoji():
    assert count_words("1234") == 0
    assert count_words("🙂🙂🙂") == 0
    assert count_words("St. Louis in 1904 🙂") == 3
    assert count_words("東京タワー") == 5


def test_normalize_collapses_whitespace():
    assert normalize_caption("  a \t dog\n\nruns  ") == "a dog runs"


def test_length_and_word_limits():
    config = FilterConfig(min_caption_chars=5, max_caption_chars=20, min_caption_words=2)
    assert _check("Paris", config).reason == "too_few_words"
    assert _check("A dog in the park at night", config).reason == "caption_too_long"
    assert _check("Two dogs", config).reason is None


def test_allowed_languages():
    config = FilterConfig(languages=("en", "zh"))
    assert _check(NORMAL_CAPTIONS[0], config).reason is None
    assert _check(NORMAL_CAPTIONS[1], config).reason == "language_not_allowed"
    assert _check(NORMAL_CAPTIONS[3], config).reason is None
    assert language_allowed("zh-cn", ("zh",))
    assert not language_allowed("unknown", ("en",))
    assert language_allowed("unknown", None)


def test_hard_captions_not_caption_duplicates():
    index = _caption_index()
    captions = HARD_CAPTIONS * 3 + ["St. Louis", "St. Louis"]
    for caption in captions:
        assert index.minhash(caption) is None, caption
    assert index.shingles("🙂🙂🙂") == set()
    assert index.shingles("1234") == set()


def test_caption_dedup_finds_near_duplicates():
    index = _caption_index()
    originals = NORMAL_CAPTIONS
    for number, caption in enumerate(originals):
        minhash = index.minhash(caption)
        assert minhash is not None, caption
        assert index.find(minhash) is None, caption
        index.add(number, minhash)

    near_duplicate = index.minhash("a black dog runs across a green field.")
    assert index.find(near_duplicate) == 0
    extended = index.minhash("Ein schwarzer Hund läuft über eine grüne Wiese 🙂")
    assert index.find(extended) == 1
    different = index.minhash("A brown cat sleeps on a red sofa")
    assert index.find(different) is None


def test_caption_dedup_distinct_flickr_captions(samples_dir):
    lines = (samples_dir / "flickr8k" / "captions.csv").read_text(encoding="utf-8").splitlines()[1:]
    captions = [line.split(",", 1)[1] for line in lines[::5][:300]]
    index = _caption_index()
    duplicates = []
    for number, caption in enumerate(captions):
        minhash = index.minhash(caption)
        if minhash is None:
            continue
        original = index.find(minhash)
        if original is None:
            index.add(number, minhash)
        else:
            duplicates.append((captions[original], caption))
    # Captions of 300 different photos: at most a few near-identical pairs.
    assert len(duplicates) <= 3, duplicates
