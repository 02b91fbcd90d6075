"""The figures of a trained model, chosen by what its family declares it can do."""

import os

import keras
import numpy as np

from tfvae.evaluation import latent_pictures
from tfvae.evaluation import plots
from tfvae.models.registry import family_of
from tfvae.models.registry import with_labels

FIGURE_EXAMPLES = 10
PRIOR_SAMPLES = 64
# Samples per class in `class_samples.png` (a family that takes labels).
CLASS_SAMPLES = 10


def write_figures(model, config, data, run_dir):
    """Writes the PNG figures of a trained model into `run_dir`.

    Every model: `reconstructions.png`, `latent_space.png`. A family with a
    prior (the VAE) also gets `samples.png`, `manifold.png` (latent dimension
    >= 2), `interpolation.png` and `traversal.png` (see
    `tfvae.evaluation.latent_pictures`); a denoising family `denoising.png`;
    a family that takes labels (the conditional VAE) `class_samples.png`,
    one row of samples per class.

    Args:
        model: a trained model of a registered family.
        config: `TrainConfig` of the run (its seed fixes the prior samples).
        data: `DataSplits`; the figures show its test split.
        run_dir: str. An existing directory.
    """
    family = family_of(model)
    x_test, y_test = data.arrays("test")
    step = max(1, len(x_test) // FIGURE_EXAMPLES)
    picks = x_test[::step][:FIGURE_EXAMPLES]
    picked_labels = None if y_test is None else y_test[::step][:FIGURE_EXAMPLES]
    # predict() would wrap ten examples in a parallel-map pipeline, which op
    # determinism rewrites with a spurious native error on stderr.
    reconstructions = model.predict_on_batch(with_labels(model, picks, picked_labels))
    plots.save_figure(
        plots.reconstructions_figure(picks, reconstructions),
        os.path.join(run_dir, "reconstructions.png"),
    )
    codes = np.asarray(model.latent_code(with_labels(model, x_test, y_test)))
    what = "posterior means" if family.can("prior") else "codes"
    plots.save_figure(
        plots.latent_figure(
            codes, y_test, title=f"Latent {what} of the test set", class_names=data.class_names
        ),
        os.path.join(run_dir, "latent_space.png"),
    )
    if family.can("prior"):
        _write_prior_figures(model, config, x_test, y_test, codes, run_dir)
    if family.needs_labels:
        _write_class_samples(model, config, data.class_names, run_dir)
    if family.can("codebook"):
        write_codebook_figures(model, config, x_test, run_dir)
    if family.can("denoising"):
        noisy = np.asarray(model.add_noise(picks, seed=config.seed))
        plots.save_figure(
            plots.denoising_figure(noisy, model.predict_on_batch(noisy), picks),
            os.path.join(run_dir, "denoising.png"),
        )


def _write_prior_figures(model, config, x_test, y_test, codes, run_dir):
    latent_dim = model.latent_dim
    eps = keras.random.normal((PRIOR_SAMPLES, latent_dim), seed=config.seed)
    samples = np.asarray(model.sample(PRIOR_SAMPLES, eps=eps))
    plots.save_figure(
        plots.grid_figure(samples, "Decoded samples from the prior N(0, I)"),
        os.path.join(run_dir, "samples.png"),
    )
    # The dimensions whose posterior means vary most over the test set.
    active = latent_pictures.most_active_dims(
        codes, min(latent_dim, latent_pictures.MAX_TRAVERSED_DIMS)
    )
    if latent_dim >= 2:
        spanned = sorted(int(d) for d in active[:2])
        others = "; the other dimensions at 0" if latent_dim > 2 else ""
        images, coordinates = latent_pictures.manifold_grid(model, dims=spanned)
        plots.save_figure(
            plots.manifold_figure(
                images, coordinates, spanned, f"Decoded grid of prior quantiles{others}"
            ),
            os.path.join(run_dir, "manifold.png"),
        )
    a, b = latent_pictures.pair_of_different_classes(y_test, len(x_test))
    images, weights = latent_pictures.interpolate(model, x_test[a], x_test[b])
    plots.save_figure(
        plots.interpolation_figure(
            images, weights, "Between the posterior means of two test examples"
        ),
        os.path.join(run_dir, "interpolation.png"),
    )
    images, dims, values = latent_pictures.traverse(model, x_test[a], dims=active)
    plots.save_figure(
        plots.traversal_figure(images, dims, values), os.path.join(run_dir, "traversal.png")
    )


def _write_class_samples(model, config, class_names, run_dir):
    """`class_samples.png`: `CLASS_SAMPLES` decoded prior draws for each class, a row each."""
    classes = int(model.num_classes)
    labels = np.repeat(np.arange(classes), CLASS_SAMPLES)
    eps = keras.random.normal((len(labels), model.latent_dim), seed=config.seed)
    samples = np.asarray(model.sample(labels, eps=eps))
    names = class_names if class_names is not None and len(class_names) == classes else None
    plots.save_figure(
        plots.class_grid_figure(
            np.split(samples, classes),
            names or [str(k) for k in range(classes)],
            "Decoded samples from the prior, one row per class",
        ),
        os.path.join(run_dir, "class_samples.png"),
    )


def write_codebook_figures(model, config, x_test, run_dir):
    """`codebook_usage.png` and, once the model has a learned prior, `samples.png`.

    Args:
        model: a model of a family with a codebook (the VQ-VAE).
        config: `TrainConfig` of the run (its seed fixes the prior samples).
        x_test: array. The test split.
        run_dir: str. An existing directory.
    """
    plots.save_figure(
        plots.codebook_usage_figure(model.code_counts(x_test)),
        os.path.join(run_dir, "codebook_usage.png"),
    )
    if model.prior is not None:
        samples, _ = model.sample(PRIOR_SAMPLES, seed=config.seed)
        plots.save_figure(
            plots.grid_figure(np.asarray(samples), "Decoded samples from the learned code prior"),
            os.path.join(run_dir, "samples.png"),
        )
