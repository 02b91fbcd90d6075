import json
import math
import os
import subprocess

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvae
from tfvae.errors import TfvaeError
from tfvae.evaluation.feature_extractors import digit_class_probabilities
from tfvae.evaluation.metrics import format_metrics
from tfvae.math import vector_quantization as vq
from tfvae.models import registry
from tfvae.models.code_prior import CodePrior
from tfvae.models.vqvae import VQVAE
from tfvae.models.vqvae import VectorQuantizer
from tfvae.models.vqvae import VQDecoder
from tfvae.models.vqvae import VQEncoder
from tfvae.training.config import TrainConfig
from tfvae.training.prior_training import PriorConfig
from tfvae.training.prior_training import train_prior
from tfvae.training.trainer import default_run_dir


def small_vqvae(codebook_size=8, code_dim=4, seed=0):
    keras.utils.set_random_seed(seed)
    model = VQVAE(
        VQEncoder(code_dim, (8,), name="encoder"),
        VQDecoder((8, 8, 1), (8,), name="decoder"),
        VectorQuantizer(codebook_size, code_dim, seed=seed, name="quantizer"),
    )
    model.build((None, 8, 8, 1))
    return model


# --- the quantiser's maths against numpy ---


def test_quantizer_maths_match_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3)).astype(np.float32)
    codebook = rng.normal(size=(6, 3)).astype(np.float32)
    expected = ((z[:, None, :] - codebook[None]) ** 2).sum(-1)
    np.testing.assert_allclose(vq.squared_distances(z, codebook), expected, rtol=1e-5, atol=1e-5)
    indices = np.asarray(vq.nearest_codes(z, codebook))
    np.testing.assert_array_equal(indices, expected.argmin(1))

    counts, sums = vq.code_statistics(z, indices, 6)
    np.testing.assert_allclose(counts, np.bincount(indices, minlength=6))
    np.testing.assert_allclose(
        sums, np.stack([z[indices == k].sum(0) for k in range(6)]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(vq.ema_update(2.0, 4.0, 0.75), 0.75 * 2 + 0.25 * 4)

    ema_count = np.array([3.0, 0.0, 1.0, 6.0, 0.5, 2.0], np.float32)
    ema_sum = rng.normal(size=(6, 3)).astype(np.float32)
    eps = 1e-5
    smoothed = (ema_count + eps) / (ema_count.sum() + 6 * eps) * ema_count.sum()
    np.testing.assert_allclose(vq.smoothed_counts(ema_count, eps), smoothed, rtol=1e-6)
    np.testing.assert_allclose(
        vq.codebook_from_ema(ema_count, ema_sum, eps), ema_sum / smoothed[:, None], rtol=1e-5
    )

    frequencies = np.array([5.0, 0.0, 3.0, 2.0])
    p = frequencies[frequencies > 0] / frequencies.sum()
    assert float(vq.perplexity(frequencies)) == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    assert float(vq.perplexity([1.0, 1.0, 1.0, 1.0])) == pytest.approx(4.0)
    assert float(vq.codebook_usage(frequencies)) == pytest.approx(0.75)

    quantized = codebook[indices].reshape(5, 10, 3)
    commitment = vq.commitment_loss(z.reshape(5, 10, 3), quantized)
    np.testing.assert_allclose(
        commitment, ((z.reshape(5, 10, 3) - quantized) ** 2).mean(axis=(1, 2)), rtol=1e-5
    )


def test_straight_through_passes_the_gradient_to_the_encoder_output():
    z = tf.constant(np.random.default_rng(1).normal(size=(4, 3)), tf.float32)
    quantized = tf.round(z)
    weights = tf.constant(np.arange(12.0).reshape(4, 3), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        out = vq.straight_through(z, quantized)
        total = tf.reduce_sum(out * weights)
    np.testing.assert_allclose(out, quantized)
    np.testing.assert_allclose(tape.gradient(total, z), weights)


def test_ema_update_and_dead_code_restart_match_numpy():
    rng = np.random.default_rng(2)
    quantizer = VectorQuantizer(4, 2, decay=0.9, dead_code_threshold=1.0)
    quantizer.build((None, 2))
    start = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0], [9.0, -9.0]], np.float32)
    quantizer.codebook.assign(start)
    quantizer.ema_count.assign([20.0, 20.0, 20.0, 1.05])
    quantizer.ema_sum.assign(start * np.array([[20.0], [20.0], [20.0], [1.05]], np.float32))
    z = np.concatenate(
        [rng.normal(0, 0.1, (6, 2)), rng.normal(5, 0.1, (4, 2)), rng.normal(-5, 0.1, (2, 2))]
    ).astype(np.float32)
    z[10:, 1] = 5.0 + rng.normal(0, 0.1, 2)

    _, indices, counts = quantizer(z, training=True)
    indices = np.asarray(indices)
    np.testing.assert_array_equal(indices, [0] * 6 + [1] * 4 + [2] * 2)
    np.testing.assert_allclose(counts, [6, 4, 2, 0])
    # EMA by hand: code 3 took nothing; its count falls to 0.945 < 1 and it restarts.
    ema_count = 0.9 * np.array([20.0, 20.0, 20.0, 1.05]) + 0.1 * np.array([6, 4, 2, 0])
    sums = np.stack(
        [z[indices == k].sum(0) if (indices == k).any() else np.zeros(2) for k in range(4)]
    )
    ema_sum = 0.9 * start * np.array([[20.0], [20.0], [20.0], [1.05]]) + 0.1 * sums
    smoothed = (ema_count + 1e-5) / (ema_count.sum() + 4e-5) * ema_count.sum()
    codebook = np.asarray(quantizer.codebook)
    np.testing.assert_allclose(codebook[:3], (ema_sum / smoothed[:, None])[:3], rtol=1e-5)
    np.testing.assert_allclose(quantizer.ema_count.numpy()[:3], ema_count[:3], rtol=1e-6)
    # The dead code restarted at one of the batch's encoder outputs, with count 1.
    assert np.min(np.abs(z - codebook[3]).sum(1)) == 0.0
    assert quantizer.ema_count.numpy()[3] == 1.0
    assert int(quantizer.updates.numpy()) == 1


def test_every_code_starts_at_an_encoder_output():
    """The averages start at zero: the first step restarts every unchosen code from the data."""
    quantizer = VectorQuantizer(16, 3, seed=4)
    quantizer.build((None, 3))
    z = np.random.default_rng(3).normal(size=(200, 3)).astype(np.float32)
    quantizer(z, training=True)
    codebook = np.asarray(quantizer.codebook)
    _, indices, counts = quantizer(z, training=False)
    assert float(vq.codebook_usage(counts)) > 0.5
    unused = np.asarray(counts) == 0
    for row in codebook[unused]:
        assert np.min(np.abs(z - row).sum(1)) == 0.0


# --- the model ---


def test_encode_decode_and_call_agree(digits):
    model = small_vqvae()
    x = digits.x_test[:16]
    indices = np.asarray(model.encode(x))
    assert indices.shape == (16, 16) and indices.dtype == np.int32
    assert model.latent_dim == 16 and model.grid_shape == (4, 4)
    np.testing.assert_allclose(model.decode(indices), model(x), atol=1e-6)
    # Float indices (an exported `decode`'s input) decode the same.
    np.testing.assert_allclose(model.decode(indices.astype(np.float32)), model(x), atol=1e-6)
    with pytest.raises(TfvaeError, match="train-prior"):
        model.sample(4)


def test_a_y_that_is_not_the_target_is_refused(digits):
    model = small_vqvae()
    model.compile(optimizer="adam")
    with pytest.raises(TfvaeError, match="takes no labels"):
        model.fit(digits.x_train[:32], digits.y_train[:32], epochs=1, verbose=0)


def test_code_prior_is_causal_and_samples_from_given_noise():
    keras.utils.set_random_seed(0)
    prior = CodePrior(5, 6, embed_dim=8, num_heads=2, num_layers=1, dropout=0.0)
    prior.build((None, 6))
    codes = np.array([[0, 1, 2, 3, 4, 0]], np.int32)
    changed = codes.copy()
    changed[0, 3] = 1
    a, b = np.asarray(prior(codes)), np.asarray(prior(changed))
    # Position i sees codes before i only: changing code 3 leaves logits 0..3 alone.
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-6)
    assert np.abs(a[:, 4:] - b[:, 4:]).max() > 1e-6
    # bits/dim is the mean cross-entropy in bits.
    p = tf.nn.softmax(a[0]).numpy()
    expected = -np.mean(np.log2(p[np.arange(6), codes[0]]))
    assert float(prior.bits_per_dim(codes)[0]) == pytest.approx(expected, rel=1e-5)
    # Inverse-CDF: the first position's code is the first whose CDF exceeds u.
    uniform = np.random.default_rng(0).uniform(size=(64, 6)).astype(np.float32)
    drawn = np.asarray(prior.sample_codes(uniform))
    first = np.cumsum(tf.nn.softmax(a[0, 0]).numpy())
    np.testing.assert_array_equal(drawn[:, 0], np.minimum((first[None] < uniform[:, :1]).sum(1), 4))
    np.testing.assert_array_equal(drawn, np.asarray(prior.sample_codes(uniform)))


def test_mirrored_training_matches_one_device_with_an_uneven_last_batch(digits, two_cpu_strategies):
    """Counts and sums are summed over replicas, restarts drawn from the gathered batch."""
    x = digits.x_train[:100]  # batches of 32: 32, 32, 32, 4

    def train(strategy):
        with strategy.scope():
            model = small_vqvae(seed=5)
            model.compile(optimizer=keras.optimizers.Adam(1e-2))
        dataset = tf.data.Dataset.from_tensor_slices(x).batch(32)
        history = model.fit(dataset, epochs=2, verbose=0, shuffle=False).history
        return [v.numpy() for v in model.weights], history

    one_device, mirrored = two_cpu_strategies
    single_weights, single = train(one_device)
    mirrored_weights, replicated = train(mirrored)
    for a, b in zip(single_weights, mirrored_weights, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for name in ("loss", "reconstruction_loss", "commitment_loss", "perplexity", "codebook_usage"):
        np.testing.assert_allclose(single[name], replicated[name], rtol=1e-5)


# --- the pipeline: train, evaluate, round trip, prior, export ---


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A small VQ-VAE run on digits with a prior, shared by the pipeline tests."""
    out = str(tmp_path_factory.mktemp("vq") / "run")
    config = TrainConfig(
        model="vqvae",
        dataset="digits",
        filters=(16,),
        latent_dim=4,
        codebook_size=16,
        epochs=3,
        precision="float32",
        tensorboard=False,
        out=out,
    )
    result = tfvae.train(config, verbose=0)
    prior = train_prior(
        out, PriorConfig(epochs=2, embed_dim=16, num_heads=2, num_layers=1), verbose=0
    )
    return result, prior


def test_fit_logs_codebook_metrics_and_the_run_has_its_figures(trained_run, digits):
    result, prior = trained_run
    history = result.history
    for name in ("perplexity", "codebook_usage", "val_perplexity", "commitment_loss"):
        assert len(history[name]) == 3 and np.all(np.isfinite(history[name]))
    assert 1.0 <= history["perplexity"][-1] <= 16.0
    assert 0.0 < history["codebook_usage"][-1] <= 1.0
    metrics = result.test_metrics
    assert metrics["codebook_size"] == 16
    assert 1.0 <= metrics["test_perplexity"] <= 16.0 * metrics["test_codebook_usage"] + 1e-6
    assert metrics["reconstruction_mse"] < float(np.var(digits.x_test))
    for name in ("reconstructions.png", "training_curves.png", "codebook_usage.png"):
        assert os.path.isfile(os.path.join(result.run_dir, name))
    for name in ("metrics.json", "samples.png", "codebook_usage.png", "config.json"):
        assert os.path.isfile(os.path.join(result.run_dir, "prior", name))


def test_the_report_and_the_default_run_name_say_the_networks_are_convolutional(trained_run):
    # The VQ-VAE's networks are convolutional whatever --arch says (its default: dense).
    result, _ = trained_run
    config, metrics = tfvae.evaluate(result.run_dir, nll_samples=0)
    assert config.arch == "dense" and config.resolved_arch == "conv"
    assert format_metrics(config, metrics).splitlines()[0].startswith("model: vqvae (conv, ")
    assert os.path.basename(default_run_dir(config)).startswith("vqvae-digits-conv-z4-")
    assert TrainConfig(model="vae", arch="dense").resolved_arch == "dense"


def test_the_prior_beats_a_uniform_prior_and_is_stored_in_the_run(trained_run, digits):
    result, prior = trained_run
    metrics = prior.metrics
    assert metrics["test_bits_per_dim"] < metrics["uniform_bits_per_dim"] == 4.0
    saved = json.load(open(os.path.join(result.run_dir, "prior", "metrics.json")))
    assert saved["test_bits_per_dim"] == pytest.approx(metrics["test_bits_per_dim"])
    config, model = tfvae.load_run(result.run_dir)
    assert model.prior is not None
    _, evaluated = tfvae.evaluate(result.run_dir, nll_samples=0)
    assert evaluated["prior_bits_per_dim"] == pytest.approx(metrics["test_bits_per_dim"], rel=1e-4)
    for name in ("perplexity", "codebook_usage", "test_perplexity", "test_codebook_usage"):
        assert name in evaluated


def test_keras_round_trip_keeps_codebook_state_and_outputs(trained_run, digits, tmp_path):
    result, prior = trained_run
    model = prior.model
    path = str(tmp_path / "vq.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = digits.x_test[:32]
    for name in ("codebook", "ema_count", "ema_sum", "updates"):
        np.testing.assert_array_equal(
            getattr(model.quantizer, name).numpy(), getattr(loaded.quantizer, name).numpy()
        )
    assert int(loaded.quantizer.updates.numpy()) > 0
    np.testing.assert_array_equal(model.encode(x), loaded.encode(x))
    np.testing.assert_allclose(model(x), loaded(x), atol=0)
    images, codes = model.sample(8, seed=3)
    again, codes_again = loaded.sample(8, seed=3)
    np.testing.assert_array_equal(codes, codes_again)
    np.testing.assert_allclose(images, again, atol=0)
    other, _ = loaded.sample(8, seed=4)
    assert np.abs(np.asarray(other) - np.asarray(images)).max() > 0


def test_a_second_prior_and_a_prior_for_another_family_are_refused(trained_run, tmp_path):
    result, _ = trained_run
    with pytest.raises(TfvaeError, match="already exists"):
        train_prior(result.run_dir, PriorConfig(epochs=1), verbose=0)
    with pytest.raises(TfvaeError, match="run directory not found"):
        train_prior(str(tmp_path / "missing"), verbose=0)
    with pytest.raises(TfvaeError, match="num_heads must not exceed embed_dim"):
        PriorConfig(embed_dim=2, num_heads=4)


def test_the_tuner_ranks_a_family_without_an_elbo_on_reconstruction():
    assert registry.get_family("vqvae").objective == "val_reconstruction_loss"
    from tfvae.tuning.search_config import SearchConfig

    search = SearchConfig(
        train=TrainConfig(model="vqvae", dataset="digits", filters=(16,)), max_trials=2
    )
    assert search.objective == "val_reconstruction_loss"


def test_saved_model_has_integer_codes_and_a_sample_taking_its_noise(trained_run, tmp_path):
    result, _ = trained_run
    exported = tfvae.export(result.run_dir, "saved_model", base_dir=str(tmp_path / "exports"))
    rows = {row.signature: row for row in exported.verification}
    assert rows["encode"].statistic == "mismatch" and rows["encode"].mismatch == 0.0
    for name in ("decode", "sample", "score"):
        assert rows[name].max_abs_error < 1e-5
    show = subprocess.run(
        ["saved_model_cli", "show", "--all", "--dir", exported.saved_model_path],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in ("serving_default", "encode", "decode", "score", "sample"):
        assert f"signature_def['{name}']" in show
    encode = show[show.index("signature_def['encode']") :]
    encode = encode[: encode.index("Method name")]
    assert "outputs['codes'] tensor_info:\n        dtype: DT_INT32" in encode
    # The exported sampler was compared with Keras's on seeded noise above; its
    # input is the prior's noise, and its graph draws nothing itself.
    graph = tf.saved_model.load(exported.saved_model_path).signatures["sample"].graph
    definition = graph.as_graph_def()
    ops = [node.op for node in definition.node]
    ops += [node.op for function in definition.library.function for node in function.node_def]
    assert "While" in ops or "StatelessWhile" in ops
    assert not [op for op in ops if "Random" in op]


@pytest.mark.slow
def test_tflite_holds_encode_and_decode_verified_in_litert(trained_run, tmp_path):
    result, _ = trained_run
    exported = tfvae.export(result.run_dir, "tflite", base_dir=str(tmp_path / "exports"))
    rows = {(row.format, row.signature): row for row in exported.verification}
    # A device reconstructs with decode(encode(x)); the sampler needs the prior's loop.
    assert {signature for _, signature in rows} == {"encode", "decode"}
    assert set(exported.tflite_files) == {"float32", "dynamic_range", "int8"}
    assert rows[("float32", "encode")].mismatch <= 0.01
    assert rows[("float32", "decode")].max_abs_error < 1e-5
    for row in exported.verification:
        assert row.gated_error <= row.tolerance
    print(json.dumps([row.to_dict() for row in exported.verification]))


@pytest.mark.slow
def test_a_two_trial_search_ranks_vqvae_trials_on_reconstruction(tmp_path):
    from tfvae.cli import main

    directory = str(tmp_path / "search")
    argv = ["tune", "--model", "vqvae", "--dataset", "digits", "--filters", "16", "--epochs", "2"]
    argv += ["--max-trials", "2", "--latent-dims", "2", "4", "--dir", directory, "--quiet"]
    assert main(argv) == 0
    rows = (tmp_path / "search" / "trials.csv").read_text().splitlines()
    assert "val_reconstruction_loss" in rows[0] and len(rows) == 3
    assert os.path.isfile(os.path.join(directory, "best", "model.keras"))


# --- the acceptance numbers (slow) ---


def _digit_verdicts(images):
    probabilities = digit_class_probabilities(np.asarray(images))
    return probabilities.max(axis=1), np.bincount(probabilities.argmax(axis=1), minlength=10)


@pytest.mark.slow
def test_mnist5k_acceptance_numbers(tmp_path):
    """Issue 14: VQ-VAE vs VAE reconstruction MSE at a comparable code size, perplexity,
    and digit-like samples from the learned prior."""
    epochs = 30
    vq_config = TrainConfig(
        model="vqvae",
        dataset="mnist5k",
        latent_dim=16,
        codebook_size=32,
        epochs=epochs,
        precision="float32",
        tensorboard=False,
        out=str(tmp_path / "vq"),
    )
    vq = tfvae.train(vq_config, verbose=0)
    # 7x7 positions of log2(32) = 5 bits: 245 bits; the VAE's 8 float32 numbers: 256 bits.
    bits = 49 * math.log2(32)
    vae_config = TrainConfig(
        model="vae",
        dataset="mnist5k",
        binarize=False,
        latent_dim=8,
        arch="conv",
        hidden_units=(256,),
        epochs=epochs,
        precision="float32",
        tensorboard=False,
        out=str(tmp_path / "vae"),
    )
    vae = tfvae.train(vae_config, verbose=0)
    prior = train_prior(vq.run_dir, PriorConfig(), verbose=0)
    images, _ = prior.model.sample(100, seed=0)
    confidence, classes = _digit_verdicts(images)
    report = {
        "vqvae_mse": vq.test_metrics["reconstruction_mse"],
        "vqvae_code_bits": bits,
        "vae_mse": vae.test_metrics["reconstruction_mse"],
        "vae_code_bits": 8 * 32,
        "test_perplexity": vq.test_metrics["test_perplexity"],
        "test_codebook_usage": vq.test_metrics["test_codebook_usage"],
        "val_perplexity_last_epoch": vq.history["val_perplexity"][-1],
        "prior_test_bits_per_dim": prior.metrics["test_bits_per_dim"],
        "sample_confidence_mean": float(confidence.mean()),
        "sample_classes": int((classes > 0).sum()),
        "sample_class_counts": classes.tolist(),
    }
    print(json.dumps(report))
    assert report["vqvae_mse"] <= report["vae_mse"]
    assert report["test_perplexity"] > 16
    assert report["sample_confidence_mean"] > 0.8
    assert report["sample_classes"] >= 8
