import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test

import tfvae
from tfvae.errors import TfvaeError
from tfvae.export import export_run
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.factorvae import FactorVAE
from tfvae.training.config import TrainConfig
from tfvae.training.runs import evaluate_run


def small_factorvae(shape=(8, 8, 1), latent_dim=3, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = FactorVAE(
        Encoder(latent_dim, hidden_units=(32,), probabilistic=True),
        Decoder(shape, hidden_units=(32,)),
        seed=seed,
        discriminator_units=kwargs.pop("discriminator_units", (32, 32)),
        **kwargs,
    )
    model.build((None, *shape))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def test_permute_dims_shuffles_each_unit_on_its_own():
    model = small_factorvae(latent_dim=4)
    z = tf.reshape(tf.range(400, dtype=tf.float32), [100, 4])
    permuted = model.permute_dims(z).numpy()
    for d in range(4):
        np.testing.assert_array_equal(np.sort(permuted[:, d]), z.numpy()[:, d])
    # The units are shuffled apart: rows no longer hold one example's values.
    rows_kept = np.all(permuted // 4 == permuted[:, :1] // 4, axis=1)
    assert rows_kept.mean() < 0.1


def trained_discriminator_estimate(rho, steps=600):
    """The discriminator's mean TC estimate after training on z = (a, rho a + sqrt(1 - rho^2) b)."""
    model = small_factorvae(latent_dim=2, discriminator_units=(64, 64))
    model.discriminator_optimizer.learning_rate.assign(3e-3)
    rng = np.random.default_rng(0)

    @tf.function
    def step(z):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(model.discriminator_losses(z))
        variables = model.discriminator.trainable_variables
        model.discriminator_optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def draw(n):
        a, b = rng.normal(size=(2, n))
        return tf.constant(np.stack([a, rho * a + math.sqrt(1 - rho**2) * b], 1), tf.float32)

    for _ in range(steps):
        step(draw(256))
    return float(tf.reduce_mean(model.tc_estimate(draw(20_000))))


def test_the_discriminator_estimates_a_known_total_correlation():
    # A Gaussian pair of correlation rho has total correlation -0.5 log(1 - rho^2).
    assert trained_discriminator_estimate(0.9) == pytest.approx(-0.5 * math.log(1 - 0.81), abs=0.25)
    # Independent units: about none.
    assert abs(trained_discriminator_estimate(0.0)) < 0.15


def test_one_train_step_moves_both_networks_with_their_own_optimizers(digits_binary):
    model = small_factorvae(tc_penalty=5.0)
    before = {
        "encoder": [np.array(v) for v in model.encoder.trainable_variables],
        "discriminator": [np.array(v) for v in model.discriminator.trainable_variables],
    }
    model.fit(digits_binary.x_train[:64], epochs=1, batch_size=64, verbose=0)
    for name, network in (("encoder", model.encoder), ("discriminator", model.discriminator)):
        moved = [
            not np.array_equal(a, np.array(b))
            for a, b in zip(before[name], network.trainable_variables, strict=True)
        ]
        assert all(moved), name
    assert int(model.optimizer.iterations) == int(model.discriminator_optimizer.iterations) == 1
    # Each optimizer holds the state of its own network's variables only.
    # (Adam: two moments per variable, and its step count and step size.)
    assert len(model.optimizer.variables) == 2 + 2 * len(model.model_variables)
    discriminator = model.discriminator.trainable_variables
    assert len(model.discriminator_optimizer.variables) == 2 + 2 * len(discriminator)
    assert len(model.model_variables) + len(discriminator) == len(model.trainable_variables)


def test_the_loss_adds_the_weighted_tc_estimate(digits_binary):
    model = small_factorvae(tc_penalty=7.0, beta=2.0)
    x = digits_binary.x_test[:32]
    eps = tf.random.stateless_normal([32, 3], seed=[3, 4])
    terms, z = model.factor_losses(x, eps=eps)
    np.testing.assert_allclose(
        terms["loss"].numpy(),
        (
            terms["reconstruction_loss"] + 2.0 * terms["kl_loss"] + 7.0 * terms["total_correlation"]
        ).numpy(),
        rtol=1e-6,
    )
    logits = model.discriminator(z).numpy()
    np.testing.assert_allclose(
        terms["total_correlation"].numpy(), logits[:, 0] - logits[:, 1], rtol=1e-6, atol=1e-6
    )


def test_round_trip_keeps_the_discriminator_and_both_optimizers(digits_binary, tmp_path):
    model = small_factorvae()
    model.fit(digits_binary.x_train, epochs=1, batch_size=64, verbose=0)
    run_serialization_test(model)
    restored = run_model_saving_test(model, digits_binary.x_test[:20], tmp_path)
    for a, b in zip(model.discriminator.weights, restored.discriminator.weights, strict=True):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    for ours, theirs in (
        (model.optimizer, restored.optimizer),
        (model.discriminator_optimizer, restored.discriminator_optimizer),
    ):
        assert len(ours.variables) == len(theirs.variables)
        for a, b in zip(ours.variables, theirs.variables, strict=True):
            np.testing.assert_array_equal(np.array(a), np.array(b))
    assert float(restored.discriminator_optimizer.beta_1) == 0.5
    # Training on from the file is training on from memory.
    x = digits_binary.x_train[:128]
    ours = model.fit(x, epochs=1, batch_size=64, shuffle=False, verbose=0).history
    theirs = restored.fit(x, epochs=1, batch_size=64, shuffle=False, verbose=0).history
    assert ours == theirs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tc_penalty": -1.0}, "tc_penalty"),
        ({"discriminator_units": ()}, "discriminator_units"),
        ({"discriminator_units": (0,)}, "discriminator_units"),
        ({"discriminator_learning_rate": 0.0}, "discriminator_learning_rate"),
        ({"iwae_samples": 3}, "iwae_samples=1"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(TfvaeError, match=message):
        FactorVAE(Encoder(2, probabilistic=True), Decoder((8, 8, 1)), **kwargs)


def test_trains_evaluates_and_exports_as_a_run(tmp_path):
    config = TrainConfig(
        model="factorvae",
        dataset="shapes2d:1000",
        hidden_units=(64,),
        latent_dim=4,
        epochs=2,
        batch_size=64,
        discriminator_units=(32,),
        out=str(tmp_path / "run"),
    )
    result = tfvae.train(config, verbose=0)
    assert set(result.history) >= {"total_correlation", "val_discriminator_loss"}
    _, metrics = evaluate_run(result.run_dir, nll_samples=10)
    for name in ("mig", "dci_informativeness", "factor_vae_score"):
        assert metrics[name] == pytest.approx(result.test_metrics[name]), name
    assert metrics["nll"] <= metrics["neg_elbo"] + 1.0
    # The VAE's deterministic decode path: the export is the VAE's, checked against Keras.
    exported = export_run(result.run_dir, "saved_model", base_dir=str(tmp_path / "served"))
    assert exported.saved_model_path is not None
    assert {row.signature for row in exported.verification} >= {"encode", "decode", "score"}
