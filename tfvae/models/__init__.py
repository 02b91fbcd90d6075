"""Keras models: `Encoder`, `Decoder`, the autoencoders, the `VAE`, and a registry to build them."""

from tfvae.models.autoencoder import Autoencoder
from tfvae.models.decoder import Decoder
from tfvae.models.denoising_autoencoder import DenoisingAutoencoder
from tfvae.models.encoder import Encoder
from tfvae.models.rbm import RBM
from tfvae.models.registry import MODEL_BUILDERS
from tfvae.models.registry import build_model
from tfvae.models.vae import VAE

__all__ = [
    "Autoencoder",
    "Decoder",
    "DenoisingAutoencoder",
    "Encoder",
    "MODEL_BUILDERS",
    "RBM",
    "VAE",
    "build_model",
]
