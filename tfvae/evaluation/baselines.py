"""Trivial reference models: what a VAE must beat to have learned anything."""

import numpy as np
from sklearn.decomposition import PCA

from tfvae import checks
from tfvae.errors import TfvaeError

PROBABILITY_FLOOR = 1e-4


def independent_features_nll(x_train, x_test, likelihood):
    """Mean test negative log-likelihood (nats per example) of a model that ignores `z`.

    Each feature is independent with its maximum-likelihood parameter from the
    training set: a Bernoulli with the feature's mean (clipped to
    [1e-4, 1 - 1e-4]), or a Gaussian with its mean and standard deviation
    (floored at 1e-2). This is the optimum of a collapsed VAE (KL = 0).
    """
    checks.choice("likelihood", likelihood, ("bernoulli", "gaussian"))
    x_train = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, np.float64).reshape(len(x_test), -1)
    if likelihood == "bernoulli":
        p = np.clip(x_train.mean(axis=0), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        log_p = x_test * np.log(p) + (1 - x_test) * np.log1p(-p)
    else:
        mean = x_train.mean(axis=0)
        std = np.maximum(x_train.std(axis=0), 1e-2)
        log_p = -0.5 * ((x_test - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    return float(-log_p.sum(axis=1).mean())


def pca_reconstruction_mse(x_train, x_test, n_components):
    """Test MSE per feature of PCA with `n_components`, fitted on the training set.

    PCA is the optimal linear autoencoder: no linear encoder/decoder pair of
    that latent size reconstructs the training data with lower squared error.
    """

    x_train = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, np.float64).reshape(len(x_test), -1)
    if not 1 <= n_components <= min(x_train.shape):
        raise TfvaeError(
            f"n_components must be in [1, {min(x_train.shape)}] for this data. "
            f"Received: n_components={n_components}"
        )
    pca = PCA(n_components=n_components, svd_solver="full").fit(x_train)
    reconstruction = pca.inverse_transform(pca.transform(x_test))
    return float(np.mean((reconstruction - x_test) ** 2))
