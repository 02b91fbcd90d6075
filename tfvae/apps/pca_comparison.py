"""The autoencoder as nonlinear PCA: test MSE against latent size for PCA, AE and VAE."""

import dataclasses
import time

import numpy as np

from tfvae.errors import TfvaeError
from tfvae.evaluation.baselines import pca_reconstruction_mse
from tfvae.training.config import TrainConfig

DEFAULT_LATENT_DIMS = (2, 4, 8, 16, 32)


@dataclasses.dataclass
class ComparisonRow:
    """Test reconstruction MSE per feature of each method at one latent size."""

    latent_dim: int
    pca_mse: float
    ae_mse: float
    vae_mse: float
    seconds: float


def _trained_mse(config, data, verbose):
    from tfvae.training.trainer import build_compiled_model
    from tfvae.training.trainer import count_steps_per_epoch

    model = build_compiled_model(
        config, data.data_shape, count_steps_per_epoch(config, data), x_train=data.x_train
    )
    model.fit(
        data.pipeline("train", config.batch_size, seed=config.seed),
        epochs=config.epochs,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles, seeded
    )
    reconstruction = model.predict(data.pipeline("test", 256, shuffle=False), verbose=0)
    return float(np.mean((reconstruction - data.x_test) ** 2))


def compare_with_pca(
    dataset="mnist5k", latent_dims=DEFAULT_LATENT_DIMS, epochs=30, seed=0, progress=print, verbose=0
):
    """Trains an AE and a VAE per latent size and compares their test MSE with PCA's.

    All three see the same grey-level (not binarized) data and are scored on
    the same test split; the AE uses MSE (Gaussian), the VAE a Gaussian
    likelihood with a learned scale, reconstructing from the posterior mean.

    Args:
        dataset: str. Any `--dataset` value. Defaults to `"mnist5k"`.
        latent_dims: sequence of int. Defaults to `(2, 4, 8, 16, 32)`.
        epochs: int. Training epochs of each model. Defaults to `30`.
        seed: int. Defaults to `0`.
        progress: callable taking a line of text, or None. Defaults to `print`.
        verbose: Keras `fit` verbosity. Defaults to `0`.

    Returns:
        `(rows, data)`: a list of `ComparisonRow` and the `DataSplits` used.
    """
    from tfvae.training.trainer import prepare

    latent_dims = tuple(latent_dims)
    if not latent_dims:
        raise TfvaeError("latent_dims must name at least one latent size")
    configs = {
        (model, d): TrainConfig(
            model=model, dataset=dataset, latent_dim=d, epochs=epochs, seed=seed, binarize=False
        )
        for d in latent_dims
        for model in ("ae", "vae")
    }
    data = prepare(configs[("ae", latent_dims[0])])
    limit = min(len(data.x_train), int(np.prod(data.data_shape)))
    too_big = [d for d in latent_dims if d > limit]
    if too_big:
        raise TfvaeError(f"latent sizes {too_big} exceed the data's dimension ({limit})")
    rows = []
    for d in latent_dims:
        start = time.perf_counter()
        pca = pca_reconstruction_mse(data.x_train, data.x_test, d)
        ae = _trained_mse(configs[("ae", d)], data, verbose)
        vae = _trained_mse(configs[("vae", d)], data, verbose)
        rows.append(ComparisonRow(d, pca, ae, vae, time.perf_counter() - start))
        if progress:
            progress(
                f"latent {d:3d}: PCA {pca:.5f}  AE {ae:.5f}  VAE {vae:.5f}  ({rows[-1].seconds:.0f} s)"
            )
    return rows, data


def format_comparison(rows):
    lines = [
        "test reconstruction MSE per feature",
        f"{'latent':>6}  {'PCA':>9}  {'AE':>9}  {'VAE':>9}  {'AE/PCA':>7}  {'VAE/PCA':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.latent_dim:>6}  {r.pca_mse:9.5f}  {r.ae_mse:9.5f}  {r.vae_mse:9.5f}  "
            f"{r.ae_mse / r.pca_mse:7.3f}  {r.vae_mse / r.pca_mse:7.3f}"
        )
    return "\n".join(lines)
