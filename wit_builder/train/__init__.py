"""Train stage: a tiny from-scratch CLIP on the shards, compared with a shuffled-caption control.

``train_and_evaluate`` is imported on first use, because it loads torch and open_clip,
which would slow down every `wit` command that only needs the config.
"""

from wit_builder.train.config import TrainConfig, TrainResult

__all__ = ["TrainConfig", "TrainResult", "train_and_evaluate"]


def __getattr__(name: str):
    if name == "train_and_evaluate":
        from wit_builder.train.trainer import train_and_evaluate

        return train_and_evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
