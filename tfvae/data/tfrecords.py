r"""TFRecord shards in tfvae's schema: written by `tfvae data pack`, read by `--dataset GLOB`.

Each record is a `tf.train.Example` with these features (docs/data.md):

| feature | type | holds |
|---|---|---|
| `x` | bytes | the example: a PNG (or JPEG) when `encoding` says so, else its raw C-order bytes |
| `encoding` | bytes | `png`, `jpeg` or `raw` |
| `dtype` | bytes | the numpy dtype string of the values (`\|u1` for uint8, `<f4` for float32, ...) |
| `shape` | int64 list | the example's shape, `(H, W, C)` or `(features,)` |
| `label` | int64 list, 0 or 1 values | the class, if any |
| `label_name` | bytes list, 0 or 1 values | the class's name, when the classes were strings |
| `split` | bytes | `train`, `test`, or empty (tfvae splits it) |
| `index` | int64 | the example's position in the source; reading restores that order |

Shards are read in parallel through `tf.data` (one reader per file,
interleaved); `iter_records` yields one decoded example at a time, the
reader a streaming pipeline can sit on.
"""

import glob
import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tfvae.errors import TfvaeError
from tfvae.io.atomic import staged_dir

ENCODINGS = ("png", "jpeg", "raw")
SPLIT_NAMES = ("train", "test", "")
REQUIRED_FEATURES = ("x", "encoding", "dtype", "shape")
SHARD_NAME = "data-{index:05d}-of-{count:05d}.tfrecord"
TFRECORD_MARKERS = (".tfrecord", ".tfrecords", ".tfr")


def is_tfrecord_pattern(name):
    """Whether `name` names TFRecord files: a path or glob with a `.tfrecord` suffix."""
    base = os.path.basename(str(name)).lower()
    return any(marker in base for marker in TFRECORD_MARKERS)


def shard_files(pattern):
    """The sorted files `pattern` matches; refuses none."""
    files = sorted(glob.glob(pattern))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise TfvaeError(f"no TFRecord files match {pattern}")
    return files


def _bytes(*values):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(*values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def encode_example(x, label=None, label_name=None, split="", index=0):
    """One example as a serialized `tf.train.Example` of tfvae's schema."""
    x = np.ascontiguousarray(x)
    if x.dtype == np.uint8 and x.ndim == 3 and x.shape[-1] in (1, 3):
        buffer = io.BytesIO()
        Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x).save(buffer, format="PNG")
        encoding, data = "png", buffer.getvalue()
    else:
        encoding, data = "raw", x.tobytes()
    features = {
        "x": _bytes(data),
        "encoding": _bytes(encoding.encode()),
        "dtype": _bytes(x.dtype.str.encode()),
        "shape": _ints(*x.shape),
        "label": _ints(*([] if label is None else [label])),
        "label_name": _bytes(*([] if label_name is None else [str(label_name).encode("utf-8")])),
        "split": _bytes(split.encode()),
        "index": _ints(index),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def _feature(example, name, kind, where):
    feature = example.features.feature.get(name)
    if feature is None or feature.WhichOneof("kind") != kind:
        if feature is None and name not in REQUIRED_FEATURES:
            return []
        found = sorted(example.features.feature)
        raise TfvaeError(
            f"schema mismatch in {where}: feature {name!r} is "
            f"{'missing' if feature is None else 'not ' + kind}; tfvae's schema needs "
            f"{list(REQUIRED_FEATURES)} (docs/data.md). Received features {found}"
        )
    return list(getattr(feature, kind).value)


def decode_example(serialized, where="record"):
    """`(x, label, label_name, split, index)` of one serialized example."""
    try:
        example = tf.train.Example.FromString(serialized)
    except Exception:  # protobuf's DecodeError
        raise TfvaeError(f"corrupt record in {where}: not a tf.train.Example") from None
    (data,) = _feature(example, "x", "bytes_list", where) or [b""]
    (encoding,) = _feature(example, "encoding", "bytes_list", where) or [b""]
    (dtype,) = _feature(example, "dtype", "bytes_list", where) or [b""]
    shape = tuple(_feature(example, "shape", "int64_list", where))
    labels = _feature(example, "label", "int64_list", where)
    names = _feature(example, "label_name", "bytes_list", where)
    split = b"".join(_feature(example, "split", "bytes_list", where)).decode("utf-8", "replace")
    index = _feature(example, "index", "int64_list", where)
    encoding = encoding.decode("utf-8", "replace")
    if encoding not in ENCODINGS or split not in SPLIT_NAMES:
        raise TfvaeError(
            f"schema mismatch in {where}: encoding {encoding!r} and split {split!r}; expected "
            f"an encoding in {list(ENCODINGS)} and a split in {list(SPLIT_NAMES)}"
        )
    try:
        dtype = np.dtype(dtype.decode("ascii"))
        if dtype.hasobject:
            raise TypeError("objects")
        if encoding == "raw":
            x = np.frombuffer(data, dtype=dtype).reshape(shape)
        else:
            x = np.asarray(Image.open(io.BytesIO(data)), dtype=dtype)
            x = x.reshape(shape)
    except (TypeError, ValueError, OSError, UnicodeDecodeError) as error:
        text = " ".join(str(error).split())
        raise TfvaeError(
            f"schema mismatch in {where}: its x does not decode to shape {shape} of "
            f"{dtype} ({text})"
        ) from None
    label = labels[0] if labels else None
    name = names[0].decode("utf-8") if names else None
    return x, label, name, split, (index[0] if index else None)


def record_dataset(files):
    """A `tf.data.Dataset` of `(file, serialized record)`, the files read in parallel, in a fixed order."""
    return tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f).map(lambda r: (f, r)),
        cycle_length=min(len(files), 16),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )


def iter_records(pattern):
    """Yields `(x, label, label_name, split, index)` of every record the glob `pattern` matches."""
    files = shard_files(pattern)
    position = {}
    iterator = iter(record_dataset(files).prefetch(tf.data.AUTOTUNE).as_numpy_iterator())
    while True:
        try:
            path, serialized = next(iterator)
        except StopIteration:
            return
        except tf.errors.DataLossError:
            raise TfvaeError(
                f"corrupt record in {_corrupt_file(files)}: {_reason(files)}"
            ) from None
        path = path.decode()
        position[path] = position.get(path, -1) + 1
        yield decode_example(serialized, where=f"{path} (record {position[path]})")


def _corrupt_file(files):
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.DataLossError:
            return path
    return ", ".join(files)


def _reason(files):
    return "truncated or corrupted (its length or checksum does not match)"


def read_records(pattern):
    """Every record of `pattern` in the source's order, grouped as arrays.

    Returns:
        dict: `x`, `y` (labels, or names when the classes were strings),
        `x_test`, `y_test` (`None` unless records say `split=test`).
    """
    rows = list(iter_records(pattern))
    if not rows:
        raise TfvaeError(f"the TFRecord files {pattern} hold no records")
    if all(row[4] is not None for row in rows):
        rows.sort(key=lambda row: row[4])
    shape, dtype = rows[0][0].shape, rows[0][0].dtype
    has_label = rows[0][1] is not None
    for x, label, _, _, index in rows:
        if x.shape != shape or x.dtype != dtype or (label is not None) != has_label:
            raise TfvaeError(
                f"schema mismatch in {pattern}: record {index} holds {x.dtype} of shape "
                f"{x.shape}{' with' if label is not None else ' without'} a label, the first "
                f"{dtype} of shape {shape}{' with' if has_label else ' without'} one"
            )
    named = has_label and all(row[2] is not None for row in rows)
    parts = {}
    for split in ("train", "test"):
        chosen = [row for row in rows if (row[3] == "test") == (split == "test")]
        x = np.stack([row[0] for row in chosen]) if chosen else None
        if not has_label or not chosen:
            y = None
        elif named:
            y = np.asarray([row[2] for row in chosen])
        else:
            y = np.asarray([row[1] for row in chosen], np.int64)
        key = "" if split == "train" else "_test"
        parts[f"x{key}"], parts[f"y{key}"] = x, y
    if parts["x"] is None:
        raise TfvaeError(
            f"the TFRecord files {pattern} hold test records only; add training records"
        )
    return parts


def write_shards(out_dir, x, y=None, class_names=None, splits=None, shards=1):
    """Writes `x` (and labels) as `shards` TFRecord files in the new directory `out_dir`, atomically.

    Example `i` goes to shard `i % shards`, so every shard holds a mix of
    the source's classes.

    Args:
        out_dir: str. A new (or empty) directory.
        x: array `(N, ...)`, or a list of arrays of one shape.
        y: int array `(N,)` or None.
        class_names: tuple of str or None. Stored as `label_name`.
        splits: list of str or None. `"train"`/`"test"` per example.
        shards: int. How many files. Defaults to `1`.

    Returns:
        The list of files written.
    """
    if not isinstance(shards, int) or shards < 1:
        raise TfvaeError(f"--shards must be a positive integer. Received: {shards!r}")
    if shards > len(x):
        raise TfvaeError(f"--shards {shards} is more than the {len(x)} examples to pack")
    names = [SHARD_NAME.format(index=i, count=shards) for i in range(shards)]
    with staged_dir(out_dir) as staging:
        writers = [tf.io.TFRecordWriter(os.path.join(staging, name)) for name in names]
        try:
            for i in range(len(x)):
                label = None if y is None else int(y[i])
                label_name = None if class_names is None or label is None else class_names[label]
                split = "" if splits is None else splits[i]
                writers[i % shards].write(encode_example(x[i], label, label_name, split, i))
        finally:
            for writer in writers:
                writer.close()
    return [os.path.join(out_dir, name) for name in names]
