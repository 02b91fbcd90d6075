"""Thresholds calibrated on held-out normal scores: a percentile or a target false-positive rate.

An example is an anomaly when its score is above the threshold.
"""

import math

import numpy as np

from tfvae import checks
from tfvae.apps.anomaly.scores import check_scores
from tfvae.errors import TfvaeError

DEFAULT_PERCENTILE = 95.0


def check_percentile(percentile):
    """`percentile` as a float; raises unless it is a number in (0, 100)."""
    return checks.number_in("percentile", percentile, 0, 100, low_open=True, high_open=True)


def check_false_positive_rate(false_positive_rate):
    """`false_positive_rate` as a float; raises unless it is a number in (0, 1)."""
    return checks.number_in(
        "false_positive_rate", false_positive_rate, 0, 1, low_open=True, high_open=True
    )


def threshold_at_percentile(normal_scores, percentile=DEFAULT_PERCENTILE):
    """The `percentile`-th percentile of held-out normal scores (linear interpolation).

    About `100 - percentile` percent of the calibration examples are above
    it, so flagged.

    Args:
        normal_scores: 1-D array. Scores of held-out normal examples.
        percentile: float in (0, 100). Defaults to `95`.
    """
    check_percentile(percentile)
    return float(np.percentile(check_scores(normal_scores, "normal scores"), percentile))


def threshold_for_false_positive_rate(normal_scores, false_positive_rate):
    """The smallest calibration score that flags at most `false_positive_rate` of them.

    With `n` scores sorted ascending, the threshold is the
    `ceil(n * (1 - rate))`-th of them; the scores above it are at most
    `floor(n * rate)`, so the false-positive rate achieved on the
    calibration examples never exceeds the target.

    Args:
        normal_scores: 1-D array. Scores of held-out normal examples.
        false_positive_rate: float in (0, 1).
    """
    check_false_positive_rate(false_positive_rate)
    scores = np.sort(check_scores(normal_scores, "normal scores"))
    # The small tolerance keeps n * (1 - rate) = 95.00000000000001 at 95.
    rank = math.ceil(len(scores) * (1.0 - false_positive_rate) - 1e-9)
    return float(scores[max(rank, 1) - 1])


def false_positive_rate_at(normal_scores, threshold):
    """The share of normal scores above `threshold` (flagged as anomalies)."""
    return float(np.mean(check_scores(normal_scores, "normal scores") > threshold))


def calibrate(normal_scores, percentile=None, false_positive_rate=None):
    """`(threshold, rule)` from held-out normal scores.

    Args:
        normal_scores: 1-D array. Scores of held-out normal examples.
        percentile: float in (0, 100) or None. Threshold at this
            percentile; the default rule (95) when neither this nor
            `false_positive_rate` is given.
        false_positive_rate: float in (0, 1) or None. Threshold flagging at
            most this share of the calibration examples.

    Returns:
        `(threshold, rule)`: a float, and the rule in words.
    """
    if percentile is not None and false_positive_rate is not None:
        raise TfvaeError("give a percentile or a false-positive rate, not both")
    if false_positive_rate is not None:
        threshold = threshold_for_false_positive_rate(normal_scores, false_positive_rate)
        return threshold, f"at most {false_positive_rate:g} of calibration normals flagged"
    percentile = DEFAULT_PERCENTILE if percentile is None else percentile
    threshold = threshold_at_percentile(normal_scores, percentile)
    return threshold, f"{percentile:g}th percentile of calibration scores"
