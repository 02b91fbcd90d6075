"""Inverse autoregressive flows (Kingma et al. 2016): MADE masks, the gated step, its log density.

One IAF step maps `z` to

    sigma = sigmoid(s),   z' = sigma * z + (1 - sigma) * m

where `(m, s)` are autoregressive functions of `z` (a MADE): unit `i` of
`m` and `s` depends only on the units of `z` before `i` in the step's
order. The Jacobian `dz'/dz` is then triangular with `sigma` on its
diagonal, so `log |det| = sum log sigma`, and the step is computed for all
units at once. A posterior `z_0 = mu + sigma_0 * eps` followed by `T` steps
has, at its own sample,

    log q(z_T | x) = log N(eps; 0, I) - sum log sigma_0 - sum_t sum log sigma_t.

The inverse needs one pass per unit (`iaf_inverse`); the model never needs
it, only the tests and `tfp.bijectors`' density at an arbitrary point.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfvae.errors import TfvaeError

tfb = tfp.bijectors
tfd = tfp.distributions


def made_degrees(dim, hidden_units, reverse=False):
    """The MADE degrees of the inputs and of each hidden layer (Germain et al. 2015).

    Input unit `i` has degree `i + 1` in the natural order (`dim - i` when
    `reverse`). Hidden units cycle through the degrees `1 .. dim - 1`
    (all `0` when `dim` is 1: they see no input), so every degree below
    `dim` is represented wherever a layer is at least `dim - 1` wide.

    Args:
        dim: int. Number of autoregressive units.
        hidden_units: tuple of int. Widths of the hidden layers.
        reverse: bool. Reverse the order of the units. Defaults to `False`.

    Returns:
        `(input_degrees, [hidden_degrees, ...])`, int32 numpy arrays.
    """
    if dim < 1:
        raise TfvaeError(f"a MADE needs at least one unit. Received: dim={dim}")
    inputs = np.arange(1, dim + 1, dtype=np.int32)
    if reverse:
        inputs = inputs[::-1].copy()
    cycle = max(dim - 1, 1)
    start = min(1, dim - 1)
    hidden = [(np.arange(units, dtype=np.int32) % cycle) + start for units in hidden_units]
    return inputs, hidden


def made_mask(input_degrees, output_degrees, strict=False):
    """The `[inputs, outputs]` 0/1 mask that connects an output to the inputs of lower degree.

    `strict=False` (input to hidden, hidden to hidden) connects an input of
    degree `<=` the output's; `strict=True` (to the MADE's outputs)
    connects only inputs of degree `<` the output's, which makes output
    `i` independent of input `i` and of every later input.
    """
    inputs = np.asarray(input_degrees)[:, None]
    outputs = np.asarray(output_degrees)[None, :]
    connected = outputs > inputs if strict else outputs >= inputs
    return connected.astype(np.float32)


def iaf_step(z, shift, gate_logit):
    """One gated IAF step: `z' = sigmoid(s) * z + (1 - sigmoid(s)) * m`, and `sum log sigmoid(s)`.

    Args:
        z: tensor `[..., dim]`.
        shift: tensor `[..., dim]`, `m`, an autoregressive function of `z`.
        gate_logit: tensor `[..., dim]`, `s`, an autoregressive function of `z`.

    Returns:
        `(z', log_det)`: `log_det` `[...]` is `log |det dz'/dz|`.
    """
    gate = tf.sigmoid(gate_logit)
    moved = gate * z + (1.0 - gate) * shift
    # log sigmoid(s) = -softplus(-s): finite where sigmoid(s) underflows.
    log_det = tf.reduce_sum(tf.math.log_sigmoid(gate_logit), axis=-1)
    return moved, log_det


def iaf_inverse(moved, shift_and_gate, dim):
    """The `z` that `iaf_step` maps to `moved`, in `dim` sequential passes.

    Args:
        moved: tensor `[..., dim]`, `z'`.
        shift_and_gate: callable `z -> (m, s)`, autoregressive in some order.
        dim: int. The number of units: after pass `k` the first `k` units in
            the order are exact, so `dim` passes recover all of `z`.

    Returns:
        A tensor shaped like `moved`.
    """
    z = tf.zeros_like(moved)
    for _ in range(dim):
        shift, gate_logit = shift_and_gate(z)
        gate = tf.sigmoid(gate_logit)
        z = (moved - (1.0 - gate) * shift) / gate
    return z


def flow_log_density(eps, log_base_scale, log_dets):
    """`log q(z_T | x) = log N(eps) - sum log sigma_0 - sum_t log_det_t` at the flow's own sample.

    Args:
        eps: tensor `[..., dim]`, the standard normal noise of `z_0 = mu + sigma_0 * eps`.
        log_base_scale: tensor `[..., dim]`, `log sigma_0`.
        log_dets: list of tensors `[...]`, each step's `log |det|` (may be empty).

    Returns:
        A tensor `[...]`.
    """
    base = tfd.Normal(0.0, 1.0).log_prob(eps) - log_base_scale
    total = tf.reduce_sum(base, axis=-1)
    for log_det in log_dets:
        total -= log_det
    return total


def iaf_bijector(shift_and_gate):
    """`iaf_step` as a `tfp.bijectors` object: `Invert(MaskedAutoregressiveFlow)`.

    The MAF's inverse, `x = (y - shift(y)) * exp(-log_scale(y))`, is the IAF
    step when `exp(-log_scale) = sigma` and `-shift * sigma = (1 - sigma) * m`,
    that is `log_scale = softplus(-s)` and `shift = -m * exp(-s)`. Its
    `forward` is the step, `inverse` the sequential inverse and
    `forward_log_det_jacobian` `sum log sigma`.

    Args:
        shift_and_gate: callable `z -> (m, s)` on plain tensors.
    """

    def shift_and_log_scale(z):
        shift, gate_logit = shift_and_gate(z)
        return -shift * tf.exp(-gate_logit), tf.nn.softplus(-gate_logit)

    return tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=shift_and_log_scale))
