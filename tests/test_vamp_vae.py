import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from model_test_case import run_model_saving_test
from model_test_case import run_serialization_test
from model_test_case import run_serving_functions_test
from scipy import stats
from scipy.special import log_softmax
from scipy.special import logsumexp

import tfvae
from tfvae.cli import main
from tfvae.errors import TfvaeError
from tfvae.math.mixtures import diagonal_gaussian_mixture
from tfvae.math.mixtures import mixture_draw
from tfvae.math.mixtures import mixture_log_prob
from tfvae.models import Decoder
from tfvae.models import Encoder
from tfvae.models.vamp_vae import VampVAE

tfd = tfp.distributions
SMALL = ["--dataset", "digits", "--hidden-units", "32", "--latent-dim", "3", "--quiet"]


def scipy_mixture_log_prob(z, locs, scales, logits):
    """`log sum_k w_k N(z; locs_k, scales_k^2)` with scipy, `z [n, dims]`."""
    per_component = np.stack(
        [stats.norm.logpdf(z, locs[k], scales[k]).sum(axis=-1) for k in range(len(locs))], axis=-1
    )
    return logsumexp(log_softmax(logits) + per_component, axis=-1)


def random_mixture(components=5, dims=3, seed=0):
    rng = np.random.default_rng(seed)
    locs = rng.normal(scale=2.0, size=(components, dims))
    scales = np.exp(rng.uniform(np.log(0.02), np.log(3.0), size=(components, dims)))
    logits = rng.normal(size=components)
    return locs, scales, logits


def test_the_mixture_log_density_matches_tfp_and_scipy():
    locs, scales, logits = random_mixture()
    rng = np.random.default_rng(1)
    # Points near the components (small scales, where the expanded quadratic
    # cancels most) and far from all of them.
    near = locs[rng.integers(0, 5, size=40)] + rng.normal(size=(40, 3)) * 0.01
    z = np.concatenate([near, rng.normal(scale=4.0, size=(40, 3))]).reshape(4, 20, 3)
    mine = mixture_log_prob(z, locs, scales, logits).numpy()
    assert mine.shape == (4, 20) and mine.dtype == np.float32
    reference = scipy_mixture_log_prob(z.reshape(-1, 3), locs, scales, logits).reshape(4, 20)
    np.testing.assert_allclose(mine, reference, rtol=1e-6, atol=1e-4)
    plain = tfd.MixtureSameFamily(
        tfd.Categorical(logits=tf.constant(logits, tf.float64)),
        tfd.Independent(tfd.Normal(tf.constant(locs), tf.constant(scales)), 1),
    )
    np.testing.assert_allclose(mine, plain.log_prob(z).numpy(), rtol=1e-6, atol=1e-4)
    # The distribution object is a MixtureSameFamily whose log_prob is this one.
    prior = diagonal_gaussian_mixture(*(tf.constant(a, tf.float32) for a in (locs, scales, logits)))
    assert isinstance(prior, tfd.MixtureSameFamily)
    assert prior.event_shape == [3] and prior.sample(7, seed=3).shape == (7, 3)
    np.testing.assert_allclose(prior.log_prob(z).numpy(), reference, rtol=1e-5, atol=1e-3)


def test_the_mixture_log_density_has_finite_gradients():
    locs, scales, logits = (tf.Variable(a, dtype=tf.float32) for a in random_mixture())
    z = tf.constant(np.random.default_rng(2).normal(scale=3.0, size=(50, 3)), tf.float32)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(mixture_log_prob(z, locs, scales, logits))
    for grad in tape.gradient(total, [locs, scales, logits]):
        assert np.all(np.isfinite(grad.numpy()))


def test_draws_from_normal_noise_are_distributed_as_the_mixture():
    # One dimension: the draws' CDF is the mixture's (KS test), and they
    # match TFP's own sampler (two-sample KS test).
    locs = np.array([[-3.0], [0.5], [4.0]])
    scales = np.array([[0.5], [1.0], [0.3]])
    logits = np.log(np.array([0.2, 0.5, 0.3]))
    eps = np.random.default_rng(0).normal(size=(20_000, 1)).astype(np.float32)
    draws = mixture_draw(eps, locs, scales, logits).numpy()[:, 0]

    def cdf(values):
        return sum(
            w * stats.norm.cdf(values, m, s)
            for w, m, s in zip(np.exp(logits), locs[:, 0], scales[:, 0], strict=True)
        )

    assert stats.kstest(draws, cdf).pvalue > 0.01
    reference = diagonal_gaussian_mixture(locs, scales, logits).sample(20_000, seed=5).numpy()
    assert stats.ks_2samp(draws, reference[:, 0]).pvalue > 0.01
    # Exact moments of the mixture, within Monte Carlo error.
    weights = np.exp(logits)
    mean = float(weights @ locs[:, 0])
    variance = float(weights @ (scales[:, 0] ** 2 + locs[:, 0] ** 2)) - mean**2
    assert draws.mean() == pytest.approx(mean, abs=4 * np.sqrt(variance / len(draws)))
    assert draws.var() == pytest.approx(variance, rel=0.03)


def test_draws_in_several_dimensions_pick_components_by_weight():
    locs, scales, logits = random_mixture(components=4, dims=3, seed=4)
    scales = np.full_like(scales, 0.05)  # well separated: each draw names its component
    eps = np.random.default_rng(1).normal(size=(40_000, 3)).astype(np.float32)
    draws = mixture_draw(eps, locs, scales, logits).numpy()
    nearest = np.argmin(((draws[:, None, :] - locs[None]) ** 2).sum(-1), axis=1)
    frequencies = np.bincount(nearest, minlength=4) / len(draws)
    np.testing.assert_allclose(frequencies, np.exp(log_softmax(logits)), atol=0.01)
    # Inside a component, each coordinate is normal with the component's scale
    # (the first one rebuilt from the uniform's position in its interval).
    for k in range(4):
        standard = (draws[nearest == k] - locs[k]) / scales[k]
        assert np.abs(standard.mean(axis=0)).max() < 0.1
        np.testing.assert_allclose(standard.std(axis=0), 1.0, atol=0.05)
    # The same eps always gives the same draws, and extreme noise stays finite.
    np.testing.assert_array_equal(draws, mixture_draw(eps, locs, scales, logits).numpy())
    extreme = np.array([[-40.0, 0.0, 0.0], [40.0, 1.0, -1.0], [0.0, 0.0, 0.0]], np.float32)
    assert np.all(np.isfinite(mixture_draw(extreme, locs, scales, logits).numpy()))


def small_vamp(prior_kind="vamp", shape=(8, 8, 1), latent_dim=3, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = VampVAE(
        Encoder(latent_dim, hidden_units=(32,), probabilistic=True),
        Decoder(shape, hidden_units=(32,)),
        prior_kind=prior_kind,
        prior_components=kwargs.pop("prior_components", 6),
        seed=seed,
        **kwargs,
    )
    model.build((None, *shape))
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model


def prior_parameters(model):
    return [np.asarray(a, np.float64) for a in model.prior_parameters()]


@pytest.mark.parametrize("prior_kind", ["vamp", "mog"])
def test_losses_and_importance_weights_use_the_mixture_density(prior_kind, digits_binary):
    model = small_vamp(prior_kind)
    x = digits_binary.x_test[:16]
    locs, scales, logits = prior_parameters(model)
    assert locs.shape == scales.shape == (6, 3) and logits.shape == (6,)
    if prior_kind == "vamp":
        # p(z) = 1/K sum_k q(z | u_k): the encoder at the pseudo-inputs, equal weights.
        pseudo = np.asarray(model.pseudo_inputs(None))
        assert pseudo.shape == (6, 8, 8, 1) and 0 < pseudo.min() and pseudo.max() < 1
        mu_u, sigma_u = (np.asarray(a) for a in model.encode(pseudo))
        np.testing.assert_allclose(locs, mu_u, rtol=1e-6)
        np.testing.assert_allclose(scales, sigma_u, rtol=1e-6)
        np.testing.assert_array_equal(logits, 0.0)
    eps = tf.random.stateless_normal([16, 3], seed=[3, 4])
    terms = {k: v.numpy() for k, v in model.per_example_losses(x, eps=eps).items()}
    mu, sigma = (np.asarray(a, np.float64) for a in model.encode(x))
    z = mu + sigma * eps.numpy()
    log_q = stats.norm.logpdf(z, mu, sigma).sum(axis=1)
    log_p = scipy_mixture_log_prob(z, locs, scales, logits)
    np.testing.assert_allclose(terms["kl_loss"], log_q - log_p, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        terms["loss"], terms["reconstruction_loss"] + terms["kl_loss"], rtol=1e-6
    )
    # log p(x, z_k) - log q(z_k | x): the same reconstruction plus the exact log-ratio.
    log_weights = model.log_importance_weights(x, eps[None]).numpy()[0]
    np.testing.assert_allclose(
        log_weights, -terms["reconstruction_loss"] - terms["kl_loss"], rtol=1e-5, atol=1e-4
    )
    # The score takes z = mu: reconstruction at the mean plus log q(mu|x) - log p(mu).
    score = {k: v.numpy() for k, v in model.score(x).items()}
    kl_at_mean = stats.norm.logpdf(mu, mu, sigma).sum(1) - scipy_mixture_log_prob(
        mu, locs, scales, logits
    )
    np.testing.assert_allclose(score["kl_loss"], kl_at_mean, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("prior_kind", ["vamp", "mog"])
def test_fit_round_trip_sampling_and_serving(prior_kind, digits_binary, tmp_path):
    model = small_vamp(prior_kind)
    before = [np.array(w) for w in model.weights]
    history = model.fit(
        digits_binary.x_train[:640],
        epochs=3,
        batch_size=64,
        validation_data=(digits_binary.x_val,),
        verbose=0,
    ).history
    assert history["neg_elbo"][-1] < history["neg_elbo"][0]
    assert np.all(np.isfinite(history["val_kl_loss"]))
    # The prior's own weights learned too.
    prior_layer = model.pseudo_inputs if prior_kind == "vamp" else model.mixture_prior
    assert prior_layer.weights and all(
        not np.array_equal(np.array(w), b)
        for w, b in zip(model.weights, before, strict=True)
        if any(w is v for v in prior_layer.weights)
    )
    run_serialization_test(model)
    x = digits_binary.x_test[:20]
    restored = run_model_saving_test(model, x, tmp_path)
    assert (restored.prior_kind, restored.prior_components) == (prior_kind, 6)
    eps = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    np.testing.assert_array_equal(
        np.asarray(restored.sample(None, eps)), np.asarray(model.sample(None, eps))
    )
    for a, b in zip(restored.prior_parameters(), model.prior_parameters(), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    results = run_serving_functions_test(model, x, eps)
    draws = model.prior_draws(eps).numpy()
    np.testing.assert_allclose(
        results["sample"]["sample"], np.asarray(model.decode(draws)), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        results["score"]["score"],
        results["score"]["reconstruction_loss"] + results["score"]["kl_loss"],
        rtol=1e-5,
    )
    with pytest.raises(TfvaeError, match=r"eps must have shape \(n, latent_dim=3\)"):
        model.sample(None, eps[:, :2])
    with pytest.raises(TfvaeError, match="n must be a positive integer"):
        model.sample(0)
    assert model.sample(4).shape == (4, 8, 8, 1)


def test_iwae_training_reports_the_estimated_kl(digits_binary):
    model = small_vamp("mog", iwae_samples=4, dreg=True)
    history = model.fit(digits_binary.x_train[:512], epochs=2, batch_size=64, verbose=0).history
    assert np.all(np.isfinite(history["kl_loss"])) and history["kl_loss"][-1] > 0
    # The importance-weighted bound is tighter than the ELBO it reports beside.
    assert history["loss"][-1] <= history["neg_elbo"][-1] + 0.5


def test_pseudo_inputs_follow_the_data_range(digits_binary):
    bounded = small_vamp("vamp", prior_components=4)
    assert bounded.pseudo_inputs.squash == "sigmoid"
    real = small_vamp("vamp", prior_components=4, likelihood="gaussian")
    assert real.pseudo_inputs.squash == "none"
    # Unsquashed, they are the weights themselves: values outside [0, 1] too.
    values = np.asarray(real.pseudo_inputs(None))
    np.testing.assert_array_equal(values, np.asarray(real.pseudo_inputs.values))
    assert values.min() < 0 < 1 < values.max()
    terms = real.per_example_losses(digits_binary.x_test[:8])
    assert np.all(np.isfinite(terms["loss"].numpy()))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prior_kind": "flow"}, "unknown prior_kind 'flow'"),
        ({"prior_components": 0}, "prior_components must be a positive integer"),
        ({"prior_components": 2.5}, "prior_components must be a positive integer"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(TfvaeError, match=message):
        VampVAE(Encoder(2, probabilistic=True), Decoder((8, 8, 1)), **kwargs)


@pytest.fixture(scope="module")
def vamp_run(tmp_path_factory):
    """A VampPrior run trained through `tfvae train` on digits."""
    run = tmp_path_factory.mktemp("vamp") / "run"
    assert main(["train", "--model", "vamp", "--prior-components", "20", "--epochs", "2", *SMALL, "--out", str(run)]) == 0  # fmt: skip
    return run


def test_the_family_trains_evaluates_and_exports_its_sampler(vamp_run, tmp_path, capsys):
    config = json.loads((vamp_run / "config.json").read_text())
    assert (config["model"], config["prior_kind"], config["prior_components"]) == (
        "vamp",
        "vamp",
        20,
    )
    metrics = json.loads((vamp_run / "metrics.json").read_text())
    assert np.isfinite(metrics["neg_elbo"]) and "samples.png" in os.listdir(vamp_run)
    capsys.readouterr()
    assert main(["evaluate", str(vamp_run), "--nll-samples", "50"]) == 0
    report = capsys.readouterr().out
    assert "model: vamp" in report
    # The importance-sampled bound with the exact mixture density is tighter than the ELBO.
    nll = float(report.split("importance-sampled (K=50):")[1].split()[0])
    assert nll < metrics["neg_elbo"]
    _, model = tfvae.load_run(str(vamp_run))
    assert isinstance(model, VampVAE) and model.pseudo_inputs.count == 20
    # The SavedModel's functions, the prior sampler included, agree with Keras.
    exported = tfvae.export(str(vamp_run), "saved_model", base_dir=str(tmp_path / "exports"))
    checked = {row.signature for row in exported.verification}
    assert checked >= {"serving_default", "encode", "decode", "sample", "score"}
    assert all(row.gated_error <= row.tolerance for row in exported.verification)


@pytest.mark.slow
def test_the_family_tunes_and_exports_to_tflite(vamp_run, tmp_path):
    """`tfvae tune` (2 trials) and the full export, TFLite included (about 3 minutes)."""
    search = tmp_path / "search"
    assert main(["tune", "--model", "vamp", "--prior-kind", "mog", "--epochs", "1",
                 "--latent-dims", "2", "3", "--max-trials", "2", *SMALL[:4],
                 "--quiet", "--dir", str(search)]) == 0  # fmt: skip
    best = json.loads((search / "best" / "config.json").read_text())
    assert best["model"] == "vamp" and best["prior_kind"] == "mog"

    exported = tfvae.export(str(vamp_run), base_dir=str(tmp_path / "exports"))
    checked = {(row.format, row.signature) for row in exported.verification}
    for signature in ("serving_default", "encode", "decode", "sample", "score"):
        assert ("saved_model", signature) in checked
    for quantization in ("float32", "dynamic_range", "int8"):
        for signature in ("encode", "decode", "reconstruct"):
            assert (quantization, signature) in checked
    assert all(row.gated_error <= row.tolerance for row in exported.verification)
