"""Loss terms as small pure functions.

Every function returns one value per example (reduced over all non-batch
axes), so callers decide how to average: `tf.nn.compute_average_loss` in a
distributed `train_step`, a plain mean in evaluation.
"""

import math

import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_example(values):
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=-1)


def _mean_per_example(values):
    return tf.reduce_mean(tf.reshape(values, [tf.shape(values)[0], -1]), axis=-1)


def bernoulli_log_prob(x, logits):
    """Elementwise `log p(x)` of Bernoulli variables given their logits: `x * logits - softplus(logits)`.

    The log-probability of a binary `x`, and for `x` in [0, 1] the negative
    cross-entropy of a Bernoulli of mean `x`. One softplus where
    `tfd.Bernoulli.log_prob` takes two (and two `multiply_no_nan`): the
    likelihood's share of a train step halves. Its gradient with respect to
    the logits is `x - sigmoid(logits)`. Logits must be finite.
    """
    logits = tf.convert_to_tensor(logits)
    return tf.cast(x, logits.dtype) * logits - tf.nn.softplus(logits)


def bernoulli_nll(x, logits):
    """Negative Bernoulli log-likelihood `-log p(x | logits)`, summed per example.

    Computed from logits as `softplus(l) - x * l`, which is exact and finite
    for any logit, unlike `log(sigmoid(l))`.
    """
    return _sum_per_example(-bernoulli_log_prob(x, tf.cast(logits, tf.float32)))


def gaussian_nll(x, mean, scale):
    """Negative Gaussian log-likelihood `-log N(x; mean, scale^2)`, summed per example."""
    x = tf.cast(x, tf.float32)
    mean = tf.cast(mean, tf.float32)
    scale = tf.cast(scale, tf.float32)
    z = (x - mean) / scale
    return _sum_per_example(0.5 * tf.square(z) + tf.math.log(scale) + 0.5 * LOG_2PI)


def kl_normal_standard_normal(mu, sigma):
    """Closed-form `KL(N(mu, diag(sigma^2)) || N(0, I))`, summed over latent units.

    `0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2)`. The VAE asks TFP for this
    value; this function is the reference the tests hold TFP to.
    """
    mu = tf.cast(mu, tf.float32)
    sigma = tf.cast(sigma, tf.float32)
    return 0.5 * tf.reduce_sum(
        tf.square(mu) + tf.square(sigma) - 1.0 - 2.0 * tf.math.log(sigma), axis=-1
    )


def kl_diagonal_normals(mu_q, sigma_q, mu_p, sigma_p):
    """Closed-form `KL(N(mu_q, diag(sigma_q^2)) || N(mu_p, diag(sigma_p^2)))`, summed over units.

    `sum(log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2)`:
    the KL term of a conditional VAE with a learned prior `p(z | y)`. Written
    with the ratio `sigma_q / sigma_p`, so it stays exact when both scales are
    small. With `mu_p = 0`, `sigma_p = 1` it is `kl_normal_standard_normal`.
    """
    mu_q, sigma_q, mu_p, sigma_p = (tf.cast(v, tf.float32) for v in (mu_q, sigma_q, mu_p, sigma_p))
    ratio = sigma_q / sigma_p
    gap = (mu_q - mu_p) / sigma_p
    return 0.5 * tf.reduce_sum(
        tf.square(ratio) + tf.square(gap) - 1.0 - 2.0 * tf.math.log(ratio), axis=-1
    )


def importance_weighted_bound(log_weights):
    """`log (1/k) sum_k exp(log_weights[k])` over axis 0, computed stably.

    With `log_weights[k] = log p(x, z_k) - log q(z_k | x)` and `z_k ~ q`,
    this is the IWAE lower bound on `log p(x)`; it tightens as `k` grows and
    is the ELBO for `k = 1`.
    """
    log_weights = tf.cast(log_weights, tf.float32)
    k = tf.cast(tf.shape(log_weights)[0], tf.float32)
    return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(k)


def dreg_surrogate(log_weights, z, log_weights_grad_z):
    """Per-example surrogate whose gradient is the IWAE bound's with DReG for the encoder.

    Doubly reparameterized gradients (Tucker et al. 2018): the encoder's
    gradient of the importance-weighted bound is `sum_k w_k^2 d log w_k /
    d phi` through the samples `z_k` only (q's parameters held fixed in
    `log q(z_k | x)`), with `w` the normalised weights; its mean is the
    IWAE gradient's and its variance lower, which keeps the encoder
    learning as `k` grows. The decoder's gradient is the IWAE one,
    `sum_k w_k d log w_k / d theta`.

    Args:
        log_weights: `[k, batch]`, `log p(x, z_k) - log q(z_k | x)` computed
            with q's mean and scale stopped (`tf.stop_gradient`), so they
            reach the encoder only through `z`.
        z: `[k, batch, latent]`, the samples `mu + sigma * eps`.
        log_weights_grad_z: `[k, batch, latent]`, `d log_weights / d z`.

    Returns:
        `[batch]`. Not the bound's value (use `importance_weighted_bound`
        for that): its gradient is the estimator. Maximise it.
    """
    log_weights = tf.cast(log_weights, tf.float32)
    w = tf.stop_gradient(tf.nn.softmax(log_weights, axis=0))
    # Gradient sum_k w_k d log w_k: IWAE's for the decoder, and w-weighted path terms for the
    # encoder, which the second term turns into w^2-weighted ones. The second term is linear in
    # z with a stopped slope, so it has no decoder gradient.
    path = tf.reduce_sum(tf.stop_gradient(log_weights_grad_z) * tf.cast(z, tf.float32), axis=-1)
    return tf.reduce_sum(w * log_weights + tf.stop_gradient(w * w - w) * path, axis=0)


def active_units(posterior_means, threshold=0.01):
    """Number of latent units whose posterior mean varies across the data.

    A unit is active when `Cov_x(E_q[z_u | x]) > threshold` (Burda et al.,
    2016); collapsed units copy the prior whatever the input.
    """
    variance = tf.math.reduce_variance(tf.cast(posterior_means, tf.float64), axis=0)
    return int(tf.reduce_sum(tf.cast(variance > threshold, tf.int32)))


def squared_error(x, reconstruction):
    """Mean squared error over the features of each example."""
    x = tf.cast(x, tf.float32)
    reconstruction = tf.cast(reconstruction, tf.float32)
    return _mean_per_example(tf.square(x - reconstruction))


# Dropout masks read 16 random bits per feature, two features per 32-bit
# draw: half the generator's work of one float uniform per feature.
DROPOUT_LEVELS = 2**16


def dropout_drop_rate(rate):
    """The drop rate `dropout_keep_mask` applies for `rate` in [0, 1): rounded to a multiple of 2**-16."""
    return min(round(float(rate) * DROPOUT_LEVELS), DROPOUT_LEVELS - 1) / DROPOUT_LEVELS


def dropout_keep_mask(shape, seed, rate):
    """A float32 mask of `shape`, 0 with probability `dropout_drop_rate(rate)` and 1 otherwise.

    A pure function of the stateless key `seed` (shape `[2]`): each element
    compares 16 bits of `tf.random.stateless_uniform`'s uint32 output with
    `rate * 2**16`, rounded. Divide by `1 - dropout_drop_rate(rate)` to
    keep the expectation.
    """
    shape = tf.convert_to_tensor(shape, tf.int32)
    size = tf.reduce_prod(shape)
    words = tf.random.stateless_uniform(
        [(size + 1) // 2], seed=seed, minval=None, maxval=None, dtype=tf.uint32
    )
    bits = tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size]
    threshold = tf.constant(min(round(float(rate) * DROPOUT_LEVELS), DROPOUT_LEVELS - 1), tf.uint16)
    keep = tf.cast(bits >= threshold, tf.float32)
    return tf.reshape(keep, shape)


def binary_cross_entropy(x, logits):
    """Mean binary cross-entropy over the features of each example, from logits."""
    return _mean_per_example(-bernoulli_log_prob(x, tf.cast(logits, tf.float32)))


def soft_clip(values, low, high):
    """Smoothly squash `values` into `(low, high)` with a scaled tanh.

    Identity-like near the centre, bounded everywhere and with a non-zero
    gradient, so a log-variance head cannot overflow `exp` for extreme inputs.
    """
    centre = 0.5 * (high + low)
    half_width = 0.5 * (high - low)
    return centre + half_width * tf.tanh((values - centre) / half_width)
