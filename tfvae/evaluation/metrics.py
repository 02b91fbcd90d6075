"""Test-set evaluation of a trained model or a run directory."""

import math

import keras
import numpy as np
import tensorflow as tf

from tfvae import checks
from tfvae.evaluation.baselines import independent_features_nll
from tfvae.evaluation.disentanglement import disentanglement_metrics
from tfvae.math.likelihoods import bits_per_dim
from tfvae.math.losses import active_units
from tfvae.models.registry import family_of
from tfvae.models.registry import with_labels

DEFAULT_NLL_SAMPLES = 1000
# Decoder evaluations per chunk (samples x examples): bounds peak memory at
# about 20 MB of 28x28 logits whatever K is.
NLL_CHUNK_ELEMENTS = 25_600

# The noise key of the denoising metrics (`tfvae evaluate` of a dae run).
DENOISING_EVAL_SEED = 12345


def importance_sampled_nll(
    vae, x, num_samples=DEFAULT_NLL_SAMPLES, batch_size=100, seed=0, verbose=False, labels=None
):
    """Estimates `-log p(x)` per example with `num_samples` importance samples (IWAE).

    `log p(x) ~= logsumexp_k(log p(x, z_k) - log q(z_k | x)) - log K`, with
    `z_k ~ q(z | x)`. The estimate is a stochastic lower bound on `log p(x)`
    that tightens as K grows (Burda et al., 2016). Samples are drawn in chunks
    so memory stays bounded for any K; the noise comes from a stateless
    generator seeded with `seed`, so the result is reproducible.

    Args:
        vae: a trained `VAE`.
        x: array `[n, ...]`.
        num_samples: int. K. Defaults to `1000`.
        batch_size: int. Examples per chunk. Defaults to `100`.
        seed: int. Defaults to `0`.
        verbose: bool. Show a progress bar. Defaults to `False`.
        labels: array `[n]` or None. The class labels of `x`, for a model
            that takes labels: then it estimates `-log p(x | y)`. Defaults
            to `None`.

    Returns:
        A numpy array `[n]` of estimated negative log-likelihoods in nats.
    """
    return estimate_nll(
        vae.log_importance_weights,
        vae.latent_dim,
        x,
        num_samples,
        batch_size,
        seed,
        verbose,
        labels=labels,
    )


def estimate_nll(
    log_weights_fn,
    latent_dim,
    x,
    num_samples=DEFAULT_NLL_SAMPLES,
    batch_size=100,
    seed=0,
    verbose=False,
    labels=None,
):
    """`importance_sampled_nll` for any model given as its log-importance-weight function.

    Args:
        log_weights_fn: callable `(x [b, ...], eps [k, b, latent_dim]) -> [k, b]`
            returning `log p(x, z) - log q(z | x)` at `z = mu + sigma * eps`;
            with `labels`, called as `(x, eps, labels [b])`.
        latent_dim: int.
        x, num_samples, batch_size, seed, verbose, labels: as in
            `importance_sampled_nll`.
    """

    checks.positive_int("num_samples", num_samples)
    x = np.asarray(x, np.float32)
    samples_per_chunk = max(1, min(num_samples, NLL_CHUNK_ELEMENTS // batch_size))
    signature = [
        tf.TensorSpec([None, *x.shape[1:]], tf.float32),
        tf.TensorSpec([None, None, latent_dim], tf.float32),
    ]
    if labels is not None:
        labels = np.asarray(labels, np.int32)
        signature.append(tf.TensorSpec([None], tf.int32))
    compiled = tf.function(log_weights_fn, input_signature=signature)
    progress = keras.utils.Progbar(len(x), unit_name="example") if verbose else None
    results = []
    for batch_index, start in enumerate(range(0, len(x), batch_size)):
        xb = tf.constant(x[start : start + batch_size])
        chunks = []
        for chunk_index, k0 in enumerate(range(0, num_samples, samples_per_chunk)):
            k = min(samples_per_chunk, num_samples - k0)
            eps = tf.random.stateless_normal(
                (k, len(xb), latent_dim), seed=[seed, batch_index * 100_003 + chunk_index]
            )
            given = () if labels is None else (tf.constant(labels[start : start + batch_size]),)
            chunks.append(compiled(xb, eps, *given).numpy().astype(np.float64))
        log_weights = np.concatenate(chunks, axis=0)
        top = log_weights.max(axis=0)
        log_mean = top + np.log(np.exp(log_weights - top).sum(axis=0)) - math.log(num_samples)
        results.append(-log_mean)
        if progress is not None:
            progress.add(len(xb))
    return np.concatenate(results)


def posterior_means(model, x, batch_size=500, labels=None):
    """`model.latent_code` of `x` in batches: the VAE's posterior means, an autoencoder's codes.

    `labels` (the class of each example) go with `x` to a model that takes labels.
    """
    return np.concatenate(
        [
            np.asarray(
                model.latent_code(
                    with_labels(
                        model,
                        x[i : i + batch_size],
                        None if labels is None else labels[i : i + batch_size],
                    )
                )
            )
            for i in range(0, len(x), batch_size)
        ]
    )


def evaluate_model(model, data, likelihood, batch_size=256, nll_samples=0, verbose=False):
    """Returns the test metrics of `model` on `data` (a `DataSplits`).

    Keys: the model's loss terms (`loss`, `reconstruction_loss` and, for the
    VAE, `kl_loss`, in nats per example: `loss` is the training objective,
    which weights the KL by beta), for the VAE `neg_elbo` (the negative
    ELBO, `reconstruction_loss + kl_loss`, whatever beta was),
    `reconstruction_mse` (per feature, from the deterministic
    reconstruction), the independent-features baseline NLL, the data
    protocol and, for the VAE, `active_units` and, when `nll_samples > 0`,
    `nll` (importance-sampled `-log p(x)` with that many samples).
    """
    family = family_of(model)
    labels = data.y_test if family.needs_labels else None
    test = data.pipeline("test", batch_size, shuffle=False, labels=family.needs_labels)
    if not model.compiled:
        # A model saved before it was compiled (`save` right after building):
        # evaluation needs no optimizer, only the model's own test step.
        model.compile()
    metrics = model.evaluate(test, verbose=0, return_dict=True)
    metrics = {name: float(value) for name, value in metrics.items()}
    reconstruction = model.predict(test, verbose=0)
    metrics["reconstruction_mse"] = float(np.mean((reconstruction - data.x_test) ** 2))
    metrics["baseline_nll"] = independent_features_nll(data.x_train, data.x_test, likelihood)
    metrics["test_examples"] = int(len(data.x_test))
    if "kl_loss" in metrics:
        # The bound itself, with the KL unweighted: `loss` is the training
        # objective, which weights the KL by beta.
        metrics["neg_elbo"] = metrics["reconstruction_loss"] + metrics["kl_loss"]
    if family.can("prior") or family.needs_labels:
        metrics["active_units"] = active_units(posterior_means(model, data.x_test, labels=labels))
        metrics["latent_dim"] = int(model.latent_dim)
    if family.can("likelihood_bound"):
        if nll_samples:
            nll = importance_sampled_nll(
                model, data.x_test, nll_samples, verbose=verbose, labels=labels
            )
            metrics["nll"] = float(nll.mean())
            metrics["nll_samples"] = int(nll_samples)
    if family.can("denoising"):
        # The denoiser's own task: test inputs corrupted as in training, with
        # a fixed key so every evaluation of a run sees the same noise.
        noisy = np.asarray(model.add_noise(data.x_test, seed=DENOISING_EVAL_SEED))
        denoised = model.predict(noisy, batch_size=batch_size, verbose=0)
        metrics["noisy_input_mse"] = float(np.mean((noisy - data.x_test) ** 2))
        metrics["denoised_mse"] = float(np.mean((denoised - data.x_test) ** 2))
        metrics["noise_factor"] = float(model.noise_factor)
    add_bits_per_dim(metrics, data.data_shape)
    if family.can("codebook"):
        metrics.update(codebook_metrics(model, data.x_test, batch_size))
    if family.can("prior") and data.factors is not None:
        # Data made with known factors (shapes2d): how the posterior means line up with them.
        codes = posterior_means(model, data.x_test, labels=labels)
        metrics.update(disentanglement_metrics(codes, data.factors["test"]))
    metrics["protocol"] = data.protocol
    return metrics


# The metrics in nats per example that have a bits-per-dimension twin, `<name>_bits_per_dim`.
BITS_PER_DIM_METRICS = ("neg_elbo", "nll", "baseline_nll")


def add_bits_per_dim(metrics, data_shape):
    """Adds `<name>_bits_per_dim` next to each of `BITS_PER_DIM_METRICS` in nats, and `dimensions`.

    Only for a model that reports `-log p(x)` or its bound (`neg_elbo` or
    `nll`): bits/dim = nats / (D ln 2), D the features per example. For the
    8-bit likelihoods it is the usual bits per dimension of image models;
    for the continuous Gaussian it is a density's, not comparable with them.
    """
    if "neg_elbo" not in metrics and "nll" not in metrics:
        return metrics
    dimensions = int(math.prod(data_shape))
    metrics["dimensions"] = dimensions
    for name in BITS_PER_DIM_METRICS:
        if name in metrics:
            metrics[f"{name}_bits_per_dim"] = float(bits_per_dim(metrics[name], dimensions))
    return metrics


def format_metrics(config, metrics):
    """Human-readable report of `evaluate_model`'s metrics."""
    lines = [
        f"model: {config.model} ({config.resolved_arch}, latent_dim={config.latent_dim}, "
        f"likelihood={config.resolved_likelihood})",
        f"data: {metrics['protocol']}",
        f"test examples: {metrics['test_examples']}",
    ]
    if "kl_loss" in metrics:
        lines += [
            f"negative ELBO:        {metrics['neg_elbo']:10.3f} nats/example"
            + _bits_text(metrics, "neg_elbo"),
            f"  reconstruction NLL: {metrics['reconstruction_loss']:10.3f}",
            f"  KL(q(z|x) || p(z)): {metrics['kl_loss']:10.3f}",
        ]
        if not math.isclose(metrics["loss"], metrics["neg_elbo"], rel_tol=1e-6, abs_tol=1e-6):
            lines.append(
                f"training objective:   {metrics['loss']:10.3f} (the KL term weighted as "
                "in training; not a bound on -log p(x))"
            )
        if "nll" in metrics:
            lines.append(
                f"-log p(x{' | y' if config.family.needs_labels else ''}), importance-sampled "
                f"(K={metrics['nll_samples']}): "
                f"{metrics['nll']:10.3f} nats/example" + _bits_text(metrics, "nll")
            )
        lines += [
            f"independent-pixel baseline NLL: {metrics['baseline_nll']:.3f} nats/example"
            + _bits_text(metrics, "baseline_nll"),
        ]
    else:
        error = (
            "mean squared error"
            if config.resolved_likelihood == "gaussian"
            else "binary cross-entropy"
        )
        lines.append(
            f"reconstruction loss ({error} per feature): {metrics['reconstruction_loss']:.5f}"
        )
    if "codebook_size" in metrics:
        lines.append(
            f"codebook on the test set: {metrics['test_codebook_usage']:.0%} of "
            f"{metrics['codebook_size']} codes used, perplexity {metrics['test_perplexity']:.2f}"
        )
    if "prior_bits_per_dim" in metrics:
        lines.append(
            f"code prior: test NLL {metrics['prior_bits_per_dim']:.4f} bits/dim of the code map"
        )
    if "active_units" in metrics:
        lines.append(f"active latent units:  {metrics['active_units']} of {metrics['latent_dim']}")
    lines.append(f"reconstruction MSE per feature: {metrics['reconstruction_mse']:.5f}")
    if "mig" in metrics:
        lines.append(
            f"disentanglement (true factors): MIG {metrics['mig']:.3f}, DCI disentanglement "
            f"{metrics['dci_disentanglement']:.3f}, completeness {metrics['dci_completeness']:.3f}, "
            f"informativeness {metrics['dci_informativeness']:.3f}, FactorVAE score "
            f"{metrics['factor_vae_score']:.3f}"
        )
    if "denoised_mse" in metrics:
        lines.append(
            f"denoising (noise factor {metrics['noise_factor']:g}), MSE to the clean test "
            f"inputs: noisy {metrics['noisy_input_mse']:.5f} -> denoised {metrics['denoised_mse']:.5f}"
        )
    return "\n".join(lines)


def _bits_text(metrics, name):
    key = f"{name}_bits_per_dim"
    return f" ({metrics[key]:.4f} bits/dim)" if key in metrics else ""


def codebook_metrics(model, x, batch_size=256):
    """The codebook's use on `x` as a whole, and the learned prior's NLL of its codes.

    Keys: `codebook_size`, `test_codebook_usage` (the fraction of codes
    some position of `x` took), `test_perplexity` (`exp` of the entropy of
    the codes' frequencies over all of `x`, between 1 and the codebook
    size) and, once the model has a prior, `prior_bits_per_dim` (the mean
    negative log2-likelihood of `x`'s code maps per position).

    Args:
        model: a model of a family with a codebook (the VQ-VAE).
        x: array. Examples, e.g. the test split.
        batch_size: int. Defaults to `256`.
    """
    counts = model.code_counts(x, batch_size)
    shares = counts / max(counts.sum(), 1)
    used = shares[shares > 0]
    found = {
        "codebook_size": int(model.codebook_size),
        "test_codebook_usage": float(np.mean(counts > 0)),
        "test_perplexity": float(np.exp(-np.sum(used * np.log(used)))),
    }
    if model.prior is not None:
        bits = [
            np.asarray(model.prior.bits_per_dim(model.encode(x[i : i + batch_size])))
            for i in range(0, len(x), batch_size)
        ]
        found["prior_bits_per_dim"] = float(np.mean(np.concatenate(bits)))
    return found
