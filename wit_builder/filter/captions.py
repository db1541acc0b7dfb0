"""Caption normalization, word counting, language detection and caption filters."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

from langdetect import DetectorFactory, detect
from langdetect.lang_detect_exception import LangDetectException

# langdetect samples random n-grams, so without a fixed seed the same caption can get
# a different language on each run. The seed is a global of the langdetect package.
DetectorFactory.seed = 0

#: Language code stored when langdetect finds no usable features (digits, emoji, punctuation).
UNKNOWN_LANGUAGE = "unknown"

_WHITESPACE = re.compile(r"\s+")

# Scripts written without spaces between words: CJK ideographs, Hiragana, Katakana.
# Each such character counts as one word, so a Chinese caption is not "one word".
_NO_SPACE_CHARS = (
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK Unified Ideographs Extension A
    "\u4e00-\u9fff"  # CJK Unified Ideographs
    "\uf900-\ufaff"  # CJK Compatibility Ideographs
    "\U00020000-\U0002ffff"  # CJK Unified Ideographs Extensions B and later
)
_TOKEN = re.compile(rf"[{_NO_SPACE_CHARS}]|(?:(?![{_NO_SPACE_CHARS}])\w)+")
_LETTER = re.compile(r"[^\W\d_]")


def normalize_caption(text: str) -> str:
    """Apply Unicode NFC, strip the ends and collapse runs of whitespace to one space."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def caption_tokens(text: str) -> list[str]:
    """Split a caption into lowercase word tokens.

    A token is a run of word characters, except that each CJK ideograph or kana is a
    token by itself. Tokens without a letter (numbers such as "1234") are dropped, and
    emoji and punctuation never form tokens.

    NOTE: Thai, Lao, Khmer and Burmese also omit spaces, but their runs count as one
    token each, so their word counts are too low.
    """
    tokens = _TOKEN.findall(text.lower())
    return [token for token in tokens if _LETTER.search(token)]


def count_words(text: str) -> int:
    """Return the number of word tokens in ``text`` (see ``caption_tokens``)."""
    return len(caption_tokens(text))


@functools.lru_cache(maxsize=65536)
def detect_language(text: str) -> str:
    """Return langdetect's language code for ``text``, or ``"unknown"`` if it has no features.

    Codes are ISO 639-1, except "zh-cn" and "zh-tw". The result is deterministic
    because the module fixes ``DetectorFactory.seed``. Short captions are often
    misdetected (for example "St. Louis" is detected as French). Results are cached,
    because langdetect takes about 5 ms per caption and web alt text repeats often.
    """
    try:
        return detect(text)
    except LangDetectException:
        return UNKNOWN_LANGUAGE


def language_allowed(language: str, allowed: tuple[str, ...] | None) -> bool:
    """Return whether ``language`` is in ``allowed``, matching "zh" against "zh-cn" and "zh-tw".

    ``None`` allows every language, "unknown" included.
    """
    if allowed is None:
        return True
    base = language.split("-", 1)[0]
    return language in allowed or base in allowed


@dataclass(frozen=True)
class CaptionCheck:
    """Measurements of one caption and the first caption filter that rejects it."""

    chars: int
    words: int
    language: str
    reason: str | None


def check_caption(
    caption: str | None,
    *,
    min_chars: int,
    max_chars: int,
    min_words: int,
    allowed_languages: tuple[str, ...] | None,
) -> CaptionCheck:
    """Measure a caption and apply the length, word-count and language filters in that order.

    Lengths are counted on the normalized caption, in Unicode code points. ``reason`` is
    "caption_too_short", "caption_too_long", "too_few_words", "language_not_allowed",
    or None when the caption passes.
    """
    text = normalize_caption(caption or "")
    chars = len(text)
    words = count_words(text)
    language = detect_language(text)

    if chars < min_chars:
        reason = "caption_too_short"
    elif chars > max_chars:
        reason = "caption_too_long"
    elif words < min_words:
        reason = "too_few_words"
    elif not language_allowed(language, allowed_languages):
        reason = "language_not_allowed"
    else:
        reason = None
    return CaptionCheck(chars=chars, words=words, language=language, reason=reason)
