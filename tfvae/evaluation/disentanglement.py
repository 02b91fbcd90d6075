"""Disentanglement metrics: MIG, DCI and the FactorVAE score, from codes and true factors.

Each metric compares a model's latent codes `(n, latent_dim)` (the
posterior means) with the data's true generative factors `(n, factors)`
(discrete indices, as `shapes2d` gives them). They are pure numpy and
scikit-learn functions of those two arrays and a seed; they follow the
definitions of disentanglement_lib (Locatello et al. 2019):

- **MIG**, the mutual information gap (Chen et al. 2018): per factor, the
  gap between the two latent units that share the most mutual information
  with it, divided by the factor's entropy; averaged over factors. Codes
  are discretised into equal-width bins.
- **DCI** (Eastwood and Williams 2018): gradient-boosted trees predict each
  factor from the codes; their feature importances `R[unit, factor]` give
  the disentanglement (1 minus the entropy of each unit's importances over
  factors, weighted by the unit's share of importance), the completeness
  (1 minus the entropy of each factor's importances over units, weighted
  likewise) and the informativeness (the trees' test accuracy, averaged).
- **FactorVAE score** (Kim and Mnih 2018): fix one factor in a group of
  examples; the unit of least variance (codes divided by their standard
  deviation over all the data) votes for that factor; a majority-vote
  classifier from units to factors is trained on votes and scored on new
  ones. Groups are drawn from the examples given, so the score needs no
  simulator: with independent factors, the examples sharing a factor's
  value are a sample of the data with that factor fixed.

A code equal to the true factors scores 1 on all (up to sampling noise); pure
noise scores about 0 on MIG, disentanglement and completeness, and chance
on the two accuracies (the informativeness and the FactorVAE score).
"""

import numpy as np
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import mutual_info_score

from tfvae import checks
from tfvae.errors import TfvaeError

MIG_BINS = 20
DCI_TRAIN_FRACTION = 0.8
DCI_TREES = 30
FACTOR_VAE_GROUP_SIZE = 64
FACTOR_VAE_TRAIN_VOTES = 800
FACTOR_VAE_EVAL_VOTES = 400
# Units whose code varies less than this over the data are inactive (collapsed
# to the prior) and take no part in the FactorVAE score's votes.
ACTIVE_UNIT_SCALE = 0.05


def check_codes_and_factors(codes, factors):
    """`(codes, factors)` as float64 `(n, d)` and int64 `(n, k)`; raises `TfvaeError` on bad input."""
    codes = np.asarray(codes, np.float64)
    factors = np.asarray(factors)
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        raise TfvaeError(
            "codes and factors must be (n, latent_dim) and (n, factors) arrays of the same "
            f"examples. Received: shapes {codes.shape} and {factors.shape}"
        )
    if len(codes) < 2 or codes.shape[1] == 0 or factors.shape[1] == 0:
        raise TfvaeError(
            f"codes and factors need two examples and one column at least. Received: shapes "
            f"{codes.shape} and {factors.shape}"
        )
    if not np.all(np.isfinite(codes)):
        raise TfvaeError("codes contain NaN or Inf values")
    if not np.issubdtype(factors.dtype, np.integer):
        raise TfvaeError(f"factors must be integer indices. Received dtype={factors.dtype}")
    return codes, factors.astype(np.int64)


def discretize(codes, bins=MIG_BINS):
    """Each column of `codes` in `bins` equal-width bins over its range, `(n, d)` int64."""
    codes = np.asarray(codes, np.float64)
    out = np.zeros(codes.shape, np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram_bin_edges(codes[:, j], bins)
        out[:, j] = np.digitize(codes[:, j], edges[1:-1])
    return out


def mutual_information_matrix(discrete_codes, factors):
    """`I(code_j; factor_k)` in nats, `(d, k)`, of discrete columns (plug-in estimate)."""
    return np.array(
        [
            [
                mutual_info_score(factors[:, k], discrete_codes[:, j])
                for k in range(factors.shape[1])
            ]
            for j in range(discrete_codes.shape[1])
        ]
    )


def mig(codes, factors, bins=MIG_BINS):
    """The mutual information gap of `codes` about `factors`, in [0, 1].

    Args:
        codes: array `(n, latent_dim)`.
        factors: int array `(n, factors)`.
        bins: int. Bins per code column. Defaults to `20`.

    Returns:
        dict: `mig` (the mean over factors) and `mig_per_factor`, a list.
        A constant factor (no entropy) and a single code column give a gap of 0.
    """
    codes, factors = check_codes_and_factors(codes, factors)
    checks.positive_int("bins", bins)
    information = mutual_information_matrix(discretize(codes, bins), factors)
    entropy = np.array([mutual_info_score(f, f) for f in factors.T])
    ranked = np.sort(information, axis=0)[::-1]
    second = ranked[1] if len(ranked) > 1 else ranked[0]
    gap = np.divide(ranked[0] - second, entropy, out=np.zeros_like(entropy), where=entropy > 0)
    return {"mig": float(np.mean(gap)), "mig_per_factor": gap.tolist()}


def importance_entropy_scores(importance):
    """`(disentanglement, completeness)` of an importance matrix `R[unit, factor]` >= 0.

    Disentanglement: per unit, 1 minus the entropy (base: the number of
    factors) of its importances normalised over factors, weighted by the
    unit's share of all importance. Completeness: per factor, 1 minus the
    entropy (base: the number of units) over units, weighted by the
    factor's share. A single factor or unit has entropy 0 by convention.
    """
    importance = np.asarray(importance, np.float64)
    total = importance.sum()
    if total <= 0:
        return 0.0, 0.0

    def score(matrix):
        weights = matrix.sum(axis=1) / total
        rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1e-300)
        if matrix.shape[1] < 2:
            return float(np.sum(weights))
        logs = np.log(rows, out=np.zeros_like(rows), where=rows > 0)
        entropy = -np.sum(rows * logs, axis=1) / np.log(matrix.shape[1])
        return float(np.sum(weights * (1.0 - entropy)))

    return score(importance), score(importance.T)


def dci(codes, factors, train_fraction=DCI_TRAIN_FRACTION, trees=DCI_TREES, seed=0):
    """DCI disentanglement, completeness and informativeness of `codes`, each in [0, 1].

    One `GradientBoostingClassifier` per factor learns the factor from the
    codes on the first `train_fraction` of the examples; its feature
    importances form a column of `R[unit, factor]`, and its accuracy on the
    rest is the factor's informativeness.

    Args:
        codes: array `(n, latent_dim)`.
        factors: int array `(n, factors)`.
        train_fraction: float in (0, 1). Defaults to `0.8`.
        trees: int. Boosting stages per factor. Defaults to `30`.
        seed: int. Seeds the trees. Defaults to `0`.

    Returns:
        dict: `dci_disentanglement`, `dci_completeness`,
        `dci_informativeness` (mean test accuracy) and `importance`, the
        matrix as a list of lists.
    """
    codes, factors = check_codes_and_factors(codes, factors)
    train_fraction = checks.number_in(
        "train_fraction", train_fraction, low=0, high=1, low_open=True, high_open=True
    )
    checks.positive_int("trees", trees)
    n_train = int(round(len(codes) * train_fraction))
    if not 1 <= n_train < len(codes):
        raise TfvaeError(f"dci needs examples to train and to test on. Received: {len(codes)}")
    importance = np.zeros((codes.shape[1], factors.shape[1]))
    accuracy = []
    for k in range(factors.shape[1]):
        target = factors[:, k]
        if len(np.unique(target[:n_train])) < 2:
            # A constant factor: nothing to learn, every prediction right.
            accuracy.append(float(np.mean(target[n_train:] == target[0])))
            continue
        model = GradientBoostingClassifier(n_estimators=trees, random_state=seed)
        model.fit(codes[:n_train], target[:n_train])
        importance[:, k] = np.abs(model.feature_importances_)
        accuracy.append(float(model.score(codes[n_train:], target[n_train:])))
    disentanglement, completeness = importance_entropy_scores(importance)
    return {
        "dci_disentanglement": disentanglement,
        "dci_completeness": completeness,
        "dci_informativeness": float(np.mean(accuracy)),
        "importance": importance.tolist(),
    }


def factor_vae_votes(codes, factors, scale, active, votes, group_size, rng):
    """`(votes, factors)` counts: how often each unit had the least variance with each factor fixed."""
    counts = np.zeros((codes.shape[1], factors.shape[1]), np.int64)
    active_units = np.flatnonzero(active)
    for _ in range(votes):
        k = rng.integers(factors.shape[1])
        value = factors[rng.integers(len(factors)), k]
        rows = np.flatnonzero(factors[:, k] == value)
        group = rng.choice(rows, group_size, replace=len(rows) < group_size)
        variance = np.var(codes[group][:, active_units] / scale[active_units], axis=0, ddof=1)
        counts[active_units[np.argmin(variance)], k] += 1
    return counts


def factor_vae_score(
    codes,
    factors,
    group_size=FACTOR_VAE_GROUP_SIZE,
    train_votes=FACTOR_VAE_TRAIN_VOTES,
    eval_votes=FACTOR_VAE_EVAL_VOTES,
    seed=0,
):
    """The FactorVAE score of `codes`: the majority-vote classifier's accuracy, in [0, 1].

    Args:
        codes: array `(n, latent_dim)`.
        factors: int array `(n, factors)`.
        group_size: int. Examples per vote. Defaults to `64`.
        train_votes, eval_votes: int. Votes to train and to score the
            classifier on. Default to `800` and `400`.
        seed: int. Seeds the groups. Defaults to `0`.

    Returns:
        dict: `factor_vae_score` (accuracy on the evaluation votes),
        `factor_vae_train_accuracy` and `factor_vae_active_units`. With no
        active unit (every code constant) the score is 0.
    """
    codes, factors = check_codes_and_factors(codes, factors)
    for name, value in (
        ("group_size", group_size),
        ("train_votes", train_votes),
        ("eval_votes", eval_votes),
    ):
        checks.positive_int(name, value)
    if group_size < 2:
        raise TfvaeError(
            f"group_size needs two examples to take a variance. Received: {group_size}"
        )
    scale = np.std(codes, axis=0)
    active = scale >= ACTIVE_UNIT_SCALE
    if not np.any(active):
        return {
            "factor_vae_score": 0.0,
            "factor_vae_train_accuracy": 0.0,
            "factor_vae_active_units": 0,
        }
    rng = np.random.default_rng(seed)
    train = factor_vae_votes(codes, factors, scale, active, train_votes, group_size, rng)
    evaluation = factor_vae_votes(codes, factors, scale, active, eval_votes, group_size, rng)
    classifier = np.argmax(train, axis=1)
    units = np.arange(codes.shape[1])
    return {
        "factor_vae_score": float(evaluation[units, classifier].sum() / eval_votes),
        "factor_vae_train_accuracy": float(train[units, classifier].sum() / train_votes),
        "factor_vae_active_units": int(active.sum()),
    }


def disentanglement_metrics(codes, factors, seed=0):
    """MIG, DCI and the FactorVAE score of `codes` about `factors`, as one flat dict of floats."""
    result = {"mig": mig(codes, factors)["mig"]}
    result.update(
        {key: value for key, value in dci(codes, factors, seed=seed).items() if key != "importance"}
    )
    result.update(factor_vae_score(codes, factors, seed=seed))
    return result
