"""Thresholds of the filter and dedup stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FilterConfig:
    """Thresholds for the caption, image and duplicate filters.

    The defaults target CLIP-style pretraining data from alt text and figure captions.
    """

    #: Minimum caption length in Unicode code points after whitespace normalization.
    #: Five drops empty, emoji-only and one-word alt text such as "logo" or "img".
    #: NOTE: the character limits assume alphabetic scripts. A two-character Chinese
    #: caption such as "黑狗" ("black dog") is rejected as too short.
    min_caption_chars: int = 5

    #: Maximum caption length in code points. The CLIP tokenizer keeps 77 tokens, and
    #: longer alt text is mostly keyword lists or pasted paragraphs.
    max_caption_chars: int = 1000

    #: Minimum number of word tokens. Two rejects single labels ("Paris", "photo"),
    #: which describe an image poorly. Each CJK ideograph or kana counts as a word.
    min_caption_words: int = 2

    #: langdetect codes to keep, such as ("en",). A base code also matches regional
    #: codes, so "zh" keeps "zh-cn" and "zh-tw". None keeps every language, "unknown" included.
    #: langdetect labeled 970 of the first 1,000 English Flickr8k captions "en", so
    #: ("en",) also drops about 3% of short English captions.
    languages: tuple[str, ...] | None = None

    #: Minimum length of the shorter image side in pixels, measured on the original
    #: image before the fetch stage resized it. 64 drops icons, spacers and buttons.
    min_image_side: int = 64

    #: Maximum ratio of the longer to the shorter side. Banners and strips beyond 3:1
    #: lose most of their content to the square center crop that CLIP training applies.
    max_aspect_ratio: float = 3.0

    #: Drop samples whose decoded pixels equal those of a kept sample.
    dedup_pixels: bool = True

    #: Number of distinct captions kept for one image when ``dedup_pixels`` is on.
    #: 1 keeps one sample per image. A larger number keeps the same picture found with
    #: other alt texts (as the five human captions of a photo), each as its own sample.
    #: Their images are identical, so keep such images out of the evaluation split:
    #: the bundled trainer drops training samples whose image is in its held-out shards.
    max_captions_per_image: int = 1

    #: Drop samples whose perceptual hash is within ``phash_max_distance`` of a kept sample's.
    dedup_images: bool = True

    #: Maximum Hamming distance between 64-bit perceptual hashes for two images to
    #: count as near duplicates. On 400 Flickr8k photos, a 0.7x resize plus JPEG
    #: quality 60 moved the hash by at most 2 bits, and distinct photos were at
    #: least 12 bits apart.
    phash_max_distance: int = 4

    #: Drop samples whose caption is a near duplicate of a kept sample's caption.
    dedup_captions: bool = True

    #: Minimum estimated Jaccard similarity between caption shingle sets for two
    #: captions to count as near duplicates.
    caption_dedup_threshold: float = 0.8

    #: MinHash permutations per caption. 128 gives a Jaccard estimate with a standard
    #: error of about 0.035 near a similarity of 0.8.
    caption_num_perm: int = 128

    #: Words per caption shingle. Word pairs keep some word order and still yield
    #: several shingles for short alt text.
    caption_shingle_size: int = 2

    #: Captions with fewer distinct shingles skip caption dedup, so that short or
    #: featureless captions ("", "🙂🙂🙂", "1234") do not all collapse into one cluster.
    caption_min_shingles: int = 3

    def __post_init__(self) -> None:
        if self.languages is not None:
            self.languages = tuple(self.languages)
        if self.min_caption_chars > self.max_caption_chars:
            raise ValueError(
                f"min_caption_chars ({self.min_caption_chars}) is larger than "
                f"max_caption_chars ({self.max_caption_chars})"
            )
        if self.max_aspect_ratio < 1.0:
            raise ValueError(f"max_aspect_ratio must be at least 1.0, got {self.max_aspect_ratio}")
        if not 0 <= self.phash_max_distance < 64:
            raise ValueError(f"phash_max_distance must be in [0, 63], got {self.phash_max_distance}")
        if not 0.0 < self.caption_dedup_threshold <= 1.0:
            raise ValueError(f"caption_dedup_threshold must be in (0, 1], got {self.caption_dedup_threshold}")
        if self.caption_num_perm < 2:
            raise ValueError(f"caption_num_perm must be at least 2, got {self.caption_num_perm}")
        if self.caption_shingle_size < 1:
            raise ValueError(f"caption_shingle_size must be at least 1, got {self.caption_shingle_size}")
