"""Pictures of a latent space, as arrays: the decoded manifold, interpolations, traversals.

Each function takes a trained model and returns numpy arrays of decoded
examples (and the latent coordinates they were decoded from); the figures
that show them are in `tfvae.evaluation.plots`.
"""

import numpy as np
from scipy.stats import norm

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.models.registry import family_of

MANIFOLD_QUANTILES = (0.05, 0.95)
TRAVERSAL_OFFSETS = tuple(np.linspace(-3.0, 3.0, 9))
# More rows than this make a traversal figure unreadable; larger latent
# spaces show their most active dimensions.
MAX_TRAVERSED_DIMS = 10
DECODE_BATCH = 1024


def per_dim_kl(mu, sigma):
    """`KL(N(mu, sigma^2) || N(0, 1))` for each latent dimension, elementwise.

    `0.5 * (mu^2 + sigma^2 - 1) - log(sigma)`: how much a posterior
    dimension departs from the prior; near 0 for a dimension the encoder
    does not use.
    """
    mu = np.asarray(mu, np.float64)
    sigma = np.asarray(sigma, np.float64)
    return 0.5 * (mu**2 + sigma**2 - 1.0) - np.log(sigma)


def most_active_dims(scores, k):
    """Indices of the `k` largest `scores`, largest first (ties: lower index first).

    Args:
        scores: array `[latent_dim]` (e.g. per-dimension KL), or
            `[n, latent_dim]` posterior means, scored by their variance
            over the `n` examples (the active-units statistic).
        k: int. How many to return (at most `latent_dim`).
    """
    scores = np.asarray(scores, np.float64)
    if scores.ndim == 2:
        scores = scores.var(axis=0)
    if scores.ndim != 1:
        raise TfvaeError(
            f"scores must be [latent_dim] or [n, latent_dim]. Received: shape={scores.shape}"
        )
    checks.positive_int("k", k)
    order = np.argsort(-scores, kind="stable")
    return order[: min(k, len(order))]


def pair_of_different_classes(labels, count):
    """`(a, b)`: index 0 and the first index whose label differs from label 0.

    Without labels (`None`), or when all labels are equal, `(0, count - 1)`.
    """
    if labels is not None:
        labels = np.asarray(labels)
        different = np.flatnonzero(labels != labels[0])
        if len(different):
            return 0, int(different[0])
    return 0, count - 1


def manifold_grid(vae, n=15, dims=(0, 1)):
    """Decodes an `n x n` grid of latent points spread over two latent dimensions.

    The grid's coordinates are standard normal quantiles (`norm.ppf` of
    `linspace(0.05, 0.95, n)`), so it covers the prior evenly by probability
    mass; the other dimensions stay at 0. For a 2-D latent space this is the
    classic picture of the learned manifold. The quantiles are made exactly
    symmetric, so with odd `n` the centre is exactly `z = 0`.

    Args:
        vae: a trained `VAE`.
        n: int. Points per side. Defaults to `15`.
        dims: pair of int. The latent dimensions spanned: `dims[0]` grows
            left to right, `dims[1]` bottom to top. Defaults to `(0, 1)`.

    Returns:
        `(images, coordinates)`: `images[i, j]` (shape `[n, n, *data_shape]`)
        is decoded from `z[dims] = coordinates[i, j]` (shape `[n, n, 2]`),
        laid out as a picture: row 0 at the top.
    """
    _require_vae(vae, "manifold_grid")
    checks.positive_int("n", n)
    latent_dim = vae.latent_dim
    if latent_dim < 2:
        raise TfvaeError(
            f"manifold_grid spans two latent dimensions; the model has latent_dim={latent_dim}"
        )
    dims = _check_dims(dims, latent_dim)
    if len(dims) != 2 or dims[0] == dims[1]:
        raise TfvaeError(f"dims must be two different latent dimensions. Received: dims={dims}")
    quantiles = norm_ppf(np.linspace(*MANIFOLD_QUANTILES, n))
    quantiles = 0.5 * (quantiles - quantiles[::-1])
    coordinates = np.stack(np.meshgrid(quantiles, quantiles[::-1]), axis=-1)
    z = np.zeros((n, n, latent_dim), np.float32)
    z[..., dims[0]] = coordinates[..., 0]
    z[..., dims[1]] = coordinates[..., 1]
    images = _decode(vae, z.reshape(n * n, latent_dim))
    return images.reshape(n, n, *images.shape[1:]), coordinates


def interpolate(model, x_a, x_b, steps=10):
    """Decodes the straight line between the latent codes of two examples.

    `z(t) = (1 - t) * code(x_a) + t * code(x_b)` for `t` in
    `linspace(0, 1, steps)`; the code is the posterior mean for a `VAE`
    and the encoder's output for an `Autoencoder`. The first and last
    images are exactly the decoded codes of `x_a` and `x_b`.

    Args:
        model: a trained `VAE` or `Autoencoder`.
        x_a, x_b: one example each, shaped like the data (a leading batch
            axis of 1 is allowed).
        steps: int. Points on the line, ends included (>= 2). Defaults to
            `10`.

    Returns:
        `(images, weights)`: `images` `[steps, *data_shape]` and the
        weights `t` `[steps]`.
    """
    if not checks.is_integer(steps) or steps < 2:
        raise TfvaeError(f"steps must be an integer >= 2. Received: steps={steps!r}")
    code_a = _code(model, x_a, "x_a")
    code_b = _code(model, x_b, "x_b")
    weights = np.linspace(0.0, 1.0, steps)
    z = (1.0 - weights)[:, None] * code_a + weights[:, None] * code_b
    return _decode(model, z.astype(np.float32)), weights


def traverse(vae, x, dims=None, values=TRAVERSAL_OFFSETS):
    """Decodes the posterior mean of `x` with one latent dimension at a time moved.

    Row `i` varies dimension `dims[i]`: `z = mu(x)` except `z[dims[i]] =
    mu(x)[dims[i]] + values[j]` in column `j`. The offsets are in units of
    the prior's standard deviation; an offset of 0 decodes `mu(x)` itself.

    Args:
        vae: a trained `VAE`.
        x: one example, shaped like the data (a leading batch axis of 1 is
            allowed).
        dims: list of int or None. The dimensions to vary. `None` means all
            of them when there are at most 10, else the 10 that depart most
            from the prior for `x` (largest `per_dim_kl`), largest first.
            Defaults to `None`.
        values: list of float. Offsets added to the posterior mean.
            Defaults to `linspace(-3, 3, 9)`.

    Returns:
        `(images, dims, values)`: `images` `[len(dims), len(values),
        *data_shape]`, and the dims and values used, as arrays.
    """
    _require_vae(vae, "traverse")
    mu, sigma = _posterior(vae, x, "x")
    latent_dim = vae.latent_dim
    if dims is None:
        if latent_dim <= MAX_TRAVERSED_DIMS:
            dims = np.arange(latent_dim)
        else:
            dims = most_active_dims(per_dim_kl(mu, sigma), MAX_TRAVERSED_DIMS)
    dims = np.asarray(_check_dims(dims, latent_dim), np.int64)
    values = np.asarray(values, np.float64).reshape(-1)
    if not len(values) or not np.all(np.isfinite(values)):
        raise TfvaeError(
            f"values must be one or more finite numbers. Received: values={values.tolist()}"
        )
    z = np.broadcast_to(mu.astype(np.float32), (len(dims), len(values), latent_dim)).copy()
    for row, dim in enumerate(dims):
        z[row, :, dim] = mu[dim] + values
    images = _decode(vae, z.reshape(-1, latent_dim))
    return images.reshape(len(dims), len(values), *images.shape[1:]), dims, values


def norm_ppf(q):
    """The standard normal quantile function (`scipy.stats.norm.ppf`)."""

    return norm.ppf(np.asarray(q, np.float64))


def _check_dims(dims, latent_dim):
    dims = [int(d) for d in np.asarray(dims).reshape(-1)]
    bad = [d for d in dims if not 0 <= d < latent_dim]
    if not dims or bad:
        raise TfvaeError(
            f"dims must be latent dimensions in [0, {latent_dim}). Received: dims={dims}"
        )
    return dims


def _is_vae(model):
    return family_of(model).can("prior")


def _require_vae(model, what):
    if not _is_vae(model):
        raise TfvaeError(
            f"{what} needs a VAE: its latent coordinates are measured against the "
            f"N(0, I) prior. Received: {type(model).__name__}"
        )


def _one_example(model, x, name):
    shape = tuple(model.decoder.data_shape)
    x = np.asarray(x, np.float32)
    if x.shape == (1, *shape):
        return x
    if x.shape != shape:
        raise TfvaeError(f"{name} must be one example of shape {shape}. Received: shape={x.shape}")
    return x[None]


def _posterior(vae, x, name):
    mu, sigma = vae.encode(_one_example(vae, x, name))
    return np.asarray(mu, np.float32)[0], np.asarray(sigma, np.float32)[0]


def _code(model, x, name):
    """The deterministic latent code of one example: the posterior mean, or the code."""
    family_of(model)
    return np.asarray(model.latent_code(_one_example(model, x, name)), np.float64)[0]


def _decode(model, z):
    return np.concatenate(
        [
            np.asarray(model.decode(z[i : i + DECODE_BATCH]), np.float32)
            for i in range(0, len(z), DECODE_BATCH)
        ]
    )
