"""Keras models: `Encoder`, `Decoder`, the autoencoders, the `VAE`, the `RBM`, and the registry.

Importing this package imports every module in it, so each model family
registers itself (each model file holds its own registration, see
`tfvae.models.registry`): a new family is one new file here, and nothing
else changes.
"""

import importlib
import pkgutil

from tfvae.models.autoencoder import Autoencoder
from tfvae.models.decoder import Decoder
from tfvae.models.denoising_autoencoder import DenoisingAutoencoder
from tfvae.models.encoder import Encoder
from tfvae.models.rbm import RBM
from tfvae.models.registry import ModelFamily
from tfvae.models.registry import build_model
from tfvae.models.registry import family_of
from tfvae.models.registry import get_family
from tfvae.models.registry import register_family
from tfvae.models.vae import VAE

__all__ = [
    "Autoencoder",
    "Decoder",
    "DenoisingAutoencoder",
    "Encoder",
    "ModelFamily",
    "RBM",
    "VAE",
    "build_model",
    "family_of",
    "get_family",
    "register_family",
]

# Every module of the package, so that a family in a new file registers too.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
