"""A Gaussian mixture over a VAE's latent space, drawn from as a function of standard normal noise."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvae import checks
from tfvae.errors import TfvaeError

# The uniform that picks a component is kept this far inside (0, 1) before
# the inverse normal CDF: float32 rounds 1 - 1e-7 to below 1, and
# ndtri(1e-7) = -5.2, so a draw's first coordinate stays finite.
UNIFORM_MARGIN = 1e-7


@keras.saving.register_keras_serializable(package="tfvae")
class GaussianMixtureSampler(keras.layers.Layer):
    """A Gaussian mixture in latent space, drawn from deterministically given `eps ~ N(0, I)`.

    Fitted after training on the posterior means of the training set (see
    `tfvae.training.sampler_fitting`), it replaces the prior `N(0, I)` when
    decoding samples: a VAE's aggregate posterior is rarely that normal, and
    prior draws fall where the decoder has seen no code. The mixture is
    held as non-trainable weights, so a `.keras` file carries it.

    `call(eps)` turns `eps` `[n, latent_dim]` into an exact draw from the
    mixture: `u = Phi(eps[:, 0])` is uniform; the component is `k` with
    `c_{k-1} <= u < c_k` (`c` the cumulative weights); `(u - c_{k-1}) / w_k`
    is again uniform and independent of `k`, and its inverse normal CDF
    replaces `eps[:, 0]`; then `z = mean_k + L_k eps'` with `L_k` the
    Cholesky factor of component `k`'s covariance. No op draws random
    numbers, so the exported `sample` stays a function of its input.

    Args:
        latent_dim: int. Width of the codes and of `eps`.
        components: int. Number of mixture components. Defaults to `10`.
        **kwargs: Base `keras.layers.Layer` arguments such as `name`.

    Example:

    >>> sampler = GaussianMixtureSampler(16, components=10)
    >>> sampler.set_mixture(weights, means, covariances)
    >>> z = sampler(np.random.default_rng(0).standard_normal((64, 16)))
    """

    def __init__(self, latent_dim, components=10, **kwargs):
        super().__init__(**kwargs)
        latent_dim = checks.positive_int("latent_dim", latent_dim)
        components = checks.positive_int("components", components)

        # === Layers ===
        self.mixture_weights = self.add_weight(
            shape=(components,),
            initializer=keras.initializers.Constant(1.0 / components),
            trainable=False,
            name="mixture_weights",
        )
        self.means = self.add_weight(
            shape=(components, latent_dim), initializer="zeros", trainable=False, name="means"
        )
        self.scale_tril = self.add_weight(
            shape=(components, latent_dim, latent_dim),
            initializer=keras.initializers.Constant(
                np.tile(np.eye(latent_dim), (components, 1, 1))
            ),
            trainable=False,
            name="scale_tril",
        )
        self.built = True

        # === Config ===
        self.latent_dim = latent_dim
        self.components = components

    def set_mixture(self, weights, means, covariances):
        """Stores a mixture: `weights` `[K]`, `means` `[K, d]`, `covariances` `[K, d, d]` or `[K, d]`.

        Diagonal covariances (`[K, d]`, variances) are accepted as such.
        Weights are renormalised to sum to 1; covariances must be
        positive definite (their Cholesky factors are stored).
        """
        weights = np.asarray(weights, np.float64).reshape(-1)
        means = np.asarray(means, np.float64)
        covariances = np.asarray(covariances, np.float64)
        k, d = self.components, self.latent_dim
        if covariances.shape == (k, d):
            covariances = np.stack([np.diag(c) for c in covariances])
        if weights.shape != (k,) or means.shape != (k, d) or covariances.shape != (k, d, d):
            raise TfvaeError(
                f"expected a mixture of {k} components in {d} dimensions: weights ({k},), "
                f"means ({k}, {d}), covariances ({k}, {d}, {d}) or ({k}, {d}). Received: "
                f"{weights.shape}, {means.shape}, {covariances.shape}"
            )
        if not (np.all(np.isfinite(weights)) and np.all(weights >= 0) and weights.sum() > 0):
            raise TfvaeError("mixture weights must be finite, non-negative and not all zero")
        try:
            trils = np.linalg.cholesky(covariances)
        except np.linalg.LinAlgError:
            raise TfvaeError("mixture covariances must be positive definite") from None
        self.mixture_weights.assign(weights / weights.sum())
        self.means.assign(means)
        self.scale_tril.assign(trils)

    def mixture(self):
        """`(weights, means, covariances)` of the stored mixture, float64 numpy arrays."""
        trils = np.asarray(self.scale_tril, np.float64)
        return (
            np.asarray(self.mixture_weights, np.float64),
            np.asarray(self.means, np.float64),
            trils @ np.transpose(trils, (0, 2, 1)),
        )

    def call(self, eps):
        eps = tf.cast(eps, tf.float32)
        weights = tf.cast(self.mixture_weights, tf.float32)
        upper = tf.cumsum(weights)
        lower = upper - weights
        uniform = 0.5 * tf.math.erfc(-eps[:, 0] / math.sqrt(2.0))
        # The number of inner boundaries c_1 .. c_{K-1} at or below u; the
        # last boundary (1, up to rounding) is left out, so k < K always.
        component = tf.reduce_sum(tf.cast(uniform[:, None] >= upper[None, :-1], tf.int32), axis=1)
        width = tf.maximum(tf.gather(weights, component), UNIFORM_MARGIN)
        rescaled = tf.clip_by_value(
            (uniform - tf.gather(lower, component)) / width, UNIFORM_MARGIN, 1.0 - UNIFORM_MARGIN
        )
        noise = tf.concat([tf.math.ndtri(rescaled)[:, None], eps[:, 1:]], axis=1)
        trils = tf.gather(tf.cast(self.scale_tril, tf.float32), component)
        offsets = tf.squeeze(tf.matmul(trils, noise[:, :, None]), axis=-1)
        return tf.gather(tf.cast(self.means, tf.float32), component) + offsets

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"latent_dim": self.latent_dim, "components": self.components})
        return config
