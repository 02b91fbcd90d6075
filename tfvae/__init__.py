"""tfvae: autoencoders and variational autoencoders for TensorFlow 2 / Keras 3."""

import os

# TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notices) buries the
# progress bars; users can still set the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfvae.config import TrainConfig  # noqa: E402
from tfvae.data import DataSplits  # noqa: E402
from tfvae.data import load_dataset  # noqa: E402
from tfvae.errors import TfvaeError  # noqa: E402

__version__ = "0.1.0"

__all__ = ["DataSplits", "TfvaeError", "TrainConfig", "__version__", "load_dataset"]
