"""Samples from the prior of a preset or a run, as a PNG grid (`tfvae sample`)."""

import os

import keras
import numpy as np

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.evaluation import plots
from tfvae.models import registry
from tfvae.presets.sources import load_run_or_preset
from tfvae.training.sampler_fitting import with_latent_sampler

# A grid of 20 x 20 digits is as many as one figure shows legibly.
MAX_SAMPLES = 400
# What `tfvae sample --sampler` takes: a VAE's sampler fitted after training, or its prior.
SAMPLER_CHOICES = ("fitted", "prior")


def write_prior_samples(source, out, n=64, seed=0, overwrite=False, sampler=None):
    """Decodes `n` draws from the prior of a preset or run and writes them as a PNG grid.

    Only a family declaring the `prior` capability (the VAE) has a prior
    to sample; any other model is refused in one line, before anything is
    written. The draws `z ~ N(0, I)` come from `seed`, so the same call
    gives the same picture.

    Args:
        source: str. A shipped preset's name, a preset directory, a hub
            handle, or a run directory written by `tfvae train`.
        out: str. The PNG file to write.
        n: int. Number of samples, 1 to 400. Defaults to `64`.
        seed: int. Seed of the draws. Defaults to `0`.
        overwrite: bool. Replace an existing `out`. Defaults to `False`.
        sampler: str or None. `"fitted"`: the sampler fitted after training
            (`tfvae fit-sampler`), refused if the model has none; `"prior"`:
            the prior `N(0, I)` even if a sampler is fitted. Defaults to
            `None`: the fitted sampler when there is one, else the prior.

    Returns:
        The samples, a numpy array `[n, ...]` in the data's shape.

    Example:

    >>> write_prior_samples("vae_dense_mnist5k", "grid.png", n=64)
    """
    n = checks.positive_int("n", n)
    if n > MAX_SAMPLES:
        raise TfvaeError(f"n must be at most {MAX_SAMPLES} (one legible grid). Received: n={n}")
    seed = checks.non_negative_int("seed", seed)
    if sampler is not None:
        checks.choice("sampler", sampler, SAMPLER_CHOICES)
    _check_out(out, overwrite)
    _, model, where = load_run_or_preset(source)
    with_prior = [f.name for f in registry.families() if f.can("prior")]
    try:
        family = registry.family_of(model)
    except TfvaeError:
        family = None
    if family is None or not family.can("prior"):
        kind = f"a {family.name} model" if family else "a model of no registered family"
        raise TfvaeError(
            f"{where} holds {kind} ({type(model).__name__}), which has no prior to sample "
            f"from; tfvae sample takes a family with a prior ({', '.join(with_prior)})"
        )
    fitted = getattr(model, "latent_sampler", None)
    if sampler == "fitted" and fitted is None:
        raise TfvaeError(
            f"{where} holds no fitted sampler; fit one with tfvae fit-sampler, or leave out "
            "--sampler to sample the prior"
        )
    if sampler == "prior" and fitted is not None:
        model = with_latent_sampler(model, None)
        fitted = None
    eps = keras.random.normal((n, model.latent_dim), seed=seed)
    samples = np.asarray(model.sample(n, eps=eps))
    what = "the prior" if fitted is None else "the fitted sampler"
    plots.save_figure(
        plots.grid_figure(samples, f"{n} samples from {what} of {os.path.basename(where)}"),
        out,
    )
    return samples


def _check_out(out, overwrite):
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise TfvaeError(f"--out must name a PNG file. Received: {out!r}")
    out = os.fspath(out)
    if not out.lower().endswith(".png"):
        raise TfvaeError(f"--out must name a .png file. Received: --out={out}")
    if os.path.isdir(out):
        raise TfvaeError(f"--out {out} is a directory; name a .png file")
    if os.path.lexists(out) and not overwrite:
        raise TfvaeError(f"{out} already exists; choose a new --out or pass --overwrite")
    parent = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise TfvaeError(f"cannot write {out}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TfvaeError(f"cannot write {out}: {parent} is not writable")
