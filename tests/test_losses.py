import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import integrate
from scipy import stats

from tfvae.math import losses

tfd = tfp.distributions
RNG = np.random.default_rng(0)


def test_tfp_kl_matches_closed_form_and_numpy():
    mu = RNG.normal(size=(64, 16)).astype(np.float32)
    sigma = np.exp(RNG.normal(scale=0.7, size=(64, 16))).astype(np.float32)
    posterior = tfd.Independent(tfd.Normal(mu, sigma), 1)
    prior = tfd.Independent(tfd.Normal(tf.zeros(16), 1.0), 1)
    tfp_kl = posterior.kl_divergence(prior).numpy()
    closed = losses.kl_normal_standard_normal(mu, sigma).numpy()
    mu64, sigma64 = mu.astype(np.float64), sigma.astype(np.float64)
    reference = 0.5 * np.sum(mu64**2 + sigma64**2 - 1 - np.log(sigma64**2), axis=-1)
    np.testing.assert_allclose(tfp_kl, reference, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(closed, reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mu,sigma", [(0.0, 1.0), (1.5, 0.3), (-2.0, 2.5)])
def test_kl_matches_numerical_integral(mu, sigma):
    q, p = stats.norm(mu, sigma), stats.norm(0.0, 1.0)
    integral, _ = integrate.quad(
        lambda z: q.pdf(z) * (q.logpdf(z) - p.logpdf(z)), mu - 12 * sigma, mu + 12 * sigma
    )
    value = losses.kl_normal_standard_normal(np.array([[mu]]), np.array([[sigma]])).numpy()[0]
    assert value == pytest.approx(integral, abs=1e-5)


def test_bernoulli_nll_matches_scipy_and_is_finite_for_extreme_logits():
    x = (RNG.random((8, 5, 5, 1)) > 0.5).astype(np.float32)
    logits = RNG.normal(scale=3, size=x.shape).astype(np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    reference = -stats.bernoulli.logpmf(x, p).reshape(8, -1).sum(-1)
    np.testing.assert_allclose(losses.bernoulli_nll(x, logits).numpy(), reference, rtol=1e-5)
    extreme = losses.bernoulli_nll(np.ones((1, 2)), np.array([[-1e4, 1e4]], np.float32)).numpy()
    assert np.isfinite(extreme).all() and extreme[0] == pytest.approx(1e4)


def test_gaussian_nll_matches_scipy():
    x = RNG.random((6, 10)).astype(np.float32)
    mean = RNG.random((6, 10)).astype(np.float32)
    reference = -stats.norm(mean, 0.2).logpdf(x).sum(-1)
    np.testing.assert_allclose(losses.gaussian_nll(x, mean, 0.2).numpy(), reference, rtol=1e-5)


def test_squared_error_and_cross_entropy_are_per_example_means():
    x = np.array([[0.0, 1.0], [1.0, 1.0]], np.float32)
    recon = np.array([[0.5, 0.5], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(losses.squared_error(x, recon).numpy(), [0.25, 0.5])
    bce = losses.binary_cross_entropy(x, np.zeros_like(x)).numpy()
    np.testing.assert_allclose(bce, [np.log(2), np.log(2)], rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_vae_negative_elbo_is_the_closed_form_nll_plus_beta_kl(digits_binary, likelihood):
    """The VAE's loss (from TFP) is these functions' `nll + beta * KL` at the same sample."""
    import keras

    from tfvae.models import VAE
    from tfvae.models import Decoder
    from tfvae.models import Encoder

    keras.utils.set_random_seed(0)
    vae = VAE(
        Encoder(3, hidden_units=(16,), probabilistic=True),
        Decoder((8, 8, 1), hidden_units=(16,)),
        beta=0.5,
        likelihood=likelihood,
    )
    x = digits_binary.x_test[:8]
    eps = RNG.normal(size=(8, 3)).astype(np.float32)
    terms = vae.per_example_losses(x, eps=eps)
    mu, sigma = vae.encode(x)
    params = vae.decoder(mu + sigma * eps)
    if likelihood == "bernoulli":
        nll = losses.bernoulli_nll(x, params)
    else:
        nll = losses.gaussian_nll(x, params, vae.observation_scale())
    kl = losses.kl_normal_standard_normal(mu, sigma)
    np.testing.assert_allclose(terms["reconstruction_loss"], nll, rtol=1e-5)
    np.testing.assert_allclose(terms["kl_loss"], kl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["loss"], nll + 0.5 * kl, rtol=1e-5)


def test_soft_clip_is_bounded_smooth_and_near_identity_at_centre():
    values = tf.constant([-1e30, -100.0, 0.0, 0.5, 100.0, 1e30])
    with tf.GradientTape() as tape:
        tape.watch(values)
        clipped = losses.soft_clip(values, -16.0, 16.0)
    assert np.all(np.abs(clipped.numpy()) <= 16.0)
    assert clipped.numpy()[3] == pytest.approx(0.5, abs=1e-3)
    assert np.all(np.isfinite(tape.gradient(clipped, values).numpy()))


def _linear_gaussian_gradients(estimator, n=4000, k=10, d=3, seed=0):
    """Per-draw gradients of the IWAE bound of a linear-Gaussian model, `n` draws.

    p(z) = N(0, I), p(x | z) = N(z + theta, I); q(z | x) = N(a x + b, exp(c)^2).
    Each draw has its own copy of the parameters (rows of `[n, d]`
    variables), so the gradient of the summed bound is every draw's own.
    """
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(size=(1, d)) * 1.5, tf.float32)
    params = [tf.Variable(tf.fill([n, d], value)) for value in (0.4, 0.1, -0.3, 0.2)]
    a, b, c, theta = params
    eps = tf.constant(rng.standard_normal((k, n, d)), tf.float32)
    normal = tfp.distributions.Normal

    def log_weights(z, mu, sigma):
        log_p = normal(0.0, 1.0).log_prob(z) + normal(z + theta, 1.0).log_prob(x)
        return tf.reduce_sum(log_p - normal(mu, sigma).log_prob(z), axis=-1)

    with tf.GradientTape() as tape:
        mu, sigma = a * x + b, tf.exp(c)
        z = mu + sigma * eps
        if estimator == "iwae":
            objective = losses.importance_weighted_bound(log_weights(z, mu, sigma))
        else:
            with tf.GradientTape() as inner:
                inner.watch(z)
                stopped = log_weights(z, tf.stop_gradient(mu), tf.stop_gradient(sigma))
            objective = losses.dreg_surrogate(stopped, z, inner.gradient(stopped, z))
        total = tf.reduce_sum(objective)
    return [g.numpy() for g in tape.gradient(total, params)]


def test_dreg_gradients_have_the_iwae_mean_and_a_lower_variance():
    iwae = _linear_gaussian_gradients("iwae")
    dreg = _linear_gaussian_gradients("dreg")
    # The decoder's gradient is the IWAE one, draw by draw.
    np.testing.assert_allclose(dreg[3], iwae[3], rtol=1e-4, atol=1e-5)
    for name, g_iwae, g_dreg in zip("abc", iwae[:3], dreg[:3], strict=True):
        n = len(g_iwae)
        standard_error = np.sqrt((g_iwae.var(axis=0) + g_dreg.var(axis=0)) / n)
        difference = np.abs(g_dreg.mean(axis=0) - g_iwae.mean(axis=0))
        assert np.all(difference < 4 * standard_error), (name, difference, standard_error)
        assert np.all(g_dreg.var(axis=0) < 0.8 * g_iwae.var(axis=0)), name


def test_bernoulli_log_prob_matches_scipy_and_tfp_with_its_gradient():
    logits = RNG.normal(scale=6.0, size=(32, 50)).astype(np.float32)
    binary = (RNG.random(logits.shape) < 0.5).astype(np.float32)
    grey = RNG.random(logits.shape).astype(np.float32)
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(
        losses.bernoulli_log_prob(binary, logits).numpy(),
        stats.bernoulli.logpmf(binary, p),
        rtol=1e-5,
        atol=1e-5,
    )
    for x in (binary, grey):
        reference = tfd.Bernoulli(logits=logits, dtype=tf.float32).log_prob(x)
        np.testing.assert_allclose(
            losses.bernoulli_log_prob(x, logits).numpy(), reference.numpy(), rtol=1e-6, atol=1e-5
        )
    logits_t = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits_t)
        total = tf.reduce_sum(losses.bernoulli_log_prob(grey, logits_t))
    np.testing.assert_allclose(tape.gradient(total, logits_t).numpy(), grey - p, atol=1e-6)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_dropout_mask_drops_the_rate_independently_and_reproducibly(rate):
    key = tf.constant([7, 11], tf.int64)
    mask = losses.dropout_keep_mask([400, 785], key, rate).numpy()
    assert mask.shape == (400, 785) and set(np.unique(mask)) <= {0.0, 1.0}
    dropped = losses.dropout_drop_rate(rate)
    assert abs(dropped - rate) <= 2**-17
    # Within 5 binomial standard errors of the rate, over all features and
    # over each of the two halves of a 32-bit draw (even and odd features).
    n = mask.size
    tolerance = 5 * np.sqrt(max(dropped * (1 - dropped), 1e-12) / (n / 2))
    for part in (mask, mask.reshape(-1)[0::2], mask.reshape(-1)[1::2]):
        assert abs((1 - part.mean()) - dropped) <= tolerance
    if 0 < rate:
        # Neighbours (the two halves of one draw) are uncorrelated.
        flat = mask.reshape(-1)
        assert abs(np.corrcoef(flat[0::2], flat[1::2])[0, 1]) < 0.02
    np.testing.assert_array_equal(losses.dropout_keep_mask([400, 785], key, rate).numpy(), mask)
    other = losses.dropout_keep_mask([400, 785], tf.constant([7, 12], tf.int64), rate).numpy()
    assert (rate == 0.0) == np.array_equal(other, mask)
