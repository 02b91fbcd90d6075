import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_sample_weight_test
from model_test_case import run_serialization_test
from model_test_case import run_serving_functions_test
from model_test_case import run_takes_no_labels_test

from tfvae.errors import TfvaeError
from tfvae.models import Autoencoder
from tfvae.models import Decoder
from tfvae.models import Encoder


def small_ae(arch="dense", likelihood="gaussian", latent_dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    ae = Autoencoder(
        Encoder(latent_dim, arch=arch, hidden_units=(32,), filters=(8, 16)),
        Decoder((8, 8, 1), arch=arch, hidden_units=(32,), filters=(8, 16)),
        likelihood=likelihood,
    )
    ae.build((None, 8, 8, 1))
    return ae


@pytest.mark.parametrize("arch", ["dense", "conv"])
@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_keras_round_trip_gives_identical_outputs(arch, likelihood, digits, tmp_path):
    ae = small_ae(arch, likelihood, latent_dim=6)
    ae.compile(optimizer="adam")
    ae.fit(digits.x_train[:64], epochs=1, batch_size=32, verbose=0)
    run_serialization_test(ae)
    restored = run_model_saving_test(ae, digits.x_test[:20], tmp_path)
    assert restored.latent_dim == 6 and restored.likelihood.name == likelihood


def test_gaussian_output_is_identity_and_bernoulli_is_sigmoid(digits):
    x = digits.x_test[:5]
    gaussian = small_ae(likelihood="gaussian")
    raw = gaussian.decoder(gaussian.encoder(x)).numpy()
    np.testing.assert_allclose(gaussian.predict(x, verbose=0), raw, rtol=1e-6, atol=1e-6)
    bernoulli = small_ae(likelihood="bernoulli")
    raw = bernoulli.decoder(bernoulli.encoder(x)).numpy()
    np.testing.assert_allclose(
        bernoulli.predict(x, verbose=0), 1 / (1 + np.exp(-raw)), rtol=1e-5, atol=1e-6
    )


def test_mse_falls_and_evaluate_reports_it(digits):
    ae = small_ae()
    ae.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = ae.fit(
        digits.x_train, epochs=8, batch_size=64, validation_data=(digits.x_val,), verbose=0
    ).history
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    result = ae.evaluate(digits.x_test, verbose=0, return_dict=True)
    mse = np.mean((ae.predict(digits.x_test, verbose=0) - digits.x_test) ** 2)
    assert result["reconstruction_loss"] == pytest.approx(mse, rel=1e-4)


def test_denoising_pairs_train_towards_the_clean_target(digits):
    ae = small_ae()
    ae.compile(optimizer="adam")
    noisy = np.clip(
        digits.x_train + 0.3 * np.random.default_rng(0).normal(size=digits.x_train.shape), 0, 1
    ).astype(np.float32)
    result = ae.evaluate(noisy, digits.x_train, verbose=0, return_dict=True)
    expected = np.mean((ae.predict(noisy, verbose=0) - digits.x_train) ** 2)
    assert result["reconstruction_loss"] == pytest.approx(expected, rel=1e-4)


def test_mirrored_training_matches_one_device_with_an_uneven_last_batch(digits, two_cpu_strategies):
    """The loss is averaged over the global batch, so replica gradients sum to the one-device gradient."""
    x = digits.x_train[:100]  # batches of 32: 32, 32, 32, 4

    def train(strategy):
        with strategy.scope():
            ae = small_ae(seed=7)
            ae.compile(optimizer=keras.optimizers.SGD(0.5))
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(32)
        history = ae.fit(dataset, epochs=2, verbose=0, shuffle=False).history
        return [v.numpy() for v in ae.weights], history["loss"]

    one_device, mirrored_strategy = two_cpu_strategies
    single_weights, single_loss = train(one_device)
    mirrored_weights, mirrored_loss = train(mirrored_strategy)
    for a, b in zip(single_weights, mirrored_weights, strict=False):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(single_loss, mirrored_loss, rtol=1e-5)


def independent_reconstruction_error(ae, x):
    """Per-example MSE or binary cross-entropy per feature, in float64 NumPy."""
    params = np.asarray(ae.decoder(ae.encoder(x)), np.float64).reshape(len(x), -1)
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if ae.likelihood.name == "gaussian":
        return np.mean((params - x) ** 2, axis=1)
    return np.mean(np.logaddexp(0.0, params) - x * params, axis=1)


@pytest.mark.parametrize(
    "likelihood,description",
    [
        ("gaussian", "reconstruction error (mean squared error per feature)"),
        ("bernoulli", "reconstruction error (binary cross-entropy per feature)"),
    ],
)
def test_score_is_the_per_example_reconstruction_error(likelihood, description, digits):
    ae = small_ae(likelihood=likelihood)
    ae.compile(optimizer="adam")
    ae.fit(digits.x_train[:256], epochs=1, batch_size=64, verbose=0)
    x = digits.x_test[:50]
    scores = ae.score(x)
    assert list(scores) == ["score"]
    assert scores["score"].dtype == tf.float32 and scores["score"].shape == (50,)
    np.testing.assert_allclose(scores["score"], independent_reconstruction_error(ae, x), rtol=1e-5)
    assert ae.score_description == description


def test_latent_code_and_serving_functions(digits):
    ae = small_ae()
    x = digits.x_test[:12]
    np.testing.assert_array_equal(ae.latent_code(x), ae.encoder(x))
    assert list(ae.serving_functions) == ["reconstruct", "encode", "decode", "score"]
    assert {n: (f.input_name, f.input_kind) for n, f in ae.serving_functions.items()} == {
        "reconstruct": ("x", "data"),
        "encode": ("x", "data"),
        "decode": ("z", "latent"),
        "score": ("x", "data"),
    }
    latent = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    results = run_serving_functions_test(ae, x, latent)
    np.testing.assert_allclose(results["reconstruct"]["reconstruction"], ae.predict(x, verbose=0))
    np.testing.assert_array_equal(results["encode"]["z"], ae.encoder(x))
    np.testing.assert_allclose(results["decode"]["reconstruction"], ae.decoder(latent), rtol=1e-6)
    np.testing.assert_allclose(
        results["score"]["score"], independent_reconstruction_error(ae, x), rtol=1e-5
    )


def test_fit_with_labels_fails_clearly(digits):
    ae = small_ae()
    ae.compile(optimizer="adam")
    run_takes_no_labels_test(ae, digits.x_train[:64], digits.y_train[:64])


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_sample_weight_weighs_the_per_example_loss(likelihood, digits):
    def make_model():
        ae = small_ae(likelihood=likelihood, seed=2)
        ae.compile(optimizer=keras.optimizers.SGD(1.0))
        return ae

    run_sample_weight_test(make_model, digits.x_train[:96])


def test_sample_weight_must_be_one_per_example(digits):
    ae = small_ae()
    ae.compile(optimizer="adam")
    x = digits.x_train[:32]
    with pytest.raises(TfvaeError, match=r"one weight per example.*shape \(batch, 3\)"):
        ae.fit(x, sample_weight=np.ones((32, 3), np.float32), epochs=1, verbose=0)
