import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfvae.errors import TfvaeError
from tfvae.math.flows import flow_log_density
from tfvae.math.flows import iaf_bijector
from tfvae.math.flows import iaf_inverse
from tfvae.math.flows import iaf_step
from tfvae.math.flows import made_degrees
from tfvae.math.flows import made_mask
from tfvae.models.made import MADE
from tfvae.models.masked_dense import MaskedDense

tfd = tfp.distributions
tfb = tfp.bijectors

DIM = 5
CONTEXT = 3


def random_made(reverse, seed, dim=DIM, hidden_units=(12, 12), scale=0.7):
    """A MADE with weights large enough that every allowed dependence is visible."""
    made = MADE(dim, hidden_units=hidden_units, context_dim=CONTEXT, reverse=reverse)
    made.build((None, dim))
    rng = np.random.default_rng(seed)
    made.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) for w in made.get_weights()])
    return made


def order_of(reverse, dim=DIM):
    """Position of each unit in the MADE's order."""
    return np.arange(dim)[::-1] if reverse else np.arange(dim)


def test_masks_connect_lower_degrees_only():
    inputs, hidden = made_degrees(3, (4,))
    np.testing.assert_array_equal(inputs, [1, 2, 3])
    np.testing.assert_array_equal(hidden[0], [1, 2, 1, 2])
    np.testing.assert_array_equal(
        made_mask(inputs, hidden[0]), [[1, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(
        made_mask(hidden[0], inputs, strict=True), [[0, 1, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]]
    )
    reversed_inputs, _ = made_degrees(3, (4,), reverse=True)
    np.testing.assert_array_equal(reversed_inputs, [3, 2, 1])
    # One unit: the hidden units see no input, the output sees them.
    one, (single,) = made_degrees(1, (2,))
    assert made_mask(one, single).sum() == 0 and made_mask(single, one, strict=True).sum() == 2
    with pytest.raises(TfvaeError, match="dim=0"):
        made_degrees(0, (2,))


@pytest.mark.parametrize("reverse", [False, True])
def test_the_made_is_autoregressive_in_its_order(reverse):
    made = random_made(reverse, seed=1)
    z = tf.constant(np.random.default_rng(2).normal(size=(4, DIM)), tf.float32)
    context = tf.constant(np.random.default_rng(3).normal(size=(4, CONTEXT)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        shift, gate_logit = made(z, context=context)
    position = order_of(reverse)
    # Entry [i, j] may be non-zero only when unit j comes before unit i in the order.
    allowed = position[None, :] < position[:, None]
    for output in (shift, gate_logit):
        jacobian = tape.batch_jacobian(output, z).numpy()
        assert np.all(jacobian[:, ~allowed] == 0)
        # And every allowed dependence is present (two hidden layers of 12 >= DIM - 1).
        assert np.all(np.abs(jacobian[:, allowed]) > 1e-6)
    # The context reaches every unit, the first in the order included.
    with tf.GradientTape() as tape:
        tape.watch(context)
        shift, _ = made(z, context=context)
    assert np.all(np.abs(tape.batch_jacobian(shift, context).numpy()) > 0)


def test_masked_dense_round_trips_and_refuses_a_wrong_width():
    layer = MaskedDense([1, 2, 3], [1, 2, 1, 2], activation="elu", name="masked")
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    y = layer(x)
    clone = MaskedDense.from_config(layer.get_config())
    clone.build((None, 3))
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone(x), y)
    # The masked kernel entries start at zero and stay out of the output.
    assert np.all(layer.get_weights()[0][2] == 0)
    with pytest.raises(TfvaeError, match="3 input degrees"):
        MaskedDense([1, 2, 3], [1]).build((None, 4))


def shift_and_gate_of(made, context):
    return lambda z: made(z, context=context)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_step_matches_tfp_and_a_brute_force_jacobian(reverse):
    made = random_made(reverse, seed=4)
    rng = np.random.default_rng(5)
    z = tf.constant(rng.normal(size=(6, DIM)), tf.float32)
    context = tf.constant(rng.normal(size=(6, CONTEXT)), tf.float32)
    function = shift_and_gate_of(made, context)

    with tf.GradientTape() as tape:
        tape.watch(z)
        moved, log_det = iaf_step(z, *function(z))
    jacobian = tape.batch_jacobian(moved, z).numpy().astype(np.float64)
    # Triangular in the order, with sigma on the diagonal: log |det| is sum log sigma.
    position = order_of(reverse)
    assert np.all(jacobian[:, position[None, :] > position[:, None]] == 0)
    _, brute = np.linalg.slogdet(jacobian)
    np.testing.assert_allclose(log_det.numpy(), brute, rtol=1e-5, atol=1e-5)
    gate = tf.sigmoid(function(z)[1]).numpy()
    np.testing.assert_allclose(np.diagonal(jacobian, axis1=1, axis2=2), gate, rtol=1e-5)

    bijector = iaf_bijector(function)
    np.testing.assert_allclose(bijector.forward(z).numpy(), moved.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        bijector.forward_log_det_jacobian(z, event_ndims=1).numpy(),
        log_det.numpy(),
        rtol=1e-5,
        atol=1e-5,
    )
    # The inverse: DIM sequential passes recover z, as tfp's inverse does.
    # (Dividing by sigma amplifies float32 rounding: 1e-3.)
    recovered = iaf_inverse(moved, function, DIM).numpy()
    np.testing.assert_allclose(recovered, z.numpy(), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bijector.inverse(moved).numpy(), recovered, rtol=1e-3, atol=1e-3)
    # Fewer passes than units leave some units wrong: the inverse is sequential.
    assert np.abs(iaf_inverse(moved, function, DIM - 2).numpy() - z.numpy()).max() > 1e-3


def test_the_flow_log_density_is_tfps_transformed_density():
    rng = np.random.default_rng(6)
    mu = tf.constant(rng.normal(size=(4, DIM)), tf.float32)
    sigma = tf.constant(rng.uniform(0.3, 1.5, size=(4, DIM)), tf.float32)
    context = tf.constant(rng.normal(size=(4, CONTEXT)), tf.float32)
    eps = tf.constant(rng.normal(size=(4, DIM)), tf.float32)
    # tfp's density inverts the flow by fixed-point passes from z = 0, whose
    # early iterates overflow for gates far from 1: moderate weights.
    steps = [random_made(reverse, seed=7 + reverse, scale=0.3) for reverse in (False, True)]

    z, log_dets = mu + sigma * eps, []
    for made in steps:
        z, log_det = iaf_step(z, *made(z, context=context))
        log_dets.append(log_det)
    ours = flow_log_density(eps, tf.math.log(sigma), log_dets).numpy()

    base = tfd.Independent(tfd.Normal(mu, sigma), reinterpreted_batch_ndims=1)
    chain = tfb.Chain([iaf_bijector(shift_and_gate_of(made, context)) for made in steps[::-1]])
    reference = tfd.TransformedDistribution(base, chain)
    np.testing.assert_allclose(reference.log_prob(z).numpy(), ours, rtol=1e-4, atol=1e-4)
    # No steps: the Gaussian's own density.
    gaussian = flow_log_density(eps, tf.math.log(sigma), []).numpy()
    exact = stats.norm.logpdf(mu + sigma * eps, mu, sigma).sum(axis=1)
    np.testing.assert_allclose(gaussian, exact, rtol=1e-5)


def test_the_made_takes_sample_axes_and_round_trips():
    made = random_made(False, seed=9)
    z = np.random.default_rng(10).normal(size=(3, 4, DIM)).astype(np.float32)
    context = np.random.default_rng(11).normal(size=(4, CONTEXT)).astype(np.float32)
    shift, _ = made(z, context=context)
    for k in range(3):
        np.testing.assert_allclose(made(z[k], context=context)[0], shift[k], rtol=1e-6)
    clone = keras.layers.deserialize(keras.layers.serialize(made))
    assert clone.built  # from its build config
    clone.set_weights(made.get_weights())
    np.testing.assert_array_equal(clone(z, context=context)[0], shift)
    assert clone.get_config() == made.get_config()
