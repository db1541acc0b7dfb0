"""Text-to-image and image-to-text recall@k over a held-out set of image-caption pairs.

Samples whose images are identical count as one image with several captions, as in the
Flickr8k and COCO retrieval protocols: a caption's match is its image, and an image's
matches are all of its captions.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader


@torch.no_grad()
def encode_pairs(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    autocast: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return L2-normalised float32 (image features, text features) for every pair, on the CPU."""
    model.eval()
    image_features = []
    text_features = []
    for images, tokens in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            image_features.append(model.encode_image(images.to(device), normalize=True).float().cpu())
            text_features.append(model.encode_text(tokens.to(device), normalize=True).float().cpu())
    return torch.cat(image_features), torch.cat(text_features)


def recall_from_ranks(ranks: torch.Tensor, ks: tuple[int, ...]) -> dict[str, float]:
    """Return the share of ranks below each k, where rank 0 is the top."""
    return {f"R@{k}": float((ranks < k).double().mean()) for k in ks}


def text_to_image_ranks(similarity: torch.Tensor, image_of_text: torch.Tensor) -> torch.Tensor:
    """Return, per caption, the number of other images that score at least as high as its image.

    ``similarity`` is [captions, images]. Ties count against the match, so a constant score
    ranks every match last.
    """
    matching = similarity.gather(1, image_of_text.unsqueeze(1))
    return (similarity >= matching).sum(dim=1) - 1


def image_to_text_ranks(similarity: torch.Tensor, image_of_text: torch.Tensor) -> torch.Tensor:
    """Return, per image, the number of other images' captions that score at least as high as its best caption."""
    per_image = similarity.T
    images = torch.arange(per_image.shape[0]).unsqueeze(1)
    positive = image_of_text.unsqueeze(0) == images
    best_positive = per_image.masked_fill(~positive, float("-inf")).max(dim=1, keepdim=True).values
    return ((per_image >= best_positive) & ~positive).sum(dim=1)


def retrieval_recall(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    image_of_text: torch.Tensor,
    ks: tuple[int, ...],
) -> dict[str, dict[str, float]]:
    """Return recall@k in both directions from the full caption-by-image similarity matrix.

    ``image_features`` has one row per distinct image, and ``image_of_text[i]`` is the row of
    caption i's image. Every image needs at least one caption.
    """
    if len(image_of_text) != len(text_features):
        raise ValueError(f"got {len(text_features)} captions but {len(image_of_text)} image indices")
    captions_per_image = torch.bincount(image_of_text, minlength=len(image_features))
    if len(captions_per_image) != len(image_features) or bool((captions_per_image == 0).any()):
        raise ValueError("every image needs at least one caption and every caption a valid image index")

    similarity = text_features @ image_features.T
    return {
        "text_to_image": recall_from_ranks(text_to_image_ranks(similarity, image_of_text), ks),
        "image_to_text": recall_from_ranks(image_to_text_ranks(similarity, image_of_text), ks),
    }


def chance_recall(image_of_text: torch.Tensor, ks: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """Return the expected recall@k of a random ranking in both directions.

    Text to image is k / images. Image to text is the chance that at least one of an image's
    c captions lands in the top k of all N captions, 1 - C(N - c, k) / C(N, k), averaged over images.
    """
    captions = len(image_of_text)
    captions_per_image = torch.bincount(image_of_text).tolist()
    images = len(captions_per_image)
    text_to_image = {f"R@{k}": min(1.0, k / images) for k in ks}
    image_to_text = {}
    for k in ks:
        hits = [1 - math.comb(captions - count, k) / math.comb(captions, k) if k < captions else 1.0 for count in captions_per_image]
        image_to_text[f"R@{k}"] = sum(hits) / images
    return {"text_to_image": text_to_image, "image_to_text": image_to_text}
