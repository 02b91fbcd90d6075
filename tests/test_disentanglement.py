import math

import numpy as np
import pytest

from tfvae.data import shapes2d
from tfvae.errors import TfvaeError
from tfvae.evaluation import disentanglement as metrics


@pytest.fixture(scope="module")
def factors():
    # The true factors of 1,000 shapes2d examples, as the data set draws them.
    return shapes2d.sample_factors(1000, seed=3)


def chance_accuracy(factors):
    """The mean over factors of the most frequent value's share: a constant guess's accuracy."""
    return np.mean([np.bincount(f).max() / len(f) for f in factors.T])


def test_mutual_information_of_a_discrete_case_by_hand():
    # Joint counts of (factor, code): [[40, 10], [10, 40]].
    factor = np.array([0] * 50 + [1] * 50)
    code = np.array([0] * 40 + [1] * 10 + [0] * 10 + [1] * 40)
    expected = 2 * 0.4 * math.log(0.4 / 0.25) + 2 * 0.1 * math.log(0.1 / 0.25)
    information = metrics.mutual_information_matrix(code[:, None], factor[:, None])
    assert information.shape == (1, 1)
    assert information[0, 0] == pytest.approx(expected, rel=1e-12)
    # A code equal to the factor holds its entropy, log 2; an independent one nothing.
    both = metrics.mutual_information_matrix(
        np.stack([factor, np.tile([0, 1], 50)], axis=1), factor[:, None]
    )
    np.testing.assert_allclose(both[:, 0], [math.log(2), 0.0], atol=1e-12)


def test_mig_by_hand():
    factor = np.repeat(np.arange(4), 25)[:, None]
    constant = np.zeros(100)
    # One unit holds the factor, the other nothing: the gap is the whole entropy.
    assert metrics.mig(np.stack([factor[:, 0], constant], axis=1), factor)["mig"] == 1.0
    # Two units hold it alike: no gap.
    assert metrics.mig(np.stack([factor[:, 0], factor[:, 0]], axis=1), factor)["mig"] == 0.0
    # A unit that holds half of it (which pair of values, not which value):
    # I = log 4 - log 2 against H = log 4, a gap of 1/2.
    half = factor[:, 0] // 2
    result = metrics.mig(np.stack([half, constant], axis=1), factor)
    assert result["mig"] == pytest.approx(0.5, abs=1e-12)
    assert result["mig_per_factor"] == pytest.approx([0.5])


def test_discretize_makes_equal_width_bins():
    codes = np.array([[0.0], [0.24], [0.26], [0.74], [1.0]])
    np.testing.assert_array_equal(metrics.discretize(codes, bins=4)[:, 0], [0, 0, 1, 2, 3])


def test_importance_entropy_scores_by_hand():
    assert metrics.importance_entropy_scores(np.eye(3)) == pytest.approx((1.0, 1.0))
    assert metrics.importance_entropy_scores(np.ones((3, 3))) == pytest.approx((0.0, 0.0))
    # Two units both for factor 0, none for factor 1: each unit is pure
    # (disentanglement 1), but factor 0 is spread evenly over two units
    # (completeness 1 - log2(2) / log(2) = 0).
    assert metrics.importance_entropy_scores([[1.0, 0.0], [1.0, 0.0]]) == pytest.approx((1.0, 0.0))
    # One unit, importances 3:1 over two factors; its entropy in bits.
    p = np.array([0.75, 0.25])
    entropy = -np.sum(p * np.log2(p))
    d, c = metrics.importance_entropy_scores([[3.0, 1.0]])
    assert d == pytest.approx(1 - entropy)
    assert c == pytest.approx(1.0)  # each factor has a single unit


def test_the_true_factors_score_near_one(factors):
    result = metrics.disentanglement_metrics(factors.astype(float), factors)
    assert result["mig"] > 0.95
    assert result["dci_disentanglement"] > 0.97
    assert result["dci_completeness"] > 0.97
    assert result["dci_informativeness"] > 0.97
    assert result["factor_vae_score"] == 1.0
    assert result["factor_vae_active_units"] == 5
    # Rescaled and shifted, and with a collapsed unit beside them, they still do.
    scaled = np.c_[factors * np.array([2.0, -0.1, 3.0, 0.5, 1.0]) + 7.0, np.full(len(factors), 0.3)]
    again = metrics.disentanglement_metrics(scaled, factors)
    assert again["mig"] > 0.95 and again["factor_vae_score"] == 1.0
    assert again["factor_vae_active_units"] == 5


def test_noise_scores_near_zero_and_accuracies_near_chance(factors):
    noise = np.random.default_rng(0).normal(size=(len(factors), 6))
    result = metrics.disentanglement_metrics(noise, factors)
    assert result["mig"] < 0.02
    assert result["dci_disentanglement"] < 0.05
    assert result["dci_completeness"] < 0.05
    assert result["dci_informativeness"] < chance_accuracy(factors) + 0.08
    # The FactorVAE score's chance level is about 1 / factors.
    assert result["factor_vae_score"] < 0.35


def test_a_random_mixture_of_the_factors_scores_low(factors):
    rng = np.random.default_rng(1)
    mixed = (factors / np.array(shapes2d.FACTOR_SIZES)) @ rng.normal(size=(5, 5))
    result = metrics.disentanglement_metrics(mixed, factors)
    assert result["mig"] < 0.25
    assert result["dci_disentanglement"] < 0.4
    assert result["dci_completeness"] < 0.4
    # The information is all there, only mixed.
    assert result["dci_informativeness"] > chance_accuracy(factors) + 0.15


def test_bad_inputs_are_refused():
    with pytest.raises(TfvaeError, match="same examples"):
        metrics.mig(np.zeros((5, 2)), np.zeros((4, 1), np.int64))
    with pytest.raises(TfvaeError, match="integer indices"):
        metrics.mig(np.zeros((5, 2)), np.zeros((5, 1)))
    with pytest.raises(TfvaeError, match="NaN or Inf"):
        metrics.dci(np.full((5, 2), np.nan), np.zeros((5, 1), np.int64))
    with pytest.raises(TfvaeError, match="group_size"):
        metrics.factor_vae_score(np.zeros((5, 2)), np.zeros((5, 1), np.int64), group_size=1)
    # Every code constant: no active unit, a score of 0.
    constant = metrics.factor_vae_score(np.zeros((50, 2)), np.zeros((50, 1), np.int64))
    assert constant["factor_vae_score"] == 0.0 and constant["factor_vae_active_units"] == 0
