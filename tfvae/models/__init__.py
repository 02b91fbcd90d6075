"""Keras models: `Encoder`, `Decoder`, the autoencoders, the `VAE`, the `RBM`, and the registry.

Importing this package registers every model family (each model file
registers its own, see `tfvae.models.registry`).
"""

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
