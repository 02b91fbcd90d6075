"""The second stage of a two-stage VAE, used as a sampler of the first stage's latent space."""

import keras

from tfvae import checks
from tfvae.errors import TfvaeError


@keras.saving.register_keras_serializable(package="tfvae")
class TwoStageSampler(keras.layers.Layer):
    """Latent codes from a second VAE trained on the first stage's codes (Dai & Wipf, 2019).

    The second stage is a small dense `VAE` with a Gaussian likelihood (a
    learned scale) and a latent size equal to the first stage's, trained on
    the first stage's posterior samples of the training set (see
    `tfvae.training.sampler_fitting`). Its prior `N(0, I)` matches its own
    aggregate posterior far better than the first stage's does, and it
    carries that match over to the first stage's code space:
    `call(u)` returns the mean of `p2(z | u)`, the code the first stage's
    decoder then decodes. With `u = eps ~ N(0, I)` given as input, the draw
    is deterministic, so the exported `sample` stays a function of `eps`.

    Args:
        stage_two: `VAE`. The second stage; its data are codes of shape
            `(latent_dim,)` and its latent size is `latent_dim` too.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> stage_two = VAE(Encoder(16, hidden_units=(256, 256), probabilistic=True),
    ...                 Decoder((16,), hidden_units=(256, 256)), likelihood="gaussian")
    >>> sampler = TwoStageSampler(stage_two)
    >>> z = sampler(np.random.default_rng(0).standard_normal((64, 16)))
    """

    def __init__(self, stage_two, **kwargs):
        super().__init__(**kwargs)
        data_shape = tuple(stage_two.decoder.data_shape)
        latent_dim = checks.positive_int("latent_dim", stage_two.latent_dim)
        if data_shape != (latent_dim,):
            raise TfvaeError(
                "the second stage must model codes of its own latent size. Received: "
                f"data of shape {data_shape} with latent_dim={latent_dim}"
            )

        # === Layers ===
        self.stage_two = stage_two
        if not stage_two.built:
            stage_two.build((None, latent_dim))
        self.built = True

        # === Config ===
        self.latent_dim = latent_dim

    def call(self, eps):
        return self.stage_two.decode(eps)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"stage_two": keras.layers.serialize(self.stage_two)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["stage_two"] = keras.layers.deserialize(config["stage_two"])
        return cls(**config)
