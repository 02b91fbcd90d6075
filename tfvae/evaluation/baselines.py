"""Trivial reference models: what a VAE must beat to have learned anything."""

import numpy as np
from sklearn.decomposition import PCA

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.math.likelihoods import BIN_COUNT
from tfvae.math.likelihoods import LIKELIHOODS
from tfvae.math.likelihoods import is_eight_bit

PROBABILITY_FLOOR = 1e-4


def independent_features_nll(x_train, x_test, likelihood):
    """Mean test negative log-likelihood (nats per example) of a model that ignores `z`.

    Each feature is independent with its maximum-likelihood parameter from the
    training set: a Bernoulli with the feature's mean (clipped to
    [1e-4, 1 - 1e-4]), or a Gaussian with its mean and standard deviation
    (floored at 1e-2), or for the 8-bit likelihoods a histogram of the 256
    levels with one pseudo-count per level. This is the optimum of a
    collapsed VAE (KL = 0).
    """
    checks.choice("likelihood", likelihood, sorted(LIKELIHOODS))
    x_train = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, np.float64).reshape(len(x_test), -1)
    if is_eight_bit(likelihood):
        log_p = _level_histogram_log_prob(x_train, x_test)
    elif likelihood == "bernoulli":
        p = np.clip(x_train.mean(axis=0), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
        log_p = x_test * np.log(p) + (1 - x_test) * np.log1p(-p)
    else:
        mean = x_train.mean(axis=0)
        std = np.maximum(x_train.std(axis=0), 1e-2)
        log_p = -0.5 * ((x_test - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    return float(-log_p.sum(axis=1).mean())


def _level_histogram_log_prob(x_train, x_test):
    """Per-feature log-frequency of each test pixel's level among the training pixels' levels."""
    step = BIN_COUNT - 1
    train_levels = np.clip(np.rint(x_train * step), 0, step).astype(np.int64)
    test_levels = np.clip(np.rint(x_test * step), 0, step).astype(np.int64)
    features = np.arange(x_train.shape[1])
    counts = np.ones((x_train.shape[1], BIN_COUNT))
    np.add.at(counts, (np.broadcast_to(features, train_levels.shape), train_levels), 1.0)
    log_freq = np.log(counts) - np.log(counts.sum(axis=1, keepdims=True))
    return log_freq[features, test_levels]


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
