"""Figures of a trained model: reconstructions, prior samples, latent space, curves.

Each function takes arrays (no model, no files) and returns a matplotlib
`Figure`; `save_figure` writes it as a PNG.
"""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfvae.io.atomic import atomic_file  # noqa: E402

# A colour bar stays legible with this many named classes; more are sampled evenly.
MAX_NAMED_CLASSES = 20
MAX_CLASS_NAME_LENGTH = 24


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


def class_grid_figure(rows, row_names, title):
    """A grid with one row of examples per class, each row named on its left.

    Args:
        rows: sequence of arrays `[n, ...]`, one per class.
        row_names: sequence of str, one per row.
        title: str.
    """
    columns = max(len(row) for row in rows)
    figure, axes = plt.subplots(
        len(rows), columns, figsize=(1.0 * columns + 0.6, 1.0 * len(rows) + 0.4), squeeze=False
    )
    for i, row in enumerate(rows):
        for j in range(columns):
            axis = axes[i, j]
            if j < len(row):
                _show(axis, row[j])
            else:
                axis.axis("off")
        axes[i, 0].axis("on")
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        for spine in axes[i, 0].spines.values():
            spine.set_visible(False)
        axes[i, 0].set_ylabel(str(row_names[i]), rotation=0, ha="right", va="center")
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


def latent_figure(codes, labels=None, title="Latent space of the test set", class_names=None):
    """Scatter of latent codes, coloured by label; projected with PCA when not 2-D.

    The colours index the distinct labels in sorted order and the colour
    bar names at most `MAX_NAMED_CLASSES` of them, as text: matplotlib never
    lays out ticks over the labels' own values, so any labels (1e18, many
    classes) draw in the same time.

    Args:
        codes: array `[n, latent_dim]`.
        labels: array `[n]` or None. Defaults to `None` (one colour).
        title: str. Defaults to `"Latent space of the test set"`.
        class_names: sequence of str or None. The name of integer label
            `k`, shown instead of `k`. Defaults to `None`.
    """
    points, how = project_to_2d(codes)
    figure, axis = plt.subplots(figsize=(6, 5))
    if labels is None:
        axis.scatter(points[:, 0], points[:, 1], s=6, alpha=0.7)
    else:
        classes, index = np.unique(np.asarray(labels).reshape(-1), return_inverse=True)
        count = len(classes)
        colours = "tab10" if count <= 10 else "tab20" if count <= 20 else "viridis"
        scatter = axis.scatter(
            points[:, 0],
            points[:, 1],
            c=index,
            cmap=colours,
            vmin=-0.5,
            vmax=count - 0.5,
            s=6,
            alpha=0.8,
        )
        colour_bar = figure.colorbar(scatter, ax=axis, label="label")
        named = np.unique(np.linspace(0, count - 1, min(count, MAX_NAMED_CLASSES)).round())
        named = named.astype(int)
        colour_bar.set_ticks(named, labels=[_class_name(classes[i], class_names) for i in named])
        colour_bar.minorticks_off()
    axis.set_xlabel(f"{how}: axis 1")
    axis.set_ylabel(f"{how}: axis 2")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def _class_name(label, class_names):
    """The text shown for `label`: its class name if there is one, cut to a tick's width."""
    if class_names is not None and np.issubdtype(type(label), np.integer):
        if 0 <= label < len(class_names):
            label = class_names[label]
    text = str(label)
    return text if len(text) <= MAX_CLASS_NAME_LENGTH else text[: MAX_CLASS_NAME_LENGTH - 1] + "…"


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
    """Writes `figure` to `path` (PNG) atomically, then closes it."""
    try:
        with atomic_file(path) as tmp:
            figure.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(figure)


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


def anomaly_scores_figure(
    normal_scores, anomalous_scores, threshold, title="Anomaly scores of the test set"
):
    """Histograms of normal and anomalous scores on shared bins, with the threshold drawn."""
    normal_scores = np.asarray(normal_scores, np.float64)
    anomalous_scores = np.asarray(anomalous_scores, np.float64)
    everything = np.concatenate([normal_scores, anomalous_scores, [threshold]])
    bins = np.linspace(everything.min(), everything.max(), 61)
    figure, axis = plt.subplots(figsize=(6.5, 4))
    # Densities, so a small normal set stays visible next to many anomalies.
    axis.hist(
        normal_scores, bins=bins, density=True, alpha=0.6, label=f"normal ({len(normal_scores)})"
    )
    axis.hist(
        anomalous_scores,
        bins=bins,
        density=True,
        alpha=0.6,
        label=f"anomalous ({len(anomalous_scores)})",
    )
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    axis.set_xlabel("anomaly score")
    axis.set_ylabel("density")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def roc_figure(false_positive_rates, true_positive_rates, auc, operating_point=None, title="ROC"):
    """An ROC curve (anomaly = positive), the chance diagonal and the threshold's point."""
    figure, axis = plt.subplots(figsize=(4.8, 4.5))
    axis.plot(false_positive_rates, true_positive_rates, label=f"ROC (AUC {auc:.3f})")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    if operating_point is not None:
        axis.scatter(*operating_point, color="black", zorder=3, label="at the threshold")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.01)
    axis.set_xlabel("false-positive rate (normal flagged)")
    axis.set_ylabel("true-positive rate (anomalies flagged)")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    return figure


def denoising_figure(noisy, denoised, clean, title="Denoising test inputs"):
    """Noisy inputs in the first row, the model's output in the second, the clean originals in the third."""
    n = len(clean)
    figure, axes = plt.subplots(3, n, figsize=(1.2 * n, 4.0), squeeze=False)
    for row, (label, examples) in enumerate(
        (("noisy input", noisy), ("denoised", denoised), ("clean original", clean))
    ):
        for i in range(n):
            _show(axes[row, i], examples[i])
        axes[row, 0].set_title(label, fontsize=8, loc="left")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def _tile(images):
    """`images` `[rows, columns, ...]` as one `[rows * h, columns * w]` picture, or `None` if not images."""
    tiles = [[_as_image(example) for example in row] for row in images]
    if any(tile is None for row in tiles for tile in row):
        return None
    return np.concatenate([np.concatenate(row, axis=1) for row in tiles], axis=0)


def manifold_figure(images, coordinates, dims=(0, 1), title="Decoded latent grid"):
    """The decoded grid of `tfvae.evaluation.latent_pictures.manifold_grid` as one picture.

    The axes are labelled with the latent coordinates of the tiles' centres.
    """
    images = np.asarray(images)
    coordinates = np.asarray(coordinates)
    n_rows, n_columns = images.shape[:2]
    canvas = _tile(images)
    if canvas is None:
        return _examples_grid_figure(
            images,
            [f"{coordinates[0, j, 0]:.2f}" for j in range(n_columns)],
            [f"z[{dims[1]}]={coordinates[i, 0, 1]:.2f}" for i in range(n_rows)],
            title,
        )
    height, width = canvas.shape[0] // n_rows, canvas.shape[1] // n_columns
    size = min(9.0, 0.5 * max(n_rows, n_columns) + 1.5)
    figure, axis = plt.subplots(figsize=(size + 0.6, size))
    axis.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    # At most about 8 labels per axis stay legible.
    x_step = max(1, math.ceil(n_columns / 8))
    y_step = max(1, math.ceil(n_rows / 8))
    columns = range(0, n_columns, x_step)
    rows = range(0, n_rows, y_step)
    axis.set_xticks([(j + 0.5) * width - 0.5 for j in columns])
    axis.set_xticklabels([f"{coordinates[0, j, 0]:.2f}" for j in columns], fontsize=7)
    axis.set_yticks([(i + 0.5) * height - 0.5 for i in rows])
    axis.set_yticklabels([f"{coordinates[i, 0, 1]:.2f}" for i in rows], fontsize=7)
    axis.set_xlabel(f"z[{dims[0]}]")
    axis.set_ylabel(f"z[{dims[1]}]")
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def interpolation_figure(images, weights, title="Decoded straight line between two codes"):
    """One strip of decoded points, each titled with its weight `t` (0 at the first example)."""
    n = len(images)
    figure, axes = plt.subplots(1, n, figsize=(1.1 * n, 1.7), squeeze=False)
    for i in range(n):
        _show(axes[0, i], images[i])
        axes[0, i].set_title(f"t={weights[i]:.2f}", fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def traversal_figure(
    images, dims, values, title="Latent traversals: one dimension moved from the posterior mean"
):
    """A grid of decoded traversals: a row per latent dimension, a column per offset."""
    return _examples_grid_figure(
        images, [f"{v:+g}" for v in values], [f"z[{d}]" for d in dims], title
    )


def _examples_grid_figure(images, column_labels, row_labels, title):
    n_rows, n_columns = len(images), len(images[0])
    figure, axes = plt.subplots(
        n_rows, n_columns, figsize=(0.9 * n_columns + 0.9, 0.9 * n_rows + 0.6), squeeze=False
    )
    for i in range(n_rows):
        for j in range(n_columns):
            _show(axes[i, j], images[i][j])
        axes[i, 0].text(
            -0.15,
            0.5,
            row_labels[i],
            transform=axes[i, 0].transAxes,
            ha="right",
            va="center",
            fontsize=8,
        )
    for j in range(n_columns):
        axes[0, j].set_title(column_labels[j], fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def accuracy_vs_labels_figure(
    labels_per_class, series, title="Test accuracy against labeled examples per class"
):
    """Lines of mean test accuracy with standard-deviation error bars, one per method.

    Args:
        labels_per_class: sequence of int. The x values.
        series: dict. Method name -> `(means, stds)`, one value per x.
        title: str. Defaults to a description of the axes.
    """
    figure, axis = plt.subplots(figsize=(6.5, 4.2))
    for name, (means, stds) in series.items():
        axis.errorbar(labels_per_class, means, yerr=stds, marker="o", capsize=3, label=name)
    axis.set_xscale("log")
    axis.set_xticks(labels_per_class, [str(n) for n in labels_per_class])
    axis.minorticks_off()
    axis.set_xlabel("labeled training examples per class")
    axis.set_ylabel("test accuracy")
    axis.set_title(title, fontsize=10)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def codebook_usage_figure(counts, title="Codebook usage on the test set"):
    """A bar per code: the share of code-map positions that took it, sorted from most used.

    Args:
        counts: array `[codebook_size]`. Positions that took each code.
        title: str.
    """
    counts = np.asarray(counts, np.float64)
    shares = np.sort(counts / max(counts.sum(), 1.0))[::-1]
    figure, axis = plt.subplots(figsize=(6, 3))
    axis.bar(np.arange(len(shares)), shares, width=0.9)
    axis.axhline(1.0 / len(shares), color="grey", linestyle="--", label="uniform")
    axis.set_xlabel(f"code, by use ({int((counts > 0).sum())} of {len(counts)} used)")
    axis.set_ylabel("share of positions")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
