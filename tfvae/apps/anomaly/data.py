"""The data scenarios of anomaly detection: which examples are normal, which are tested.

Each scenario is a `DataSplits` whose `x_train` and `x_val` hold normal
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

import os

import numpy as np
from sklearn.model_selection import train_test_split

from tfvae import checks
from tfvae.data.datasets import BINARIZE_THRESHOLD
from tfvae.data.datasets import DataSplits
from tfvae.data.datasets import _check_finite_array
from tfvae.data.datasets import _read_array_file
from tfvae.data.datasets import load_dataset
from tfvae.data.datasets import scale_to_unit
from tfvae.errors import TfvaeError

DEFAULT_CALIBRATION_FRACTION = 0.2
# The demo's normal digit. 0 and 1 make it trivial (test ROC-AUC above 0.99
# after 20 epochs: every other digit has more, or differently placed, ink) and
# 8 hard (0.86); 5 sits between (0.96), and the false-positive rate set on its
# calibration examples carried over to its test examples (5% and 5%).
DEFAULT_NORMAL_DIGIT = 5
ECG5000_FEATURES = 140
# The tutorial splits with scikit-learn's train_test_split(test_size=0.2,
# random_state=21); the same call gives the same test rows here.
ECG5000_TEST_FRACTION = 0.2
ECG5000_SPLIT_SEED = 21
ECG5000_URL = "https://storage.googleapis.com/download.tensorflow.org/data/ecg.csv"


def check_calibration_fraction(calibration_fraction):
    """`calibration_fraction` as a float; raises unless it is a number in (0, 1)."""
    return checks.number_in(
        "calibration_fraction", calibration_fraction, 0, 1, low_open=True, high_open=True
    )


def _splits(name, x_train, x_val, x_test, y_test, binarized, protocol):
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
    check_calibration_fraction(calibration_fraction)
    data = load_dataset(
        dataset, binarize=False, validation_fraction=calibration_fraction, seed=seed
    )
    if data.y_train is None or data.y_test is None:
        raise TfvaeError(
            f"{data.name} has no labels; a class-as-normal scenario needs labelled data "
            "(use --normal and --test for your own arrays)"
        )
    classes = sorted(int(c) for c in np.unique(data.y_train))
    if not checks.is_integer(normal_class) or int(normal_class) not in classes:
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
    check_calibration_fraction(calibration_fraction)
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
    check_calibration_fraction(calibration_fraction)
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
