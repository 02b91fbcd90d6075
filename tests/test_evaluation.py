import keras
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from tfvae.evaluation.metrics import evaluate_model
from tfvae.evaluation.metrics import format_metrics
from tfvae.evaluation.metrics import importance_sampled_nll
from tfvae.math import losses
from tfvae.models import VAE
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.encoder import LOG_VARIANCE_BOUNDS
from tfvae.models.vae import LOG_SCALE_BOUNDS
from tfvae.models.vae import LOG_SCALE_PER_WEIGHT_UNIT
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import fit_model


def _inverse_soft_clip(value, low, high):
    centre, half = 0.5 * (low + high), 0.5 * (high - low)
    return centre + half * np.arctanh((value - centre) / half)


def linear_gaussian_vae(weights, bias, noise_scale, posterior_blur=1.0, posterior_shift=0.0):
    """A VAE whose decoder is x = W z + b + noise: log p(x) = log N(x; b, W W^T + s^2 I).

    W has orthogonal columns, so the exact posterior is diagonal and the encoder
    can represent it; `posterior_blur` and `posterior_shift` move the encoder away
    from it, so the ELBO is loose and the estimator has real work to do.
    """
    data_dim, latent_dim = weights.shape
    vae = VAE(
        Encoder(latent_dim, hidden_units=(), probabilistic=True),
        Decoder((data_dim,), hidden_units=()),
        likelihood="gaussian",
        seed=0,
    )
    vae.build((None, data_dim))
    column_norms = np.sum(weights**2, axis=0)
    posterior_variance = 1.0 / (1.0 + column_norms / noise_scale**2)
    mean_kernel = weights * posterior_variance / noise_scale**2
    head_kernel = np.zeros((data_dim, 2 * latent_dim))
    head_kernel[:, :latent_dim] = mean_kernel
    head_bias = np.concatenate(
        [
            -bias @ mean_kernel + posterior_shift,
            _inverse_soft_clip(
                np.log(posterior_variance * posterior_blur**2), *LOG_VARIANCE_BOUNDS
            ),
        ]
    )
    vae.encoder.head.set_weights([head_kernel, head_bias])
    vae.decoder.body[0].set_weights([weights.T, bias])
    log_scale = (
        _inverse_soft_clip(np.log(noise_scale), *LOG_SCALE_BOUNDS) / LOG_SCALE_PER_WEIGHT_UNIT
    )
    vae.observation_log_scale.assign(log_scale)
    return vae


def test_nll_estimator_matches_exact_linear_gaussian_log_likelihood():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 2)))
    weights = q * np.array([2.0, 0.7])
    bias = rng.normal(size=6) * 0.3
    noise_scale = 0.5
    covariance = weights @ weights.T + noise_scale**2 * np.eye(6)
    x = rng.multivariate_normal(bias, covariance, size=40).astype(np.float32)
    exact = -stats.multivariate_normal(bias, covariance).logpdf(x)

    sharp = linear_gaussian_vae(weights, bias, noise_scale)
    np.testing.assert_allclose(importance_sampled_nll(sharp, x, num_samples=5), exact, atol=2e-3)

    blurred = linear_gaussian_vae(
        weights, bias, noise_scale, posterior_blur=1.6, posterior_shift=0.3
    )
    negative_elbo = blurred.per_example_losses(x)["loss"].numpy()
    estimate = importance_sampled_nll(blurred, x, num_samples=1000, batch_size=16)
    assert np.mean(negative_elbo - exact) > 0.4  # the ELBO is far from log p(x) ...
    assert abs(np.mean(estimate - exact)) < 0.05  # ... the K=1000 estimate is not
    assert np.all(estimate >= exact - 0.1)


def test_importance_weighted_bound_is_a_stable_log_mean_exp():
    log_weights = np.random.default_rng(1).normal(size=(50, 7)) * 30 - 500
    expected = logsumexp(log_weights, axis=0) - np.log(50)
    np.testing.assert_allclose(
        losses.importance_weighted_bound(log_weights).numpy(), expected, rtol=1e-5
    )


def test_active_units_counts_varying_posterior_means():
    rng = np.random.default_rng(2)
    means = np.stack([rng.normal(size=500), rng.normal(size=500) * 0.01, np.zeros(500)], axis=1)
    assert losses.active_units(means) == 1
    assert losses.active_units(means, threshold=1e-5) == 2


def test_importance_sampling_tightens_the_elbo_on_real_digits(digits_binary):
    keras.utils.set_random_seed(0)
    vae = VAE(
        Encoder(4, hidden_units=(64,), probabilistic=True),
        Decoder((8, 8, 1), hidden_units=(64,)),
        seed=0,
    )
    vae.compile(optimizer=keras.optimizers.Adam(2e-3))
    vae.fit(digits_binary.x_train, epochs=15, batch_size=64, verbose=0)
    metrics = evaluate_model(vae, digits_binary, "bernoulli", nll_samples=200)
    nll_1 = importance_sampled_nll(vae, digits_binary.x_test, num_samples=1).mean()
    assert metrics["nll"] < metrics["loss"] - 0.2
    assert metrics["nll"] < nll_1
    assert abs(nll_1 - metrics["loss"]) < 1.0  # K = 1 is the ELBO
    assert 1 <= metrics["active_units"] <= 4
    assert metrics["nll"] < metrics["baseline_nll"] - 2  # measured: 20.4 against 24.1


def test_nll_needs_a_positive_sample_count(digits_binary):
    vae = VAE(
        Encoder(2, hidden_units=(8,), probabilistic=True), Decoder((8, 8, 1), hidden_units=(8,))
    )
    with pytest.raises(
        ValueError, match="num_samples must be a positive integer. Received: num_samples=0"
    ):
        importance_sampled_nll(vae, digits_binary.x_test[:3], num_samples=0)


def test_a_beta_vae_reports_the_true_negative_elbo_not_its_training_objective(digits_binary):
    """With beta = 0.1 the training loss is rec + 0.1 KL; the bound is rec + KL."""
    config = TrainConfig(dataset="digits", beta=0.1, epochs=3, hidden_units=(32,), latent_dim=4)
    model, _ = fit_model(config, digits_binary, validation=False, verbose=0)
    metrics = evaluate_model(model, digits_binary, config.resolved_likelihood)
    assert metrics["neg_elbo"] == pytest.approx(
        metrics["reconstruction_loss"] + metrics["kl_loss"], rel=1e-6
    )
    assert metrics["loss"] == pytest.approx(
        metrics["reconstruction_loss"] + 0.1 * metrics["kl_loss"], rel=1e-4
    )
    assert metrics["neg_elbo"] > metrics["loss"] + 0.5 * metrics["kl_loss"]
    # Recomputed from the model's own terms on the whole test split, one posterior sample each.
    terms = model.per_example_losses(digits_binary.x_test)
    recomputed = float(np.mean(terms["reconstruction_loss"] + terms["kl_loss"]))
    assert metrics["neg_elbo"] == pytest.approx(recomputed, rel=0.02)
    report = format_metrics(config, metrics)
    assert f"negative ELBO:        {metrics['neg_elbo']:10.3f}" in report
    assert f"training objective:   {metrics['loss']:10.3f}" in report
