import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from tfvae.errors import TfvaeError
from tfvae.math import losses
from tfvae.math.likelihoods import bin_edges
from tfvae.math.likelihoods import bits_per_dim
from tfvae.math.likelihoods import get_likelihood
from tfvae.math.likelihoods import is_eight_bit


def test_tfp_bernoulli_log_prob_equals_pure_nll(mnist5k_binary):
    x = mnist5k_binary.x_test[:16]
    logits = np.random.default_rng(1).normal(size=x.shape).astype(np.float32)
    likelihood = get_likelihood("bernoulli")
    tfp_nll = -likelihood.distribution(logits).log_prob(x).numpy()
    np.testing.assert_allclose(tfp_nll, losses.bernoulli_nll(x, logits).numpy(), rtol=1e-5)
    assert tfp_nll.shape == (16,)


def test_tfp_gaussian_log_prob_equals_pure_nll(digits):
    x = digits.x_test[:16]
    mean = np.full_like(x, 0.3)
    likelihood = get_likelihood("gaussian")
    tfp_nll = -likelihood.distribution(mean, 0.25).log_prob(x).numpy()
    np.testing.assert_allclose(tfp_nll, losses.gaussian_nll(x, mean, 0.25).numpy(), rtol=1e-5)


def test_link_functions():
    params = np.array([[-2.0, 0.0, 3.0]], np.float32)
    np.testing.assert_allclose(
        get_likelihood("bernoulli").mean(params), 1 / (1 + np.exp(-params)), rtol=1e-6
    )
    np.testing.assert_array_equal(get_likelihood("gaussian").mean(params), params)


def test_bernoulli_refuses_data_outside_unit_interval():
    with pytest.raises(TfvaeError, match=r"bernoulli likelihood needs .* in \[0, 1\]"):
        get_likelihood("bernoulli").check_data(np.array([[0.0, 1.5]]))
    get_likelihood("gaussian").check_data(np.array([[0.0, 1.5]]))


def test_unknown_likelihood_names_the_choices():
    with pytest.raises(TfvaeError, match="unknown likelihood 'poisson'.*bernoulli"):
        get_likelihood("poisson")


LEVELS = np.arange(256) / 255.0
EIGHT_BIT = [("discretized_logistic", stats.logistic), ("discretized_gaussian", stats.norm)]
LOCATIONS_AND_SCALES = [(0.3, 0.05), (0.0, 0.002), (0.99, 0.2), (0.5, 0.0025), (-0.3, 0.01)]


def _reference_log_probs(dist, loc, scale):
    """log P(level) from scipy, each bin's mass taken in the tail it lies in (float64)."""
    lower, upper = bin_edges()
    out = []
    for low, high in zip(lower, upper, strict=True):
        if (low + high) / 2 < loc:
            a, b = dist.logcdf(high, loc, scale), dist.logcdf(low, loc, scale)
        else:
            a, b = dist.logsf(low, loc, scale), dist.logsf(high, loc, scale)
        out.append(a + np.log1p(-np.exp(b - a)) if b < a else -np.inf)
    return np.array(out)


def test_bin_convention_levels_k_over_255_with_open_end_bins():
    lower, upper = bin_edges()
    assert lower[0] == -np.inf and upper[-1] == np.inf
    np.testing.assert_allclose(upper[:-1], lower[1:])
    np.testing.assert_allclose(upper[10], 10.5 / 255)
    # Each level's own value lies inside its bin.
    assert np.all((lower < LEVELS) & (LEVELS < upper))


@pytest.mark.parametrize("name,dist", EIGHT_BIT)
@pytest.mark.parametrize("loc,scale", LOCATIONS_AND_SCALES)
def test_eight_bit_bins_sum_to_one_and_match_cdf_differences(name, dist, loc, scale):
    likelihood = get_likelihood(name)
    params = np.full((256, 1), loc, np.float32)
    log_p = likelihood.distribution(params, scale).log_prob(LEVELS[:, None]).numpy()
    assert log_p.shape == (256,)
    assert np.all(np.isfinite(log_p))
    np.testing.assert_allclose(np.exp(log_p.astype(np.float64)).sum(), 1.0, atol=2e-6)
    lower, upper = bin_edges()
    direct = dist.cdf(upper, loc, scale) - dist.cdf(lower, loc, scale)
    np.testing.assert_allclose(np.exp(log_p), direct, atol=2e-7)
    # In the tails too, where the plain difference rounds to 0 in float32.
    reference = _reference_log_probs(dist, loc, scale)
    finite = np.isfinite(reference)
    assert finite.sum() > 200
    np.testing.assert_allclose(log_p[finite], reference[finite], rtol=2e-5, atol=2e-4)


@pytest.mark.parametrize("name", ["discretized_logistic", "discretized_gaussian"])
def test_eight_bit_log_prob_sums_over_the_event_and_rounds_to_the_nearest_level(name):
    likelihood = get_likelihood(name)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(4, 6, 6, 3)) / 255.0
    params = rng.uniform(size=x.shape).astype(np.float32)
    per_example = likelihood.distribution(params, 0.05).log_prob(x).numpy()
    per_pixel = likelihood.log_prob_fn(x, params, 0.05).numpy()
    np.testing.assert_allclose(per_example, per_pixel.reshape(4, -1).sum(axis=1), rtol=1e-6)
    jittered = x + rng.uniform(-0.4, 0.4, size=x.shape) / 255.0
    np.testing.assert_allclose(
        likelihood.distribution(params, 0.05).log_prob(jittered).numpy(), per_example, rtol=1e-6
    )


@pytest.mark.parametrize("name", ["discretized_logistic", "discretized_gaussian"])
def test_eight_bit_gradients_are_finite_far_in_the_tails(name):
    x = tf.constant(LEVELS[:, None], tf.float32)
    loc = tf.Variable(np.full((256, 1), 0.5, np.float32))
    scale = tf.Variable(0.0025)
    with tf.GradientTape() as tape:
        log_p = tf.reduce_sum(get_likelihood(name).distribution(loc, scale).log_prob(x))
    grad_loc, grad_scale = tape.gradient(log_p, [loc, scale])
    assert np.isfinite(log_p.numpy())
    assert np.all(np.isfinite(grad_loc.numpy())) and np.isfinite(grad_scale.numpy())
    # The levels above the location pull it up, those below pull it down.
    assert grad_loc.numpy()[200, 0] > 0 > grad_loc.numpy()[50, 0]


def test_bits_per_dim_is_nats_over_dimensions_times_ln_2():
    assert bits_per_dim(3072 * math.log(2.0) * 5.5, 3072) == pytest.approx(5.5)
    np.testing.assert_allclose(bits_per_dim([0.0, 784.0], 784), [0.0, 1 / math.log(2.0)])
    with pytest.raises(TfvaeError, match="dimensions must be a positive integer"):
        bits_per_dim(1.0, 0)


def test_eight_bit_likelihoods_refuse_data_outside_the_unit_interval():
    for name in ("discretized_logistic", "discretized_gaussian"):
        with pytest.raises(TfvaeError, match=rf"{name} likelihood needs .* 8-bit pixels"):
            get_likelihood(name).check_data(np.array([[0.0, 255.0]]))
        get_likelihood(name).check_data(LEVELS)
    assert is_eight_bit("discretized_logistic") and not is_eight_bit("gaussian")
    assert not is_eight_bit("auto")
