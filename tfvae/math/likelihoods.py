"""Observation models `p(x | z)`: how decoder outputs become a distribution.

A decoder emits one tensor of parameters with the data's shape: logits for
the Bernoulli likelihood, the mean for the others. A likelihood turns
those parameters into a `tfp.distributions` object, a point reconstruction and
a per-example reconstruction error, and checks that data suits it.

The 8-bit likelihoods (`discretized_logistic`, `discretized_gaussian`) give
the probability of pixels that take one of 256 levels: a pixel of level
`k` in {0, ..., 255} is stored as `x = k / 255` in [0, 1] (`BIN_COUNT`,
`bin_edges`). Level `k` owns the bin `[(k - 0.5) / 255, (k + 0.5) / 255]` of
the continuous distribution, and the two end bins reach to minus and plus
infinity (the PixelCNN++ convention, Salimans et al. 2017, in [0, 1] units),
so the 256 probabilities sum to 1 and `-log p(x)` is a number of nats that
converts to bits per dimension (`bits_per_dim`).
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math import losses

tfd = tfp.distributions


class LogitBernoulli(tfd.Bernoulli):
    """`tfd.Bernoulli` whose `log_prob` is `losses.bernoulli_log_prob`: one softplus.

    The same distribution and the same values for finite logits (what a
    decoder gives), about half the work of the parent's `log_prob` and its
    gradient in every train step.
    """

    def _log_prob(self, event):
        return losses.bernoulli_log_prob(event, self._logits)


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
            LogitBernoulli(logits=params, dtype=tf.float32),
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


# The levels of an 8-bit pixel; level k is stored as k / (BIN_COUNT - 1).
BIN_COUNT = 256


def bits_per_dim(nats, dimensions):
    """`nats / (dimensions * ln 2)`: a negative log-likelihood per example in bits per feature.

    Args:
        nats: float or array. Nats per example (`-log p(x)` or the negative ELBO).
        dimensions: int. Features per example (height * width * channels).
    """
    checks.positive_int("dimensions", dimensions)
    return np.asarray(nats, np.float64) / (dimensions * math.log(2.0))


def bin_edges(bins=BIN_COUNT):
    """The `(lower, upper)` edges of each level's bin in [0, 1] units, the ends infinite.

    Level `k` (stored as `k / (bins - 1)`) owns `[(k - 0.5), (k + 0.5)] / (bins - 1)`;
    level 0 reaches down to `-inf` and the last level up to `+inf`.
    """
    checks.positive_int("bins", bins)
    levels = np.arange(bins, dtype=np.float64)
    step = bins - 1
    lower = (levels - 0.5) / step
    upper = (levels + 0.5) / step
    lower[0], upper[-1] = -np.inf, np.inf
    return lower, upper


# Below this bin width in units of the scale, a bin's log-probability is
# taken as its density at the centre times its width (relative error about
# width^2 / 24, under 1e-7): the difference of two nearly equal CDFs would
# lose it to float32 rounding.
NARROW_BIN = 1e-3


def discretized_logistic_log_prob(x, loc, scale, bins=BIN_COUNT):
    """`log P(level of x)` under a logistic of `loc` and `scale` cut into `bins` bins.

    `P = sigmoid((u - loc) / scale) - sigmoid((l - loc) / scale)` for the bin
    `[l, u]` of `x`'s level (`bin_edges`; the end bins are open), computed
    in closed form as `a + log(-expm1(b - a)) - softplus(a) - softplus(b)`
    with `a, b` the standardized edges, which keeps its accuracy and its
    gradient in the far tails where the plain difference rounds to 0.

    Args:
        x: tensor. Pixels in [0, 1]; each is rounded to the nearest level `k / (bins - 1)`.
        loc, scale: tensors broadcastable to `x`, in [0, 1] units; `scale > 0`.
        bins: int. Defaults to `256`.

    Returns:
        A tensor of `x`'s shape: one log-probability per pixel.
    """
    upper, lower, is_first, is_last = _standardized_bin(x, loc, scale, bins)
    # Only the finite edges enter the arithmetic; the end bins use one sigmoid.
    a = tf.where(is_last, tf.zeros_like(upper), upper)
    b = tf.where(is_first, tf.zeros_like(lower), lower)
    gap = tf.maximum(a - b, 1e-30)
    inner = a + tf.math.log(-tf.math.expm1(-gap)) - tf.nn.softplus(a) - tf.nn.softplus(b)
    first = -tf.nn.softplus(-upper)  # log sigmoid(upper)
    last = -tf.nn.softplus(lower)  # log (1 - sigmoid(lower))
    return tf.where(is_first, first, tf.where(is_last, last, inner))


def discretized_gaussian_log_prob(x, loc, scale, bins=BIN_COUNT):
    """`log P(level of x)` under a Gaussian of `loc` and `scale` cut into `bins` bins.

    `P = Phi((u - loc) / scale) - Phi((l - loc) / scale)` for the bin `[l, u]`
    of `x`'s level (`bin_edges`), as a difference of `log_ndtr`s taken in
    the tail the bin lies in, so that it stays accurate far from `loc`;
    bins narrower than `NARROW_BIN` scales use the density at the centre
    times the width.

    Args and returns: as for `discretized_logistic_log_prob`.
    """
    upper, lower, is_first, is_last = _standardized_bin(x, loc, scale, bins)
    big = tf.constant(1e4, tf.float32)  # stands for +-inf in the end bins: Phi is 0 or 1 there
    a = tf.where(is_last, big * tf.ones_like(upper), upper)
    b = tf.where(is_first, -big * tf.ones_like(lower), lower)
    log_ndtr = tfd.Normal(loc=0.0, scale=1.0).log_cdf  # log Phi, accurate in the tails
    # Left of the mode: log(Phi(a) - Phi(b)); right of it the mirror image,
    # log(Phi(-b) - Phi(-a)), so that neither subtracts two numbers near 1.
    right = (a + b) > 0
    high = tf.where(right, -b, a)
    low = tf.where(right, -a, b)
    log_high, log_low = log_ndtr(high), log_ndtr(low)
    exact = log_high + tf.math.log(-tf.math.expm1(tf.minimum(log_low - log_high, -1e-30)))
    centre = 0.5 * (upper + lower)
    width = upper - lower
    narrow = (
        -0.5 * tf.square(centre)
        - 0.5 * math.log(2 * math.pi)
        + tf.math.log(tf.maximum(width, 1e-30))
    )
    use_narrow = (width < NARROW_BIN) & ~is_first & ~is_last
    return tf.where(use_narrow, narrow, exact)


def _standardized_bin(x, loc, scale, bins):
    """The standardized edges `(upper, lower)` of each pixel's bin, and which are end bins."""
    step = float(bins - 1)
    x = tf.cast(x, tf.float32)
    loc = tf.cast(loc, tf.float32)
    scale = tf.cast(scale, tf.float32)
    level = tf.clip_by_value(tf.round(x * step), 0.0, step)
    upper = ((level + 0.5) / step - loc) / scale
    lower = ((level - 0.5) / step - loc) / scale
    return upper, lower, tf.equal(level, 0.0), tf.equal(level, step)


class BinnedPixels:
    """`p(x)` of 8-bit pixels `x = k / 255`: one discretized density per pixel, summed over an event.

    What `EightBitLikelihood.distribution` returns. Its `log_prob(x)` adds
    the per-pixel log-probabilities of `log_prob_fn` (for example
    `discretized_logistic_log_prob`) over the last `event_ndims` axes. Not a
    `tfd.QuantizedDistribution`: in float32 that takes plain CDF
    differences, which round to 0 (log-probability -inf) a few scales from
    the location, where training can still be.

    Args:
        log_prob_fn: callable `(x, loc, scale) -> per-pixel log-probabilities`.
        loc, scale: tensors in [0, 1] units.
        event_ndims: int. The trailing axes of one example.
    """

    def __init__(self, log_prob_fn, loc, scale, event_ndims):
        self.log_prob_fn = log_prob_fn
        self.loc = loc
        self.scale = scale
        self.event_ndims = event_ndims

    def log_prob(self, x):
        per_pixel = self.log_prob_fn(x, self.loc, self.scale)
        if not self.event_ndims:
            return per_pixel
        return tf.reduce_sum(per_pixel, axis=list(range(-self.event_ndims, 0)))


class EightBitLikelihood:
    """What the 8-bit likelihoods share: a discretized continuous density of learned scale.

    The decoder gives the location of each pixel's density in [0, 1] units;
    one scale, learned with the model (`has_scale`; the VAE's
    `observation_scale`), is shared by all pixels, as in the sigma-VAE's
    learned-sigma form (Rybkin et al. 2021). The data must be pixels in
    [0, 1]; `log_prob` rounds each to the nearest of the 256 levels `k / 255`.
    """

    has_scale = True
    eight_bit = True

    @staticmethod
    def log_prob_fn(x, loc, scale):
        raise NotImplementedError

    def distribution(self, params, scale=None, event_ndims=None):
        """`p(x | params)` over 8-bit levels; the last `event_ndims` axes form one event."""
        params = tf.cast(params, tf.float32)
        rank = len(params.shape) - 1 if event_ndims is None else event_ndims
        scale = tf.ones_like(params) if scale is None else scale * tf.ones_like(params)
        return BinnedPixels(type(self).log_prob_fn, params, scale, rank)

    def mean(self, params):
        # Pixels live in [0, 1]: the reconstruction shows the location, clipped there.
        return tf.clip_by_value(params, 0.0, 1.0)

    def params_for_mean(self, mean):
        return np.asarray(mean, np.float64)

    def reconstruction_error(self, x, params):
        return losses.squared_error(x, params)

    def check_data(self, x, where="data"):
        low, high = float(np.min(x)), float(np.max(x))
        if low < 0.0 or high > 1.0:
            raise TfvaeError(
                f"the {self.name} likelihood needs {where} as 8-bit pixels scaled to [0, 1] "
                f"(level k stored as k / 255). Received values in [{low:g}, {high:g}]; divide "
                "8-bit data by 255, or use --likelihood gaussian for other data"
            )


class DiscretizedLogisticLikelihood(EightBitLikelihood):
    """8-bit pixels from a logistic density cut into 256 bins (PixelCNN++'s form, one component).

    The probability of level `k` is `sigmoid((u - mu) / s) - sigmoid((l - mu) / s)`
    for its bin `[l, u]` (see `bin_edges`), `mu` the decoder's output and `s`
    the learned scale.
    """

    name = "discretized_logistic"
    log_prob_fn = staticmethod(discretized_logistic_log_prob)


class DiscretizedGaussianLikelihood(EightBitLikelihood):
    """8-bit pixels from a Gaussian of learned sigma cut into 256 bins (the sigma-VAE, discretized).

    The sigma-VAE's Gaussian with one learned log-sigma (Rybkin et al. 2021),
    its density integrated over each level's bin, so that `-log p(x)` is a
    probability of the 8-bit data and compares with the logistic's in bits
    per dimension.
    """

    name = "discretized_gaussian"
    log_prob_fn = staticmethod(discretized_gaussian_log_prob)


LIKELIHOODS = {
    BernoulliLikelihood.name: BernoulliLikelihood,
    GaussianLikelihood.name: GaussianLikelihood,
    DiscretizedLogisticLikelihood.name: DiscretizedLogisticLikelihood,
    DiscretizedGaussianLikelihood.name: DiscretizedGaussianLikelihood,
}


def get_likelihood(name):
    """Returns the likelihood registered under `name` (one of `LIKELIHOODS`)."""
    if isinstance(name, tuple(LIKELIHOODS.values())):
        return name
    return LIKELIHOODS[checks.choice("likelihood", name, sorted(LIKELIHOODS))]()


def is_eight_bit(name):
    """Whether the likelihood called `name` scores 8-bit pixels (needs data in [0, 1])."""
    if not isinstance(name, str):
        return getattr(name, "eight_bit", False)
    return getattr(LIKELIHOODS.get(name), "eight_bit", False)
