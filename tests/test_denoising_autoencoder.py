import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_sample_weight_test
from model_test_case import run_serialization_test
from model_test_case import run_takes_no_labels_test

from tfvae.cli import main
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation.metrics import DENOISING_EVAL_SEED
from tfvae.models import Autoencoder
from tfvae.models import Decoder
from tfvae.models import DenoisingAutoencoder
from tfvae.models import Encoder
from tfvae.models import build_model
from tfvae.models import get_family
from tfvae.models.denoising_autoencoder import add_gaussian_noise
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import build_compiled_model
from tfvae.training.recipe import count_steps_per_epoch
from tfvae.tuning.search_config import SearchConfig


def small_dae(arch="dense", noise_factor=0.3, seed=11, weights_seed=0):
    keras.utils.set_random_seed(weights_seed)
    dae = DenoisingAutoencoder(
        Encoder(4, arch=arch, hidden_units=(32,), filters=(8, 16)),
        Decoder((8, 8, 1), arch=arch, hidden_units=(32,), filters=(8, 16)),
        noise_factor=noise_factor,
        seed=seed,
    )
    dae.build((None, 8, 8, 1))
    return dae


def test_add_noise_is_keyed_on_seed_and_step_and_clipped(digits):
    dae = small_dae(noise_factor=0.3, seed=11)
    x = digits.x_test[:50]
    first = np.asarray(dae.add_noise(x, step=5))
    np.testing.assert_array_equal(first, np.asarray(dae.add_noise(x, seed=11, step=5)))
    assert not np.array_equal(first, np.asarray(dae.add_noise(x, step=6)))
    assert not np.array_equal(first, np.asarray(dae.add_noise(x, seed=12, step=5)))
    # Clipped into [0, 1]: about half the noise on the many blank pixels is cut to 0.
    assert first.min() == 0.0 and first.max() == 1.0
    assert np.mean(first == 0.0) > 0.1 and np.mean(first == 1.0) > 0.01
    eps = tf.random.stateless_normal(x.shape, seed=[11, 5]).numpy()
    inside = (first > 0) & (first < 1)
    np.testing.assert_allclose(first[inside], (x + 0.3 * eps)[inside], atol=1e-6)
    # The noise has the asked-for size where nothing was clipped.
    assert np.std(eps) == pytest.approx(1.0, abs=0.02)


def test_zero_noise_factor_leaves_the_data_as_it_is(digits):
    dae = small_dae(noise_factor=0.0)
    x = digits.x_test[:20]
    np.testing.assert_array_equal(np.asarray(dae.add_noise(x, seed=3)), x)


def test_training_noise_follows_the_optimizer_step(digits):
    dae = small_dae(seed=11)
    dae.compile(optimizer="sgd")
    x = tf.constant(digits.x_train[:16])
    dae.optimizer.iterations.assign(7)
    noisy = np.asarray(add_gaussian_noise(x, dae.training_noise(x), dae.noise_factor))
    np.testing.assert_array_equal(noisy, np.asarray(dae.add_noise(x, step=7)))
    dae.optimizer.iterations.assign(8)
    assert not np.array_equal(
        np.asarray(dae.training_noise(x)), np.asarray(dae.add_noise(x, step=7))
    )


def test_train_steps_fit_the_clean_data_from_add_noise_inputs(digits):
    """Two DAE steps are exactly two steps of a plain AE on `(add_noise(x, step), x)`."""
    x = digits.x_train[:32]
    dae = small_dae(seed=5)
    dae.compile(optimizer=keras.optimizers.SGD(0.5))
    config = {k: v for k, v in dae.get_config().items() if k not in ("noise_factor", "seed")}
    ae = Autoencoder.from_config(config)
    ae.build((None, 8, 8, 1))
    ae.encoder.set_weights(dae.encoder.get_weights())
    ae.decoder.set_weights(dae.decoder.get_weights())
    ae.compile(optimizer=keras.optimizers.SGD(0.5))
    for step in range(2):
        dae_loss = dae.train_on_batch(x, return_dict=True)["loss"]
        noisy = np.asarray(dae.add_noise(x, step=step))
        ae_loss = ae.train_on_batch(noisy, x, return_dict=True)["loss"]
        assert dae_loss == pytest.approx(ae_loss, rel=1e-6)
    for a, b in zip(
        dae.encoder.get_weights() + dae.decoder.get_weights(),
        ae.encoder.get_weights() + ae.decoder.get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_call_and_evaluate_use_the_input_as_given(digits):
    dae = small_dae()
    dae.compile(optimizer="adam")
    x = digits.x_test[:40]
    expected = dae.decode(dae.encode(x)).numpy()
    np.testing.assert_array_equal(dae.predict_on_batch(x), expected)
    result = dae.evaluate(x, verbose=0, return_dict=True)
    assert result["reconstruction_loss"] == pytest.approx(np.mean((expected - x) ** 2), rel=1e-4)


def test_keras_round_trip_gives_identical_outputs(digits, tmp_path):
    # The conv DAE's round trip is in the CLI test below.
    dae = small_dae(noise_factor=0.35, seed=9)
    dae.compile(optimizer="adam")
    dae.fit(digits.x_train[:64], epochs=1, batch_size=32, verbose=0)
    run_serialization_test(dae)
    restored = run_model_saving_test(dae, digits.x_test[:20], tmp_path)
    assert (restored.noise_factor, restored.seed) == (0.35, 9)
    x = digits.x_test[:20]
    np.testing.assert_array_equal(
        np.asarray(restored.add_noise(x, step=3)), np.asarray(dae.add_noise(x, step=3))
    )


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), True, "0.2"])
def test_noise_factor_must_be_finite_and_non_negative(bad):
    with pytest.raises(TfvaeError, match="noise_factor must be a finite number >= 0"):
        DenoisingAutoencoder(Encoder(2), Decoder((4,)), noise_factor=bad)
    with pytest.raises(TfvaeError, match="noise_factor must be a finite number >= 0"):
        TrainConfig(model="dae", noise_factor=bad)


def test_mirrored_training_matches_one_device_noise_included(digits, two_cpu_strategies):
    """Each replica corrupts its share of the global batch exactly as one device would."""
    x = digits.x_train[:68]  # batches of 32: 32, 32, 4

    def train(strategy):
        with strategy.scope():
            dae = small_dae(seed=3, weights_seed=7)
            dae.compile(optimizer=keras.optimizers.SGD(0.5))
        history = dae.fit(
            tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=1, verbose=0, shuffle=False
        )
        return [v.numpy() for v in dae.weights], history.history["loss"]

    one_device, mirrored_strategy = two_cpu_strategies
    single_weights, single_loss = train(one_device)
    mirrored_weights, mirrored_loss = train(mirrored_strategy)
    for a, b in zip(single_weights, mirrored_weights, strict=False):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(single_loss, mirrored_loss, rtol=1e-5)


def test_config_knows_the_dae():
    config = TrainConfig(model="dae", noise_factor=0.35)
    assert not config.resolved_binarize and config.resolved_likelihood == "gaussian"
    assert TrainConfig.from_json(config.to_json()) == config
    older = config.to_dict()
    del older["noise_factor"]  # a config.json written before the field existed
    assert TrainConfig.from_dict(older).noise_factor == 0.2
    with pytest.raises(
        TfvaeError, match="--iwae-samples applies to --model vae, hvae, iaf or vamp only"
    ):
        TrainConfig(model="dae", iwae_samples=2)
    model = build_model(config, (8, 8, 1))
    assert type(model) is DenoisingAutoencoder
    assert (model.noise_factor, model.seed) == (0.35, config.seed)
    # `tfvae tune --model dae` searches the metrics the DAE reports.
    assert tuple(m.name for m in model.metrics) == get_family("dae").metrics
    SearchConfig(TrainConfig(model="dae", dataset="digits"), objective="val_reconstruction_loss")
    with pytest.raises(TfvaeError, match="not reported by the dae model"):
        SearchConfig(TrainConfig(model="dae"), objective="val_kl_loss")


@pytest.fixture(scope="module")
def mnist5k():
    return load_dataset("mnist5k")


def test_dae_denoises_mnist_better_than_the_noise_and_a_plain_ae(mnist5k):
    """Dense DAE and AE, 5 epochs on 3,600 grey-level MNIST digits, on noise of std 0.5.

    Measured (seeds 0, 1, 2): MSE(noisy, clean) 0.1153; the DAE's
    MSE(denoised, clean) 0.0286-0.0294; the same AE trained on clean data,
    fed the same noisy inputs, 0.0416-0.0442 (it projects most of the noise
    away, but keeps more of it).
    """
    noise_factor = 0.5
    x = mnist5k.x_test
    noisy = np.asarray(
        add_gaussian_noise(x, tf.random.stateless_normal(x.shape, seed=[123, 0]), noise_factor)
    )
    noisy_mse = np.mean((noisy - x) ** 2)
    assert noisy_mse == pytest.approx(0.1153, abs=0.001)

    def denoised_mse(model):
        config = TrainConfig(
            model=model,
            latent_dim=32,
            hidden_units=(256,),
            epochs=5,
            batch_size=32,
            learning_rate=1e-3,
            lr_schedule="constant",
            steps_per_execution=8,
            # The config refuses a setting of another family: only the DAE has noise.
            **({"noise_factor": noise_factor} if model == "dae" else {}),
        )
        steps = count_steps_per_epoch(config, mnist5k)
        trained = build_compiled_model(config, mnist5k.data_shape, steps, x_train=mnist5k.x_train)
        trained.fit(
            mnist5k.pipeline("train", config.batch_size, seed=config.seed),
            epochs=config.epochs,
            verbose=0,
            shuffle=False,
        )
        return np.mean((trained.predict(noisy, batch_size=500, verbose=0) - x) ** 2)

    dae = denoised_mse("dae")
    ae = denoised_mse("ae")
    assert dae < 0.35 * noisy_mse  # measured 0.25
    assert dae < 0.85 * ae  # measured 0.66-0.71


def test_cli_trains_a_conv_dae_and_draws_the_denoising(tmp_path, capsys):
    out = tmp_path / "dae"
    argv = ["train", "--model", "dae", "--arch", "conv", "--dataset", "digits"]
    argv += ["--latent-dim", "8", "--filters", "8", "16", "--hidden-units", "--epochs", "1"]
    argv += ["--noise-factor", "0.4", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    assert "reconstruction loss (mean squared error per feature)" in capsys.readouterr().out
    files = set(os.listdir(out))
    assert {"denoising.png", "reconstructions.png", "model.keras"} <= files
    assert "samples.png" not in files and "manifold.png" not in files
    assert (out / "denoising.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((out / "config.json").read_text())
    assert (config["model"], config["noise_factor"], config["binarize"]) == ("dae", 0.4, None)
    model = keras.models.load_model(out / "model.keras", safe_mode=True)
    assert type(model) is DenoisingAutoencoder and model.noise_factor == 0.4
    assert model.encoder.arch == "conv"
    # metrics.json holds the denoising task's own numbers, recomputable from
    # the saved model and the fixed evaluation noise.
    metrics = json.loads((out / "metrics.json").read_text())
    x_test = load_dataset("digits").x_test
    noisy = np.asarray(model.add_noise(x_test, seed=DENOISING_EVAL_SEED))
    assert metrics["noisy_input_mse"] == pytest.approx(np.mean((noisy - x_test) ** 2), rel=1e-6)
    denoised = model.predict(noisy, verbose=0)
    assert metrics["denoised_mse"] == pytest.approx(np.mean((denoised - x_test) ** 2), rel=1e-4)
    assert metrics["noise_factor"] == 0.4


def test_sample_weight_weighs_the_per_example_loss_noise_included(digits):
    def make_model():
        dae = small_dae(seed=6, weights_seed=1)
        dae.compile(optimizer=keras.optimizers.SGD(1.0))
        return dae

    run_sample_weight_test(make_model, digits.x_train[:96])


def test_fit_with_labels_fails_clearly_and_scores_like_an_autoencoder(digits):
    dae = small_dae()
    dae.compile(optimizer="adam")
    run_takes_no_labels_test(dae, digits.x_train[:64], digits.y_train[:64])
    assert dae.serving_functions is Autoencoder.serving_functions
    x = digits.x_test[:20]
    expected = np.mean((dae.predict(x, verbose=0) - x) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(dae.score(x)["score"], expected, rtol=1e-5)
    assert dae.score_description == "reconstruction error (mean squared error per feature)"
