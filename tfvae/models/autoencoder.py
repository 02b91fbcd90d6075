"""The deterministic autoencoder."""

import keras
import numpy as np
import tensorflow as tf

from tfvae.math.likelihoods import get_likelihood
from tfvae.models import base


@keras.saving.register_keras_serializable(package="tfvae")
class Autoencoder(keras.Model):
    """Deterministic autoencoder: `x -> z = encoder(x) -> decoder(z)`.

    Trained with a custom `train_step` on the per-example reconstruction
    error: mean squared error with an identity output for real-valued data
    (`likelihood="gaussian"`), binary cross-entropy with a sigmoid output for
    data in [0, 1] (`likelihood="bernoulli"`). `fit(x)` needs no targets;
    `fit((noisy, clean))` trains a denoiser. `call(x)` returns the
    reconstruction, so `predict` and `evaluate` work as usual; the encoder is
    a feature extractor for later supervised work.

    Args:
        encoder: `Encoder`. Built with `probabilistic=False`.
        decoder: `Decoder`.
        likelihood: str. `"gaussian"` or `"bernoulli"`. Defaults to
            `"gaussian"`.
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:

    >>> ae = Autoencoder(Encoder(8), Decoder((8, 8, 1)))
    >>> ae.compile(optimizer="adam")
    >>> ae.fit(x_train, epochs=5, validation_data=(x_val,))
    """

    def __init__(self, encoder, decoder, likelihood="gaussian", **kwargs):
        super().__init__(**kwargs)
        # === Layers ===
        self.encoder = encoder
        self.decoder = decoder
        # === Config ===
        self.likelihood = get_likelihood(likelihood)
        self.loss_tracker, self.reconstruction_tracker = base.mean_trackers(
            "loss", "reconstruction_loss"
        )

    @property
    def latent_dim(self):
        return self.encoder.latent_dim

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker]

    def encode(self, x, training=False):
        """Returns the latent code `z` of `x`."""
        return self.encoder(x, training=training)

    def decode(self, z, training=False):
        """Returns the reconstruction (the likelihood's mean) for codes `z`."""
        return self.likelihood.mean(tf.cast(self.decoder(z, training=training), tf.float32))

    def initialize_output_bias(self, x):
        """Starts the decoder at the data's mean: its output bias becomes the
        likelihood parameters of the per-feature mean of `x`.

        The network then learns deviations from the average example instead of
        spending its first epochs finding it (for MNIST, several nats of
        held-out likelihood after 50 epochs).
        """
        mean = np.mean(np.asarray(x, np.float64), axis=0)
        self.decoder.set_output_bias(self.likelihood.params_for_mean(mean))

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.decoder.build((None, self.latent_dim))
        self.built = True

    def call(self, inputs, training=None):
        return self.decode(self.encode(inputs, training=training), training=training)

    def per_example_losses(self, x, target=None, training=False):
        """Returns `{"reconstruction_loss": [batch]}` for inputs `x`."""
        target = x if target is None else target
        params = self.decoder(self.encoder(x, training=training), training=training)
        return {"reconstruction_loss": self.likelihood.reconstruction_error(target, params)}

    def _update_metrics(self, terms):
        self.loss_tracker.update_state(terms["reconstruction_loss"])
        self.reconstruction_tracker.update_state(terms["reconstruction_loss"])
        return base.metric_results(self)

    def train_step(self, data):
        x, target = base.unpack_inputs(data)
        with tf.GradientTape() as tape:
            terms = self.per_example_losses(x, target, training=True)
            loss = base.average_over_global_batch(terms["reconstruction_loss"], x)
            loss += base.regularization_loss(self)
        base.apply_gradients(self, tape, loss)
        return self._update_metrics(terms)

    def test_step(self, data):
        x, target = base.unpack_inputs(data)
        return self._update_metrics(self.per_example_losses(x, target, training=False))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.layers.serialize(self.encoder),
                "decoder": keras.layers.serialize(self.decoder),
                "likelihood": self.likelihood.name,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.layers.deserialize(config["encoder"])
        config["decoder"] = keras.layers.deserialize(config["decoder"])
        return cls(**config)
