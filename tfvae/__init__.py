"""tfvae: autoencoders and variational autoencoders for TensorFlow 2 / Keras 3."""

from tfvae import _startup

# Before anything imports TensorFlow: its native start-up log is held back.
_startup.import_tensorflow()

from tfvae.data.datasets import DataSplits  # noqa: E402
from tfvae.data.datasets import load_dataset  # noqa: E402
from tfvae.errors import TfvaeError  # noqa: E402
from tfvae.training.config import TrainConfig  # noqa: E402

__version__ = "0.1.0"

__all__ = ["DataSplits", "TfvaeError", "TrainConfig", "__version__", "load_dataset"]
