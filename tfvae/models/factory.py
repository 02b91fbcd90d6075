"""Builds a model from a `TrainConfig`: a registry keyed by model name."""

from tfvae.errors import TfvaeError
from tfvae.models.autoencoder import Autoencoder
from tfvae.models.decoder import Decoder
from tfvae.models.encoder import Encoder
from tfvae.models.vae import VAE


def _networks(config, data_shape, probabilistic):
    encoder = Encoder(
        config.latent_dim,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        probabilistic=probabilistic,
        name="encoder",
    )
    decoder = Decoder(
        data_shape,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        name="decoder",
    )
    return encoder, decoder


def build_autoencoder(config, data_shape):
    encoder, decoder = _networks(config, data_shape, probabilistic=False)
    return Autoencoder(encoder, decoder, likelihood=config.resolved_likelihood, name="autoencoder")


def build_vae(config, data_shape):
    encoder, decoder = _networks(config, data_shape, probabilistic=True)
    return VAE(
        encoder,
        decoder,
        beta=config.beta,
        likelihood=config.resolved_likelihood,
        seed=config.seed,
        name="vae",
    )


MODEL_BUILDERS = {"ae": build_autoencoder, "vae": build_vae}


def build_model(config, data_shape):
    """Returns the built (weights created) model that `config.model` names.

    Args:
        config: `TrainConfig`.
        data_shape: tuple of int. Shape of one example.
    """
    if config.model not in MODEL_BUILDERS:
        raise TfvaeError(
            f"unknown model {config.model!r}; expected one of {sorted(MODEL_BUILDERS)}"
        )
    model = MODEL_BUILDERS[config.model](config, tuple(data_shape))
    model.build((None, *data_shape))
    return model
