"""The autoencoder as nonlinear PCA: test MSE against latent size for PCA, AE and VAE."""

import dataclasses
import os
import time

import numpy as np

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.evaluation import plots
from tfvae.evaluation.baselines import pca_reconstruction_mse
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import timestamped_dir
from tfvae.io.atomic import write_json
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import fit_model
from tfvae.training.runs import check_new_run_dir
from tfvae.training.trainer import prepare

DEFAULT_LATENT_DIMS = (2, 4, 8, 16, 32)
RESULTS_FILE = "results.json"
FIGURE_FILE = "mse_vs_latent.png"
OUTPUT_FILES = (RESULTS_FILE, FIGURE_FILE)


@dataclasses.dataclass
class ComparisonRow:
    """Test reconstruction MSE per feature of each method at one latent size."""

    latent_dim: int
    pca_mse: float
    ae_mse: float
    vae_mse: float
    seconds: float


def _trained_mse(config, data, verbose):
    model, _ = fit_model(config, data, validation=False, verbose=verbose)
    reconstruction = model.predict(data.pipeline("test", 256, shuffle=False), verbose=0)
    return float(np.mean((reconstruction - data.x_test) ** 2))


def compare_with_pca(
    dataset="mnist5k",
    latent_dims=DEFAULT_LATENT_DIMS,
    epochs=30,
    seed=0,
    progress=print,
    verbose=0,
    base=None,
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
        base: `TrainConfig` or None. The other settings of both models
            (architecture, widths, batch size, optimizer, ...; the VAE's own
            settings apply to the VAE). When given, its `dataset`, `epochs`
            and `seed` are used and the three arguments above are not.
            Defaults to `None`: `TrainConfig`'s defaults.

    Returns:
        `(rows, data)`: a list of `ComparisonRow` and the `DataSplits` used.
    """
    if base is None:
        base = TrainConfig(dataset=dataset, epochs=epochs, seed=seed)
    latent_dims = tuple(latent_dims)
    if not latent_dims:
        raise TfvaeError("latent_dims must name at least one latent size")
    if not all(checks.is_integer(d) and d >= 1 for d in latent_dims):
        raise TfvaeError(f"latent sizes must be positive integers. Received: {list(latent_dims)}")
    # Each family keeps the base's settings that it declares (the VAE its beta).
    configs = {
        (model, d): TrainConfig.from_dict(
            {**base.to_dict(), "model": model, "latent_dim": d, "binarize": False, "out": None}
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
    """The MSE table: a row per latent size, PCA, AE and VAE and the ratios to PCA."""
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


def default_output_dir(dataset, root="saved_models"):
    """`<root>/compare-pca-<data set>-<YYYYmmdd-HHMMSS>`."""
    return timestamped_dir(root, "compare-pca", os.path.basename(dataset))


def write_comparison_dir(rows, data, epochs, out):
    """Writes `results.json` and `mse_vs_latent.png` into the new directory `out`.

    The directory is built under a temporary name and renamed when
    complete, so `out` is either complete or absent.

    Args:
        rows: list of `ComparisonRow`, from `compare_with_pca`.
        data: `DataSplits`. Its protocol is recorded.
        epochs: int. Training epochs of each model, recorded.
        out: str. A new or empty directory.

    Returns:
        `out`.
    """
    check_new_run_dir(out)
    with staged_dir(out, prefix=".tmp-compare-") as staging:
        write_json(
            os.path.join(staging, RESULTS_FILE),
            {
                "protocol": data.protocol,
                "epochs": epochs,
                "rows": [dataclasses.asdict(r) for r in rows],
            },
        )
        figure = plots.mse_vs_latent_figure(
            [r.latent_dim for r in rows],
            {
                "PCA": [r.pca_mse for r in rows],
                "AE": [r.ae_mse for r in rows],
                "VAE (posterior mean)": [r.vae_mse for r in rows],
            },
            title=f"Test MSE against latent size: {data.name}",
        )
        plots.save_figure(figure, os.path.join(staging, FIGURE_FILE))
    return out
