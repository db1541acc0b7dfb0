"""`wit train`: train a tiny CLIP on a shard folder and compare it with a shuffled-caption control."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from wit_builder.train.config import TrainConfig

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand."""
    defaults = TrainConfig()
    parser = subparsers.add_parser(
        "train",
        help="train a tiny CLIP from scratch on webdataset shards and report retrieval against a control",
        description=(
            "Train a small open_clip model from scratch on all but the last shards of SHARD_DIR, "
            "train a control on the same images with shuffled captions, and write retrieval "
            "recall@k on the held-out shards to OUT/result.json and the loss curves to OUT/loss.png."
        ),
    )
    parser.add_argument("shard_dir", metavar="SHARD_DIR", type=Path, help="folder of webdataset .tar shards with jpg and txt members")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: SHARD_DIR/../train)")
    parser.add_argument("--model", default=defaults.model, help="model config: a name in wit_builder/train/model_configs, an open_clip model name, or a JSON file (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help=f"passes over the training shards (default: about {defaults.samples_seen:,} samples per model, at most {defaults.max_epochs} epochs)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="samples per optimizer step (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="model input size in pixels (default: the model config's image_size, 32 for wit-tiny)")
    parser.add_argument("--eval-shards", type=int, default=defaults.eval_shards, help="number of last shards held out for evaluation (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="peak AdamW learning rate (default: %(default)s)")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay on weights, not on gains and biases (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed for initialisation, data order and the caption shuffle (default: %(default)s)")
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N; auto picks CUDA when available (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="DataLoader worker processes (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch intra-op CPU threads; 0 keeps torch's default (default: %(default)s)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the train stage from parsed arguments and return the exit code."""
    from wit_builder.train.trainer import train_and_evaluate

    out_dir = args.out if args.out is not None else args.shard_dir.parent / "train"
    try:
        config = TrainConfig(
            model=args.model,
            epochs=args.epochs,
            batch_size=args.batch_size,
            image_size=args.image_size,
            eval_shards=args.eval_shards,
            lr=args.lr,
            weight_decay=args.weight_decay,
            seed=args.seed,
            device=args.device,
            workers=args.workers,
            threads=args.threads,
        )
        result = train_and_evaluate(args.shard_dir, out_dir, config)
    except (FileNotFoundError, ValueError) as error:
        logger.error("train failed: %s", error)
        return 2

    print(f"wrote {out_dir / 'result.json'} after {result.seconds:.0f} s on {result.device}")
    k = f"R@{max(config.recall_ks)}"
    for direction in ("text_to_image", "image_to_text"):
        print(
            f"{direction} {k}: trained {result.recall[direction][k]:.3f}, "
            f"shuffled-caption control {result.recall_control[direction][k]:.3f}, "
            f"chance {result.chance[direction][k]:.3f}"
        )
    return 0
