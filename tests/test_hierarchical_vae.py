import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test
from model_test_case import run_serving_functions_test
from scipy import stats
from scipy.special import logsumexp

import tfvae
from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.evaluation.metrics import importance_sampled_nll
from tfvae.math.losses import importance_weighted_bound
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.hierarchical_vae import HierarchicalVAE
from tfvae.models.hierarchical_vae import between_parameters
from tfvae.training.config import TrainConfig
from tfvae.training.runs import evaluate_run


def small_hvae(shape=(8, 8, 1), z1=3, z2=2, hidden=(32,), top_hidden=(16,), seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = HierarchicalVAE(
        Encoder(z1, hidden_units=hidden, probabilistic=True),
        Decoder(shape, hidden_units=hidden),
        Encoder(z2, hidden_units=top_hidden, probabilistic=True),
        Encoder(z1, hidden_units=top_hidden, probabilistic=True),
        seed=seed,
        **kwargs,
    )
    model.build((None, *shape))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


# numpy forward passes of the dense networks, from their weights.
def dense_forward(network, h):
    h = np.asarray(h, np.float64).reshape(len(h), -1)
    layers = [*network.body, *([network.head] if hasattr(network, "head") else [])]
    for layer in layers:
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = (np.asarray(w, np.float64) for w in layer.get_weights())
            h = h @ kernel + bias
            if layer.activation.__name__ == "relu":
                h = np.maximum(h, 0.0)
    return h


def gaussian_forward(network, h):
    """`(mean, scale)` of a probabilistic `Encoder`, its log-variance soft-clipped to (-16, 16)."""
    mean, raw = np.split(dense_forward(network, h), 2, axis=-1)
    return mean, np.exp(0.5 * 16.0 * np.tanh(raw / 16.0))


def bernoulli_log_prob(x, logits):
    """`log p(x | logits)` summed over features: x `[n, f]`, logits `[..., f]`."""
    return np.sum(x * logits - np.logaddexp(0.0, logits), axis=-1)


def normal_log_prob(z, mean, scale):
    return np.sum(stats.norm.logpdf(z, mean, scale), axis=-1)


def numpy_log_weights(model, x, eps):
    """`log p(x, z1, z2) - log q(z1, z2 | x)` computed in numpy, `[k, batch]`."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    d1 = model.bottom_latent_dim
    eps1, eps2 = eps[..., :d1], eps[..., d1:]
    mu1, sigma1 = gaussian_forward(model.encoder, x)
    z1 = mu1 + sigma1 * eps1
    mu2, sigma2 = (
        a.reshape(*z1.shape[:2], -1)
        for a in gaussian_forward(model.top_encoder, z1.reshape(-1, d1))
    )
    z2 = mu2 + sigma2 * eps2
    mean, scale = (
        a.reshape(z1.shape)
        for a in gaussian_forward(model.top_decoder, z2.reshape(-1, z2.shape[-1]))
    )
    logits = dense_forward(model.decoder, z1.reshape(-1, d1)).reshape(*z1.shape[:2], -1)
    return (
        bernoulli_log_prob(x, logits)
        + normal_log_prob(z1, mean, scale)
        + normal_log_prob(z2, 0.0, 1.0)
        - normal_log_prob(z1, mu1, sigma1)
        - normal_log_prob(z2, mu2, sigma2)
    )


def test_log_weights_and_losses_match_numpy(digits_binary):
    model = small_hvae()
    x = digits_binary.x_test[:16]
    eps = np.random.default_rng(0).standard_normal((5, 16, 5))
    log_weights = model.log_importance_weights(x, tf.constant(eps, tf.float32)).numpy()
    np.testing.assert_allclose(log_weights, numpy_log_weights(model, x, eps), rtol=1e-4)

    # The ELBO's terms at one sample: the top layer's KL is analytic given z1,
    # the bottom layer's is log q(z1|x) - log p(z1|z2) at the sample.
    terms = {k: v.numpy() for k, v in model.per_example_losses(x, eps=eps[0]).items()}
    flat = np.asarray(x, np.float64).reshape(16, -1)
    mu1, sigma1 = gaussian_forward(model.encoder, flat)
    z1 = mu1 + sigma1 * eps[0, :, :3]
    mu2, sigma2 = gaussian_forward(model.top_encoder, z1)
    z2 = mu2 + sigma2 * eps[0, :, 3:]
    mean, scale = gaussian_forward(model.top_decoder, z2)
    reconstruction = -bernoulli_log_prob(flat, dense_forward(model.decoder, z1))
    kl_z1 = normal_log_prob(z1, mu1, sigma1) - normal_log_prob(z1, mean, scale)
    kl_z2 = np.sum(0.5 * (mu2**2 + sigma2**2 - 1.0) - np.log(sigma2), axis=-1)
    np.testing.assert_allclose(terms["reconstruction_loss"], reconstruction, rtol=1e-4)
    np.testing.assert_allclose(terms["kl_z1"], kl_z1, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["kl_z2"], kl_z2, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms["kl_loss"], kl_z1 + kl_z2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["loss"], reconstruction + kl_z1 + kl_z2, rtol=1e-4)


def test_the_elbo_is_the_mean_log_weight_with_one_sample(digits_binary):
    model = small_hvae()
    x = np.repeat(digits_binary.x_test[:4], 5000, axis=0)
    eps = tf.random.stateless_normal([1, len(x), 5], seed=[3, 4])
    log_weights = model.log_importance_weights(x, eps).numpy()[0]
    terms = model.per_example_losses(x, eps=eps[0])
    neg_elbo = (terms["reconstruction_loss"] + terms["kl_loss"]).numpy()
    # With k = 1 the importance-weighted bound is the log-weight itself.
    np.testing.assert_array_equal(importance_weighted_bound(log_weights[None]).numpy(), log_weights)
    for example in range(4):
        rows = slice(example * 5000, (example + 1) * 5000)
        # Both estimate the ELBO: the log-weight samples the top layer's KL,
        # the loss takes it analytically. Within 4 standard errors.
        error = np.std(log_weights[rows]) / np.sqrt(5000)
        assert np.mean(log_weights[rows]) == pytest.approx(-np.mean(neg_elbo[rows]), abs=4 * error)
        # At the same samples they differ by the top layer's term only, whose
        # mean is the analytic KL: a much smaller spread.
        assert np.std(log_weights[rows] + neg_elbo[rows]) < np.std(log_weights[rows])


def test_importance_sampled_nll_matches_quadrature(digits_binary):
    """One-dimensional z1 and z2: log p(x) by brute-force quadrature in numpy."""
    model = small_hvae(z1=1, z2=1, hidden=(16,), top_hidden=(8,), seed=1)
    model.fit(digits_binary.x_train, epochs=20, batch_size=64, verbose=0)
    x = digits_binary.x_test[:6]
    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    z2 = np.linspace(-7.0, 7.0, 561)
    mean, scale = gaussian_forward(model.top_decoder, z2[:, None])
    z1 = np.linspace((mean - 9 * scale).min(), (mean + 9 * scale).max(), 3001)
    logits = dense_forward(model.decoder, z1[:, None])
    log_px_z1 = bernoulli_log_prob(flat[:, None, :], logits[None])  # [n, G1]
    log_pz1_z2 = stats.norm.logpdf(z1[None, :], mean, scale)  # [G2, G1]
    log_joint = log_px_z1[:, None, :] + log_pz1_z2[None] + stats.norm.logpdf(z2)[None, :, None]
    step = (z1[1] - z1[0]) * (z2[1] - z2[0])
    exact = -(logsumexp(log_joint, axis=(1, 2)) + np.log(step))

    # The model's log-weights integrate to log p(x) over the posterior noise:
    # p(x) = integral of exp(log w(eps)) N(eps; 0, I) d eps (quadrature again).
    grid = np.linspace(-9.0, 9.0, 241)
    eps = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    noise = tf.constant(np.repeat(eps[:, None], len(x), axis=1), tf.float32)
    log_weights = model.log_importance_weights(x, noise).numpy().astype(np.float64)
    log_weights += stats.norm.logpdf(eps).sum(axis=-1)[:, None]
    integral = -(logsumexp(log_weights, axis=0) + 2 * np.log(grid[1] - grid[0]))
    np.testing.assert_allclose(integral, exact, atol=0.01)

    # The importance-sampled estimate (K = 5000) agrees within its Monte Carlo
    # error (measured: at most 0.07 nats); the ELBO, the mean log-weight, is looser.
    estimate = importance_sampled_nll(model, x, num_samples=5000)
    np.testing.assert_allclose(estimate, exact, atol=0.15)
    noise = tf.random.stateless_normal([2000, len(x), 2], seed=[8, 9])
    neg_elbo = -np.mean(model.log_importance_weights(x, noise).numpy(), axis=0)
    assert np.all(neg_elbo > exact + 0.05)


def test_fit_reports_both_layers_and_the_round_trip_is_exact(digits_binary, tmp_path):
    model = small_hvae(kl_warmup_steps=20)
    history = model.fit(
        digits_binary.x_train,
        epochs=3,
        batch_size=64,
        validation_data=(digits_binary.x_val,),
        verbose=0,
    ).history
    for name in ("loss", "neg_elbo", "kl_loss", "kl_z1", "kl_z2"):
        assert np.all(np.isfinite(history[name])) and f"val_{name}" in history
    assert history["neg_elbo"][-1] < history["neg_elbo"][0]
    np.testing.assert_allclose(
        np.add(history["val_kl_z1"], history["val_kl_z2"]), history["val_kl_loss"], rtol=1e-4
    )
    run_serialization_test(model)
    x = digits_binary.x_test[:20]
    restored = run_model_saving_test(model, x, tmp_path)
    assert (restored.bottom_latent_dim, restored.top_latent_dim, restored.latent_dim) == (3, 2, 5)
    eps = tf.random.stateless_normal([4, 20, 5], seed=[5, 6])
    for method, argument in (
        ("encode", x),
        ("latent_code", x),
        ("decode", eps[0]),
        ("score", x),
    ):
        for got, expected in zip(
            tf.nest.flatten(getattr(restored, method)(argument)),
            tf.nest.flatten(getattr(model, method)(argument)),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(expected), err_msg=method)
    np.testing.assert_array_equal(
        restored.log_importance_weights(x, eps).numpy(),
        model.log_importance_weights(x, eps).numpy(),
    )


def test_the_latent_space_is_the_priors_noise(digits_binary):
    model = small_hvae()
    model.fit(digits_binary.x_train, epochs=1, batch_size=64, verbose=0)
    x = digits_binary.x_test[:12]
    flat = np.asarray(x, np.float64).reshape(12, -1)
    latent = np.random.default_rng(2).standard_normal((12, 5)).astype(np.float32)
    served = run_serving_functions_test(model, x, latent)
    # encode: the posterior means z1 = mu1(x), z2 = mu2(z1), whitened by p(z1 | z2).
    mu1, sigma1 = gaussian_forward(model.encoder, flat)
    mu2, sigma2 = gaussian_forward(model.top_encoder, mu1)
    mean, scale = gaussian_forward(model.top_decoder, mu2)
    np.testing.assert_allclose(
        served["encode"]["mean"], np.c_[(mu1 - mean) / scale, mu2], rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        served["encode"]["scale"], np.c_[sigma1 / scale, sigma2], rtol=1e-4, atol=1e-6
    )
    # decode and sample: ancestral, z2 = eps2, z1 = m(z2) + s(z2) * eps1, x = mean of p(x|z1).
    top_mean, top_scale = gaussian_forward(model.top_decoder, latent[:, 3:])
    z1 = top_mean + top_scale * latent[:, :3]
    expected = 1.0 / (1.0 + np.exp(-dense_forward(model.decoder, z1)))
    np.testing.assert_allclose(
        served["decode"]["reconstruction"].reshape(12, -1), expected, atol=1e-5
    )
    np.testing.assert_array_equal(served["sample"]["sample"], served["decode"]["reconstruction"])
    # Decoding the code gives the reconstruction, the mean of p(x | z1 = mu1(x)).
    np.testing.assert_allclose(
        np.asarray(model.decode(served["encode"]["mean"])),
        served["reconstruct"]["reconstruction"],
        atol=1e-5,
    )
    # score: the negative ELBO with all noise 0.
    terms = model.per_example_losses(x, eps=tf.zeros([12, 5]))
    np.testing.assert_allclose(
        served["score"]["score"], terms["reconstruction_loss"] + terms["kl_loss"], rtol=1e-6
    )
    assert model.latent_code(x).shape == (12, 5)
    with pytest.raises(TfvaeError, match=r"eps must have shape \(n, latent_dim=5\)"):
        model.sample(None, eps=np.zeros((2, 3), np.float32))


def gradients(model, x, eps):
    """The encoders' and the decoders' gradients of the training objective for fixed noise."""
    model.training_noise = lambda x, samples: eps
    with tf.GradientTape() as tape:
        objective, terms = model._training_terms(x)
        loss = tf.reduce_mean(objective)
    del model.training_noise
    encoders, decoders = encoder_variables(model), decoder_variables(model)
    grads = tape.gradient(loss, [*encoders, *decoders])
    return grads[: len(encoders)], grads[len(encoders) :], terms


def encoder_variables(model):
    return [*model.encoder.trainable_variables, *model.top_encoder.trainable_variables]


def decoder_variables(model):
    return [*model.decoder.trainable_variables, *model.top_decoder.trainable_variables]


def per_draw_encoder_gradients(model, x, draws, samples):
    """`[draws, weights]`: the encoders' gradient of the bound of one example, per noise draw."""
    x = tf.constant(np.repeat(x[:1], draws, axis=0))
    eps = tf.random.stateless_normal([samples, draws, model.latent_dim], seed=[7, 8])
    variables = encoder_variables(model)

    @tf.function
    def jacobian():
        with tf.GradientTape() as tape:
            if model.dreg:
                objective = model._dreg_objective(x, eps, 1.0)[0]
            else:
                log_weights = model.log_importance_weights(x, eps, training=True)
                objective = -importance_weighted_bound(log_weights)
        rows = tape.jacobian(objective, variables)
        return tf.concat([tf.reshape(g, [draws, -1]) for g in rows], axis=1)

    return jacobian().numpy()


def test_dreg_is_unbiased_with_a_lower_variance_and_iwae_and_dreg_train(digits_binary):
    iwae = small_hvae(iwae_samples=8)
    iwae.fit(digits_binary.x_train, epochs=2, batch_size=64, verbose=0)
    dreg = small_hvae(iwae_samples=8, dreg=True)
    dreg.set_weights(iwae.get_weights())

    # The same samples: the same bound, and the decoders' gradient is IWAE's.
    x = tf.constant(digits_binary.x_test[:64])
    eps = tf.random.stateless_normal([8, 64, 5], seed=[1, 2])
    iwae_encoders, iwae_decoders, iwae_terms = gradients(iwae, x, eps)
    dreg_encoders, dreg_decoders, dreg_terms = gradients(dreg, x, eps)
    np.testing.assert_allclose(dreg_terms["loss"], iwae_terms["loss"], rtol=1e-5)
    np.testing.assert_allclose(dreg_terms["kl_loss"], iwae_terms["kl_loss"], rtol=1e-5)
    for a, b in zip(iwae_decoders, dreg_decoders, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for a, b in zip(iwae_encoders, dreg_encoders, strict=True):
        assert float(tf.norm(a - b) / tf.norm(a)) > 1e-3

    # Over 600 noise draws for one example, the encoders' gradients have the
    # same mean (a paired test per weight) and DReG's a lower variance.
    # Measured with three noise seeds: mean squared z-score 0.9 to 1.6 (27
    # with the top encoder's score term left in: a biased estimator), and
    # DReG's variance 0.36 to 0.38 of IWAE's.
    iwae_draws = per_draw_encoder_gradients(iwae, digits_binary.x_test, 600, 8)
    dreg_draws = per_draw_encoder_gradients(dreg, digits_binary.x_test, 600, 8)
    difference = dreg_draws - iwae_draws
    spread = difference.std(axis=0) / np.sqrt(len(difference))
    varied = spread > 1e-8
    z_scores = difference.mean(axis=0)[varied] / spread[varied]
    assert np.mean(z_scores**2) < 3.0
    assert dreg_draws.var(axis=0).sum() < 0.6 * iwae_draws.var(axis=0).sum()

    for model in (iwae, dreg):
        history = model.fit(digits_binary.x_train, epochs=2, batch_size=64, verbose=0).history
        assert history["loss"][-1] < history["loss"][0]
        assert np.all(np.isfinite(history["kl_z2"]))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"top_encoder": Encoder(2)}, "top_encoder must be an Encoder built with probabilistic"),
        ({"top_decoder": Decoder((3,))}, "top_decoder must be an Encoder"),
        (
            {"top_decoder": Encoder(4, probabilistic=True)},
            "its latent_dim must be z1's width, the encoder's latent_dim=3. Received: latent_dim=4",
        ),
        (
            {"top_encoder": Encoder(2, arch="conv", probabilistic=True)},
            "top_encoder maps one latent vector to another: it must be dense",
        ),
        ({"dreg": True}, "dreg .* needs iwae_samples > 1"),
        ({"beta": -1.0}, "beta"),
    ],
)
def test_bad_arguments_are_refused(change, message):
    arguments = {
        "encoder": Encoder(3, probabilistic=True),
        "decoder": Decoder((8, 8, 1)),
        "top_encoder": Encoder(2, probabilistic=True),
        "top_decoder": Encoder(3, probabilistic=True),
        **change,
    }
    with pytest.raises(TfvaeError, match=message):
        HierarchicalVAE(**arguments)


def test_settings_reach_the_model_and_bad_ones_are_refused():
    config = TrainConfig(model="hvae", latent_dim=6, top_latent_dim=3, top_hidden_units=(10,))
    model = tfvae.models.build_model(config, (8, 8, 1))
    assert (model.latent_dim, model.top_latent_dim, model.top_encoder.hidden_units) == (9, 3, (10,))
    # The size check counts the networks between the layers exactly.
    assert between_parameters(6, 3, (10,)) == (
        model.top_encoder.count_params() + model.top_decoder.count_params()
    )
    assert TrainConfig(model="hvae", top_hidden_units=()).top_hidden_units == ()
    with pytest.raises(TfvaeError, match="top_latent_dim must be a positive integer"):
        TrainConfig(model="hvae", top_latent_dim=0)
    with pytest.raises(TfvaeError, match="--top-latent-dim applies to --model hvae only"):
        TrainConfig(model="vae", top_latent_dim=4)


CLI_SMALL = ["--dataset", "digits", "--hidden-units", "32", "--top-hidden-units", "16", "--quiet"]


def _train_through_the_cli(run, epochs):
    assert main(["train", "--model", "hvae", "--latent-dim", "4", "--top-latent-dim", "2",
                 "--iwae-samples", "3", "--dreg", "--epochs", str(epochs), *CLI_SMALL,
                 "--out", str(run)]) == 0  # fmt: skip


def test_trains_evaluates_and_exports_a_saved_model_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    _train_through_the_cli(run, epochs=3)
    config = json.loads((run / "config.json").read_text())
    assert (config["model"], config["top_latent_dim"], config["top_hidden_units"]) == (
        "hvae",
        2,
        [16],
    )
    history = json.loads((run / "history.json").read_text())
    assert history["loss"][-1] < history["loss"][0]
    for figure in ("samples.png", "manifold.png", "traversal.png", "interpolation.png"):
        assert (run / figure).is_file(), figure
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["latent_dim"] == 6 and 0 <= metrics["active_units"] <= 6
    capsys.readouterr()
    assert main(["evaluate", str(run), "--nll-samples", "20"]) == 0
    report = capsys.readouterr().out
    assert "model: hvae" in report and "of 6" in report
    _, evaluated = evaluate_run(str(run), nll_samples=20)
    assert evaluated["nll"] <= evaluated["neg_elbo"] + 0.5

    exported = tfvae.export(str(run), "saved_model", base_dir=str(tmp_path / "exports"))
    checked = {(row.format, row.signature) for row in exported.verification}
    for signature in ("encode", "decode", "sample", "score"):
        assert ("saved_model", signature) in checked
    assert all(row.gated_error <= row.tolerance for row in exported.verification)


@pytest.mark.slow
def test_tunes_and_exports_tflite_files_through_the_cli(tmp_path):
    # Slow: a two-trial search, and three TFLite files (int8 calibrated), each
    # checked against Keras; the default suite tunes the VAE and checks the
    # hierarchical VAE's TFLite score (tests/test_tflite_score.py).
    search = tmp_path / "search"
    assert main(["tune", "--model", "hvae", "--epochs", "1", "--latent-dims", "2", "3",
                 "--max-trials", "2", *CLI_SMALL, "--dir", str(search)]) == 0  # fmt: skip
    best = json.loads((search / "best" / "config.json").read_text())
    assert best["model"] == "hvae" and best["latent_dim"] in (2, 3)

    run = tmp_path / "run"
    _train_through_the_cli(run, epochs=1)
    exported = tfvae.export(str(run), "tflite", base_dir=str(tmp_path / "exports"))
    checked = {(row.format, row.signature) for row in exported.verification}
    for quantization in ("float32", "dynamic_range", "int8"):
        for signature in ("encode", "decode", "reconstruct"):
            assert (quantization, signature) in checked
    assert all(row.gated_error <= row.tolerance for row in exported.verification)
