import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test
from scipy import stats
from scipy.special import logsumexp

import tfvae
from tfvae.errors import TfvaeError
from tfvae.evaluation.disentanglement import mig
from tfvae.evaluation.metrics import posterior_means
from tfvae.math.decomposition import decomposed_kl
from tfvae.math.decomposition import log_weight_matrix
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.tcvae import TCVAE
from tfvae.training.config import TrainConfig

# A small discrete case: a data set of three examples n, each with a
# Gaussian posterior q(z | n) in two dimensions. The aggregate posterior
# q(z) = (1/3) sum_n q(z | n) is a three-component mixture.
MU = np.array([[-1.5, 0.5], [0.0, -1.0], [1.0, 1.0]])
SIGMA = np.array([[0.6, 0.9], [0.5, 0.4], [0.8, 0.7]])
N = len(MU)


def mixture_log_density(z):
    """Exact `log q(z)` and `sum_d log q(z_d)` of the three-example case, `z` of shape `[m, 2]`."""
    joint = np.stack([stats.norm.logpdf(z, MU[j], SIGMA[j]).sum(axis=1) for j in range(N)], axis=1)
    marginals = np.stack([stats.norm.logpdf(z, MU[j], SIGMA[j]) for j in range(N)], axis=1)
    log_prod = (logsumexp(marginals, axis=1) - math.log(N)).sum(axis=1)
    return logsumexp(joint, axis=1) - math.log(N), log_prod


def exact_parts():
    """The exact index-code MI, total correlation and dimension-wise KL, by quadrature."""
    grid = np.linspace(-6, 6, 801)
    step = grid[1] - grid[0]
    z1, z2 = np.meshgrid(grid, grid, indexing="ij")
    points = np.stack([z1.ravel(), z2.ravel()], axis=1)
    log_q, log_prod = mixture_log_density(points)
    q = np.exp(log_q)
    cross = [stats.norm.logpdf(points, MU[n], SIGMA[n]).sum(axis=1) for n in range(N)]
    # I(z; n) = E_n E_q(z|n) [log q(z|n) - log q(z)].
    information = np.mean([np.sum(np.exp(c) * (c - log_q)) * step**2 for c in cross])
    total_correlation = np.sum(q * (log_q - log_prod)) * step**2
    log_p = stats.norm.logpdf(points).sum(axis=1)
    dimensionwise = np.sum(q * (log_prod - log_p)) * step**2
    return information, total_correlation, dimensionwise


def analytic_mean_kl():
    return np.mean(np.sum(0.5 * (SIGMA**2 + MU**2 - 1) - np.log(SIGMA), axis=1))


def test_the_log_densities_are_exact_with_the_whole_data_set_as_the_batch():
    z = np.random.default_rng(0).normal(size=(N, 2)) * 1.5
    exact_q, exact_prod = mixture_log_density(z)
    mss = {k: v.numpy() for k, v in decomposed_kl(z, MU, SIGMA, N, "mss").items()}
    np.testing.assert_allclose(mss["log_q_z"], exact_q, rtol=1e-5)
    np.testing.assert_allclose(mss["log_prod_q_z_d"], exact_prod, rtol=1e-5)
    np.testing.assert_allclose(
        mss["log_q_z_given_x"], stats.norm.logpdf(z, MU, SIGMA).sum(axis=1), rtol=1e-5
    )
    np.testing.assert_allclose(mss["log_p_z"], stats.norm.logpdf(z).sum(axis=1), rtol=1e-5)
    # Minibatch-weighted sampling weighs each posterior 1/(N M): log N below the exact values.
    mws = {k: v.numpy() for k, v in decomposed_kl(z, MU, SIGMA, N, "mws").items()}
    np.testing.assert_allclose(mws["log_q_z"], exact_q - math.log(N), rtol=1e-5)
    np.testing.assert_allclose(mws["log_prod_q_z_d"], exact_prod - 2 * math.log(N), rtol=1e-5)
    np.testing.assert_allclose(
        mws["mutual_information"], mss["mutual_information"] + math.log(N), rtol=1e-5
    )
    np.testing.assert_allclose(
        mws["total_correlation"], mss["total_correlation"] + math.log(N), rtol=1e-5
    )
    # Either way the parts add up to the one-sample KL estimate log q(z|n) - log p(z).
    for parts in (mss, mws):
        total = parts["mutual_information"] + parts["total_correlation"] + parts["dimensionwise_kl"]
        np.testing.assert_allclose(total, parts["log_q_z_given_x"] - parts["log_p_z"], rtol=1e-5)


def test_the_estimates_match_the_exact_parts_in_expectation():
    # Many minibatches, each the whole data set with one posterior sample per example.
    draws = 20_000
    eps = np.random.default_rng(1).normal(size=(draws, N, 2))
    z = tf.constant(MU + SIGMA * eps, tf.float32)
    estimate = tf.vectorized_map(lambda batch: decomposed_kl(batch, MU, SIGMA, N, "mss"), z)
    means = {k: float(tf.reduce_mean(v)) for k, v in estimate.items()}
    information, total_correlation, dimensionwise = exact_parts()
    assert 0 < information < math.log(N)
    assert total_correlation > 0.01
    # Monte Carlo error: standard deviations of ~1 nat over 60,000 samples.
    assert means["mutual_information"] == pytest.approx(information, abs=0.02)
    assert means["total_correlation"] == pytest.approx(total_correlation, abs=0.02)
    assert means["dimensionwise_kl"] == pytest.approx(dimensionwise, abs=0.03)
    kl = means["mutual_information"] + means["total_correlation"] + means["dimensionwise_kl"]
    assert kl == pytest.approx(analytic_mean_kl(), abs=0.03)
    assert information + total_correlation + dimensionwise == pytest.approx(
        analytic_mean_kl(), abs=1e-4
    )


def test_weight_matrices():
    mss = np.exp(log_weight_matrix(4, 10, "mss").numpy())
    np.testing.assert_allclose(np.diag(mss), 0.1)
    np.testing.assert_allclose(mss[0, 1:], 0.9 / 3)
    np.testing.assert_allclose(mss.sum(axis=1), 1.0, rtol=1e-6)
    mws = np.exp(log_weight_matrix(4, 10, "mws").numpy())
    np.testing.assert_allclose(mws, 1 / 40)
    with pytest.raises(TfvaeError, match="estimator"):
        log_weight_matrix(4, 10, "exact")


def small_tcvae(shape=(8, 8, 1), latent_dim=3, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = TCVAE(
        Encoder(latent_dim, hidden_units=(32,), probabilistic=True),
        Decoder(shape, hidden_units=(32,)),
        seed=seed,
        **kwargs,
    )
    model.build((None, *shape))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def test_the_objective_weights_the_parts(digits_binary):
    x = digits_binary.x_train[:64]
    eps = tf.random.stateless_normal([64, 3], seed=[1, 2])
    model = small_tcvae(mi_weight=0.5, tc_weight=4.0, dimension_kl_weight=2.0, dataset_size=1000)
    terms = {k: v.numpy() for k, v in model.decomposed_losses(x, eps=eps).items()}
    np.testing.assert_allclose(
        terms["loss"],
        terms["reconstruction_loss"]
        + 0.5 * terms["mutual_information"]
        + 4.0 * terms["total_correlation"]
        + 2.0 * terms["dimensionwise_kl"],
        rtol=1e-5,
    )
    # The parts add up to log q(z|x) - log p(z) at the sample, whose mean over
    # samples is the analytic KL that `kl_loss` reports.
    mu, sigma = (t.numpy() for t in model.encode(x))
    z = mu + sigma * eps.numpy()
    one_sample_kl = stats.norm.logpdf(z, mu, sigma).sum(1) - stats.norm.logpdf(z).sum(1)
    total = terms["mutual_information"] + terms["total_correlation"] + terms["dimensionwise_kl"]
    np.testing.assert_allclose(total, one_sample_kl, rtol=1e-4, atol=1e-4)
    analytic = np.sum(0.5 * (sigma**2 + mu**2 - 1) - np.log(sigma), axis=1)
    np.testing.assert_allclose(terms["kl_loss"], analytic, rtol=1e-4, atol=1e-5)


def test_fit_reports_the_parts_and_the_round_trip_is_exact(digits_binary, tmp_path):
    model = small_tcvae(dataset_size=len(digits_binary.x_train), tc_estimator="mss")
    history = model.fit(
        digits_binary.x_train,
        epochs=2,
        batch_size=64,
        validation_data=(digits_binary.x_val,),
        verbose=0,
    ).history
    for name in ("loss", "neg_elbo", "mutual_information", "total_correlation", "dimensionwise_kl"):
        assert np.all(np.isfinite(history[name])) and f"val_{name}" in history
    assert history["neg_elbo"][1] < history["neg_elbo"][0]
    # With the stratified estimate, MI is at most log N and TC is not far below 0.
    assert 0 <= history["mutual_information"][1] <= math.log(len(digits_binary.x_train))
    assert history["total_correlation"][1] > -0.5
    run_serialization_test(model)
    restored = run_model_saving_test(model, digits_binary.x_test[:20], tmp_path)
    assert (restored.tc_weight, restored.tc_estimator, restored.dataset_size) == (
        6.0,
        "mss",
        len(digits_binary.x_train),
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tc_weight": -1.0}, "tc_weight"),
        ({"mi_weight": float("nan")}, "mi_weight"),
        ({"dimension_kl_weight": -0.1}, "dimension_kl_weight"),
        ({"tc_estimator": "exact"}, "tc_estimator"),
        ({"dataset_size": 0}, "dataset_size"),
        ({"beta": 2.0}, "takes beta=1 and iwae_samples=1"),
        ({"iwae_samples": 5}, "takes beta=1 and iwae_samples=1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(TfvaeError, match=message):
        TCVAE(Encoder(2, probabilistic=True), Decoder((8, 8, 1)), **kwargs)


def test_trains_through_the_registry_on_shapes2d(tmp_path):
    config = TrainConfig(
        model="tcvae",
        dataset="shapes2d:1200",
        hidden_units=(64,),
        latent_dim=5,
        epochs=2,
        batch_size=64,
        tc_weight=4.0,
        out=str(tmp_path / "run"),
    )
    result = tfvae.train(config, verbose=0)
    model = result.model
    assert isinstance(model, TCVAE) and model.tc_weight == 4.0
    # The training split's size, to within a batch.
    assert 864 <= model.dataset_size < 864 + 64  # 1200 - 240 test - 96 validation
    metrics = result.test_metrics
    for name in ("mig", "dci_disentanglement", "dci_completeness", "factor_vae_score"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["neg_elbo"] < metrics["baseline_nll"] + 1.0


def disentanglement_run(model, seed, epochs):
    config = TrainConfig(
        model=model,
        dataset="shapes2d:10000",
        hidden_units=(256, 256),
        latent_dim=6,
        epochs=epochs,
        batch_size=128,
        learning_rate=1e-3,
        seed=seed,
        **({"kl_warmup_epochs": 0, "input_dropout": 0.0} if model == "vae" else {}),
    )
    from tfvae.data.datasets import load_dataset
    from tfvae.training.recipe import fit_model

    data = load_dataset(config.dataset, binarize=True)
    trained, _ = fit_model(config, data, verbose=0)
    codes = posterior_means(trained, data.x_test)
    return mig(codes, data.factors["test"])["mig"]


@pytest.mark.slow
def test_tcvae_disentangles_shapes2d_better_than_the_vae():
    """beta-TCVAE's MIG beats the plain VAE's, mean of three seeds (about 10 minutes on 2 cores)."""
    tcvae = [disentanglement_run("tcvae", seed, epochs=30) for seed in range(3)]
    vae = [disentanglement_run("vae", seed, epochs=30) for seed in range(3)]
    print(
        f"MIG tcvae {np.round(tcvae, 3)} mean {np.mean(tcvae):.3f}; "
        f"vae {np.round(vae, 3)} mean {np.mean(vae):.3f}"
    )
    assert np.mean(tcvae) > np.mean(vae)
