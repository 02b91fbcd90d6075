"""FID, KID and precision/recall against direct computations, and on a real trained VAE."""

import hashlib
import json
import os
import time

import keras
import numpy as np
import pytest
import scipy.linalg

from tfvae.cli import main
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation import feature_extractors
from tfvae.evaluation import sample_quality as sq
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import fit_model


def random_covariance(rng, d, rank=None):
    factor = rng.normal(size=(d, rank or d))
    return factor @ factor.T / d + (0.0 if rank else 0.1) * np.eye(d)


def brute_force_mmd_squared(x, y):
    """The unbiased MMD^2 with KID's kernel, one pair at a time."""
    d = x.shape[1]

    def kernel(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    n, m = len(x), len(y)
    xx = sum(kernel(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    yy = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    xy = sum(kernel(a, b) for a in x for b in y)
    return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2.0 * xy / (n * m)


def brute_force_precision_recall(real, generated, k):
    def radii(points):
        return [sorted(np.linalg.norm(points - p, axis=1))[k] for p in points]

    def coverage(points, manifold, radius):
        return np.mean(
            [
                any(np.linalg.norm(p - q) <= r for q, r in zip(manifold, radius, strict=True))
                for p in points
            ]
        )

    return coverage(generated, real, radii(real)), coverage(real, generated, radii(generated))


# === FID ===


def test_psd_sqrt_matches_scipy_sqrtm():
    covariance = random_covariance(np.random.default_rng(0), 6)
    root = sq.psd_sqrt(covariance)
    np.testing.assert_allclose(root, scipy.linalg.sqrtm(covariance).real, atol=1e-10)
    np.testing.assert_allclose(root @ root, covariance, atol=1e-10)


def test_frechet_distance_matches_a_direct_sqrtm_computation():
    rng = np.random.default_rng(1)
    for d in (1, 3, 8):
        mean_a, mean_b = rng.normal(size=d), rng.normal(size=d)
        cov_a, cov_b = random_covariance(rng, d), random_covariance(rng, d)
        direct = (
            np.sum((mean_a - mean_b) ** 2)
            + np.trace(cov_a + cov_b)
            - 2.0 * np.trace(scipy.linalg.sqrtm(cov_a @ cov_b).real)
        )
        assert sq.frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(direct, rel=1e-9)
        assert sq.frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_closed_form_for_diagonal_covariances():
    # With diagonal covariances it is |mean_a - mean_b|^2 + sum (std_a - std_b)^2.
    mean_a, mean_b = np.array([0.0, 1.0, -2.0, 0.5]), np.array([1.0, 1.0, 0.0, 0.0])
    std_a, std_b = np.array([1.0, 2.0, 0.5, 3.0]), np.array([2.0, 0.5, 0.5, 1.0])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((std_a - std_b) ** 2)
    distance = sq.frechet_distance(mean_a, np.diag(std_a**2), mean_b, np.diag(std_b**2))
    assert distance == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_stays_real_for_singular_covariances():
    # Rank 2 in 6 dimensions, as features with dead units give: sqrtm of the
    # non-symmetric product goes complex or inaccurate, the symmetric form does not.
    rng = np.random.default_rng(2)
    cov_a, cov_b = random_covariance(rng, 6, rank=2), random_covariance(rng, 6, rank=2)
    mean = np.zeros(6)
    distance = sq.frechet_distance(mean, cov_a, mean, cov_b)
    root_a = scipy.linalg.sqrtm(cov_a).real
    symmetric = np.trace(cov_a + cov_b) - 2.0 * np.trace(
        scipy.linalg.sqrtm(root_a @ cov_b @ root_a).real
    )
    assert distance == pytest.approx(symmetric, rel=1e-6)
    assert sq.frechet_distance(mean, cov_a, mean, cov_a) == pytest.approx(0.0, abs=1e-9)


def test_fid_of_gaussian_samples_approaches_the_distance_of_their_gaussians():
    rng = np.random.default_rng(3)
    mean_a, mean_b = np.array([0.0, 0.0, 0.0]), np.array([1.0, -0.5, 0.0])
    cov_a, cov_b = random_covariance(rng, 3), random_covariance(rng, 3)
    a = rng.multivariate_normal(mean_a, cov_a, size=200_000)
    b = rng.multivariate_normal(mean_b, cov_b, size=200_000)
    mean, covariance = sq.feature_statistics(a)
    np.testing.assert_allclose(mean, a.mean(axis=0))
    np.testing.assert_allclose(covariance, np.cov(a.T))
    expected = sq.frechet_distance(mean_a, cov_a, mean_b, cov_b)
    assert sq.frechet_inception_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert sq.frechet_inception_distance(a, a) == pytest.approx(0.0, abs=1e-9)


# === KID ===


def test_unbiased_mmd_matches_brute_force():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.5, size=(9, 5))
    assert sq.unbiased_mmd_squared(x, y) == pytest.approx(brute_force_mmd_squared(x, y), rel=1e-10)


def test_kid_matches_brute_force_over_disjoint_subsets():
    rng = np.random.default_rng(5)
    real, generated = rng.normal(size=(40, 4)), rng.normal(0.3, 1.0, size=(33, 4))
    kid, std_error = sq.kernel_inception_distance(real, generated, subsets=4, seed=7)
    # The documented subsets: a permutation of each set, cut into blocks of min(n, m) // 4.
    order = np.random.default_rng(7)
    real, generated = real[order.permutation(40)], generated[order.permutation(33)]
    estimates = [
        brute_force_mmd_squared(real[8 * j : 8 * j + 8], generated[8 * j : 8 * j + 8])
        for j in range(4)
    ]
    assert kid == pytest.approx(np.mean(estimates), rel=1e-10)
    assert std_error == pytest.approx(np.std(estimates, ddof=1) / 2.0, rel=1e-10)


def test_kid_is_unbiased_for_one_distribution_and_positive_for_two():
    rng = np.random.default_rng(6)
    same = [
        sq.kernel_inception_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)))[0]
        for _ in range(40)
    ]
    # The mean of 40 unbiased estimates of 0 is within 4 of its standard errors of 0.
    assert abs(np.mean(same)) < 4 * np.std(same, ddof=1) / np.sqrt(len(same))
    kid, std_error = sq.kernel_inception_distance(
        rng.normal(size=(200, 8)), rng.normal(0.5, 1.0, size=(200, 8))
    )
    assert kid > 5 * std_error > 0


# === precision and recall ===


def test_precision_recall_of_identical_sets_is_one():
    points = np.random.default_rng(7).normal(size=(50, 3))
    assert sq.precision_recall(points, points.copy()) == (1.0, 1.0)


def test_precision_recall_of_far_apart_sets_is_zero():
    rng = np.random.default_rng(8)
    real, generated = rng.normal(size=(50, 3)), rng.normal(100.0, 1.0, size=(50, 3))
    assert sq.precision_recall(real, generated) == (0.0, 0.0)


def test_precision_recall_of_a_subset():
    # Real examples at 0, 1, ..., 99 on a line; generated ones the first half.
    # The generated manifold reaches 3 past its last point (49's 3rd neighbour
    # is 46), so it covers the real points 0..52: recall 53%, precision 100%.
    line = np.arange(100.0)[:, None]
    assert sq.precision_recall(line, line[:50], k=3) == (1.0, 0.53)
    assert sq.nearest_neighbour_radii(line[:50], k=3)[[0, 1, 25, 49]] == pytest.approx(
        [3.0, 2.0, 2.0, 3.0]
    )


def test_precision_recall_match_brute_force():
    rng = np.random.default_rng(9)
    real, generated = rng.normal(size=(60, 4)), rng.normal(0.4, 1.3, size=(45, 4))
    for k in (1, 3, 5):
        precision, recall = sq.precision_recall(real, generated, k=k)
        expected = brute_force_precision_recall(real, generated, k)
        assert (precision, recall) == pytest.approx(expected)


def test_bad_feature_sets_are_refused():
    with pytest.raises(TfvaeError, match="k must be below the number of examples"):
        sq.precision_recall(np.zeros((3, 2)), np.ones((3, 2)), k=3)
    with pytest.raises(TfvaeError, match="KID needs at least 2 subsets"):
        sq.kernel_inception_distance(np.zeros((10, 2)), np.ones((10, 2)), subsets=6)
    with pytest.raises(TfvaeError, match=r"must be features \[n, d\]"):
        sq.frechet_inception_distance(np.zeros((10, 2, 2)), np.ones((10, 2)))
    with pytest.raises(TfvaeError, match="NaN or Inf"):
        sq.frechet_inception_distance(np.full((10, 2), np.nan), np.ones((10, 2)))


# === feature extractors ===


def test_shipped_classifier_is_small_and_as_accurate_as_its_metadata_says():
    metadata = feature_extractors.digit_metadata()
    weights = feature_extractors._asset(feature_extractors.DIGIT_WEIGHTS).read_bytes()
    assert len(weights) < 1_000_000
    assert hashlib.sha256(weights).hexdigest() == metadata["weights_sha256"]
    classifier = feature_extractors.build_digit_classifier()
    classifier.load_weights(str(feature_extractors._asset(feature_extractors.DIGIT_WEIGHTS)))
    assert classifier.count_params() == metadata["parameters"]
    data = load_dataset("mnist5k")
    predicted = np.argmax(classifier.predict(data.x_test, verbose=0), axis=1)
    accuracy = float(np.mean(predicted == data.y_test))
    assert accuracy == pytest.approx(metadata["test_accuracy"], abs=0.002)
    assert accuracy > 0.95
    # The features come in units where their root mean square over training digits is 1.
    features = feature_extractors.feature_extractor("mnist")(data.x_train)
    assert np.sqrt(np.mean(features**2)) == pytest.approx(1.0, abs=0.1)


def test_digit_features_of_28x28_flat_and_8x8_digits(digits):
    extractor = feature_extractors.feature_extractor("mnist")
    mnist = load_dataset("mnist5k").x_test[:20]
    features = extractor(mnist)
    assert features.shape == (20, feature_extractors.DIGIT_FEATURE_DIM)
    np.testing.assert_allclose(extractor(mnist.reshape(20, 784)), features, atol=1e-5)
    # scikit-learn's 8x8 digits fill MNIST's central 20x20 box.
    frames = feature_extractors.to_digit_frame(digits.x_test)
    assert frames.shape == (len(digits.x_test), 28, 28, 1)
    assert frames[:, :4].max() == 0.0 and frames[:, 24:].max() == 0.0
    assert frames[:, 4:24, 4:24].max() > 0.9
    assert extractor(digits.x_test).shape == (len(digits.x_test), 64)


def test_digit_features_refuse_colour_other_sizes_and_non_digit_data():
    extractor = feature_extractors.feature_extractor("mnist")
    with pytest.raises(TfvaeError, match="not colour images; use --features inception"):
        extractor(np.zeros((4, 28, 28, 3), np.float32))
    with pytest.raises(TfvaeError, match="Received: 16x16 images"):
        extractor(np.zeros((4, 16, 16, 1), np.float32))
    with pytest.raises(TfvaeError, match="square number of features"):
        extractor(np.zeros((4, 10), np.float32))
    with pytest.raises(TfvaeError, match="describe digits, not fashion_mnist"):
        extractor.check_dataset("fashion_mnist")
    extractor.check_dataset("mnist5k")
    with pytest.raises(TfvaeError, match="unknown features 'lenet'"):
        feature_extractors.feature_extractor("lenet")


def test_any_callable_can_give_the_features():
    def mean_intensity(images):
        return images.mean(axis=(1, 2))

    extractor = feature_extractors.feature_extractor(mean_intensity)
    images = np.random.default_rng(10).uniform(size=(5, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(extractor(images), images.mean(axis=(1, 2)), rtol=1e-6)
    assert extractor.name == "mean_intensity"
    with pytest.raises(TfvaeError, match=r"must return \[n, d\] features for n images"):
        feature_extractors.feature_extractor(lambda images: images[:2, 0, 0])(images)


def test_inception_without_cached_weights_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    start = time.perf_counter()
    with pytest.raises(TfvaeError) as error:
        feature_extractors.feature_extractor("inception")
    assert time.perf_counter() - start < 1.0
    message = str(error.value)
    assert "\n" not in message
    assert str(tmp_path / "models" / feature_extractors.INCEPTION_WEIGHTS) in message
    assert "--features mnist" in message


@pytest.mark.slow
def test_inception_features_from_cached_weights(tmp_path, monkeypatch):
    # Randomly initialised weights stand in for ImageNet's, which need internet,
    # in the legacy HDF5 layout of the file Keras downloads.
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    (tmp_path / "models").mkdir()
    with h5py.File(tmp_path / "models" / feature_extractors.INCEPTION_WEIGHTS, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(
            f, keras.applications.InceptionV3(include_top=False, weights=None)
        )
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    extractor = feature_extractors.feature_extractor("inception")
    images = load_dataset("mnist5k").x_test[:3]
    features = extractor(images)
    assert features.shape == (3, 2048)
    assert np.all(np.isfinite(features))
    colour = extractor(np.repeat(images, 3, axis=-1))
    np.testing.assert_allclose(colour, features, rtol=1e-4, atol=1e-5)


# === on trained models ===


@pytest.fixture(scope="module")
def trained_vae(mnist5k_binary):
    config = TrainConfig(dataset="mnist5k", epochs=5, hidden_units=(256,), seed=0)
    model, _ = fit_model(config, mnist5k_binary, validation=False, verbose=0)
    return model


def test_reconstructions_beat_prior_samples_beat_noise(trained_vae, mnist5k_binary):
    quality = sq.sample_quality(trained_vae, mnist5k_binary, 1000)
    samples, reconstructions, real, noise = (
        quality["prior_samples"],
        quality["reconstructions"],
        quality["training_examples"],
        quality["noise"],
    )
    assert quality["reference_examples"] == samples["examples"] == reconstructions["examples"]
    assert real["fid"] < reconstructions["fid"] < samples["fid"] < noise["fid"]
    assert real["kid"] < reconstructions["kid"] < samples["kid"] < noise["kid"]
    assert real["precision"] > 0.5 and real["recall"] > 0.5
    assert samples["kid"] > 3 * samples["kid_std_error"]
    # Noise covers no digit. (Its precision says little: its features collapse
    # to one point, inside the balls of a few low-confidence test digits.)
    assert noise["recall"] == 0.0
    assert samples["precision"] > 0.5 and reconstructions["precision"] > 0.5
    # Seeded: the same numbers again.
    again = sq.sample_quality(
        trained_vae, mnist5k_binary, 1000, features=feature_extractors.digit_features()
    )
    assert again["prior_samples"] == samples
    report = sq.format_sample_quality(quality)
    assert quality["sample_source"] == "prior"
    assert "prior samples" in report and f"{samples['fid']:.2f}" in report


def test_samples_of_a_fitted_sampler_are_labelled_with_it(trained_vae, mnist5k_binary):
    from tfvae.models.gaussian_mixture_sampler import GaussianMixtureSampler
    from tfvae.training.sampler_fitting import with_latent_sampler

    d = trained_vae.latent_dim
    sampler = GaussianMixtureSampler(d, components=1, name="latent_sampler")
    # Codes shrunk to half the prior's scale: samples differ from the prior's.
    sampler.set_mixture(np.ones(1), np.zeros((1, d)), np.full((1, d), 0.25))
    model = with_latent_sampler(trained_vae, sampler)
    assert model.sample_source == "GaussianMixtureSampler"
    quality = sq.sample_quality(model, mnist5k_binary, 500)
    prior = sq.sample_quality(trained_vae, mnist5k_binary, 500)
    assert quality["sample_source"] == "GaussianMixtureSampler"
    assert quality["prior_samples"]["fid"] != prior["prior_samples"]["fid"]
    assert quality["reconstructions"] == prior["reconstructions"]
    report = sq.format_sample_quality(quality)
    assert "samples (GaussianMixtureSampler)" in report and "prior samples" not in report


def test_a_family_without_a_prior_scores_reconstructions_only(digits):
    config = TrainConfig(
        model="ae", dataset="digits", epochs=30, hidden_units=(64,), latent_dim=8, seed=0
    )
    model, _ = fit_model(config, digits, validation=False, verbose=0)
    quality = sq.sample_quality(model, digits, 100)
    assert "prior_samples" not in quality
    assert quality["reconstructions"]["examples"] == len(digits.x_test)
    assert quality["reconstructions"]["fid"] < quality["noise"]["fid"]
    with pytest.raises(TfvaeError, match="needs at least 20 examples"):
        sq.sample_quality(model, digits, 5)


def test_evaluate_cli_writes_sample_quality(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    args = ["--dataset", "digits", "--hidden-units", "32", "--latent-dim", "4"]
    assert main(["train", *args, "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--nll-samples", "0", "--samples", "200"]) == 0
    report = capsys.readouterr().out
    written = json.loads((run / "sample_quality.json").read_text())
    assert written["features"] == "mnist" and written["prior_samples"]["examples"] == 200
    assert f"{written['prior_samples']['fid']:.2f}" in report
    # Offline InceptionV3 and a bad count fail before the evaluation, in one line.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    for flags, message in (
        (["--features", "inception"], "InceptionV3 weights are not in the Keras cache"),
        (["--samples", "-1"], "--samples must be >= 0"),
        (["--samples", "3"], "Received: --samples=3"),
    ):
        samples = [] if "--samples" in flags else ["--samples", "100"]
        assert main(["evaluate", str(run), *samples, *flags]) == 2
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == ""
    assert not [name for name in os.listdir(run) if name.startswith(".tmp")]
