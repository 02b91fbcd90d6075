"""Test-set evaluation of a trained model or a run directory."""

import numpy as np

from tfvae.baselines import independent_features_nll
from tfvae.data import load_dataset
from tfvae.runs import load_run


def evaluate_model(model, data, likelihood, batch_size=256):
    """Returns the test metrics of `model` on `data` (a `DataSplits`).

    Keys: the model's loss terms (`loss`, `reconstruction_loss` and, for the
    VAE, `kl_loss`, in nats per example), `reconstruction_mse` (per
    feature, from the deterministic reconstruction), the independent-features
    baseline NLL, and the data protocol.
    """
    test = data.pipeline("test", batch_size, shuffle=False)
    metrics = model.evaluate(test, verbose=0, return_dict=True)
    metrics = {name: float(value) for name, value in metrics.items()}
    reconstruction = model.predict(test, verbose=0)
    metrics["reconstruction_mse"] = float(np.mean((reconstruction - data.x_test) ** 2))
    metrics["baseline_nll"] = independent_features_nll(data.x_train, data.x_test, likelihood)
    metrics["test_examples"] = int(len(data.x_test))
    metrics["protocol"] = data.protocol
    return metrics


def evaluate_run(run_dir, batch_size=256):
    """Loads a run directory and evaluates its model on the test split of its data."""
    config, model = load_run(run_dir)
    data = load_dataset(
        config.dataset,
        binarize=config.resolved_binarize,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
    )
    metrics = evaluate_model(model, data, config.resolved_likelihood, batch_size)
    return config, metrics


def format_metrics(config, metrics):
    """Human-readable report of `evaluate_model`'s metrics."""
    lines = [
        f"model: {config.model} ({config.arch}, latent_dim={config.latent_dim}, "
        f"likelihood={config.resolved_likelihood})",
        f"data: {metrics['protocol']}",
        f"test examples: {metrics['test_examples']}",
    ]
    if config.model == "vae":
        lines += [
            f"negative ELBO:        {metrics['loss']:10.3f} nats/example",
            f"  reconstruction NLL: {metrics['reconstruction_loss']:10.3f}",
            f"  KL(q(z|x) || p(z)): {metrics['kl_loss']:10.3f}",
            f"independent-pixel baseline NLL: {metrics['baseline_nll']:.3f} nats/example",
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
    lines.append(f"reconstruction MSE per feature: {metrics['reconstruction_mse']:.5f}")
    return "\n".join(lines)
