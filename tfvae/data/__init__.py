"""Data sets as train / validation / test splits and seeded `tf.data` pipelines."""

from tfvae.data.datasets import DataSplits
from tfvae.data.datasets import load_dataset

__all__ = ["DataSplits", "load_dataset"]
