"""The Bernoulli-Bernoulli restricted Boltzmann machine's quantities, as pure functions.

An RBM with visible units `v` in {0, 1}^D, hidden units `h` in {0, 1}^H,
weights `kernel` (D x H), visible bias `visible_bias` (D) and hidden bias
`hidden_bias` (H) has the energy `E(v, h) = -v.b - h.c - v.W.h`. Summing out
the hidden units gives the free energy
`F(v) = -v.b - sum_j softplus(c_j + (v.W)_j)`, with `p(v) = exp(-F(v)) / Z`.

Every function takes the parameters as arguments (tensors or arrays, in the
parameters' dtype) and returns one value per example, so the `RBM` model,
scikit-learn's `BernoulliRBM` weights (`kernel = components_.T`) and the
tests all go through the same arithmetic.
"""

import tensorflow as tf

from tfvae import checks

RECONSTRUCTION_KINDS = ("mse", "cross_entropy")
# Visible units whose flips are scored at once by `pseudo_log_likelihood`:
# bounds its memory to examples x chunk x hidden values.
PLL_CHUNK = 16


def _as_tensors(v, kernel, *biases):
    kernel = tf.convert_to_tensor(kernel)
    v = tf.cast(tf.convert_to_tensor(v), kernel.dtype)
    v = tf.reshape(v, [tf.shape(v)[0], -1])
    return (v, kernel, *(tf.cast(tf.convert_to_tensor(b), kernel.dtype) for b in biases))


def hidden_probabilities(v, kernel, hidden_bias):
    """`p(h_j = 1 | v) = sigmoid(c_j + (v.W)_j)`: the RBM's features of `v`."""
    v, kernel, hidden_bias = _as_tensors(v, kernel, hidden_bias)
    return tf.sigmoid(tf.matmul(v, kernel) + hidden_bias)


def visible_probabilities(h, kernel, visible_bias):
    """`p(v_i = 1 | h) = sigmoid(b_i + (W.h)_i)`."""
    h, kernel, visible_bias = _as_tensors(h, kernel, visible_bias)
    return tf.sigmoid(tf.matmul(h, kernel, transpose_b=True) + visible_bias)


def free_energy(v, kernel, visible_bias, hidden_bias):
    """`F(v) = -v.b - sum_j softplus(c_j + (v.W)_j)`, per example; `p(v) = exp(-F(v)) / Z`."""
    v, kernel, visible_bias, hidden_bias = _as_tensors(v, kernel, visible_bias, hidden_bias)
    hidden_input = tf.matmul(v, kernel) + hidden_bias
    return -tf.linalg.matvec(v, visible_bias) - tf.reduce_sum(tf.nn.softplus(hidden_input), axis=-1)


def mean_field_reconstruction(v, kernel, visible_bias, hidden_bias):
    """`p(v' = 1 | h = p(h | v))`: one deterministic up-down pass through the RBM."""
    return visible_probabilities(hidden_probabilities(v, kernel, hidden_bias), kernel, visible_bias)


def reconstruction_error(v, kernel, visible_bias, hidden_bias, kind="mse"):
    """Error of the one-step mean-field reconstruction of `v`, per example.

    Args:
        v: `[batch, D]` (or images, flattened) in [0, 1].
        kernel, visible_bias, hidden_bias: the RBM's parameters.
        kind: str. `"mse"`: squared error averaged over the visible units;
            `"cross_entropy"`: binary cross-entropy summed over them (nats).
            Defaults to `"mse"`.
    """
    checks.choice("reconstruction error", kind, RECONSTRUCTION_KINDS)
    v, kernel, visible_bias, hidden_bias = _as_tensors(v, kernel, visible_bias, hidden_bias)
    if kind == "mse":
        reconstruction = mean_field_reconstruction(v, kernel, visible_bias, hidden_bias)
        return tf.reduce_mean(tf.square(v - reconstruction), axis=-1)
    # From the logits, so that a saturated unit costs a finite, exact amount.
    hidden = hidden_probabilities(v, kernel, hidden_bias)
    logits = tf.matmul(hidden, kernel, transpose_b=True) + visible_bias
    return tf.reduce_sum(tf.nn.softplus(logits) - v * logits, axis=-1)


def _log_sigmoid(x):
    return -tf.nn.softplus(-x)


def _free_energy_changes(v, kernel, visible_bias, hidden_input, units):
    """`F(v with unit i flipped) - F(v)` for each `i` in `units`: `[batch, len(units)]`."""
    # Flipping v_i adds s_i = 1 - 2 v_i to it, so the hidden input moves by s_i * W_i.
    sign = 1.0 - 2.0 * tf.gather(v, units, axis=1)
    rows = tf.gather(kernel, units)
    flipped = hidden_input[:, None, :] + sign[:, :, None] * rows[None, :, :]
    softplus_change = tf.reduce_sum(
        tf.nn.softplus(flipped) - tf.nn.softplus(hidden_input)[:, None, :], axis=-1
    )
    return -sign * tf.gather(visible_bias, units) - softplus_change


def pseudo_log_likelihood(v, kernel, visible_bias, hidden_bias, chunk=PLL_CHUNK):
    """The exact pseudo-log-likelihood `sum_i log p(v_i | v_-i)`, per example (nats).

    `p(v_i | v_-i) = sigmoid(F(v with v_i flipped) - F(v))`, summed over all
    D visible units; the flips are scored `chunk` units at a time, from the
    shared hidden input, so it costs D free-energy changes, not D free
    energies. For binary `v`.
    """
    v, kernel, visible_bias, hidden_bias = _as_tensors(v, kernel, visible_bias, hidden_bias)
    hidden_input = tf.matmul(v, kernel) + hidden_bias
    n_visible = int(kernel.shape[0])
    total = tf.zeros([tf.shape(v)[0]], kernel.dtype)
    for start in range(0, n_visible, chunk):
        units = tf.range(start, min(start + chunk, n_visible))
        change = _free_energy_changes(v, kernel, visible_bias, hidden_input, units)
        total += tf.reduce_sum(_log_sigmoid(change), axis=-1)
    return total


def stochastic_pseudo_log_likelihood(v, kernel, visible_bias, hidden_bias, units):
    """scikit-learn's one-flip estimate of the pseudo-log-likelihood, per example.

    `D * log sigmoid(F(v with v_i flipped) - F(v))` for one visible unit `i`
    per example (`units[n]`, drawn uniformly by the caller): an unbiased
    estimate of `pseudo_log_likelihood`, at the cost of two free energies.
    For binary `v`.
    """
    v, kernel, visible_bias, hidden_bias = _as_tensors(v, kernel, visible_bias, hidden_bias)
    units = tf.cast(tf.convert_to_tensor(units), tf.int32)
    flip = tf.one_hot(units, depth=tf.shape(v)[1], dtype=v.dtype)
    flipped = v + (1.0 - 2.0 * v) * flip
    change = free_energy(flipped, kernel, visible_bias, hidden_bias) - free_energy(
        v, kernel, visible_bias, hidden_bias
    )
    return tf.cast(tf.shape(v)[1], v.dtype) * _log_sigmoid(change)
