import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test

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
