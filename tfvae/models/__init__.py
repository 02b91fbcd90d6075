"""Keras models: `Encoder`, `Decoder`, the autoencoders, the `VAE`, and a registry to build them."""

# Registers FusedAdam, the optimizer that compiled tfvae `.keras` files name.
import tfvae.optimizers  # noqa: F401
from tfvae.models.autoencoder import Autoencoder
from tfvae.models.decoder import Decoder
from tfvae.models.denoising_autoencoder import DenoisingAutoencoder
from tfvae.models.encoder import Encoder
from tfvae.models.factory import MODEL_BUILDERS
from tfvae.models.factory import build_model
from tfvae.models.rbm import RBM
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
