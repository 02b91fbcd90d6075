"""The ELBO's KL term split into index-code mutual information, total correlation and dimension-wise KL.

For a data set of `N` examples `n`, a Gaussian posterior `q(z | n)`, the
aggregate posterior `q(z) = (1/N) sum_n q(z | n)` and a factorised prior
`p(z) = prod_d p(z_d)`, Chen et al. (2018) split the mean KL term as

    E_n KL(q(z|n) || p(z)) = I_q(z; n)                          index-code MI
                           + KL(q(z) || prod_d q(z_d))          total correlation
                           + sum_d KL(q(z_d) || p(z_d))         dimension-wise KL

and estimate each on a minibatch: one sample `z_i ~ q(z | n_i)` per example,
with `log q(z_i)` and `log q(z_id)` taken over the minibatch's posteriors.
The per-example estimates are

    mutual_information  = log q(z_i | n_i) - log q(z_i)
    total_correlation   = log q(z_i) - sum_d log q(z_id)
    dimensionwise_kl    = sum_d log q(z_id) - log p(z_i)

so their sum is `log q(z_i | n_i) - log p(z_i)`, the one-sample estimate of
the KL term, whatever the estimate of `q(z)`. Two estimates of `q(z)` from a
minibatch of `M` examples are offered:

- `"mws"`, minibatch-weighted sampling (Chen et al. 2018):
  `q(z_i) ~ (1 / (N M)) sum_j q(z_i | n_j)`. Its weights sum to `1/N`, not
  1, which shifts the parts by constants without gradient: against the
  same estimate with weights `1/M`, the mutual information is `log N`
  higher, the total correlation `(D - 1) log N` higher and the
  dimension-wise KL `D log N` lower. With the whole data set as the batch
  it is the exact `q(z_i)` times `1/N`. This is the published estimator.
- `"mss"`, minibatch-stratified sampling: the example's own posterior
  weighs `1/N`, the other `M - 1` share the rest, `(N - 1) / (N (M - 1))`
  each. An unbiased estimate of `q(z_i)` when the others are uniform draws
  from the other examples, and exact when the batch is the whole data set.
"""

import math

import tensorflow as tf

from tfvae.errors import TfvaeError

ESTIMATORS = ("mws", "mss")
LOG_2PI = math.log(2.0 * math.pi)


def pairwise_log_density(z, mu, sigma):
    """`log N(z_id; mu_jd, sigma_jd^2)` for every pair of examples, `[i, j, d]`."""
    z, mu, sigma = (tf.cast(v, tf.float32) for v in (z, mu, sigma))
    standardized = (z[:, None, :] - mu[None, :, :]) / sigma[None, :, :]
    return -0.5 * tf.square(standardized) - tf.math.log(sigma[None, :, :]) - 0.5 * LOG_2PI


def log_weight_matrix(batch_size, dataset_size, estimator="mws"):
    """`log w[i, j]`, the weight of `q(z_i | n_j)` in the estimate of `q(z_i)`, `[M, M]`."""
    if estimator not in ESTIMATORS:
        raise TfvaeError(f"estimator must be one of {list(ESTIMATORS)}. Received: {estimator!r}")
    m = tf.cast(batch_size, tf.float32)
    n = tf.cast(dataset_size, tf.float32)
    if estimator == "mws":
        return tf.fill([batch_size, batch_size], -tf.math.log(n * m))
    others = tf.math.log(n - 1.0) - tf.math.log(n) - tf.math.log(tf.maximum(m - 1.0, 1.0))
    own = -tf.math.log(n)
    diagonal = tf.eye(batch_size, dtype=tf.float32)
    return diagonal * own + (1.0 - diagonal) * others


def decomposed_kl(z, mu, sigma, dataset_size, estimator="mws"):
    """Per-example estimates of the KL term's three parts, from one minibatch.

    Args:
        z: tensor `[M, D]`. One sample of each example's posterior.
        mu, sigma: tensors `[M, D]`. The posteriors `q(z | n_j)`.
        dataset_size: int or scalar tensor. `N`, the size of the data set
            the minibatch is drawn from (at least `M`).
        estimator: str. `"mws"` or `"mss"` (see the module). Defaults to
            `"mws"`.

    Returns:
        dict of float32 `[M]` tensors: `mutual_information`,
        `total_correlation`, `dimensionwise_kl`, and `log_q_z_given_x`,
        `log_q_z`, `log_prod_q_z_d`, `log_p_z`, the log-densities they come
        from.
    """
    z, mu, sigma = (tf.cast(v, tf.float32) for v in (z, mu, sigma))
    batch_size = tf.shape(z)[0]
    log_q = pairwise_log_density(z, mu, sigma)
    log_w = log_weight_matrix(batch_size, dataset_size, estimator)
    log_q_z_given_x = tf.reduce_sum(tf.linalg.diag_part(tf.transpose(log_q, [2, 0, 1])), axis=0)
    log_q_z = tf.reduce_logsumexp(log_w + tf.reduce_sum(log_q, axis=2), axis=1)
    log_prod_q_z_d = tf.reduce_sum(tf.reduce_logsumexp(log_w[:, :, None] + log_q, axis=1), axis=1)
    log_p_z = tf.reduce_sum(-0.5 * tf.square(z) - 0.5 * LOG_2PI, axis=1)
    return {
        "mutual_information": log_q_z_given_x - log_q_z,
        "total_correlation": log_q_z - log_prod_q_z_d,
        "dimensionwise_kl": log_prod_q_z_d - log_p_z,
        "log_q_z_given_x": log_q_z_given_x,
        "log_q_z": log_q_z,
        "log_prod_q_z_d": log_prod_q_z_d,
        "log_p_z": log_p_z,
    }
