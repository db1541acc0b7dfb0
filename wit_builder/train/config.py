"""Settings and outcome of one `wit train` run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """Hyperparameters shared by the trained model and its shuffled-caption control.

    ``model`` is a config name from ``wit_builder/train/model_configs``, a built-in open_clip
    model name, or a path to an open_clip model config JSON file. ``epochs`` None trains each
    model for about ``samples_seen`` samples, at most ``max_epochs`` epochs: 20 epochs for 800
    samples and 8 for 4,000. ``image_size`` None takes the input size from the model config. ``threads`` sets torch's intra-op CPU threads, and 0 keeps
    torch's default.
    """

    model: str = "wit-tiny"
    epochs: int | None = None
    samples_seen: int = 32_000
    max_epochs: int = 20
    batch_size: int = 64
    image_size: int | None = None
    eval_shards: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.5
    warmup_fraction: float = 0.1
    crop_scale: tuple[float, float] = (0.5, 1.0)
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int = 0
    eval_batch_size: int = 256
    recall_ks: tuple[int, ...] = (1, 5, 10)

    def epochs_for(self, train_samples: int) -> int:
        """Return the number of epochs to train on ``train_samples`` samples."""
        if self.epochs is not None:
            return self.epochs
        return max(1, min(self.max_epochs, round(self.samples_seen / max(1, train_samples))))

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.samples_seen < 1 or self.max_epochs < 1:
            raise ValueError(f"samples_seen and max_epochs must be at least 1, got {self.samples_seen} and {self.max_epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be at least 2 for a contrastive loss, got {self.batch_size}")
        if self.image_size is not None and self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels, got {self.image_size}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}")
        if self.workers < 0:
            raise ValueError(f"workers must be 0 or more, got {self.workers}")
        if self.threads < 0:
            raise ValueError(f"threads must be 0 or more, got {self.threads}")


@dataclass
class TrainResult:
    """Figures written to ``result.json``.

    Recall dicts map ``"text_to_image"`` and ``"image_to_text"`` to ``{"R@k": value}``.
    ``chance`` has the same layout and contains the recall@k of a random ranking, which is
    k / eval_images for text to image. Held-out samples with pixel-identical images count as
    one image with several captions, so ``eval_images`` can be below ``eval_samples``.
    ``excluded_train_samples`` counts training samples left out because their image is also in
    the held-out shards.
    """

    model: str
    device: str
    train_samples: int
    eval_samples: int
    eval_images: int
    train_shards: list[str]
    eval_shards: list[str]
    epochs: int
    steps: int
    batch_size: int
    image_size: int
    lr: float
    weight_decay: float
    seed: int
    seconds: float
    final_loss: float
    final_loss_control: float
    recall: dict[str, dict[str, float]]
    recall_control: dict[str, dict[str, float]]
    chance: dict[str, dict[str, float]]
    epoch_losses: list[float] = field(default_factory=list)
    epoch_losses_control: list[float] = field(default_factory=list)
    skipped_samples: int = 0
    excluded_train_samples: int = 0
