"""The deterministic autoencoder."""

import keras
import tensorflow as tf

from tfvae.models import base
from tfvae.models import registry

# What the per-example reconstruction error is, for each likelihood.
RECONSTRUCTION_ERRORS = {"gaussian": "mean squared error", "bernoulli": "binary cross-entropy"}


@keras.saving.register_keras_serializable(package="tfvae")
class Autoencoder(base.EncoderDecoderModel):
    """Deterministic autoencoder: `x -> z = encoder(x) -> decoder(z)`.

    Trained with a custom `train_step` on the per-example reconstruction
    error: mean squared error with an identity output for real-valued data
    (`likelihood="gaussian"`), binary cross-entropy with a sigmoid output for
    data in [0, 1] (`likelihood="bernoulli"`). `fit(x)` needs no targets;
    `fit((noisy, clean))` trains a denoiser, and a `y` of any other shape
    (labels) raises a `TfvaeError`. With `sample_weight` the loss is
    `sum(sample_weight * error) / batch_size` and the reported metrics are
    weighted means. `call(x)` returns the reconstruction, so `predict` and
    `evaluate` work as usual; the encoder is a feature extractor for later
    supervised work.

    `score(x)` is the per-example score of evaluation, anomaly detection and
    the exported `score` signature (the reconstruction error), and
    `serving_functions` lists the exported functions.

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

    serving_functions = {
        "reconstruct": base.ServingFunction(
            "x", "data", ("reconstruction",), "serving_reconstruct"
        ),
        "encode": base.ServingFunction("x", "data", ("z",), "serving_encode"),
        "decode": base.ServingFunction("z", "latent", ("reconstruction",), "serving_decode"),
        "score": base.ServingFunction("x", "data", ("score",), "score"),
    }

    def __init__(self, encoder, decoder, likelihood="gaussian", **kwargs):
        super().__init__(encoder, decoder, likelihood, **kwargs)
        self.loss_tracker, self.reconstruction_tracker = base.mean_trackers(
            "loss", "reconstruction_loss"
        )

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker]

    def encode(self, x, training=False):
        """Returns the latent code `z` of `x`."""
        return self.encoder(x, training=training)

    def latent_code(self, x):
        """The deterministic latent code of `x`: `z`, `[batch, latent_dim]`."""
        return self.encode(x)

    def score(self, x):
        """The per-example score of `x`: `{"score": reconstruction error}`, float32 `[batch]`.

        Larger means worse explained; evaluation, anomaly detection and the
        exported `score` signature all use it.
        """
        return {"score": self.per_example_losses(x)["reconstruction_loss"]}

    @property
    def score_description(self):
        """One line saying what `score` computes."""
        return f"reconstruction error ({RECONSTRUCTION_ERRORS[self.likelihood.name]} per feature)"

    def serving_encode(self, x):
        """`{"z": encode(x)}`, the exported `encode` function."""
        return {"z": self.encode(x)}

    def call(self, inputs, training=None):
        return self.decode(self.encode(inputs, training=training), training=training)

    def per_example_losses(self, x, target=None, training=False):
        """Returns `{"reconstruction_loss": [batch]}` for inputs `x`."""
        target = x if target is None else target
        params = self.decoder(self.encoder(x, training=training), training=training)
        return {"reconstruction_loss": self.likelihood.reconstruction_error(target, params)}

    def _update_metrics(self, terms, sample_weight=None):
        error = terms["reconstruction_loss"]
        self.loss_tracker.update_state(error, sample_weight=sample_weight)
        self.reconstruction_tracker.update_state(error, sample_weight=sample_weight)
        return base.metric_results(self)

    def train_step(self, data):
        x, target, sample_weight = base.unpack_inputs(self, data)
        with tf.GradientTape() as tape:
            terms = self.per_example_losses(x, target, training=True)
            loss = base.average_over_global_batch(terms["reconstruction_loss"], x, sample_weight)
            loss += base.regularization_loss(self)
        base.apply_gradients(self, tape, loss)
        return self._update_metrics(terms, sample_weight)

    def test_step(self, data):
        x, target, sample_weight = base.unpack_inputs(self, data)
        terms = self.per_example_losses(x, target, training=False)
        return self._update_metrics(terms, sample_weight)


def _build_autoencoder(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape)
    return Autoencoder(encoder, decoder, likelihood=config.resolved_likelihood, name="autoencoder")


registry.register_family(
    registry.ModelFamily(
        name="ae",
        model_class=Autoencoder,
        description="deterministic autoencoder",
        build=_build_autoencoder,
    )
)
