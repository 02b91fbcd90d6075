"""Observation models `p(x | z)`: how decoder outputs become a distribution.

A decoder emits one tensor of parameters with the data's shape: logits for
the Bernoulli likelihood, the mean for the Gaussian one. A likelihood turns
those parameters into a `tfp.distributions` object, a point reconstruction and
a per-example reconstruction error, and checks that data suits it.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math import losses

tfd = tfp.distributions


class BernoulliLikelihood:
    """Independent Bernoulli pixels; decoder outputs are logits.

    For binary data (or grey levels in [0, 1] read as probabilities).
    """

    name = "bernoulli"
    has_scale = False

    def distribution(self, params, scale=None, event_ndims=None):
        """`p(x | params)`; the last `event_ndims` axes (default: all but the first) form one event."""
        params = tf.cast(params, tf.float32)
        rank = len(params.shape) - 1 if event_ndims is None else event_ndims
        return tfd.Independent(
            tfd.Bernoulli(logits=params, dtype=tf.float32),
            reinterpreted_batch_ndims=rank,
        )

    def mean(self, params):
        return tf.sigmoid(params)

    def params_for_mean(self, mean):
        """Logits whose Bernoulli mean is `mean` (clipped to [1e-3, 1 - 1e-3])."""
        mean = np.clip(np.asarray(mean, np.float64), 1e-3, 1 - 1e-3)
        return np.log(mean) - np.log1p(-mean)

    def reconstruction_error(self, x, params):
        return losses.binary_cross_entropy(x, params)

    def check_data(self, x, where="data"):
        low, high = float(np.min(x)), float(np.max(x))
        if low < 0.0 or high > 1.0:
            raise TfvaeError(
                f"the bernoulli likelihood needs {where} in [0, 1]. "
                f"Received values in [{low:g}, {high:g}]; rescale the data or "
                "use --likelihood gaussian"
            )


class GaussianLikelihood:
    """Independent Gaussian features; decoder outputs are the mean.

    The scale is a learned scalar shared by all features (held by the `VAE`),
    so the balance between reconstruction and KL is fitted, not guessed. The
    autoencoder's reconstruction error is the mean squared error.
    """

    name = "gaussian"
    has_scale = True

    def distribution(self, params, scale=None, event_ndims=None):
        """`p(x | params)`; the last `event_ndims` axes (default: all but the first) form one event."""
        params = tf.cast(params, tf.float32)
        rank = len(params.shape) - 1 if event_ndims is None else event_ndims
        scale = tf.ones_like(params) if scale is None else scale * tf.ones_like(params)
        return tfd.Independent(tfd.Normal(loc=params, scale=scale), reinterpreted_batch_ndims=rank)

    def mean(self, params):
        return params

    def params_for_mean(self, mean):
        return np.asarray(mean, np.float64)

    def reconstruction_error(self, x, params):
        return losses.squared_error(x, params)

    def check_data(self, x, where="data"):
        del x, where


LIKELIHOODS = {
    BernoulliLikelihood.name: BernoulliLikelihood,
    GaussianLikelihood.name: GaussianLikelihood,
}


def get_likelihood(name):
    """Returns the likelihood registered under `name` ("bernoulli", "gaussian")."""
    if isinstance(name, (BernoulliLikelihood, GaussianLikelihood)):
        return name
    return LIKELIHOODS[checks.choice("likelihood", name, sorted(LIKELIHOODS))]()
