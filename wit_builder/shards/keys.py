"""Sample keys that are safe as webdataset tar member names."""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: Maximum length of a key from ``make_key``. With the ".json" extension, a member name
#: stays well below the 100-byte name field of a USTAR tar header.
MAX_KEY_LENGTH = 64

_DIGEST_HEX_DIGITS = 16
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def make_key(raw: str) -> str:
    """Map an arbitrary string to a webdataset key of ASCII letters, digits, "_" and "-".

    webdataset splits a member name at the first dot after the last "/" into key and
    extension, so a key must contain neither. A string that is already safe and at most
    ``MAX_KEY_LENGTH`` characters long is returned unchanged. Any other string is
    transliterated to ASCII where Unicode allows ("über" becomes "uber"), and every
    remaining unsafe character becomes "_". Then "-" and 16 hex digits of the BLAKE2b
    hash of the original string are appended, so "a.b" and "a_b" get different keys.

    NOTE: two different strings get the same key only if an unchanged key happens to
    end in the 64-bit hash of a changed one, which a caller may ignore in practice.
    """
    if raw and len(raw) <= MAX_KEY_LENGTH and not _UNSAFE.search(raw):
        return raw

    ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode("ascii")
    stem = _UNSAFE.sub("_", ascii_text)[: MAX_KEY_LENGTH - _DIGEST_HEX_DIGITS - 1]
    digest = hashlib.blake2b(
        raw.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_HEX_DIGITS // 2
    ).hexdigest()
    return f"{stem}-{digest}" if stem else digest
