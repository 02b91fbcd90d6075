"""Builds a model from a `TrainConfig`: a registry keyed by model name."""

from tfvae.errors import TfvaeError
from tfvae.models.autoencoder import Autoencoder
from tfvae.models.decoder import Decoder
from tfvae.models.denoising_autoencoder import DenoisingAutoencoder
from tfvae.models.encoder import Encoder
from tfvae.models.vae import VAE


def _networks(config, data_shape, probabilistic):
    # The networks compute in the run's precision; the models' own loss
    # arithmetic (KL, log-likelihoods) stays float32.
    policy = config.resolved_precision
    encoder = Encoder(
        config.latent_dim,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        probabilistic=probabilistic,
        dtype=policy,
        name="encoder",
    )
    decoder = Decoder(
        data_shape,
        arch=config.arch,
        hidden_units=config.hidden_units,
        filters=config.filters,
        dtype=policy,
        name="decoder",
    )
    return encoder, decoder


def build_autoencoder(config, data_shape, steps_per_epoch=None):
    encoder, decoder = _networks(config, data_shape, probabilistic=False)
    return Autoencoder(encoder, decoder, likelihood=config.resolved_likelihood, name="autoencoder")


def build_denoising_autoencoder(config, data_shape, steps_per_epoch=None):
    encoder, decoder = _networks(config, data_shape, probabilistic=False)
    return DenoisingAutoencoder(
        encoder,
        decoder,
        likelihood=config.resolved_likelihood,
        noise_factor=config.noise_factor,
        seed=config.seed,
        name="denoising_autoencoder",
    )


def build_vae(config, data_shape, steps_per_epoch=None):
    encoder, decoder = _networks(config, data_shape, probabilistic=True)
    return VAE(
        encoder,
        decoder,
        beta=config.beta,
        likelihood=config.resolved_likelihood,
        seed=config.seed,
        iwae_samples=config.iwae_samples,
        kl_warmup_steps=config.kl_warmup_epochs * (steps_per_epoch or 0),
        name="vae",
    )


MODEL_BUILDERS = {"ae": build_autoencoder, "vae": build_vae, "dae": build_denoising_autoencoder}


def build_model(config, data_shape, steps_per_epoch=None):
    """Returns the built (weights created) model that `config.model` names.

    Args:
        config: `TrainConfig`.
        data_shape: tuple of int. Shape of one example.
        steps_per_epoch: int or None. Converts `config.kl_warmup_epochs`
            to optimizer steps; needed only with a KL warm-up.
    """
    if config.kl_warmup_epochs and not steps_per_epoch:
        raise TfvaeError("a KL warm-up needs steps_per_epoch to convert epochs to steps")
    if config.model not in MODEL_BUILDERS:
        raise TfvaeError(
            f"unknown model {config.model!r}; expected one of {sorted(MODEL_BUILDERS)}"
        )
    model = MODEL_BUILDERS[config.model](config, tuple(data_shape), steps_per_epoch)
    model.build((None, *data_shape))
    return model
