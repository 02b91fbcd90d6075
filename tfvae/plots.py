"""Figures of a trained model: reconstructions, prior samples, latent space, curves.

Each function takes arrays (no model, no files) and returns a matplotlib
`Figure`; `save_figure` writes it as a PNG.
"""

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _as_image(example):
    example = np.asarray(example)
    if example.ndim == 3:
        return example[..., 0] if example.shape[-1] == 1 else np.clip(example, 0, 1)
    flat = example.reshape(-1)
    side = math.isqrt(flat.size)
    return flat.reshape(side, side) if side * side == flat.size else None


def _show(axis, example):
    image = _as_image(example)
    if image is None:
        axis.plot(np.asarray(example).reshape(-1), linewidth=0.8)
        axis.set_xticks([])
        axis.set_yticks([])
    else:
        axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axis.axis("off")


def reconstructions_figure(
    inputs, reconstructions, title="Test inputs (top) and reconstructions (bottom)"
):
    """Inputs in the first row, their reconstructions in the second."""
    n = len(inputs)
    figure, axes = plt.subplots(2, n, figsize=(1.2 * n, 2.8), squeeze=False)
    for i in range(n):
        _show(axes[0, i], inputs[i])
        _show(axes[1, i], reconstructions[i])
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def grid_figure(examples, title):
    """A square grid of examples, e.g. decoded samples from the prior."""
    n = len(examples)
    columns = math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(1.1 * columns, 1.1 * rows + 0.4), squeeze=False
    )
    for i, axis in enumerate(axes.flat):
        if i < n:
            _show(axis, examples[i])
        else:
            axis.axis("off")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def project_to_2d(codes):
    """Returns `(points, how)`: the codes themselves if 2-D, else their first two principal components."""
    codes = np.asarray(codes, np.float64)
    if codes.shape[1] == 1:
        return np.stack([codes[:, 0], np.zeros(len(codes))], axis=1), "z (1-D)"
    if codes.shape[1] == 2:
        return codes, "z"
    centred = codes - codes.mean(axis=0)
    _, singular_values, components = np.linalg.svd(centred, full_matrices=False)
    explained = singular_values**2 / np.sum(singular_values**2)
    points = centred @ components[:2].T
    return points, f"PCA of {codes.shape[1]}-D z ({explained[:2].sum():.0%} of variance)"


def latent_figure(codes, labels=None, title="Latent space of the test set"):
    """Scatter of latent codes, coloured by label; projected with PCA when not 2-D."""
    points, how = project_to_2d(codes)
    figure, axis = plt.subplots(figsize=(6, 5))
    if labels is None:
        axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        scatter = axis.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8)
        figure.colorbar(scatter, ax=axis, label="label", ticks=np.unique(labels))
    axis.set_xlabel(f"{how}: axis 1")
    axis.set_ylabel(f"{how}: axis 2")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def history_figure(history):
    """Training and validation curves of every metric in a Keras history dict."""
    names = [k for k in history if not k.startswith("val_")]
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    for axis, name in zip(axes[0], names, strict=False):
        epochs = np.arange(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(name, fontsize=10)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def save_figure(figure, path):
    """Writes `figure` to `path` (PNG) through a temporary file, then closes it."""
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".tmp-{os.path.basename(path)}")
    figure.savefig(tmp, dpi=100, format="png")
    plt.close(figure)
    os.replace(tmp, path)


def mse_vs_latent_figure(latent_dims, series, title="Test reconstruction MSE against latent size"):
    """Lines of test MSE against latent size, one per method (`series`: name -> values)."""
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, values in series.items():
        axis.plot(latent_dims, values, marker="o", label=name)
    axis.set_xscale("log", base=2)
    axis.set_xticks(latent_dims, [str(d) for d in latent_dims])
    axis.set_yscale("log")
    axis.set_xlabel("latent size")
    axis.set_ylabel("test MSE per feature")
    axis.set_title(title, fontsize=10)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return figure
