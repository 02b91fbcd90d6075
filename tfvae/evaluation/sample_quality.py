"""Sample quality: FID, KID and precision/recall of generated images against real ones.

The three compare two sets of images through the features of a fixed
network (`tfvae.evaluation.feature_extractors`):

- FID (Heusel et al., 2017): the Fréchet distance between Gaussians fitted
  to the two feature sets. Lower is better; biased upwards for small sets,
  so compare FIDs of sets of the same sizes.
- KID (Bińkowski et al., 2018): the squared MMD with the kernel
  `k(x, y) = (x . y / d + 1)^3`, estimated without bias, with its standard
  error. Lower is better; near 0 for sets from one distribution.
- Precision and recall (Kynkäänniemi et al., 2019): the share of generated
  examples that fall within the real examples' manifold (the union of
  balls reaching each one's k-th nearest real neighbour), and the share of
  real examples within the generated manifold. Higher is better: fidelity
  and coverage, apart.

The math is in small pure numpy functions; `sample_quality` scores a
model's prior samples and test reconstructions, with uniform noise for
scale.
"""

import numpy as np
from scipy.spatial.distance import cdist

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.evaluation.feature_extractors import feature_extractor
from tfvae.models.registry import family_of

DEFAULT_K = 3
DEFAULT_KID_SUBSETS = 10
# Rows of a distance matrix computed at once: bounds memory to about
# 1,000 x N float64 values.
DISTANCE_BLOCK = 1000
DECODE_BATCH = 500


def feature_statistics(features):
    """The mean `[d]` and the unbiased covariance `[d, d]` of `features` `[n, d]`, float64."""
    features = _features("features", features, minimum=2)
    return features.mean(axis=0), np.cov(features, rowvar=False, ddof=1).reshape(
        features.shape[1], features.shape[1]
    )


def psd_sqrt(matrix):
    """The symmetric square root of a symmetric positive semi-definite matrix, via `eigh`.

    Eigenvalues that rounding left slightly negative count as 0.
    """
    values, vectors = np.linalg.eigh(np.asarray(matrix, np.float64))
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b):
    """The Fréchet (2-Wasserstein) distance squared between `N(mean_a, cov_a)` and `N(mean_b, cov_b)`.

    `|mean_a - mean_b|^2 + tr(cov_a) + tr(cov_b) - 2 tr((cov_a cov_b)^(1/2))`.
    The trace of the square root is taken in the symmetric form
    `tr((A^(1/2) B A^(1/2))^(1/2))` (the same eigenvalues), with `eigh`, so
    it stays real and stable for singular covariances, where `sqrtm` of the
    non-symmetric product can turn complex.
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    covariance_a = np.asarray(covariance_a, np.float64)
    covariance_b = np.asarray(covariance_b, np.float64)
    root_a = psd_sqrt(covariance_a)
    middle = root_a @ covariance_b @ root_a
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    trace_of_root = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    distance = (
        np.sum((mean_a - mean_b) ** 2)
        + np.trace(covariance_a)
        + np.trace(covariance_b)
        - 2.0 * trace_of_root
    )
    # Never negative; rounding can take a distance of 0 a hair below.
    return float(max(distance, 0.0))


def frechet_inception_distance(real, generated):
    """FID: `frechet_distance` of Gaussians fitted to feature sets `[n, d]` and `[m, d]`."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(generated))


def polynomial_kernel(x, y):
    """KID's kernel `(x . y / d + 1)^3` between the rows of `x` `[n, d]` and `y` `[m, d]`."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def unbiased_mmd_squared(x, y, kernel=polynomial_kernel):
    """The unbiased estimate of `MMD^2` between samples `x` `[n, d]` and `y` `[m, d]`.

    `mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)`:
    the diagonal terms `k(x_i, x_i)` are left out, so its expectation is
    the MMD^2 itself, and it can be negative.
    """
    x = _features("x", x, minimum=2)
    y = _features("y", y, minimum=2)
    n, m = len(x), len(y)
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    return float(
        (k_xx.sum() - np.trace(k_xx)) / (n * (n - 1))
        + (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        - 2.0 * k_xy.mean()
    )


def kernel_inception_distance(real, generated, subsets=DEFAULT_KID_SUBSETS, seed=0):
    """KID and its standard error, from disjoint subsets.

    Each set is shuffled (`np.random.default_rng(seed)`: a permutation of
    the real rows, then one of the generated rows) and cut into `subsets`
    disjoint blocks of `min(n, m) // subsets` rows; block `j` of one is
    compared with block `j` of the other by `unbiased_mmd_squared`. KID is
    the mean of the block estimates, unbiased; as the blocks share no
    example, their spread gives an honest standard error of that mean:
    `std(ddof=1) / sqrt(subsets)`.

    Args:
        real: array `[n, d]`.
        generated: array `[m, d]`.
        subsets: int. Number of blocks, at least 2. Defaults to `10`.
        seed: int. Seeds the shuffles. Defaults to `0`.

    Returns:
        `(kid, standard_error)`, floats.
    """
    real = _features("real", real, minimum=2)
    generated = _features("generated", generated, minimum=2)
    subsets = checks.positive_int("subsets", subsets)
    block = min(len(real), len(generated)) // subsets
    if subsets < 2 or block < 2:
        raise TfvaeError(
            "KID needs at least 2 subsets of at least 2 examples each. Received: "
            f"subsets={subsets} for {len(real)} and {len(generated)} examples"
        )
    rng = np.random.default_rng(seed)
    real = real[rng.permutation(len(real))]
    generated = generated[rng.permutation(len(generated))]
    estimates = np.array(
        [
            unbiased_mmd_squared(
                real[j * block : (j + 1) * block], generated[j * block : (j + 1) * block]
            )
            for j in range(subsets)
        ]
    )
    return float(estimates.mean()), float(estimates.std(ddof=1) / np.sqrt(subsets))


def nearest_neighbour_radii(features, k=DEFAULT_K):
    """The distance from each row of `features` `[n, d]` to its k-th nearest other row."""
    features = _features("features", features, minimum=2)
    k = checks.positive_int("k", k)
    if k >= len(features):
        raise TfvaeError(
            f"k must be below the number of examples ({len(features)}). Received: k={k}"
        )
    radii = []
    for start in range(0, len(features), DISTANCE_BLOCK):
        distances = cdist(features[start : start + DISTANCE_BLOCK], features, "sqeuclidean")
        # Column 0 of the sorted row is the example itself, at distance 0.
        radii.append(np.partition(distances, k, axis=1)[:, k])
    return np.sqrt(np.concatenate(radii))


def manifold_coverage(points, manifold, radii):
    """The share of `points` `[n, d]` within distance `radii[j]` of some `manifold[j]` `[m, d]`."""
    points = _features("points", points, minimum=1)
    manifold = _features("manifold", manifold, minimum=1)
    squared_radii = np.asarray(radii, np.float64) ** 2
    inside = [
        np.any(
            cdist(points[start : start + DISTANCE_BLOCK], manifold, "sqeuclidean")
            <= squared_radii[None, :],
            axis=1,
        )
        for start in range(0, len(points), DISTANCE_BLOCK)
    ]
    return float(np.mean(np.concatenate(inside)))


def precision_recall(real, generated, k=DEFAULT_K):
    """Improved precision and recall (Kynkäänniemi et al., 2019) of feature sets.

    Each set's manifold is the union of balls around its examples reaching
    their k-th nearest neighbour in the same set. Precision is the share of
    generated examples inside the real manifold (fidelity); recall the
    share of real examples inside the generated manifold (coverage).

    Args:
        real: array `[n, d]`.
        generated: array `[m, d]`.
        k: int. The neighbour that sets the radii. Defaults to `3`.

    Returns:
        `(precision, recall)`, floats in [0, 1].
    """
    real = _features("real", real, minimum=2)
    generated = _features("generated", generated, minimum=2)
    precision = manifold_coverage(generated, real, nearest_neighbour_radii(real, k))
    recall = manifold_coverage(real, generated, nearest_neighbour_radii(generated, k))
    return precision, recall


def compare_features(real, generated, k=DEFAULT_K, kid_subsets=DEFAULT_KID_SUBSETS, seed=0):
    """FID, KID (with standard error), precision and recall of two feature sets, as a dict."""
    kid, kid_std_error = kernel_inception_distance(real, generated, kid_subsets, seed)
    precision, recall = precision_recall(real, generated, k)
    return {
        "examples": int(len(generated)),
        "fid": frechet_inception_distance(real, generated),
        "kid": kid,
        "kid_std_error": kid_std_error,
        "precision": precision,
        "recall": recall,
    }


def check_sample_count(n, k=DEFAULT_K, kid_subsets=DEFAULT_KID_SUBSETS, name="n"):
    """`n`; raises unless `n` examples are enough for KID's subsets and the k-th neighbours."""
    checks.positive_int("k", k)
    checks.positive_int("kid_subsets", kid_subsets)
    smallest = max(2 * kid_subsets, k + 1)
    if not checks.is_integer(n) or n < smallest:
        raise TfvaeError(
            f"sample quality needs at least {smallest} examples (KID's {kid_subsets} subsets "
            f"of 2, precision/recall's k={k} neighbours). Received: {name}={n!r}"
        )
    return int(n)


def prior_samples(model, n, seed=0, batch_size=DECODE_BATCH):
    """`n` images decoded from `z ~ N(0, I)` drawn with `np.random.default_rng(seed)`.

    The decoder's likelihood mean: for binarized data the Bernoulli
    probabilities, a grey-level image.
    """
    n = checks.positive_int("n", n)
    eps = np.random.default_rng(seed).standard_normal((n, model.latent_dim)).astype(np.float32)
    return np.concatenate(
        [
            np.asarray(model.sample(None, eps=eps[i : i + batch_size]))
            for i in range(0, n, batch_size)
        ]
    )


def sample_quality(
    model,
    data,
    n,
    features="mnist",
    k=DEFAULT_K,
    kid_subsets=DEFAULT_KID_SUBSETS,
    seed=0,
    batch_size=DECODE_BATCH,
):
    """Scores `n` prior samples and the test reconstructions against the test set.

    A VAE holding a sampler fitted after training (`tfvae fit-sampler`)
    samples from it: its row keeps the key `prior_samples`, and
    `sample_source` names the sampler.

    The reference is `data.x_test`, as the model was evaluated on
    (binarized for a model of binarized data). Prior samples are scored for
    families with the `prior` capability. The reconstructions are the
    model's deterministic ones (`model(x)`: the likelihood mean decoded
    from the posterior mean). For scale, two more sets are scored: `n`
    training examples (real data the model saw: about as good as a model
    can get) and `n` images of uniform noise in [0, 1]. FID is biased by
    set size: use `n = len(data.x_test)` to compare samples with
    reconstructions.

    Args:
        model: a trained tfvae model.
        data: `DataSplits`.
        n: int. Prior samples (and training examples and noise images) to
            score, at least `2 * kid_subsets` and more than `k`.
        features: str or callable. `"mnist"` (the shipped digit features),
            `"inception"` (InceptionV3, from the Keras cache), or a
            `FeatureExtractor` or callable `images -> [n, d]`. Defaults to
            `"mnist"`.
        k: int. The precision/recall neighbour. Defaults to `3`.
        kid_subsets: int. KID's disjoint subsets. Defaults to `10`.
        seed: int. Seeds the prior draws, the training examples picked,
            the noise and KID's shuffles.
            Defaults to `0`.
        batch_size: int. Images decoded per call. Defaults to `500`.

    Returns:
        A dict: `features` (its description), `reference_examples`, `k`,
        `kid_subsets`, `seed`, `sample_source` (`model.sample_source`, for
        a family with a prior), and per scored set (`prior_samples`,
        `reconstructions`, `training_examples`, `noise`) a dict of
        `examples`, `fid`, `kid`, `kid_std_error`, `precision` and
        `recall`.

    Example:

    >>> quality = sample_quality(vae, tfvae.load_dataset("mnist5k", binarize=True), 1000)
    >>> quality["prior_samples"]["fid"] < quality["noise"]["fid"]
    True
    """
    n = check_sample_count(n, k, kid_subsets)
    check_sample_count(len(data.x_test), k, kid_subsets, name="test examples")
    seed = checks.non_negative_int("seed", seed)
    extractor = feature_extractor(features)
    extractor.check_dataset(data.name)
    real = extractor(data.x_test)

    def score(images):
        return compare_features(real, extractor(images), k, kid_subsets, seed)

    quality = {
        "features": extractor.name,
        "feature_description": extractor.description,
        "reference_examples": int(len(real)),
        "k": k,
        "kid_subsets": kid_subsets,
        "seed": seed,
    }
    if family_of(model).can("prior"):
        # The row keeps its key; `sample_source` says whether a fitted sampler made it.
        quality["sample_source"] = model.sample_source
        quality["prior_samples"] = score(prior_samples(model, n, seed, batch_size))
    quality["reconstructions"] = score(model.predict(data.x_test, batch_size, verbose=0))
    rng = np.random.default_rng(seed)
    quality["training_examples"] = score(data.x_train[rng.permutation(len(data.x_train))[:n]])
    quality["noise"] = score(rng.uniform(size=(n, *data.x_test.shape[1:])).astype(np.float32))
    return quality


SCORED_SETS = (
    ("prior_samples", "prior samples"),
    ("reconstructions", "test reconstructions"),
    ("training_examples", "training examples"),
    ("noise", "uniform noise"),
)


def format_sample_quality(quality):
    """Human-readable table of `sample_quality`'s result."""
    lines = [
        f"sample quality against the {quality['reference_examples']} test examples, in "
        f"{quality['features']!r} features ({quality['feature_description']}); "
        f"precision/recall k={quality['k']}",
        f"  {'':22}{'examples':>9}{'FID':>10}{'KID (s.e.)':>22}{'precision':>11}{'recall':>8}",
    ]
    for key, label in SCORED_SETS:
        if key == "prior_samples" and quality.get("sample_source", "prior") != "prior":
            label = f"samples ({quality['sample_source']})"
        if key in quality:
            row = quality[key]
            kid = f"{row['kid']:.4f} ({row['kid_std_error']:.4f})"
            lines.append(
                f"  {label:22}{row['examples']:9d}{row['fid']:10.2f}{kid:>22}"
                f"{row['precision']:11.3f}{row['recall']:8.3f}"
            )
    return "\n".join(lines)


def _features(name, features, minimum):
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or len(features) < minimum:
        raise TfvaeError(
            f"{name} must be features [n, d] with n >= {minimum}. Received: shape {features.shape}"
        )
    if not np.all(np.isfinite(features)):
        raise TfvaeError(f"{name} contain NaN or Inf values")
    return features
