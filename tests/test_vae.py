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
from tfvae.evaluation.baselines import independent_features_nll
from tfvae.math import losses
from tfvae.models import VAE
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models import build_model
from tfvae.training.config import TrainConfig


def small_vae(
    shape=(8, 8, 1),
    arch="dense",
    latent_dim=3,
    likelihood="bernoulli",
    beta=1.0,
    seed=0,
    input_dropout=0.0,
):
    keras.utils.set_random_seed(seed)
    vae = VAE(
        Encoder(latent_dim, arch=arch, hidden_units=(32,), filters=(8, 16), probabilistic=True),
        Decoder(shape, arch=arch, hidden_units=(32,), filters=(8, 16)),
        beta=beta,
        likelihood=likelihood,
        seed=seed,
        input_dropout=input_dropout,
    )
    vae.build((None, *shape))
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    return vae


def test_reparameterization_is_mu_plus_sigma_eps():
    vae = small_vae()
    mu = tf.constant([[1.0, -2.0, 0.5]])
    sigma = tf.constant([[0.5, 2.0, 1.0]])
    eps = tf.constant([[2.0, 1.0, -1.0]])
    np.testing.assert_allclose(vae.reparameterize(mu, sigma, eps).numpy(), [[2.0, 0.0, -0.5]])


def test_gradients_reach_the_encoder_through_the_sample(digits_binary):
    vae = small_vae()
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(
            vae.per_example_losses(digits_binary.x_train[:32], training=True)["reconstruction_loss"]
        )
    gradients = tape.gradient(loss, vae.encoder.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


def test_loss_terms_are_reconstruction_plus_beta_kl(digits_binary):
    vae = small_vae(beta=0.25)
    terms = vae.per_example_losses(digits_binary.x_test[:10])
    np.testing.assert_allclose(
        terms["loss"].numpy(),
        terms["reconstruction_loss"].numpy() + 0.25 * terms["kl_loss"].numpy(),
        rtol=1e-6,
    )
    assert np.all(terms["kl_loss"].numpy() >= 0)


def test_seed_controls_the_noise(digits_binary):
    x = digits_binary.x_test[:16]
    first = small_vae(seed=3).per_example_losses(x)["loss"].numpy()
    second = small_vae(seed=3).per_example_losses(x)["loss"].numpy()
    np.testing.assert_array_equal(first, second)
    vae = small_vae(seed=3)
    other = VAE(vae.encoder, vae.decoder, seed=4).per_example_losses(x)["loss"].numpy()
    assert not np.allclose(first, other)


@pytest.mark.parametrize("arch", ["dense", "conv"])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_keras_round_trip_gives_identical_outputs(arch, likelihood, digits_binary, tmp_path):
    vae = small_vae(arch=arch, likelihood=likelihood, beta=2.5, latent_dim=5)
    vae.fit(digits_binary.x_train[:64], epochs=1, batch_size=32, verbose=0)
    run_serialization_test(vae)
    restored = run_model_saving_test(vae, digits_binary.x_test[:20], tmp_path)
    assert restored.beta == 2.5 and restored.latent_dim == 5
    assert restored.likelihood.name == likelihood
    np.testing.assert_array_equal(
        restored.encode(digits_binary.x_test[:4])[1], vae.encode(digits_binary.x_test[:4])[1]
    )


def test_predict_evaluate_and_fit_with_validation_data(digits_binary):
    vae = small_vae()
    history = vae.fit(
        digits_binary.x_train,
        epochs=2,
        batch_size=64,
        validation_data=(digits_binary.x_val,),
        verbose=0,
    )
    for name in ("loss", "reconstruction_loss", "kl_loss", "neg_elbo"):
        assert name in history.history and f"val_{name}" in history.history
    result = vae.evaluate(digits_binary.x_test, batch_size=64, verbose=0, return_dict=True)
    assert set(result) == {"loss", "reconstruction_loss", "kl_loss", "neg_elbo"}
    assert result["loss"] == pytest.approx(
        result["reconstruction_loss"] + result["kl_loss"], rel=1e-4
    )
    assert result["neg_elbo"] == pytest.approx(result["loss"], rel=1e-6)


def test_neg_elbo_is_the_beta_one_bound_whatever_beta_trains(digits_binary):
    vae = small_vae(beta=0.1)
    history = vae.fit(digits_binary.x_train, epochs=1, batch_size=64, verbose=0).history
    # Training: the metric is reconstruction + KL, the loss weights KL by 0.1.
    np.testing.assert_allclose(
        history["neg_elbo"], np.add(history["reconstruction_loss"], history["kl_loss"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        history["loss"],
        np.add(history["reconstruction_loss"], 0.1 * np.asarray(history["kl_loss"])),
        rtol=1e-5,
    )
    result = vae.evaluate(digits_binary.x_test, batch_size=64, verbose=0, return_dict=True)
    assert result["neg_elbo"] == pytest.approx(
        result["reconstruction_loss"] + result["kl_loss"], rel=1e-5
    )
    assert result["neg_elbo"] - result["loss"] == pytest.approx(0.9 * result["kl_loss"], rel=1e-4)
    reconstructions = vae.predict(digits_binary.x_test, verbose=0)
    assert reconstructions.shape == digits_binary.x_test.shape
    assert reconstructions.min() >= 0 and reconstructions.max() <= 1


def test_losses_fall_within_a_few_epochs_on_digits(digits_binary):
    vae = small_vae(latent_dim=4)
    history = vae.fit(digits_binary.x_train, epochs=6, batch_size=64, verbose=0).history
    assert history["loss"][-1] < 0.8 * history["loss"][0], history["loss"]


def test_gaussian_vae_learns_its_observation_scale(digits):
    vae = small_vae(likelihood="gaussian")
    assert float(vae.observation_scale()) == pytest.approx(1.0)
    history = vae.fit(digits.x_train, epochs=6, batch_size=64, verbose=0).history
    assert float(vae.observation_scale()) < 0.5
    assert history["loss"][-1] < history["loss"][0]


def test_mnist5k_negative_elbo_far_below_trivial_model(mnist5k_binary):
    data = mnist5k_binary
    config = TrainConfig(latent_dim=16, epochs=5)
    keras.utils.set_random_seed(0)
    vae = build_model(config, data.data_shape)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.fit(data.pipeline("train", 128), epochs=5, verbose=0, shuffle=False)
    test = vae.evaluate(data.pipeline("test", 256), verbose=0, return_dict=True)
    trivial = independent_features_nll(data.x_train, data.x_test, "bernoulli")
    print(
        f"mnist5k test negative ELBO after 5 epochs: {test['loss']:.1f}; trivial model: {trivial:.1f}"
    )
    # Measured: about 140 nats against 211 for the independent-pixel model.
    assert trivial == pytest.approx(211.2, abs=0.5)
    assert test["loss"] < trivial - 50


def test_sample_decodes_prior_draws(digits_binary):
    vae = small_vae()
    samples = vae.sample(7).numpy()
    assert samples.shape == (7, 8, 8, 1)
    assert samples.min() >= 0 and samples.max() <= 1
    eps = np.zeros((2, 3), np.float32)
    np.testing.assert_allclose(vae.sample(2, eps=eps), vae.decode(eps))


def test_vae_needs_a_probabilistic_encoder_and_valid_beta():
    with pytest.raises(TfvaeError, match="probabilistic=True"):
        VAE(Encoder(2), Decoder((4,)))
    with pytest.raises(TfvaeError, match="beta must be a finite number >= 0. Received: beta=-1"):
        VAE(Encoder(2, probabilistic=True), Decoder((4,)), beta=-1)


def test_kl_warmup_ramps_the_weight_with_optimizer_steps(digits_binary):
    keras.utils.set_random_seed(0)
    vae = VAE(
        Encoder(3, hidden_units=(16,), probabilistic=True),
        Decoder((8, 8, 1), hidden_units=(16,)),
        beta=2.0,
        kl_warmup_steps=10,
    )
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    vae.build((None, 8, 8, 1))
    vae.optimizer.build(vae.trainable_variables)
    assert float(vae.kl_weight(training=True)) == 0.0
    assert float(vae.kl_weight(training=False)) == 2.0
    vae.fit(digits_binary.x_train[:128], batch_size=32, epochs=1, verbose=0)  # 4 steps
    assert float(vae.kl_weight(training=True)) == pytest.approx(0.8)
    vae.fit(digits_binary.x_train[:256], batch_size=32, epochs=1, verbose=0)  # 12 steps
    assert float(vae.kl_weight(training=True)) == pytest.approx(2.0)


def test_iwae_training_reports_a_bound_tighter_than_the_elbo(digits_binary):
    x = digits_binary.x_train
    elbo_vae = small_vae(latent_dim=4)
    iwae_vae = small_vae(latent_dim=4)
    iwae_vae.iwae_samples = 8
    iwae_vae.set_weights(elbo_vae.get_weights())
    objective, terms = iwae_vae._training_terms(tf.constant(x[:256]))
    elbo_terms = elbo_vae.per_example_losses(x[:256])
    # The IWAE bound (k=8) is at least as tight as the one-sample ELBO, on average.
    assert float(tf.reduce_mean(terms["loss"])) < float(tf.reduce_mean(elbo_terms["loss"]))
    np.testing.assert_allclose(objective.numpy(), terms["loss"].numpy(), rtol=1e-6)
    history = iwae_vae.fit(x, epochs=3, batch_size=64, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]


def test_dreg_keeps_the_decoder_gradient_and_changes_only_the_encoders(digits_binary):
    x = tf.constant(digits_binary.x_train[:128])
    iwae = small_vae(latent_dim=4)
    iwae.iwae_samples = 8
    dreg = small_vae(latent_dim=4)
    dreg.iwae_samples, dreg.dreg = 8, True
    dreg.set_weights(iwae.get_weights())
    eps = tf.random.stateless_normal([8, 128, 4], seed=[1, 2])

    def gradients(vae):
        vae.training_noise = lambda x, samples: eps
        with tf.GradientTape() as tape:
            objective, terms = vae._training_terms(x)
            loss = tf.reduce_mean(objective)
        del vae.training_noise
        return tape.gradient(loss, vae.trainable_variables), terms

    (iwae_grads, iwae_terms), (dreg_grads, dreg_terms) = gradients(iwae), gradients(dreg)
    # The same samples, so the same reported bound.
    np.testing.assert_allclose(dreg_terms["loss"], iwae_terms["loss"], rtol=1e-5)
    n_encoder = len(iwae.encoder.trainable_variables)
    for a, b in zip(iwae_grads[n_encoder:], dreg_grads[n_encoder:], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    changed = [
        float(tf.norm(a - b) / tf.norm(a))
        for a, b in zip(iwae_grads[:n_encoder], dreg_grads[:n_encoder], strict=True)
    ]
    assert all(change > 1e-3 for change in changed), changed
    history = dreg.fit(digits_binary.x_train, epochs=3, batch_size=64, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    with pytest.raises(TfvaeError, match="dreg .* needs iwae_samples > 1"):
        TrainConfig(dreg=True)
    assert TrainConfig(iwae_samples=5, dreg=True).dreg


def test_output_bias_starts_the_decoder_at_the_data_mean(mnist5k_binary):
    for arch in ("dense", "conv"):
        vae = small_vae(shape=(28, 28, 1), arch=arch)
        vae.initialize_output_bias(mnist5k_binary.x_train)
        layer = vae.decoder.body[-2] if arch == "dense" else vae.decoder.body[-1]
        bias = layer.get_weights()[1]
        mean = np.clip(mnist5k_binary.x_train.mean(axis=0), 1e-3, 1 - 1e-3)
        expected = np.log(mean) - np.log1p(-mean)
        if arch == "dense":
            np.testing.assert_allclose(bias, expected.reshape(-1), rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(bias, [expected.mean()], rtol=1e-5)


@pytest.mark.parametrize("input_dropout", [0.0, 0.3])
def test_mirrored_vae_training_matches_one_device_with_an_uneven_last_batch(
    digits_binary, two_cpu_strategies, input_dropout
):
    """Loss averaged over the global batch and noise drawn for the global batch:
    two replicas train exactly the model one device trains."""
    x = digits_binary.x_train[:100]  # batches of 32: 32, 32, 32, 4

    def train(strategy):
        with strategy.scope():
            vae = small_vae(seed=5, input_dropout=input_dropout)
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(32)
        history = vae.fit(dataset, epochs=2, verbose=0, shuffle=False).history
        return [v.numpy() for v in vae.weights], history

    one_device, mirrored_strategy = two_cpu_strategies
    single_weights, single = train(one_device)
    mirrored_weights, mirrored = train(mirrored_strategy)
    for a, b in zip(single_weights, mirrored_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for name in ("loss", "reconstruction_loss", "kl_loss", "neg_elbo"):
        np.testing.assert_allclose(single[name], mirrored[name], rtol=1e-5)


def test_input_dropout_drops_that_fraction_for_the_encoder_only(digits_binary):
    x = tf.constant(digits_binary.x_train)
    vae = small_vae(seed=3, input_dropout=0.25)
    seen = vae.dropped_input(x).numpy()
    on = digits_binary.x_train > 0
    dropped = (seen == 0) & on
    # About a quarter of the features that were on are dropped (24,287 of
    # them: 0.01 is 3.6 standard errors); the rest are scaled by 4/3.
    assert dropped.sum() / on.sum() == pytest.approx(0.25, abs=0.01)
    np.testing.assert_allclose(seen[on & ~dropped], digits_binary.x_train[on & ~dropped] / 0.75)
    # A pure function of (seed, step), apart from the posterior noise's stream.
    again = small_vae(seed=3, input_dropout=0.25)
    np.testing.assert_array_equal(again.dropped_input(x), seen)
    vae.optimizer.iterations.assign(1)
    assert not np.array_equal(vae.dropped_input(x), seen)
    # The decoder still reconstructs the whole input: the terms' targets are x.
    objective, terms = vae._training_terms(x)
    clean = vae.per_example_losses(x, eps=vae.training_noise(x)[0])
    assert not np.allclose(terms["kl_loss"], clean["kl_loss"])
    # Evaluation and the exported functions see the input whole.
    np.testing.assert_array_equal(vae(x), vae(x))
    assert small_vae(input_dropout=0.25).get_config()["input_dropout"] == 0.25
    with pytest.raises(TfvaeError, match="input_dropout"):
        small_vae(input_dropout=1.0)


def test_seeded_training_noise_depends_only_on_seed_and_step(digits_binary):
    x = tf.constant(digits_binary.x_train[:8])
    first, second = small_vae(seed=9), small_vae(seed=9)
    np.testing.assert_array_equal(first.training_noise(x), second.training_noise(x))
    first.optimizer.iterations.assign(3)
    assert not np.allclose(first.training_noise(x), second.training_noise(x))
    second.optimizer.iterations.assign(3)
    np.testing.assert_array_equal(first.training_noise(x, 4), second.training_noise(x, 4))


def independent_score(vae, x):
    """The negative ELBO at z = mu from closed forms, not from the model's own loss code."""
    mu, sigma = vae.encoder(x)
    params = vae.decoder(mu)
    if vae.likelihood.name == "bernoulli":
        reconstruction = losses.bernoulli_nll(x, params)
    else:
        reconstruction = losses.gaussian_nll(x, params, vae.observation_scale())
    kl = losses.kl_normal_standard_normal(mu, sigma)
    return reconstruction.numpy(), kl.numpy()


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_score_is_the_negative_elbo_at_the_posterior_mean(likelihood, digits, mnist5k_binary):
    if likelihood == "bernoulli":
        vae, x = small_vae(shape=(28, 28, 1), beta=2.5), mnist5k_binary
    else:
        vae, x = small_vae(likelihood="gaussian", beta=2.5), digits
    vae.fit(x.x_train[:512], epochs=1, batch_size=64, verbose=0)
    x_test = x.x_test[:64]
    scores = vae.score(x_test)
    assert list(scores) == ["score", "reconstruction_loss", "kl_loss"]
    assert all(v.dtype == tf.float32 and v.shape == (64,) for v in scores.values())
    reconstruction, kl = independent_score(vae, x_test)
    np.testing.assert_allclose(scores["reconstruction_loss"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(scores["kl_loss"], kl, rtol=1e-4, atol=1e-5)
    # beta (2.5 here) weights training, not the score.
    np.testing.assert_allclose(scores["score"], reconstruction + kl, rtol=1e-5)
    np.testing.assert_array_equal(vae.score(x_test)["score"], scores["score"])
    assert vae.score_description == (
        "negative ELBO (nats per example, beta = 1) at the posterior mean z = mu: "
        "-log p(x | mu) + KL(q(z | x) || p(z))"
    )


def test_latent_code_is_the_posterior_mean(digits_binary):
    vae = small_vae()
    x = digits_binary.x_test[:10]
    codes = vae.latent_code(x)
    assert codes.shape == (10, 3)
    np.testing.assert_array_equal(codes, vae.encoder(x)[0])


def test_serving_functions_compute_the_exported_outputs(digits_binary):
    vae = small_vae()
    vae.fit(digits_binary.x_train[:256], epochs=1, batch_size=64, verbose=0)
    assert list(vae.serving_functions) == ["reconstruct", "encode", "decode", "sample", "score"]
    assert {n: (f.input_name, f.input_kind) for n, f in vae.serving_functions.items()} == {
        "reconstruct": ("x", "data"),
        "encode": ("x", "data"),
        "decode": ("z", "latent"),
        "sample": ("eps", "latent"),
        "score": ("x", "data"),
    }
    x = digits_binary.x_test[:12]
    latent = np.random.default_rng(0).normal(size=(12, 3)).astype(np.float32)
    results = run_serving_functions_test(vae, x, latent)
    mu, sigma = vae.encoder(x)
    np.testing.assert_allclose(results["reconstruct"]["reconstruction"], vae.predict(x, verbose=0))
    np.testing.assert_array_equal(results["encode"]["mean"], mu)
    np.testing.assert_array_equal(results["encode"]["scale"], sigma)
    decoded = 1 / (1 + np.exp(-np.asarray(vae.decoder(latent), np.float64)))
    np.testing.assert_allclose(results["decode"]["reconstruction"], decoded, rtol=1e-5)
    np.testing.assert_allclose(results["sample"]["sample"], decoded, rtol=1e-5)
    reconstruction, kl = independent_score(vae, x)
    np.testing.assert_allclose(results["score"]["reconstruction_loss"], reconstruction, rtol=1e-5)
    np.testing.assert_allclose(results["score"]["score"], reconstruction + kl, rtol=1e-5)


def test_sample_checks_that_n_and_eps_agree():
    vae = small_vae()
    eps = np.zeros((2, 3), np.float32)
    with pytest.raises(TfvaeError, match=r"Received: n=3 and eps of shape \(2, 3\)"):
        vae.sample(3, eps=eps)
    np.testing.assert_allclose(vae.sample(None, eps=eps), vae.decode(eps))
    np.testing.assert_allclose(vae.sample(np.int64(2), eps=eps), vae.decode(eps))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(
            TfvaeError, match=f"n must be a positive integer or None. Received: n={bad!r}"
        ):
            vae.sample(bad)
    with pytest.raises(TfvaeError, match="needs n, eps or both"):
        vae.sample(None)
    with pytest.raises(TfvaeError, match=r"eps must have shape \(n, latent_dim=3\)"):
        vae.sample(None, eps=np.zeros((2, 4), np.float32))


def test_fit_with_labels_fails_clearly(digits_binary):
    run_takes_no_labels_test(small_vae(), digits_binary.x_train[:64], digits_binary.y_train[:64])


def test_sample_weight_weighs_the_per_example_loss(digits_binary):
    def make_model():
        vae = small_vae(seed=4)
        vae.compile(optimizer=keras.optimizers.SGD(1.0))
        return vae

    run_sample_weight_test(make_model, digits_binary.x_train[:96], ["kl_loss"])


def test_summary_shows_the_encoder_and_decoder_shapes():
    lines = []
    small_vae(arch="conv").summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    assert "?" not in text
    assert "((None, 3), (None, 3))" in text and "(None, 8, 8, 1)" in text
