"""Keras models: `Encoder`, `Decoder`, `Autoencoder`, `VAE`, and a registry to build them."""

from tfvae.models.autoencoder import Autoencoder
from tfvae.models.decoder import Decoder
from tfvae.models.encoder import Encoder
from tfvae.models.factory import MODEL_BUILDERS
from tfvae.models.factory import build_model
from tfvae.models.vae import VAE

__all__ = ["Autoencoder", "Decoder", "Encoder", "MODEL_BUILDERS", "VAE", "build_model"]
