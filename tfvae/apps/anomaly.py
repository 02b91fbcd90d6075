"""Anomaly detection with an autoencoder trained on normal data only.

The recipe of TensorFlow's autoencoder tutorial (ECG5000): train on normal
examples, score every example by how badly the model explains it, and call it
an anomaly when its score is above a threshold calibrated on held-out normal
examples. The positive class is the anomaly throughout: precision is the share
of flagged examples that are anomalies, recall the share of anomalies flagged,
and the false-positive rate the share of normal examples flagged.

Scores:

- `Autoencoder`: the per-example reconstruction error of its likelihood
  (mean squared error per feature for `"gaussian"`, binary cross-entropy per
  feature for `"bernoulli"`).
- `VAE`: the negative ELBO in nats per example with `beta = 1`,
  `-log p(x | z) + KL(q(z | x) || p(z))`, evaluated at the posterior mean
  `z = mu` (noise `eps = 0`), so a score is deterministic.

Data scenarios, each a `DataSplits` whose `x_train` and `x_val` hold normal
examples only (training and calibration) and whose `y_test` is 1 for an
anomaly and 0 for a normal example:

- `class_splits`: one class of a labelled data set (a digit of `mnist5k`)
  is normal, every other class is an anomaly.
- `array_splits`: the user's normal examples (`.npz` / `.npy`) and a test
  file with `x` and `y` (1 = anomaly).
- `ecg5000_splits`: the tutorial's `ecg.csv` (140 samples of one heartbeat
  and a label per row, label 1 = normal), split and min-max scaled as the
  tutorial does.
"""

import dataclasses
import datetime
import math
import os

import numpy as np

from tfvae.errors import TfvaeError

DEFAULT_PERCENTILE = 95.0
DEFAULT_CALIBRATION_FRACTION = 0.2
# The demo's normal digit. 0 and 1 make it trivial (test ROC-AUC above 0.99
# after 20 epochs: every other digit has more, or differently placed, ink) and
# 8 hard (0.86); 5 sits between (0.96), and the false-positive rate set on its
# calibration examples carried over to its test examples (5% and 5%).
DEFAULT_NORMAL_DIGIT = 5
SCORE_BATCH_SIZE = 256
ECG5000_FEATURES = 140
# The tutorial splits with scikit-learn's train_test_split(test_size=0.2,
# random_state=21); the same call gives the same test rows here.
ECG5000_TEST_FRACTION = 0.2
ECG5000_SPLIT_SEED = 21
ECG5000_URL = "https://storage.googleapis.com/download.tensorflow.org/data/ecg.csv"
RESULTS_FILE = "results.json"
HISTOGRAM_FILE = "scores_histogram.png"
ROC_FILE = "roc.png"


def _check_open_interval(name, value, low, high):
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low < value < high
    ):
        raise TfvaeError(
            f"{name} must be a number in ({low:g}, {high:g}). Received: {name}={value!r}"
        )


def _check_scores(scores, where="scores"):
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise TfvaeError(f"{where} must be a non-empty 1-D array. Received: shape={scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise TfvaeError(f"{where} contain NaN or Inf values")
    return scores


# --- Scores -----------------------------------------------------------------


def score_description(model):
    """One line saying what `anomaly_scores` computes for `model`."""
    from tfvae.models import VAE

    if isinstance(model, VAE):
        return (
            "negative ELBO (nats per example, beta = 1) at the posterior mean z = mu: "
            "-log p(x | mu) + KL(q(z | x) || p(z))"
        )
    what = {"gaussian": "mean squared error", "bernoulli": "binary cross-entropy"}
    return f"reconstruction error ({what[model.likelihood.name]} per feature)"


def anomaly_scores(model, x, batch_size=SCORE_BATCH_SIZE):
    """Per-example anomaly scores of `x` under a trained `Autoencoder` or `VAE`.

    The autoencoder's score is its reconstruction error; the VAE's the
    negative ELBO with `beta = 1` at the posterior mean (deterministic). Runs
    in batches of `batch_size`, so memory stays bounded for any `len(x)`.

    Args:
        model: a trained `tfvae.models.Autoencoder` or `tfvae.models.VAE`.
        x: array `[n, ...]` shaped like the model's training data.
        batch_size: int. Examples per batch. Defaults to `256`.

    Returns:
        A float64 numpy array `[n]`; larger means more anomalous.
    """
    import tensorflow as tf

    from tfvae.models import VAE
    from tfvae.models import Autoencoder

    if not isinstance(model, (Autoencoder, VAE)):
        raise TfvaeError(
            f"anomaly scores need a tfvae Autoencoder or VAE. Received: {type(model).__name__}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TfvaeError(
            f"batch_size must be a positive integer. Received: batch_size={batch_size!r}"
        )
    x = np.asarray(x, np.float32)
    is_vae = isinstance(model, VAE)

    # Eager calls: a handful of batches, and no retracing per model or batch size.
    def score(batch):
        if is_vae:
            eps = tf.zeros([tf.shape(batch)[0], model.latent_dim], tf.float32)
            terms = model.per_example_losses(batch, training=False, eps=eps)
            return terms["reconstruction_loss"] + terms["kl_loss"]
        return model.per_example_losses(batch, training=False)["reconstruction_loss"]

    parts = [
        score(tf.constant(x[start : start + batch_size])).numpy()
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)


# --- Thresholds ---------------------------------------------------------------


def threshold_at_percentile(normal_scores, percentile=DEFAULT_PERCENTILE):
    """The `percentile`-th percentile of held-out normal scores (linear interpolation).

    An example is an anomaly when its score is above the threshold, so about
    `100 - percentile` percent of the calibration examples are flagged.

    Args:
        normal_scores: 1-D array. Scores of held-out normal examples.
        percentile: float in (0, 100). Defaults to `95`.
    """
    _check_open_interval("percentile", percentile, 0, 100)
    return float(np.percentile(_check_scores(normal_scores, "normal scores"), percentile))


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
    _check_open_interval("false_positive_rate", false_positive_rate, 0, 1)
    scores = np.sort(_check_scores(normal_scores, "normal scores"))
    # The small tolerance keeps n * (1 - rate) = 95.00000000000001 at 95.
    rank = math.ceil(len(scores) * (1.0 - false_positive_rate) - 1e-9)
    return float(scores[max(rank, 1) - 1])


def false_positive_rate_at(normal_scores, threshold):
    """The share of normal scores above `threshold` (flagged as anomalies)."""
    return float(np.mean(_check_scores(normal_scores, "normal scores") > threshold))


# --- Metrics ------------------------------------------------------------------


def _check_labels(labels, n):
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise TfvaeError(
            f"labels must be one per score. Received: shape={labels.shape} for {n} scores"
        )
    if not np.isin(labels, (0, 1)).all():
        raise TfvaeError(
            f"labels must be 0 (normal) or 1 (anomaly). Received: values {sorted(set(labels.tolist()))[:5]}"
        )
    if labels.min() == labels.max():
        raise TfvaeError("the test data needs both normal (0) and anomalous (1) examples")
    return labels.astype(np.int64)


def detection_metrics(labels, scores, threshold):
    """Detection quality with the anomaly as the positive class.

    An example is flagged when its score is above `threshold`.

    Args:
        labels: 1-D array of 0 (normal) and 1 (anomaly).
        scores: 1-D array. Anomaly scores; larger is more anomalous.
        threshold: float.

    Returns:
        A dict: `threshold`; the confusion counts `true_positives`,
        `false_positives`, `true_negatives`, `false_negatives`; `precision`,
        `recall`, `f1` and `false_positive_rate` at the threshold (precision
        is 0 when nothing is flagged); the threshold-free `roc_auc` and
        `average_precision` (area under the precision-recall curve, as
        scikit-learn computes it); `n_normal`, `n_anomalous` and
        `anomaly_rate`, the precision of flagging everything.
    """
    from sklearn import metrics

    scores = _check_scores(scores)
    labels = _check_labels(labels, len(scores))
    flagged = (scores > threshold).astype(np.int64)
    tn, fp, fn, tp = (
        int(v) for v in metrics.confusion_matrix(labels, flagged, labels=[0, 1]).ravel()
    )
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": float(threshold),
        "true_positives": tp,
        "false_positives": fp,
        "true_negatives": tn,
        "false_negatives": fn,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "false_positive_rate": fp / (fp + tn),
        "roc_auc": float(metrics.roc_auc_score(labels, scores)),
        "average_precision": float(metrics.average_precision_score(labels, scores)),
        "n_normal": int(np.sum(labels == 0)),
        "n_anomalous": int(np.sum(labels == 1)),
        "anomaly_rate": float(np.mean(labels)),
    }


def roc_points(labels, scores):
    """`(false_positive_rates, true_positive_rates)` of the ROC curve (anomaly = positive)."""
    from sklearn import metrics

    scores = _check_scores(scores)
    labels = _check_labels(labels, len(scores))
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    return fpr, tpr


# --- Data ---------------------------------------------------------------------


def _splits(name, x_train, x_val, x_test, y_test, binarized, protocol):
    from tfvae.data.datasets import BINARIZE_THRESHOLD
    from tfvae.data.datasets import DataSplits

    arrays = [np.asarray(a, np.float32) for a in (x_train, x_val, x_test)]
    if binarized:
        arrays = [(a > BINARIZE_THRESHOLD).astype(np.float32) for a in arrays]
        protocol += f"; statically binarized at {BINARIZE_THRESHOLD}"
    return DataSplits(
        name=name,
        x_train=arrays[0],
        x_val=arrays[1],
        x_test=arrays[2],
        y_train=None,
        y_val=None,
        y_test=np.asarray(y_test, np.int64),
        binarized=bool(binarized),
        protocol=protocol,
    )


def class_splits(
    dataset="mnist5k",
    normal_class=DEFAULT_NORMAL_DIGIT,
    binarize=False,
    calibration_fraction=DEFAULT_CALIBRATION_FRACTION,
    seed=0,
):
    """One class of a labelled data set is normal, the others anomalies.

    Trains on the training split's examples of `normal_class`, calibrates on
    the validation split's, and tests on the whole test split (label 1 for
    every other class). For `mnist5k` with the default calibration fraction:
    320 training and 80 calibration examples of the normal digit, and 100
    normal and 900 anomalous test examples.

    Args:
        dataset: str. A labelled `--dataset` (`mnist5k`, `digits`, ...).
            Defaults to `"mnist5k"`.
        normal_class: int. The label of the normal class. Defaults to `5`.
        binarize: bool. Threshold pixels at 0.5. Defaults to `False`.
        calibration_fraction: float in (0, 1). Share of each class's
            training rows held out (the validation split). Defaults to `0.2`.
        seed: int. Defaults to `0`.
    """
    from tfvae.data.datasets import load_dataset

    _check_open_interval("calibration_fraction", calibration_fraction, 0, 1)
    data = load_dataset(
        dataset, binarize=False, validation_fraction=calibration_fraction, seed=seed
    )
    if data.y_train is None or data.y_test is None:
        raise TfvaeError(
            f"{data.name} has no labels; a class-as-normal scenario needs labelled data "
            "(use --normal and --test for your own arrays)"
        )
    classes = sorted(int(c) for c in np.unique(data.y_train))
    if (
        isinstance(normal_class, bool)
        or not isinstance(normal_class, (int, np.integer))
        or (int(normal_class) not in classes)
    ):
        raise TfvaeError(
            f"normal_digit {normal_class!r} is not a label of {data.name}; expected one of {classes}"
        )
    normal_class = int(normal_class)
    train = data.x_train[data.y_train == normal_class]
    calibration = data.x_val[data.y_val == normal_class]
    labels = (data.y_test != normal_class).astype(np.int64)
    protocol = (
        f"{data.protocol}. Anomaly detection: class {normal_class} is normal; trained on its "
        f"{len(train)} training examples, threshold calibrated on its {len(calibration)} "
        f"validation examples; tested on the test split ({int(np.sum(labels == 0))} normal, "
        f"{int(np.sum(labels))} anomalous: every other class)"
    )
    return _splits(data.name, train, calibration, data.x_test, labels, binarize, protocol)


def _calibration_cut(n, calibration_fraction, seed, where):
    order = np.random.default_rng(seed).permutation(n)
    n_calibration = int(round(n * calibration_fraction))
    if n_calibration < 1 or n - n_calibration < 1:
        raise TfvaeError(
            f"{where} has too few normal examples ({n}) to split into training and calibration"
        )
    return np.sort(order[n_calibration:]), np.sort(order[:n_calibration])


def array_splits(
    normal_path,
    test_path,
    binarize=False,
    calibration_fraction=DEFAULT_CALIBRATION_FRACTION,
    seed=0,
):
    """The user's arrays: normal examples, and a labelled test set.

    `normal_path` is a `.npz` holding `x` (or one array) or a `.npy`, of
    normal examples only; a seeded random `calibration_fraction` of them
    calibrates the threshold, the rest train. `test_path` is a `.npz` with
    `x` and `y`, `y` = 1 for an anomaly and 0 for a normal example. Integer
    pixels are divided by 255, as for `--dataset`.

    Args:
        normal_path: str. Path of the normal examples.
        test_path: str. Path of the test examples and labels.
        binarize: bool. Threshold at 0.5. Defaults to `False`.
        calibration_fraction: float in (0, 1). Defaults to `0.2`.
        seed: int. Seeds the calibration split. Defaults to `0`.
    """
    from tfvae.data.datasets import _check_finite_array
    from tfvae.data.datasets import _read_array_file
    from tfvae.data.datasets import scale_to_unit

    _check_open_interval("calibration_fraction", calibration_fraction, 0, 1)
    normal_path, test_path = os.fspath(normal_path), os.fspath(test_path)
    arrays = _read_array_file(normal_path)
    where = os.path.basename(normal_path)
    if "x" in arrays:
        normal = arrays["x"]
    elif len(arrays) == 1:
        (normal,) = arrays.values()
    else:
        raise TfvaeError(
            f"{where} holds arrays {sorted(arrays)}; expected 'x', the normal examples"
        )
    _check_finite_array(np.asarray(normal), f"{where}:x")
    normal = scale_to_unit(np.asarray(normal))

    tested = _read_array_file(test_path)
    test_where = os.path.basename(test_path)
    if "x" not in tested or "y" not in tested:
        raise TfvaeError(
            f"{test_where} holds arrays {sorted(tested)}; expected 'x' and 'y' (1 = anomaly, "
            "0 = normal)"
        )
    x_test, y_test = np.asarray(tested["x"]), np.asarray(tested["y"])
    _check_finite_array(x_test, f"{test_where}:x")
    x_test = scale_to_unit(x_test)
    if x_test.shape[1:] != normal.shape[1:]:
        raise TfvaeError(
            f"{test_where}:x examples have shape {x_test.shape[1:]} but {where}'s have "
            f"{normal.shape[1:]}"
        )
    if y_test.ndim != 1 or len(y_test) != len(x_test):
        raise TfvaeError(
            f"{test_where}:y must be one label per example. Received: shape={y_test.shape} "
            f"for {len(x_test)} examples"
        )
    if not np.isin(y_test, (0, 1)).all():
        raise TfvaeError(
            f"{test_where}:y must be 0 (normal) or 1 (anomaly). Received values "
            f"{sorted(set(np.unique(y_test).tolist()))[:5]}"
        )
    train, calibration = _calibration_cut(len(normal), calibration_fraction, seed, where)
    protocol = (
        f"user files: {len(train)} normal examples of {normal_path} train, {len(calibration)} "
        f"(a seeded random {calibration_fraction:.0%}) calibrate the threshold; tested on "
        f"{test_path} ({int(np.sum(y_test == 0))} normal, {int(np.sum(y_test == 1))} anomalous)"
    )
    return _splits(
        where,
        normal[train],
        normal[calibration],
        x_test,
        y_test.astype(np.int64),
        binarize,
        protocol,
    )


def load_ecg5000_csv(path):
    """Reads the tutorial's `ecg.csv`: 140 float samples and a label per row.

    Label 1 is a normal heartbeat and 0 an abnormal one (the tutorial's
    convention); this returns the anomaly labels, `1 - label`.

    Args:
        path: str. The CSV file (no header), as downloaded from
            `ECG5000_URL`.

    Returns:
        `(x, anomaly)`: float32 `[rows, 140]` and int64 `[rows]`, 1 = abnormal.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise TfvaeError(f"ECG5000 file not found: {path} (download it from {ECG5000_URL})")
    if os.path.isdir(path):
        raise TfvaeError(f"ECG5000 path is a directory, expected the CSV file: {path}")
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        raise TfvaeError(f"cannot read ECG5000 file {path}: {first}") from None
    if table.size == 0:
        raise TfvaeError(f"ECG5000 file {path} is empty")
    if table.shape[1] != ECG5000_FEATURES + 1:
        raise TfvaeError(
            f"ECG5000 file {path} has {table.shape[1]} columns; expected "
            f"{ECG5000_FEATURES + 1} ({ECG5000_FEATURES} samples and a label)"
        )
    if not np.all(np.isfinite(table)):
        bad = int(table.size - np.count_nonzero(np.isfinite(table)))
        raise TfvaeError(f"ECG5000 file {path} contains {bad} NaN or Inf values")
    labels = table[:, -1]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise TfvaeError(
            f"ECG5000 file {path}: the last column must be 1 (normal) or 0 (abnormal). "
            f"Received values {sorted(set(np.unique(labels).tolist()))[:5]}"
        )
    return table[:, :-1].astype(np.float32), (1 - labels).astype(np.int64)


def min_max_scale(x, low, high):
    """`(x - low) / (high - low)`: the tutorial's scaling with the training set's extremes."""
    if not high > low:
        raise TfvaeError(f"min-max scaling needs max > min. Received: min={low!r}, max={high!r}")
    return ((np.asarray(x, np.float64) - low) / (high - low)).astype(np.float32)


def ecg5000_splits(path, binarize=False, calibration_fraction=DEFAULT_CALIBRATION_FRACTION, seed=0):
    """The tutorial's ECG5000 protocol from a local `ecg.csv`.

    As in the tutorial: 20% of the rows are the test set
    (`train_test_split(test_size=0.2, random_state=21)`), and every value is
    min-max scaled with the training rows' global minimum and maximum. The
    normal training rows are then split: a seeded random
    `calibration_fraction` calibrates the threshold (the tutorial used the
    training losses), the rest train. Abnormal training rows are unused.

    Args:
        path: str. The CSV (see `load_ecg5000_csv`).
        binarize: bool. Defaults to `False` (these are signals, not pixels).
        calibration_fraction: float in (0, 1). Defaults to `0.2`.
        seed: int. Seeds the calibration split. Defaults to `0`.
    """
    from sklearn.model_selection import train_test_split

    _check_open_interval("calibration_fraction", calibration_fraction, 0, 1)
    x, anomaly = load_ecg5000_csv(path)
    if len(x) < 5:
        raise TfvaeError(f"ECG5000 file {path} has too few rows ({len(x)}) to split")
    x_train, x_test, y_train, y_test = train_test_split(
        x, anomaly, test_size=ECG5000_TEST_FRACTION, random_state=ECG5000_SPLIT_SEED
    )
    low, high = float(np.min(x_train)), float(np.max(x_train))
    x_train, x_test = min_max_scale(x_train, low, high), min_max_scale(x_test, low, high)
    normal = x_train[y_train == 0]
    train, calibration = _calibration_cut(len(normal), calibration_fraction, seed, "ECG5000")
    protocol = (
        f"ECG5000 ({path}, {len(x)} heartbeats of {ECG5000_FEATURES} samples): "
        f"train_test_split(test_size={ECG5000_TEST_FRACTION}, random_state={ECG5000_SPLIT_SEED}) "
        f"as in the TensorFlow tutorial, min-max scaled with the training rows' min {low:g} "
        f"and max {high:g}; {len(train)} normal training rows train, {len(calibration)} "
        f"(a seeded random {calibration_fraction:.0%}) calibrate the threshold; tested on "
        f"{len(x_test)} rows ({int(np.sum(y_test == 0))} normal, {int(np.sum(y_test))} abnormal)"
    )
    return _splits(
        "ecg5000", normal[train], normal[calibration], x_test, y_test, binarize, protocol
    )


# --- Training and the whole experiment -----------------------------------------


def check_model_fits(config, splits):
    """Raises `TfvaeError` unless the model `config` describes can train on `splits`."""
    from tfvae.models.decoder import check_conv_shape

    config.validate()
    splits.check_for(config.arch, config.resolved_likelihood)
    if config.arch == "conv":
        check_conv_shape(splits.data_shape, config.filters)


def load_scoring_run(run_dir):
    """`(model, settings)` of a run directory, to score with instead of training.

    Reads `model.keras` (with `safe_mode=True`) and `config.json` of a run
    written by `tfvae train` or `tfvae anomaly`. `settings` is the config as
    a dict; its `dataset` may name a file `TrainConfig` does not read (an
    ECG5000 CSV), so it is not rebuilt as a `TrainConfig`.
    """
    from tfvae.models import VAE
    from tfvae.models import Autoencoder
    from tfvae.training import runs

    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise TfvaeError(f"run directory not found: {run_dir}")
    settings = runs.read_json(os.path.join(run_dir, runs.CONFIG_FILE))
    if not isinstance(settings, dict):
        raise TfvaeError(f"cannot read config {run_dir}/{runs.CONFIG_FILE}: not a JSON object")
    model = runs.load_model_file(os.path.join(run_dir, runs.MODEL_FILE))
    if not isinstance(model, (Autoencoder, VAE)):
        raise TfvaeError(
            f"{run_dir}/{runs.MODEL_FILE} holds a {type(model).__name__}; anomaly scores need "
            "a tfvae Autoencoder or VAE"
        )
    return model, settings


def resolved_binarize(settings):
    """Whether a run's inputs were binarized, from its config dict (as `TrainConfig` decides)."""
    binarize = settings.get("binarize")
    return settings.get("model") == "vae" if binarize is None else bool(binarize)


def train_on_normal(config, splits, verbose="auto"):
    """Trains the model `config` describes on `splits.x_train` (normal examples only).

    Uses tfvae's training machinery (`build_compiled_model`, the seeded
    `DataSplits.pipeline`); validation loss is reported on the calibration
    examples.

    Returns:
        `(model, history)`: the trained model and its per-epoch metrics.
    """
    from tfvae.training.distribute import make_strategy
    from tfvae.training.trainer import build_compiled_model
    from tfvae.training.trainer import count_steps_per_epoch

    check_model_fits(config, splits)
    strategy = make_strategy(config.strategy)
    steps = count_steps_per_epoch(config, splits)
    with strategy.scope():
        model = build_compiled_model(config, splits.data_shape, steps, x_train=splits.x_train)
    fitted = model.fit(
        splits.pipeline("train", config.batch_size, seed=config.seed),
        validation_data=splits.pipeline("val", config.batch_size),
        epochs=config.epochs,
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles, seeded
    )
    return model, {name: [float(v) for v in values] for name, values in fitted.history.items()}


@dataclasses.dataclass
class AnomalyResult:
    """What `detect_anomalies` measured, and the model that scored.

    `calibration_scores` and `test_scores` are the scores of the calibration
    (normal) and test examples; `metrics` is `detection_metrics` on the test
    set plus `calibration_false_positive_rate`.
    """

    splits: object
    model: object
    settings: dict
    threshold_rule: str
    threshold: float
    calibration_scores: np.ndarray
    test_scores: np.ndarray
    metrics: dict
    score: str
    history: dict | None = None

    def to_dict(self):
        return {
            "protocol": self.splits.protocol,
            "data": self.splits.name,
            "settings": self.settings,
            "score": self.score,
            "threshold_rule": self.threshold_rule,
            "threshold": self.threshold,
            "metrics": self.metrics,
            "history": self.history,
        }


def calibrate(normal_scores, percentile=None, false_positive_rate=None):
    """`(threshold, rule)` from held-out normal scores; a percentile (default 95) or a target FPR."""
    if percentile is not None and false_positive_rate is not None:
        raise TfvaeError("give a percentile or a false-positive rate, not both")
    if false_positive_rate is not None:
        threshold = threshold_for_false_positive_rate(normal_scores, false_positive_rate)
        return threshold, f"at most {false_positive_rate:g} of calibration normals flagged"
    percentile = DEFAULT_PERCENTILE if percentile is None else percentile
    threshold = threshold_at_percentile(normal_scores, percentile)
    return threshold, f"{percentile:g}th percentile of calibration scores"


def detect_anomalies(
    config,
    splits,
    percentile=None,
    false_positive_rate=None,
    model=None,
    verbose="auto",
    settings=None,
):
    """Trains on normal data, calibrates a threshold, and measures detection on the test set.

    Args:
        config: `TrainConfig` of the model to train (its `dataset` is not
            read: the data is `splits`).
        splits: `DataSplits` from `class_splits`, `array_splits` or
            `ecg5000_splits`.
        percentile: float in (0, 100) or None. Threshold at this percentile
            of the calibration scores; the default rule (95) when neither
            this nor `false_positive_rate` is given.
        false_positive_rate: float in (0, 1) or None. Threshold flagging at
            most this share of the calibration examples.
        model: a trained model, or None to train one with `config`.
            Defaults to `None`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"`.
        settings: dict or None. Recorded in the results as they are.

    Returns:
        An `AnomalyResult`.
    """
    if percentile is not None:
        _check_open_interval("percentile", percentile, 0, 100)
    if false_positive_rate is not None:
        _check_open_interval("false_positive_rate", false_positive_rate, 0, 1)
    history = None
    if model is None:
        model, history = train_on_normal(config, splits, verbose=verbose)
    else:
        expected = tuple(model.decoder.data_shape)
        if expected != splits.data_shape:
            raise TfvaeError(
                f"the model was trained on examples of shape {expected}; this data's are "
                f"{splits.data_shape}"
            )
    calibration_scores = anomaly_scores(model, splits.x_val)
    test_scores = anomaly_scores(model, splits.x_test)
    threshold, rule = calibrate(calibration_scores, percentile, false_positive_rate)
    metrics = detection_metrics(splits.y_test, test_scores, threshold)
    metrics["calibration_false_positive_rate"] = false_positive_rate_at(
        calibration_scores, threshold
    )
    return AnomalyResult(
        splits=splits,
        model=model,
        settings=dict(settings or {}),
        threshold_rule=rule,
        threshold=threshold,
        calibration_scores=calibration_scores,
        test_scores=test_scores,
        metrics=metrics,
        score=score_description(model),
        history=history,
    )


def format_report(result, protocol=True):
    """The protocol (unless `protocol=False`), the threshold and the metrics table as text."""
    m = result.metrics
    rows = [
        ("ROC-AUC", m["roc_auc"]),
        ("PR-AUC (average precision)", m["average_precision"]),
        ("precision", m["precision"]),
        ("recall", m["recall"]),
        ("F1", m["f1"]),
        ("false-positive rate (test normals)", m["false_positive_rate"]),
        ("false-positive rate (calibration)", m["calibration_false_positive_rate"]),
    ]
    lines = [
        *([f"protocol: {result.splits.protocol}"] if protocol else []),
        f"score: {result.score}",
        f"threshold: {result.threshold:.6g} ({result.threshold_rule})",
        "",
        "test-set detection, positive class = anomaly",
        *(f"  {name:<36} {value:.4f}" for name, value in rows),
        f"  {'confusion (TP FP TN FN)':<36} {m['true_positives']} {m['false_positives']} "
        f"{m['true_negatives']} {m['false_negatives']}",
        f"  {'share of anomalies in the test set':<36} {m['anomaly_rate']:.4f}",
    ]
    return "\n".join(lines)


def default_output_dir(splits, model_name, root="saved_models"):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    name = os.path.splitext(splits.name)[0]
    return os.path.join(root, f"anomaly-{name}-{model_name}-{stamp}")


def write_anomaly_dir(result, out, config_dict):
    """Writes `results.json`, the two figures, `model.keras` and `config.json` into `out`.

    The directory is built under a temporary name and renamed when
    complete, so `out` is either complete or absent.

    Args:
        result: `AnomalyResult`.
        out: str. A new or empty directory.
        config_dict: dict. The model's settings, written as `config.json`.
    """
    from tfvae.evaluation import plots
    from tfvae.training import runs

    runs.check_new_run_dir(out)
    with runs.staged_output_dir(out, prefix=".tmp-anomaly-") as staging:
        runs.write_json(os.path.join(staging, RESULTS_FILE), result.to_dict())
        runs.write_json(os.path.join(staging, runs.CONFIG_FILE), config_dict)
        runs.save_model_file(result.model, os.path.join(staging, runs.MODEL_FILE))
        labels = result.splits.y_test
        plots.save_figure(
            plots.anomaly_scores_figure(
                result.test_scores[labels == 0],
                result.test_scores[labels == 1],
                result.threshold,
                title=f"Test scores, {result.splits.name}: {result.score.split(' (')[0]}",
            ),
            os.path.join(staging, HISTOGRAM_FILE),
        )
        fpr, tpr = roc_points(labels, result.test_scores)
        plots.save_figure(
            plots.roc_figure(
                fpr,
                tpr,
                result.metrics["roc_auc"],
                operating_point=(result.metrics["false_positive_rate"], result.metrics["recall"]),
                title=f"ROC of the anomaly score, {result.splits.name}",
            ),
            os.path.join(staging, ROC_FILE),
        )
    return out
