import numpy as np
import pytest

from tfvae.errors import TfvaeError
from tfvae.math import losses
from tfvae.math.likelihoods import get_likelihood


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
