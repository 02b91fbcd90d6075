"""Per-example anomaly scores: how badly a trained model explains each example.

The score is the model's own (`model.score(x)["score"]`, described by
`model.score_description`), the one that evaluation and the export's `score`
signature use: the autoencoder's reconstruction error, the VAE's negative
ELBO with `beta = 1` at the posterior mean. It is deterministic.
"""

import numpy as np
import tensorflow as tf

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.models.registry import family_of

SCORE_BATCH_SIZE = 256


def check_scores(scores, where="scores"):
    """`scores` as a float64 array; raises unless it is 1-D, non-empty and finite."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise TfvaeError(f"{where} must be a non-empty 1-D array. Received: shape={scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise TfvaeError(f"{where} contain NaN or Inf values")
    return scores


def score_description(model):
    """One line saying what `anomaly_scores` computes for `model`."""
    family_of(model)
    return model.score_description


def anomaly_scores(model, x, batch_size=SCORE_BATCH_SIZE):
    """Per-example anomaly scores of `x` under a trained tfvae model.

    Runs in batches of `batch_size`, so memory stays bounded for any
    `len(x)`; the scores do not depend on the batch size.

    Args:
        model: a trained model of a registered tfvae family (an
            `Autoencoder`, a `VAE`, ...).
        x: array `[n, ...]` shaped like the model's training data.
        batch_size: int. Examples per batch. Defaults to `256`.

    Returns:
        A float64 numpy array `[n]`; larger means more anomalous.

    Example:

    >>> scores = anomaly_scores(model, splits.x_test)
    """
    family_of(model)
    checks.positive_int("batch_size", batch_size)
    x = np.asarray(x, np.float32)
    # Eager calls: a handful of batches, and no retracing per model or batch size.
    parts = [
        np.asarray(model.score(tf.constant(x[start : start + batch_size]))["score"])
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
