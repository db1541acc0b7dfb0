"""Train a tiny CLIP and a shuffled-caption control on the same shards and compare retrieval."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from open_clip import ClipLoss
from torch.utils.data import DataLoader
from tqdm import tqdm

from wit_builder.stats import write_stage_stats
from wit_builder.train.config import TrainConfig, TrainResult
from wit_builder.train.data import (
    ImageTextDataset,
    ShardSamples,
    eval_transform,
    load_shards,
    shuffled_captions,
    split_shards,
    train_transform,
)
from wit_builder.train.model import config_image_size, create_model, create_tokenizer, resolve_model_name
from wit_builder.train.plot import plot_losses
from wit_builder.train.retrieval import chance_recall, encode_pairs, retrieval_recall

logger = logging.getLogger(__name__)

#: Largest value of the learned logit scale (temperature 1/100), as in open_clip's training.
MAX_LOGIT_SCALE = math.log(100)

#: Images are kept in memory at up to this multiple of the training size, for random crops.
CACHE_SIZE_FACTOR = 2


@dataclass
class FitHistory:
    """Loss of every optimizer step and the mean loss of every epoch."""

    step_losses: list[float]
    epoch_losses: list[float]


def select_device(requested: str) -> torch.device:
    """Return the torch device for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {requested!r} requested but torch finds no CUDA device")
    return device


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Split parameters as open_clip's training does: no weight decay on gains, biases and the logit scale."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        exclude = parameter.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(parameter)
    return [
        {"params": no_decay, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Return a LambdaLR with linear warmup to the base rate, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit(
    model: torch.nn.Module,
    dataset: ImageTextDataset,
    config: TrainConfig,
    batch_size: int,
    epochs: int,
    device: torch.device,
    desc: str,
) -> FitHistory:
    """Train ``model`` in place with AdamW, a warmup-cosine schedule and open_clip's ClipLoss.

    The data order and augmentations depend only on ``config.seed``, so two calls with the
    same seed and dataset size see the same images in the same order.
    """
    torch.manual_seed(config.seed)
    order = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        generator=order,
        num_workers=config.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.workers > 0,
    )
    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * epochs
    warmup_steps = max(1, round(config.warmup_fraction * total_steps))

    optimizer = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = cosine_schedule(optimizer, warmup_steps, total_steps)
    loss_fn = ClipLoss()
    autocast = device.type == "cuda"

    step_losses: list[float] = []
    epoch_losses: list[float] = []
    model.train()
    with tqdm(total=total_steps, desc=desc, unit="step") as progress:
        for epoch in range(epochs):
            epoch_start = time.perf_counter()
            epoch_sum = 0.0
            for images, tokens in loader:
                images = images.to(device, non_blocking=True)
                tokens = tokens.to(device, non_blocking=True)

                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    output = model(images, tokens)
                    loss = loss_fn(output["image_features"], output["text_features"], output["logit_scale"])

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, MAX_LOGIT_SCALE)

                value = loss.item()
                step_losses.append(value)
                epoch_sum += value
                progress.update(1)
                progress.set_postfix(loss=f"{value:.3f}", epoch=epoch + 1)

            epoch_loss = epoch_sum / steps_per_epoch
            epoch_losses.append(epoch_loss)
            rate = steps_per_epoch * batch_size / (time.perf_counter() - epoch_start)
            logger.info(
                "%s epoch %d/%d: loss %.4f, %.0f samples/s", desc, epoch + 1, epochs, epoch_loss, rate
            )
    return FitHistory(step_losses=step_losses, epoch_losses=epoch_losses)


def read_split(train_shards: list[Path], eval_shards: list[Path], max_side: int) -> tuple[ShardSamples, ShardSamples]:
    """Read the held-out shards, then the training shards without the held-out images.

    Raises ValueError when fewer than 2 held-out images or 2 training samples remain.
    """
    eval_samples = load_shards(eval_shards, max_side, desc="read eval shards")
    if len(eval_samples.digests) < 2:
        raise ValueError(
            f"the held-out shards {[shard.name for shard in eval_shards]} contain "
            f"{len(eval_samples.digests)} distinct readable image(s); retrieval needs at least 2"
        )

    train_samples = load_shards(train_shards, max_side, desc="read train shards", exclude=set(eval_samples.digests))
    if len(train_samples.keys) < 2:
        raise ValueError(
            f"the training shards {[shard.name for shard in train_shards]} contain {len(train_samples.keys)} "
            f"usable sample(s), after leaving out {train_samples.excluded} whose image is in the held-out "
            "shards; a contrastive loss needs at least 2"
        )

    logger.info(
        "training on %d samples from %d shard(s), evaluating on %d samples (%d images) from %d shard(s)",
        len(train_samples.keys), len(train_shards), len(eval_samples.keys), len(eval_samples.digests), len(eval_shards),
    )
    return train_samples, eval_samples


def train_and_evaluate(shard_dir: str | Path, out_dir: str | Path, config: TrainConfig) -> TrainResult:
    """Train on all but the last shards, evaluate retrieval on the held-out ones, write the results.

    A control model is trained with the same seed, steps and hyperparameters on the training
    captions in a fixed shuffled order, so any recall it reaches comes from caption or image
    statistics and not from image-text pairing. Training samples whose image also appears in
    the held-out shards are left out. Writes ``result.json``, ``loss.png`` and ``stats.json``
    to ``out_dir``.
    """
    started = time.perf_counter()
    shard_dir = Path(shard_dir)
    out_dir = Path(out_dir)
    train_shards, eval_shards = split_shards(shard_dir, config.eval_shards)
    device = select_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    model_name = resolve_model_name(config.model)
    tokenizer = create_tokenizer(model_name)
    image_size = config.image_size or config_image_size(model_name)

    train_samples, eval_samples = read_split(train_shards, eval_shards, image_size * CACHE_SIZE_FACTOR)

    batch_size = min(config.batch_size, len(train_samples.keys))
    if batch_size < config.batch_size:
        logger.warning("batch size lowered from %d to %d, the number of training samples", config.batch_size, batch_size)
    epochs = config.epochs_for(len(train_samples.keys))
    augment = train_transform(image_size, config.crop_scale)
    train_tokens = tokenizer(train_samples.captions)
    control_tokens = tokenizer(shuffled_captions(train_samples.captions, config.seed))
    eval_dataset = ImageTextDataset(eval_samples.images, tokenizer(eval_samples.captions), eval_transform(image_size))
    eval_loader = DataLoader(eval_dataset, batch_size=config.eval_batch_size, shuffle=False)
    eval_images = eval_samples.first_sample_of_images()
    image_of_text = torch.tensor(eval_samples.image_ids)

    runs = {}
    for name, tokens in (("trained", train_tokens), ("control", control_tokens)):
        torch.manual_seed(config.seed)
        model = create_model(model_name, image_size, device)
        dataset = ImageTextDataset(train_samples.images, tokens, augment)
        history = fit(model, dataset, config, batch_size, epochs, device, desc=name)
        image_features, text_features = encode_pairs(model, eval_loader, device, autocast=device.type == "cuda")
        recall = retrieval_recall(image_features[eval_images], text_features, image_of_text, config.recall_ks)
        logger.info("%s recall: %s", name, json.dumps(recall))
        runs[name] = (history, recall)

    trained_history, trained_recall = runs["trained"]
    control_history, control_recall = runs["control"]
    result = TrainResult(
        model=model_name,
        device=str(device),
        train_samples=len(train_samples.keys),
        eval_samples=len(eval_samples.keys),
        eval_images=len(eval_images),
        train_shards=[shard.name for shard in train_shards],
        eval_shards=[shard.name for shard in eval_shards],
        epochs=epochs,
        steps=len(trained_history.step_losses),
        batch_size=batch_size,
        image_size=image_size,
        lr=config.lr,
        weight_decay=config.weight_decay,
        seed=config.seed,
        seconds=round(time.perf_counter() - started, 1),
        final_loss=trained_history.epoch_losses[-1],
        final_loss_control=control_history.epoch_losses[-1],
        recall=trained_recall,
        recall_control=control_recall,
        chance=chance_recall(image_of_text, config.recall_ks),
        epoch_losses=trained_history.epoch_losses,
        epoch_losses_control=control_history.epoch_losses,
        skipped_samples=train_samples.skipped + eval_samples.skipped,
        excluded_train_samples=train_samples.excluded,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    write_outputs(out_dir, result, trained_history, control_history)
    return result


def write_outputs(out_dir: Path, result: TrainResult, trained: FitHistory, control: FitHistory) -> None:
    """Write result.json, stats.json and loss.png."""
    (out_dir / "result.json").write_text(json.dumps(dataclasses.asdict(result), indent=2) + "\n")
    counts = {
        "train_samples": result.train_samples,
        "eval_samples": result.eval_samples,
        "eval_images": result.eval_images,
        "skipped_samples": result.skipped_samples,
        "excluded_train_samples": result.excluded_train_samples,
        "steps": result.steps,
    }
    write_stage_stats(out_dir, "train", counts, seconds=result.seconds)
    plot_losses(out_dir / "loss.png", trained.step_losses, control.step_losses, steps_per_epoch=result.steps // max(1, result.epochs))
    logger.info("wrote %s", out_dir / "result.json")
