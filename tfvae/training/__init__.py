"""Training: the run's settings, the trainer, callbacks, optimizer, precision and strategy."""

from tfvae.training.config import TrainConfig
from tfvae.training.trainer import RunResult
from tfvae.training.trainer import train

__all__ = ["RunResult", "TrainConfig", "train"]
