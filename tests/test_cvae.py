"""The conditional VAE: maths, conditioning, Keras API, refusals, the whole pipeline, the acceptance test."""

import csv
import dataclasses
import json
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test

from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.math import losses
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models import registry
from tfvae.models.cvae import CVAE
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import fit_model
from tfvae.training.runs import check_run_data
from tfvae.training.runs import load_run
from tfvae.training.trainer import train

tfd = tfp.distributions
SUBPROCESS_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def small_cvae(arch="dense", latent_dim=3, conditional_prior=False, seed=0, input_dropout=0.0):
    keras.utils.set_random_seed(seed)
    cvae = CVAE(
        Encoder(latent_dim, arch=arch, hidden_units=(32,), filters=(8, 16), probabilistic=True),
        Decoder((8, 8, 1), arch=arch, hidden_units=(32,), filters=(8, 16)),
        num_classes=10,
        conditional_prior=conditional_prior,
        seed=seed,
        input_dropout=input_dropout,
    )
    cvae.build((None, 8, 8, 1))
    cvae.compile(optimizer=keras.optimizers.Adam(3e-3))
    return cvae


def _normal(mu, sigma):
    return tfd.Independent(tfd.Normal(loc=mu, scale=sigma), reinterpreted_batch_ndims=1)


def test_kl_between_diagonal_gaussians_matches_tfp_and_the_standard_normal_case():
    rng = np.random.default_rng(0)
    mu_q, mu_p = rng.normal(size=(2, 64, 5)).astype(np.float32) * 2
    sigma_q, sigma_p = np.exp(rng.normal(size=(2, 64, 5))).astype(np.float32)
    ours = losses.kl_diagonal_normals(mu_q, sigma_q, mu_p, sigma_p).numpy()
    reference = tfd.kl_divergence(_normal(mu_q, sigma_q), _normal(mu_p, sigma_p)).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5)
    # The closed form of one unit: KL(N(1, 2^2) || N(-1, 0.5^2)) = log(0.25) + (4 + 4) / 0.5 - 0.5.
    one = losses.kl_diagonal_normals([[1.0]], [[2.0]], [[-1.0]], [[0.5]]).numpy()
    np.testing.assert_allclose(one, [np.log(0.25) + 8.0 / 0.5 - 0.5], rtol=1e-6)
    standard = losses.kl_diagonal_normals(mu_q, sigma_q, np.zeros_like(mu_q), np.ones_like(mu_q))
    np.testing.assert_allclose(
        standard, losses.kl_normal_standard_normal(mu_q, sigma_q), rtol=1e-5, atol=1e-6
    )
    # Exact when both scales are tiny and equal.
    np.testing.assert_allclose(
        losses.kl_diagonal_normals([[0.0]], [[1e-6]], [[0.0]], [[1e-6]]), [0]
    )


@pytest.mark.parametrize("arch", ["dense", "conv"])
def test_labels_condition_encoder_and_decoder(arch, digits_binary):
    cvae = small_cvae(arch)
    # Dense: the flattened image and the one-hot label; conv: 10 constant label channels.
    expected = (None, 74) if arch == "dense" else (None, 8, 8, 11)
    assert tuple(cvae.encoder.get_build_config()["input_shape"]) == expected
    assert cvae.data_shape_of_encoder_input(expected[1:]) == (8, 8, 1)
    x = digits_binary.x_test[:6]
    ones, sevens = np.ones(6, np.int32), np.full(6, 7, np.int32)
    # The same x and z give other posteriors and other images under another label.
    assert not np.allclose(cvae.encode(x, ones)[0], cvae.encode(x, sevens)[0])
    z = np.zeros((6, 3), np.float32)
    assert not np.allclose(cvae.decode(z, ones), cvae.decode(z, sevens))
    np.testing.assert_array_equal(
        cvae.transfer(x, ones, sevens), cvae.decode(cvae.encode(x, ones)[0], sevens)
    )
    # The pair and the two arguments are the same call.
    np.testing.assert_array_equal(cvae.latent_code((x, ones)), cvae.latent_code(x, ones))
    np.testing.assert_array_equal(cvae.reconstruct(x, ones), cvae((x, ones)))


def test_learned_prior_starts_at_the_standard_normal_and_its_kl_is_tfps(digits_binary):
    cvae = small_cvae(conditional_prior=True)
    x, y = digits_binary.x_train[:64], digits_binary.y_train[:64]
    mean, scale = cvae.prior_parameters(cvae.one_hot(y))
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(scale, 1.0)
    cvae.fit(x, y, epochs=5, batch_size=16, verbose=0)
    mean, scale = (np.asarray(t) for t in cvae.prior_parameters(cvae.one_hot(y)))
    assert np.abs(mean).max() > 1e-3  # it learned
    # One prior per class: equal labels, equal priors.
    same = np.flatnonzero(y == y[0])
    np.testing.assert_array_equal(mean[same], np.broadcast_to(mean[same[0]], mean[same].shape))
    eps = np.zeros((64, 3), np.float32)
    terms = cvae.per_example_losses(x, y, eps=eps)
    reference = tfd.kl_divergence(cvae.posterior(x, y), cvae.prior(y))
    np.testing.assert_allclose(terms["kl_loss"], reference, rtol=1e-5, atol=1e-6)


def test_fit_on_arrays_and_on_a_dataset_of_pairs_then_sample_by_label(digits_binary):
    data = digits_binary
    cvae = small_cvae(seed=1)
    history = cvae.fit(
        data.x_train,
        data.y_train,
        epochs=3,
        batch_size=64,
        validation_data=(data.x_val, data.y_val),
        verbose=0,
    ).history
    assert history["neg_elbo"][-1] < history["neg_elbo"][0]
    np.testing.assert_allclose(
        history["neg_elbo"], np.add(history["reconstruction_loss"], history["kl_loss"]), rtol=1e-5
    )
    pairs = tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).batch(64)
    more = cvae.fit(pairs, epochs=1, verbose=0).history
    assert more["neg_elbo"][0] < history["neg_elbo"][0]
    result = cvae.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
    assert 10 < result["neg_elbo"] < 45  # nats for 64 binary pixels: learned, not trivial
    assert cvae.predict((data.x_test, data.y_test), verbose=0).shape == data.x_test.shape
    samples = np.asarray(cvae.sample([0, 3, 3], eps=np.zeros((3, 3), np.float32)))
    assert samples.shape == (3, 8, 8, 1) and samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_array_equal(samples[1], samples[2])
    assert not np.allclose(samples[0], samples[1])
    assert np.asarray(cvae.sample([5, 5])).shape == (2, 8, 8, 1)


def _message(error):
    return str(error.value)


def test_missing_fractional_and_out_of_range_labels_are_refused_in_one_line(digits_binary):
    data = digits_binary
    cvae = small_cvae()
    x, y = data.x_train[:64], data.y_train[:64]
    cases = [
        (lambda: cvae.fit(x, epochs=1, verbose=0), "needs y"),
        (lambda: cvae.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), verbose=0), "needs"),
        (lambda: cvae.predict(x, verbose=0), "needs labels"),
        (lambda: cvae(x), "needs labels"),
        (lambda: cvae.fit(x, y + 10, epochs=1, verbose=0), r"classes in \[0, 10\)"),
        (lambda: cvae.fit(x, y - 1.5, epochs=1, verbose=0), "whole numbers"),
        (lambda: cvae.fit(x, y[:10], epochs=1, verbose=0), "64 examples"),
        (lambda: cvae.fit(x, y, validation_data=(x, y + 20), verbose=0), "validation y"),
        (lambda: cvae.evaluate(x, -y - 1, verbose=0), r"\[0, 10\)"),
        (lambda: cvae.sample([11]), r"\[0, 10\)"),
        (lambda: cvae.sample(3), "one class label per sample"),
        (lambda: cvae.sample([1, 2], eps=np.zeros((3, 3))), "eps must have shape"),
        (
            lambda: cvae.fit(
                tf.data.Dataset.from_tensor_slices((x, y + 5)).batch(16), epochs=1, verbose=0
            ),
            r"classes in \[0, 10\)",
        ),
    ]
    for call, pattern in cases:
        with pytest.raises(TfvaeError, match=pattern) as error:
            call()
        assert "\n" not in _message(error)
    # Still trains after the refusals.
    assert np.isfinite(cvae.fit(x, y, epochs=1, verbose=0).history["loss"][0])
    with pytest.raises(TfvaeError, match="at least 2"):
        CVAE(Encoder(2, probabilistic=True), Decoder((8, 8, 1)), num_classes=1)
    with pytest.raises(TfvaeError, match="iwae_samples must be 1"):
        CVAE(Encoder(2, probabilistic=True), Decoder((8, 8, 1)), iwae_samples=4)


@pytest.mark.parametrize(
    "arch, conditional_prior", [("dense", True), ("conv", False)], ids=["dense-prior", "conv"]
)
def test_keras_round_trip_gives_identical_outputs(arch, conditional_prior, digits_binary, tmp_path):
    cvae = small_cvae(arch, conditional_prior=conditional_prior)
    x, y = digits_binary.x_train[:64], digits_binary.y_train[:64]
    cvae.fit(x, y, epochs=1, batch_size=32, verbose=0)
    run_serialization_test(cvae)
    restored = run_model_saving_test(cvae, (digits_binary.x_test, digits_binary.y_test), tmp_path)
    eps = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
    labels = np.arange(10)
    np.testing.assert_array_equal(restored.sample(labels, eps=eps), cvae.sample(labels, eps=eps))
    np.testing.assert_array_equal(restored.score(x, y)["score"], cvae.score(x, y)["score"])


def test_mirrored_training_matches_one_device_with_an_uneven_last_batch(
    digits_binary, two_cpu_strategies
):
    x, y = digits_binary.x_train[:100], digits_binary.y_train[:100]  # batches 32, 32, 32, 4

    def train(strategy):
        with strategy.scope():
            cvae = small_cvae(seed=5, conditional_prior=True, input_dropout=0.2)
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
        history = cvae.fit(dataset, epochs=1, verbose=0, shuffle=False).history
        return [v.numpy() for v in cvae.weights], history

    one_device, mirrored_strategy = two_cpu_strategies
    single_weights, single = train(one_device)
    mirrored_weights, mirrored = train(mirrored_strategy)
    for a, b in zip(single_weights, mirrored_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for name in ("loss", "reconstruction_loss", "kl_loss", "neg_elbo"):
        np.testing.assert_allclose(single[name], mirrored[name], rtol=1e-5)


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory):
    """A run of `tfvae train --model cvae` on digits, with a learned prior."""
    run = tmp_path_factory.mktemp("runs") / "cvae-digits"
    assert main(["train", "--model", "cvae", "--dataset", "digits", "--hidden-units", "32",
                 "--latent-dim", "2", "--conditional-prior", "--epochs", "3",
                 "--no-tensorboard", "--out", str(run), "--quiet"]) == 0  # fmt: skip
    return run


def test_train_and_evaluate_a_run_through_the_cli(cvae_run, capsys):
    """`tfvae train --model cvae`, `tfvae evaluate`: labels go all the way."""
    files = set(os.listdir(cvae_run))
    assert {"class_samples.png", "reconstructions.png", "latent_space.png"} <= files
    assert "samples.png" not in files  # the unconditional prior's figure does not apply
    metrics = json.loads((cvae_run / "metrics.json").read_text())
    assert metrics["active_units"] >= 1 and metrics["neg_elbo"] < metrics["baseline_nll"]
    capsys.readouterr()
    assert main(["evaluate", str(cvae_run), "--nll-samples", "20"]) == 0
    out = capsys.readouterr().out
    nll = float(out.split("importance-sampled (K=20):")[1].split()[0])
    # -log p(x | y) with K = 20 is a tighter bound than the negative ELBO.
    assert nll <= metrics["neg_elbo"] + 0.5


def _export_and_show(run, base, form):
    assert main(["export", str(run), "--base", str(base), "--format", form]) == 0
    name = os.path.basename(run)
    show = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", str(base / name / "1")],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        check=True,
    ).stdout
    return {
        block.split("']", 1)[0]: block
        for block in show.split("signature_def['")[1:]
        if "Method name is: tensorflow/serving/predict" in block
    }


def test_saved_model_signatures_take_int32_labels(cvae_run, tmp_path):
    blocks = _export_and_show(cvae_run, tmp_path, "saved_model")
    expected = {"serving_default": "x", "encode": "x", "decode": "z", "sample": "eps", "score": "x"}
    assert set(blocks) == set(expected)
    for name, first in expected.items():
        assert f"inputs['{first}'] tensor_info" in blocks[name]
        assert (
            "inputs['y'] tensor_info:\n        dtype: DT_INT32\n        shape: (-1)" in blocks[name]
        )
        assert blocks[name].count("inputs['") == 2


@pytest.mark.slow
def test_every_export_format_is_verified_in_litert(cvae_run, tmp_path):
    """SavedModel and the float32, dynamic-range and int8 TFLite files, each checked."""
    _export_and_show(cvae_run, tmp_path, "all")
    name = os.path.basename(cvae_run)
    # Every form was run (TFLite in LiteRT) and held to its tolerance before it was written.
    written = set(os.listdir(tmp_path / name / "tflite" / "1"))
    assert {"float32.tflite", "dynamic_range.tflite", "int8.tflite", "verification.json"} <= written


def test_a_run_refuses_data_whose_labels_the_model_does_not_know(cvae_run, tmp_path, digits_binary):
    saved_config, model = load_run(str(cvae_run))
    assert registry.model_settings(model)["num_classes"] == 10
    # As if the data set now had 15 classes.
    changed = dataclasses.replace(digits_binary, y_test=digits_binary.y_test + 5)
    with pytest.raises(TfvaeError, match=r"classes in \[0, 10\)") as error:
        check_run_data(str(cvae_run), saved_config, model, changed)
    assert "\n" not in _message(error)
    # Training refuses labels beyond --num-classes before anything is written.
    with pytest.raises(TfvaeError, match=r"num-classes 5"):
        train(TrainConfig(model="cvae", dataset="digits", num_classes=5, epochs=1,
                          out=str(tmp_path / "five")), verbose=0)  # fmt: skip
    assert not os.path.exists(tmp_path / "five")


@pytest.mark.slow
def test_a_two_trial_search_tunes_the_conditional_vae(tmp_path, capsys):
    directory = tmp_path / "search"
    assert main(["tune", "--model", "cvae", "--dataset", "digits", "--hidden-units", "32",
                 "--epochs", "2", "--max-trials", "2", "--latent-dims", "2", "4",
                 "--dir", str(directory)]) == 0  # fmt: skip
    with open(directory / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)
    # The best trial is written as a run, with the conditional figure.
    assert os.path.isfile(directory / "best" / "class_samples.png")
    _, model = load_run(str(directory / "best"))
    assert isinstance(model, CVAE)


def _digit_classifier(data):
    """Logistic regression on 50 principal components of the real training images."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # Whitened components: the regression converges in a few dozen steps.
    classifier = make_pipeline(
        PCA(50, whiten=True, svd_solver="randomized", random_state=0),
        LogisticRegression(max_iter=300),
    )
    classifier.fit(data.x_train.reshape(len(data.x_train), -1), data.y_train)
    return classifier


def _class_accuracy(model, classifier, per_class=100, seed=0):
    labels = np.repeat(np.arange(10), per_class)
    eps = np.random.default_rng(seed).standard_normal((len(labels), model.latent_dim))
    samples = np.asarray(model.sample(labels, eps=eps.astype(np.float32)))  # decoder means
    predicted = classifier.predict(samples.reshape(len(samples), -1))
    return float(np.mean(predicted == labels))


@pytest.fixture(scope="module")
def mnist5k_classifier():
    from tfvae.data.datasets import load_dataset

    gray = load_dataset("mnist5k")
    classifier = _digit_classifier(gray)
    accuracy = classifier.score(gray.x_test.reshape(len(gray.x_test), -1), gray.y_test)
    assert accuracy > 0.88  # the classifier itself on the real test digits: 0.906
    return classifier


def test_samples_of_each_class_are_recognised_as_that_class(mnist5k_binary, mnist5k_classifier):
    """The issue's acceptance test: >= 90% of 100 samples per class are classified as asked.

    Measured: 0.970 (20 epochs, latent_dim 2, seed 0).
    """
    config = TrainConfig(
        model="cvae", dataset="mnist5k", hidden_units=(256,), latent_dim=2, epochs=20,
        tensorboard=False,
    )  # fmt: skip
    model, history = fit_model(config, mnist5k_binary, verbose=0)
    assert history["val_neg_elbo"][-1] < history["val_neg_elbo"][0]
    accuracy = _class_accuracy(model, mnist5k_classifier)
    print(f"cvae class accuracy of samples: {accuracy:.3f}")
    assert accuracy >= 0.90


@pytest.mark.slow
@pytest.mark.parametrize("conditional_prior", [False, True], ids=["n01-prior", "learned-prior"])
def test_longer_runs_with_a_larger_code_keep_the_samples_recognisable(
    mnist5k_binary, mnist5k_classifier, conditional_prior
):
    config = TrainConfig(
        model="cvae", dataset="mnist5k", hidden_units=(512,), latent_dim=4, epochs=50,
        conditional_prior=conditional_prior, tensorboard=False,
    )  # fmt: skip
    model, _ = fit_model(config, mnist5k_binary, verbose=0)
    accuracy = _class_accuracy(model, mnist5k_classifier)
    print(f"cvae class accuracy of samples (conditional_prior={conditional_prior}): {accuracy:.3f}")
    assert accuracy >= 0.90
