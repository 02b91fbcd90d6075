import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test
from model_test_case import run_serving_functions_test
from scipy import stats

import tfvae
from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.models import VAE
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.iaf_vae import IAFVAE
from tfvae.models.iaf_vae import SCORE_KL_SAMPLES
from tfvae.models.iaf_vae import _context_width
from tfvae.models.iaf_vae import flow_parameters
from tfvae.models.registry import build_model
from tfvae.training.config import TrainConfig
from tfvae.training.runs import evaluate_run

SHAPE = (8, 8, 1)
LATENT = 3


def small_iaf(flow_steps=2, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = IAFVAE(
        Encoder(LATENT, hidden_units=(32,), probabilistic=True),
        Decoder(SHAPE, hidden_units=(32,)),
        flow_steps=flow_steps,
        made_units=16,
        seed=seed,
        **kwargs,
    )
    model.build((None, *SHAPE))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def strengthen_flow(model, seed=1):
    """Random flow weights of a trained-like size: a fresh flow is close to the identity."""
    rng = np.random.default_rng(seed)
    for made in model.flow:
        made.set_weights(
            [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in made.get_weights()]
        )


def test_the_base_posterior_is_the_encoders_and_the_density_is_tfps(digits_binary):
    x = digits_binary.x_test[:16]
    model = small_iaf()
    strengthen_flow(model)
    mu, sigma, context = model.base_posterior(x)
    expected_mu, expected_sigma = model.encoder(x)
    np.testing.assert_array_equal(mu, expected_mu)
    np.testing.assert_array_equal(sigma, expected_sigma)
    assert context.shape == (16, 32)

    eps = tf.random.stateless_normal([16, LATENT], seed=[3, 4])
    z, log_q = model.sample_posterior(x, eps)
    # tfp's TransformedDistribution inverts the flow to get the same density.
    np.testing.assert_allclose(model.posterior(x).log_prob(z), log_q, rtol=1e-4, atol=1e-4)
    # The flow moved the sample, and the code is the flow at eps = 0.
    assert np.abs(np.asarray(z) - np.asarray(mu + sigma * eps)).max() > 0.05
    code, scale = model.encode(x)
    np.testing.assert_allclose(code, model.sample_posterior(x, tf.zeros_like(eps))[0])
    np.testing.assert_array_equal(scale, sigma)
    np.testing.assert_array_equal(model.latent_code(x), code)

    # log p(x, z) - log q(z | x), term by term.
    weights = np.asarray(model.log_importance_weights(x, eps[None]))[0]
    log_px_z = model.observation_distribution(z).log_prob(x)
    log_pz = stats.norm.logpdf(np.asarray(z)).sum(axis=1)
    np.testing.assert_allclose(weights, log_px_z + log_pz - log_q, rtol=1e-5, atol=1e-4)
    terms = model.per_example_losses(x, eps=eps)
    np.testing.assert_allclose(terms["kl_loss"], log_q - log_pz, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(-terms["loss"], weights, rtol=1e-5, atol=1e-4)


def test_without_steps_it_is_the_vae_with_a_monte_carlo_kl(digits_binary):
    x = digits_binary.x_test[:8]
    model = small_iaf(flow_steps=0)
    vae = VAE(model.encoder, model.decoder, seed=0)  # the same networks, the same weights
    vae.build((None, *SHAPE))
    assert model.flow == [] and model.count_params() == vae.count_params()
    eps = tf.random.stateless_normal([8, LATENT], seed=[5, 6])
    ours, theirs = model.per_example_losses(x, eps=eps), vae.per_example_losses(x, eps=eps)
    np.testing.assert_allclose(
        ours["reconstruction_loss"], theirs["reconstruction_loss"], rtol=1e-6
    )
    many = tf.random.stateless_normal([4000, 8, LATENT], seed=[7, 8])
    np.testing.assert_allclose(
        model.log_importance_weights(x, many), vae.log_importance_weights(x, many), rtol=1e-5
    )
    # The Monte Carlo KL's mean over many draws is the analytic KL.
    _, log_ratio, _ = model._log_weight_terms(x, many)
    monte_carlo = -np.mean(np.asarray(log_ratio), axis=0)
    spread = np.std(np.asarray(log_ratio), axis=0) / np.sqrt(len(many))
    np.testing.assert_array_less(np.abs(monte_carlo - np.asarray(theirs["kl_loss"])), 4 * spread)
    np.testing.assert_array_equal(model.predict(x, verbose=0), vae.predict(x, verbose=0))


def test_fit_round_trip_and_serving_functions(digits_binary, tmp_path):
    model = small_iaf()
    history = model.fit(
        digits_binary.x_train,
        epochs=3,
        batch_size=64,
        validation_data=(digits_binary.x_val,),
        verbose=0,
    ).history
    assert history["neg_elbo"][-1] < history["neg_elbo"][0] - 1.0
    assert np.all(np.isfinite(history["val_kl_loss"]))
    # The flow learned: its weights moved from their start.
    assert np.abs(model.flow[0].output_layer.get_weights()[1]).max() > 1e-3
    x = digits_binary.x_test[:20]
    run_serialization_test(model)
    restored = run_model_saving_test(model, x, tmp_path)
    assert (restored.flow_steps, restored.made_units) == (2, 16)
    eps = tf.random.stateless_normal([20, LATENT], seed=[1, 1])
    for name, value in model.per_example_losses(x, eps=eps).items():
        np.testing.assert_array_equal(restored.per_example_losses(x, eps=eps)[name], value)

    latent = np.random.default_rng(0).standard_normal((20, LATENT)).astype(np.float32)
    outputs = run_serving_functions_test(model, x, latent)
    code, scale = model.encode(x)
    np.testing.assert_allclose(outputs["encode"]["mean"], code, rtol=1e-6)
    np.testing.assert_allclose(outputs["encode"]["scale"], scale, rtol=1e-6)
    np.testing.assert_allclose(
        outputs["reconstruct"]["reconstruction"], model.decode(code), rtol=1e-5
    )
    np.testing.assert_allclose(outputs["sample"]["sample"], model.decode(latent), rtol=1e-6)
    # The score is deterministic, and its KL a Monte Carlo estimate over SCORE_KL_SAMPLES
    # fixed draws: within its standard error of the mean over many draws.
    score = outputs["score"]
    np.testing.assert_array_equal(np.asarray(model.score(x)["score"]), score["score"])
    many = tf.random.stateless_normal([4000, 20, LATENT], seed=[2, 2])
    log_ratio = np.asarray(model._log_weight_terms(x, many)[1])
    error = np.abs(score["kl_loss"] + log_ratio.mean(axis=0))
    np.testing.assert_array_less(error, 5 * log_ratio.std(axis=0) / np.sqrt(SCORE_KL_SAMPLES))
    np.testing.assert_allclose(score["score"], score["reconstruction_loss"] + score["kl_loss"])


def test_importance_weighted_training_reports_a_monte_carlo_kl(digits_binary):
    model = small_iaf(iwae_samples=4)
    history = model.fit(digits_binary.x_train[:512], epochs=2, batch_size=64, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    # The bound is at least the ELBO, so its negative is at most the negative ELBO.
    assert history["loss"][-1] <= history["neg_elbo"][-1] + 1e-3
    assert np.all(np.asarray(history["kl_loss"]) > 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"flow_steps": -1}, "flow_steps"),
        ({"made_units": 0}, "made_units"),
        ({"iwae_samples": 2, "dreg": True}, "train iaf without dreg"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(TfvaeError, match=message):
        IAFVAE(Encoder(2, probabilistic=True), Decoder(SHAPE), **kwargs)


@pytest.mark.parametrize("arch, hidden_units", [("dense", (8,)), ("conv", ())])
def test_the_flow_is_counted_before_it_is_built(arch, hidden_units):
    config = TrainConfig(
        model="iaf", arch=arch, hidden_units=hidden_units, latent_dim=2, made_units=5, flow_steps=3
    )
    model = build_model(config, SHAPE)
    counted = sum(made.count_params() for made in model.flow)
    context = model.flow[0].context_dim
    assert counted == flow_parameters(2, 5, 3, context)
    assert context == _context_width(config, SHAPE)


SMALL = ["--dataset", "digits", "--hidden-units", "32", "--latent-dim", "4", "--quiet"]


def _train(run, epochs):
    assert main(["train", "--model", "iaf", "--flow-steps", "2", "--made-units", "24",
                 "--epochs", str(epochs), *SMALL, "--out", str(run)]) == 0  # fmt: skip


def test_trains_evaluates_and_exports_a_saved_model_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, epochs=2)
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["flow_steps"], config["made_units"]) == ("iaf", 2, 24)
    assert main(["evaluate", str(run), "--nll-samples", "20"]) == 0
    assert "model: iaf" in capsys.readouterr().out
    _, model = tfvae.load_run(str(run))
    assert isinstance(model, IAFVAE) and len(model.flow) == 2
    _, metrics = evaluate_run(str(run), nll_samples=20)
    # The importance-sampled bound, through the flow, is at least as tight as the ELBO.
    assert metrics["nll"] <= metrics["neg_elbo"] + 1.0

    exported = tfvae.export(str(run), "saved_model", base_dir=str(tmp_path / "exports"))
    checked = {(row.format, row.signature) for row in exported.verification}
    for signature in ("serving_default", "encode", "decode", "sample", "score"):
        assert ("saved_model", signature) in checked
    assert all(row.gated_error <= row.tolerance for row in exported.verification)
    assert os.path.isfile(os.path.join(exported.saved_model_path, "saved_model.pb"))


@pytest.mark.slow
def test_exports_tflite_files_with_builtin_ops_checked_against_keras(tmp_path):
    # Slow: three TFLite files, int8 calibration, each checked against Keras.
    run = tmp_path / "run"
    _train(run, epochs=1)
    exported = tfvae.export(str(run), "tflite", base_dir=str(tmp_path / "exports"))
    checked = {(row.format, row.signature) for row in exported.verification}
    # TFLite with builtin ops only, each form checked against Keras.
    for quantization in ("float32", "dynamic_range", "int8"):
        for signature in ("encode", "decode", "reconstruct"):
            assert (quantization, signature) in checked
    assert all(row.gated_error <= row.tolerance for row in exported.verification)


@pytest.mark.slow
def test_a_two_trial_search_tunes_the_iaf_vae(tmp_path):
    search = tmp_path / "search"
    assert main(["tune", "--model", "iaf", "--epochs", "1", "--latent-dims", "2", "4",
                 "--max-trials", "2", *SMALL[:4], "--dir", str(search)]) == 0  # fmt: skip
    with open(search / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["COMPLETED"] * 2
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)
    best = json.loads((search / "best" / "config.json").read_text())
    assert best["model"] == "iaf" and best["flow_steps"] == 4
    _, model = tfvae.load_run(str(search / "best"))
    assert isinstance(model, IAFVAE)
