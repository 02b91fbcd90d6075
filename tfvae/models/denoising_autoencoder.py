"""The denoising autoencoder."""

import math

import keras
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.models import base
from tfvae.models import registry
from tfvae.models.autoencoder import Autoencoder
from tfvae.settings import Setting

# Data in tfvae is scaled to [0, 1]; noisy inputs are clipped back into it,
# as in the TensorFlow tutorial's denoiser.
PIXEL_RANGE = (0.0, 1.0)


def add_gaussian_noise(x, eps, noise_factor):
    """`clip(x + noise_factor * eps, 0, 1)`: `x` corrupted by the standard normal noise `eps`."""
    x = tf.cast(x, tf.float32)
    noisy = x + noise_factor * tf.cast(eps, tf.float32)
    return tf.clip_by_value(noisy, *PIXEL_RANGE)


def _check_seed(seed):
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise TfvaeError(f"seed must be an integer >= 0 or None. Received: seed={seed!r}")


@keras.saving.register_keras_serializable(package="tfvae")
class DenoisingAutoencoder(Autoencoder):
    """Autoencoder that learns to remove Gaussian noise from its input.

    Each train step corrupts the batch, `noisy = clip(x + noise_factor *
    eps, 0, 1)` with `eps ~ N(0, I)`, and minimises the reconstruction error
    of the clean `x` from `noisy` (the denoiser of the TensorFlow autoencoder
    tutorial). The noise is drawn inside `train_step`, so every epoch sees
    fresh corruptions of the same data, and `fit(x)` needs no noisy copy.
    `call`, `predict`, `evaluate` and `test_step` take their input as given:
    `predict(noisy)` denoises, `predict(x)` reconstructs, and the validation
    loss is measured on clean inputs, comparable with a plain `Autoencoder`.
    Labels and `sample_weight` are treated as by the `Autoencoder`.

    With a seed, the training noise is a pure function of `(seed, optimizer
    step, position in the global batch)`, drawn the way the `VAE` draws its
    `eps` (see `VAE.training_noise`): a resumed run, or one split over
    `tf.distribute` replicas, corrupts exactly the examples of an
    uninterrupted single-device run.

    Args:
        encoder: `Encoder`. Built with `probabilistic=False`.
        decoder: `Decoder`.
        likelihood: str. `"gaussian"` (MSE) or `"bernoulli"` (binary
            cross-entropy). Defaults to `"gaussian"`.
        noise_factor: float. Standard deviation of the added noise, in
            units of the [0, 1] data range. Defaults to `0.2`.
        seed: int or None. Seed of the training noise. Defaults to `None`.
        **kwargs: Base `keras.Model` arguments such as `name`.

    Example:

    >>> dae = DenoisingAutoencoder(Encoder(16), Decoder((28, 28, 1)), seed=0)
    >>> dae.compile(optimizer="adam")
    >>> dae.fit(x_train, epochs=10, validation_data=(x_val,))
    >>> noisy = dae.add_noise(x_test, seed=1)
    >>> denoised = dae.predict(noisy)
    """

    def __init__(
        self, encoder, decoder, likelihood="gaussian", noise_factor=0.2, seed=None, **kwargs
    ):
        if (
            isinstance(noise_factor, bool)
            or not isinstance(noise_factor, (int, float))
            or not math.isfinite(noise_factor)
            or noise_factor < 0
        ):
            raise TfvaeError(
                f"noise_factor must be a finite number >= 0. Received: noise_factor={noise_factor!r}"
            )
        _check_seed(seed)
        super().__init__(encoder, decoder, likelihood=likelihood, **kwargs)
        # === Layers ===
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        # === Config ===
        self.noise_factor = float(noise_factor)
        self.seed = seed

    def add_noise(self, x, seed=None, step=0):
        """Returns `x` corrupted as in training: `clip(x + noise_factor * eps, 0, 1)`.

        `eps` comes from a stateless generator keyed on `(seed, step)`, so
        the same arguments always give the same noisy data; for a batch on
        one device, `add_noise(x, seed, step)` is exactly what the train step
        at optimizer step `step` feeds the network.

        Args:
            x: array or tensor `[batch, ...]`.
            seed: int or None. `None` uses the model's seed, and the model's
                `SeedGenerator` (a new draw each call) when that is `None`
                too. Defaults to `None`.
            step: int. Second half of the noise key. Defaults to `0`.
        """
        _check_seed(seed)
        seed = self.seed if seed is None else seed
        x = tf.convert_to_tensor(x, tf.float32)
        if seed is None:
            eps = keras.random.normal(tf.shape(x), seed=self.seed_generator)
        else:
            eps = tf.random.stateless_normal(tf.shape(x), seed=base.noise_key(seed, step))
        return add_gaussian_noise(x, eps, self.noise_factor)

    def training_noise(self, x):
        """The train step's standard normal `eps`, shaped like `x`.

        With a seed, drawn for the whole global batch from a stateless
        generator keyed on `(seed, optimizer.iterations)`, then sliced to
        this replica's share (as `VAE.training_noise`). Without a seed it
        comes from the model's `SeedGenerator`.
        """
        local_shape = tf.shape(x)
        if self.seed is None or getattr(self, "optimizer", None) is None:
            return keras.random.normal(local_shape, seed=self.seed_generator)
        local = local_shape[0]
        offset, total = base.global_batch_position(x)
        global_shape = tf.concat([tf.reshape(total, [1]), local_shape[1:]], axis=0)
        eps = tf.random.stateless_normal(
            global_shape, seed=base.noise_key(self.seed, self.optimizer.iterations)
        )
        return eps[offset : offset + local]

    def train_step(self, data):
        x, target, sample_weight = base.unpack_inputs(self, data)
        noisy = add_gaussian_noise(x, self.training_noise(x), self.noise_factor)
        with tf.GradientTape() as tape:
            terms = self.per_example_losses(noisy, target, training=True)
            loss = base.average_over_global_batch(terms["reconstruction_loss"], x, sample_weight)
            loss += base.regularization_loss(self)
        base.apply_gradients(self, tape, loss)
        return self._update_metrics(terms, sample_weight)

    def get_config(self):
        config = super().get_config()
        config.update({"noise_factor": self.noise_factor, "seed": self.seed})
        return config


def _build_denoising_autoencoder(config, data_shape, steps_per_epoch):
    encoder, decoder = registry.build_networks(config, data_shape)
    return DenoisingAutoencoder(
        encoder,
        decoder,
        likelihood=config.resolved_likelihood,
        noise_factor=config.noise_factor,
        seed=config.seed,
        name="denoising_autoencoder",
    )


registry.register_family(
    registry.ModelFamily(
        name="dae",
        model_class=DenoisingAutoencoder,
        description="denoising autoencoder",
        build=_build_denoising_autoencoder,
        settings=(
            Setting(
                "noise_factor",
                0.2,
                "Standard deviation of the Gaussian noise added to training inputs.",
                minimum=0,
            ),
        ),
        # Noisy inputs are clipped back into [0, 1].
        value_range=PIXEL_RANGE,
        capabilities=("denoising",),
    )
)
