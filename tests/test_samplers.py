import contextlib
import io
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test
from scipy import stats
from sklearn.mixture import GaussianMixture

from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.models import VAE
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.gaussian_mixture_sampler import GaussianMixtureSampler
from tfvae.models.two_stage_sampler import TwoStageSampler
from tfvae.training import sampler_fitting
from tfvae.training.sampler_fitting import SamplerConfig
from tfvae.training.sampler_fitting import fit_sampler
from tfvae.training.sampler_fitting import with_latent_sampler


def principal_components(x, dims):
    """The first `dims` principal-component scores of `x`, standardised."""
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    flat = flat - flat.mean(axis=0)
    _, _, components = np.linalg.svd(flat, full_matrices=False)
    scores = flat @ components[:dims].T
    return scores / scores.std(axis=0)


def mixture_moments(weights, means, covariances):
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covariances + np.einsum("ki,kj->kij", means, means))
    return mean, second - np.outer(mean, mean)


@pytest.fixture(scope="module")
def digit_mixture(digits):
    """A 4-component full-covariance mixture fitted by scikit-learn to 3 PCA scores of digits."""
    codes = principal_components(digits.x_train, 3)
    mixture = GaussianMixture(4, covariance_type="full", random_state=0).fit(codes)
    sampler = GaussianMixtureSampler(3, components=4)
    sampler.set_mixture(mixture.weights_, mixture.means_, mixture.covariances_)
    return mixture, sampler


def test_the_draw_is_the_fitted_mixture(digit_mixture):
    mixture, sampler = digit_mixture
    n = 40_000
    eps = np.random.default_rng(0).standard_normal((n, 3)).astype(np.float32)
    drawn = np.asarray(sampler(eps), np.float64)
    weights, means, covariances = sampler.mixture()
    np.testing.assert_allclose(weights, mixture.weights_, rtol=1e-6)
    np.testing.assert_allclose(covariances, mixture.covariances_, rtol=1e-5, atol=1e-6)
    mean, covariance = mixture_moments(weights, means, covariances)
    # Within 4 standard errors of the mixture's mean, and its covariance to 3 %.
    standard_error = np.sqrt(np.diag(covariance) / n)
    assert np.all(np.abs(drawn.mean(axis=0) - mean) < 4 * standard_error)
    np.testing.assert_allclose(np.cov(drawn, rowvar=False), covariance, atol=0.03)
    reference, _ = mixture.sample(n)
    for axis in range(3):
        assert stats.ks_2samp(drawn[:, axis], reference[:, axis]).pvalue > 0.01, axis
    # A direction mixing the axes, where a wrong pairing of means and
    # covariances would show.
    direction = np.array([0.6, -0.64, 0.48])
    assert stats.ks_2samp(drawn @ direction, reference @ direction).pvalue > 0.01
    # The draw is not the prior: the same eps decoded as z = eps would fail.
    assert stats.ks_2samp(eps[:, 0], reference[:, 0]).pvalue < 1e-6


def test_the_component_is_the_inverse_cdf_of_the_first_coordinate():
    sampler = GaussianMixtureSampler(2, components=3)
    weights = np.array([0.2, 0.5, 0.3])
    means = np.array([[-10.0, 0.0], [0.0, 5.0], [10.0, -5.0]])
    covariances = np.array([np.diag([4.0, 1.0]), np.diag([1.0, 9.0]), np.diag([0.25, 1.0])])
    sampler.set_mixture(weights, means, covariances)
    uniforms = np.array([0.1, 0.3, 0.45, 0.69, 0.71, 0.85, 0.999])
    second = np.array([0.0, 1.0, -1.0, 0.5, 2.0, -0.3, 0.7])
    eps = np.stack([stats.norm.ppf(uniforms), second], axis=1).astype(np.float32)
    drawn = np.asarray(sampler(eps), np.float64)
    component = np.array([0, 1, 1, 1, 2, 2, 2])
    lower = np.array([0.0, 0.2, 0.7])[component]
    first = stats.norm.ppf((uniforms - lower) / weights[component])
    scales = np.sqrt(np.stack([np.diag(c) for c in covariances]))[component]
    expected = means[component] + scales * np.stack([first, second], axis=1)
    np.testing.assert_allclose(drawn, expected, atol=2e-4)


def test_diagonal_variances_and_bad_mixtures():
    sampler = GaussianMixtureSampler(2, components=2)
    sampler.set_mixture([1.0, 3.0], [[0.0, 0.0], [1.0, 1.0]], [[1.0, 4.0], [0.25, 1.0]])
    weights, _, covariances = sampler.mixture()
    np.testing.assert_allclose(weights, [0.25, 0.75])
    np.testing.assert_allclose(covariances[0], np.diag([1.0, 4.0]), rtol=1e-6)
    with pytest.raises(TfvaeError, match="positive definite"):
        sampler.set_mixture([0.5, 0.5], np.zeros((2, 2)), [np.eye(2), -np.eye(2)])
    with pytest.raises(TfvaeError, match="2 components in 2 dimensions"):
        sampler.set_mixture([1.0], np.zeros((1, 2)), [np.eye(2)])
    with pytest.raises(TfvaeError, match="components must be a positive integer"):
        GaussianMixtureSampler(2, components=0)


def small_vae(digits_binary, epochs=3, latent_dim=3):
    keras.utils.set_random_seed(0)
    model = VAE(
        Encoder(latent_dim, hidden_units=(32,), probabilistic=True, name="encoder"),
        Decoder((8, 8, 1), hidden_units=(32,), name="decoder"),
        seed=0,
        name="vae",
    )
    model.build((None, 8, 8, 1))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits_binary.x_train, epochs=epochs, batch_size=64, verbose=0)
    return model


def test_a_vae_carries_its_sampler_through_keras_files(digits_binary, tmp_path):
    plain = small_vae(digits_binary)
    assert "latent_sampler" not in plain.get_config()
    means, scales = sampler_fitting.posterior_moments(plain, digits_binary.x_train)
    sampler, _ = sampler_fitting.fit_gaussian_mixture(means, SamplerConfig(components=3))
    fitted = with_latent_sampler(plain, sampler)
    eps = np.random.default_rng(1).standard_normal((32, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(fitted.sample(None, eps=eps)), np.asarray(plain.decode(sampler(eps)))
    )
    # The networks are the plain model's: reconstructions are unchanged.
    x = digits_binary.x_test[:20]
    np.testing.assert_array_equal(np.asarray(fitted(x)), np.asarray(plain(x)))
    run_serialization_test(fitted)
    restored = run_model_saving_test(fitted, x, tmp_path)
    assert isinstance(restored.latent_sampler, GaussianMixtureSampler)
    np.testing.assert_array_equal(
        np.asarray(restored.sample(None, eps=eps)), np.asarray(fitted.sample(None, eps=eps))
    )
    unfitted = with_latent_sampler(restored, None)
    assert unfitted.latent_sampler is None
    np.testing.assert_array_equal(
        np.asarray(unfitted.sample(None, eps=eps)), np.asarray(plain.sample(None, eps=eps))
    )

    two_stage, history = sampler_fitting.fit_two_stage(
        means, scales, SamplerConfig(sampler="two-stage", epochs=3, hidden_units=(32,)), verbose=0
    )
    assert isinstance(two_stage, TwoStageSampler) and len(history["loss"]) == 3
    assert two_stage.stage_two.likelihood.name == "gaussian"
    assert getattr(two_stage.stage_two, "optimizer", None) is None  # uncompiled: saves no state
    fitted = with_latent_sampler(plain, two_stage)
    np.testing.assert_allclose(
        np.asarray(fitted.sample(None, eps=eps)),
        np.asarray(plain.decode(two_stage.stage_two.decode(eps))),
        atol=1e-6,
    )
    (tmp_path / "two").mkdir()
    restored = run_model_saving_test(fitted, x, tmp_path / "two")
    np.testing.assert_array_equal(
        np.asarray(restored.sample(None, eps=eps)), np.asarray(fitted.sample(None, eps=eps))
    )


# --- the command, on a short run of the benchmark's protocol ---


def cli(*argv):
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A VAE trained 8 epochs on mnist5k (binarized, latent 16, batch 128)."""
    run = tmp_path_factory.mktemp("samplers") / "vae"
    assert cli("train", "--epochs", 8, "--quiet", "--out", run) == 0
    return run


def copy_run(run, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(run, copy)
    return copy


@pytest.fixture(scope="module")
def gmm_run(short_run, tmp_path_factory):
    """The short run with a 10-component mixture fitted, and what the command printed."""
    run = copy_run(short_run, tmp_path_factory.mktemp("gmm"), "gmm")
    argv = ["fit-sampler", run, "--sampler", "gmm", "--samples", 500, "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert cli(*argv) == 0
    return run, printed.getvalue()


def test_the_mixture_beats_the_prior_and_travels_to_sample_and_export(short_run, gmm_run, tmp_path):
    run, printed = gmm_run
    assert "Gaussian mixture (10 components, full covariances)" in printed
    record = json.loads((run / "sampler.json").read_text())
    assert record["settings"]["sampler"] == "gmm" and record["settings"]["components"] == 10
    metrics = record["metrics"]
    quality = metrics["sample_quality"]
    prior, mixture = quality["prior_samples"], quality["sampler_samples"]
    # Clearly better samples, and the test codes are likelier under the mixture.
    assert mixture["fid"] < 0.6 * prior["fid"], quality
    assert mixture["kid"] < prior["kid"]
    assert metrics["test_code_nll"] < metrics["test_code_nll_prior"] - 1.0
    assert (run / "samples.png").read_bytes() != (short_run / "samples.png").read_bytes()

    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    assert isinstance(model.latent_sampler, GaussianMixtureSampler)
    assert model.latent_sampler.components == 10
    assert cli("sample", run, "--n", 16, "--out", tmp_path / "a.png") == 0
    assert cli("sample", run, "--n", 16, "--sampler", "prior", "--out", tmp_path / "b.png") == 0
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()

    base = tmp_path / "served"
    assert cli("export", run, "--format", "saved_model", "--base", base) == 0
    loaded = tf.saved_model.load(str(base / "gmm" / "1"))
    eps = np.random.default_rng(3).standard_normal((8, 16)).astype(np.float32)
    exported = loaded.signatures["sample"](eps=tf.constant(eps))["sample"].numpy()
    # The exported sample decodes the mixture's draws, not eps; both in the
    # serving graph (eager Keras and a graph may differ by 1e-3 in the decoder).
    codes = tf.constant(np.asarray(model.latent_sampler(eps)))
    decoded = loaded.signatures["decode"](z=codes)["reconstruction"].numpy()
    np.testing.assert_allclose(exported, decoded, atol=1e-5)
    prior_only = loaded.signatures["decode"](z=tf.constant(eps))["reconstruction"].numpy()
    assert np.abs(exported - prior_only).max() > 0.1


def test_an_interrupted_refit_keeps_the_old_model_and_a_refit_replaces_it(
    gmm_run, tmp_path, monkeypatch, capsys
):
    run = copy_run(gmm_run[0], tmp_path, "two")

    def files():
        return {
            name: (run / name).read_bytes() for name in os.listdir(run) if (run / name).is_file()
        }

    before = files()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(sampler_fitting, "fit_two_stage", interrupted)
        with pytest.raises(KeyboardInterrupt):
            fit_sampler(str(run), SamplerConfig(sampler="two-stage", samples=0))
    assert files() == before
    assert not any(name.startswith(".tmp-") for name in os.listdir(tmp_path))

    argv = ["fit-sampler", run, "--sampler", "two-stage", "--epochs", 5, "--samples", 0]
    assert cli(*argv, "--hidden-units", 64, "--quiet") == 0
    assert "two-stage VAE (hidden units [64], 5 epochs)" in capsys.readouterr().out
    record = json.loads((run / "sampler.json").read_text())
    assert record["settings"]["sampler"] == "two-stage"
    assert "sample_quality" not in record["metrics"]
    # The second stage's negative ELBO bounds -log p2 of the test codes, and
    # after five epochs it is already no worse than N(0, I)'s exact value.
    assert record["metrics"]["test_code_nll"] < record["metrics"]["test_code_nll_prior"] + 1.0
    model = keras.models.load_model(run / "model.keras", safe_mode=True)
    assert isinstance(model.latent_sampler, TwoStageSampler)


@pytest.mark.slow
def test_the_benchmark_protocol_numbers(tmp_path, capsys):
    """The report's numbers: a VAE of the zoo protocol (50 epochs), then each sampler."""
    run = tmp_path / "vae"
    assert cli("train", "--epochs", 50, "--quiet", "--out", run) == 0
    fids = {}
    for sampler in ("gmm", "two-stage"):
        copy = copy_run(run, tmp_path, sampler)
        capsys.readouterr()
        assert cli("fit-sampler", copy, "--sampler", sampler, "--quiet") == 0
        with capsys.disabled():
            print(capsys.readouterr().out)
        quality = json.loads((copy / "sampler.json").read_text())["metrics"]["sample_quality"]
        fids[sampler] = (quality["prior_samples"]["fid"], quality["sampler_samples"]["fid"])
    for prior, fitted in fids.values():
        assert fitted < prior
