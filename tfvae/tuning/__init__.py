"""Hyperparameter search with Keras Tuner: latent size (and more), resumable, reported.

`tune(SearchConfig(...))` searches the latent size and optionally the KL
weight, the learning rate and the hidden width of an AE or a VAE with a
random, Bayesian or Hyperband tuner; `HyperAutoencoder` is its
`keras_tuner.HyperModel`.
"""

import importlib

from tfvae.tuning.search_config import TUNER_NAMES
from tfvae.tuning.search_config import SearchConfig

# Keras Tuner imports TensorFlow; the CLI imports this package to parse
# arguments, so the rest loads on first use.
_LAZY = {
    "HyperAutoencoder": "tfvae.tuning.hyper_autoencoder",
    "SearchResult": "tfvae.tuning.search",
    "distributed_role": "tfvae.tuning.search",
    "tune": "tfvae.tuning.search",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfvae.tuning' has no attribute {name!r}")


__all__ = ["TUNER_NAMES", "SearchConfig", *_LAZY]
