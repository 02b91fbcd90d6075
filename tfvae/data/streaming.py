"""A TFRecord training split streamed from disk, never loaded whole.

`--stream` (with `--dataset GLOB.tfrecord`) reads the training split through
this module instead of into memory. The records are first indexed in one
pass that parses their small features only (`index`, `split`, `label`,
`shape`, `dtype`, `encoding`, never decoding `x`), so the split into
train, validation and test is exactly the in-memory one. The validation and
test splits, and a seeded sample of the training split that the statistics
need (`--scale minmax` / `standard`, the decoder's initial bias, the
baseline, the value-range checks), are then read into memory; the training
split is read again every epoch, in parallel, decoded in parallel and
prefetched.

Each epoch's order is a pure function of `(seed, epoch)`, whatever the
cache and however many workers read it:

1. the shard files are permuted, seeded with `(seed, epoch)`;
2. their records are interleaved one at a time, in that file order
   (`choose_from_datasets` over one dataset per file, deterministic);
3. every block of `shuffle_buffer` consecutive examples is permuted,
   seeded with `(seed, epoch, block)`: a shuffle buffer without state.

A run resumed inside epoch `e` after `b` batches reads epoch `e` again and
skips its first `b` batches. The cache (`--cache`) holds each file's decoded
examples (in memory or in files under `--cache-dir`), beneath the file
permutation, so it changes the speed and never the order.

Under several workers (`tf.distribute.InputContext`), each of the `W`
workers reads exactly `share = N // W` of the epoch's `N` examples, so that
every worker runs the same number of steps, with batches of the same shape
(Keras's collectives need both). The epoch's stream (below) is rotated left
by `r`, drawn from `(seed, epoch)` in `[0, N)`, and its first `W * share`
examples are dealt out; the last `N % W` (fewer than `W`; in the unrotated
stream the ones just before position `r`) are left out of that epoch.

- At least `W` files (sharding by file): the stream is the files'
  training examples concatenated in the epoch's file order, and worker `w`
  reads positions `[w * share, (w + 1) * share)` of it: a run of whole
  files and, at its ends, parts of the files it shares with its neighbours
  (those it reads to their end, keeping its part). It interleaves its
  files as above.
- Fewer files (sharding by data): the stream is the interleaved one above;
  every worker reads every file and keeps positions `w, w + W, ...` of the
  rotated stream.

tf.distribute's own auto-sharding is turned off, as each worker's dataset
is already its part.
"""

import math
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tfvae import memory
from tfvae.data import tfrecords
from tfvae.data.ordering import permutation
from tfvae.errors import TfvaeError

CACHES = ("auto", "memory", "disk", "none")
# Examples in the shuffle buffer: at most this many, and at most SHUFFLE_BYTES of them.
SHUFFLE_EXAMPLES = 4096
SHUFFLE_BYTES = 128 * 2**20
# The training sample held in memory for statistics: at most this many examples and bytes.
SAMPLE_EXAMPLES = 4096
SAMPLE_BYTES = 64 * 2**20
# `--cache auto` caches in memory when the decoded training split needs at most this share
# of the memory available.
AUTO_CACHE_SHARE = 0.5
# tf.io.decode_raw's output types.
RAW_DTYPES = ("uint8", "int8", "uint16", "int16", "int32", "int64", "float16", "float32", "float64")
META_BATCH = 1024
# Folded into an epoch's key for where the workers' parts start (block keys fold in 0, 1, ...).
ROTATION_DRAW = -1
_META_FEATURES = {
    "index": tf.io.RaggedFeature(tf.int64),
    "split": tf.io.RaggedFeature(tf.string),
    "label": tf.io.RaggedFeature(tf.int64),
    "label_name": tf.io.RaggedFeature(tf.string),
    "shape": tf.io.RaggedFeature(tf.int64),
    "dtype": tf.io.RaggedFeature(tf.string),
    "encoding": tf.io.RaggedFeature(tf.string),
}
_PAYLOAD_FEATURES = {
    "x": tf.io.FixedLenFeature([], tf.string),
    "index": tf.io.FixedLenFeature([], tf.int64),
}


def check_cache(cache, cache_dir=None):
    """Raises unless `cache` is one of `CACHES` and `cache_dir` goes with `--cache disk` only."""
    if cache not in CACHES:
        raise TfvaeError(f"cache must be one of {list(CACHES)}. Received: cache={cache!r}")
    if cache_dir is not None and cache != "disk":
        raise TfvaeError(
            f"--cache-dir is where --cache disk writes its files. Received: --cache {cache}"
        )
    if cache == "disk" and cache_dir is not None:
        _check_cache_dir(cache_dir)


def _check_cache_dir(cache_dir):
    cache_dir = os.path.abspath(cache_dir)
    if os.path.exists(cache_dir):
        if not os.path.isdir(cache_dir):
            raise TfvaeError(f"cache directory {cache_dir} exists and is not a directory")
        if not os.access(cache_dir, os.W_OK | os.X_OK):
            raise TfvaeError(f"cache directory {cache_dir} is not writable")
        return
    parent = os.path.dirname(cache_dir)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise TfvaeError(
            f"cache directory {cache_dir} cannot be created: {parent} is not a writable directory"
        )


def index_records(pattern):
    """Parses the small features of every record of `pattern`; decodes no `x`.

    Returns:
        dict: `files` (sorted), and per record, in the files' order: `index`,
        `file` (position in `files`), `split` (str), `label` (int array, or
        None), `label_name` (str array, or None); and `shape`, `dtype`,
        `encoding`, which every record shares.
    """
    files = tfrecords.shard_files(pattern)
    columns = {name: [] for name in ("index", "file", "split", "label", "label_name")}
    first = None
    for position, path in enumerate(files):
        dataset = tf.data.TFRecordDataset(path).batch(META_BATCH)
        dataset = dataset.map(lambda r: tf.io.parse_example(r, _META_FEATURES))
        record = 0
        try:
            for batch in dataset.as_numpy_iterator():
                first = _check_batch(batch, path, record, first)
                n = len(batch["index"])
                columns["index"].append(np.concatenate(batch["index"]).astype(np.int64))
                columns["file"].append(np.full(n, position, np.int64))
                columns["split"].extend(
                    b"".join(s).decode("utf-8", "replace") for s in batch["split"]
                )
                if first["labelled"]:
                    columns["label"].append(np.concatenate(batch["label"]).astype(np.int64))
                    if first["named"]:
                        columns["label_name"].extend(
                            v[0].decode("utf-8") for v in batch["label_name"]
                        )
                record += n
        except tf.errors.DataLossError:
            raise TfvaeError(
                f"corrupt record in {path}: truncated or corrupted (its length or checksum "
                "does not match)"
            ) from None
        except tf.errors.InvalidArgumentError as error:
            text = " ".join(str(error.message).split())[:200]
            raise TfvaeError(
                f"schema mismatch in {path}: its records are not tf.train.Examples of tfvae's "
                f"schema (docs/data.md) ({text})"
            ) from None
    if first is None:
        raise TfvaeError(f"the TFRecord files {pattern} hold no records")
    index = np.concatenate(columns["index"])
    if len(np.unique(index)) != len(index):
        raise TfvaeError(
            f"schema mismatch in {pattern}: two records share an index; --stream needs each "
            "record's own index (tfvae data pack writes one)"
        )
    splits = np.asarray(columns["split"])
    bad = sorted(set(np.unique(splits)) - set(tfrecords.SPLIT_NAMES))
    if bad:
        raise TfvaeError(
            f"schema mismatch in {pattern}: split {bad[0]!r}; expected a split in "
            f"{list(tfrecords.SPLIT_NAMES)}"
        )
    return dict(
        files=files,
        index=index,
        file=np.concatenate(columns["file"]),
        split=splits,
        label=np.concatenate(columns["label"]) if first["labelled"] else None,
        label_name=np.asarray(columns["label_name"]) if first["named"] else None,
        shape=first["shape"],
        dtype=first["dtype"],
        encoding=first["encoding"],
    )


def _check_batch(batch, path, record, first):
    """Checks one batch of parsed features against the first record; returns the first's."""
    for name in ("shape", "dtype", "encoding"):
        if any(len(v) == 0 for v in batch[name]):
            row = record + next(i for i, v in enumerate(batch[name]) if len(v) == 0)
            raise TfvaeError(
                f"schema mismatch in {path} (record {row}): feature {name!r} is missing; "
                f"tfvae's schema needs {list(tfrecords.REQUIRED_FEATURES)} (docs/data.md)"
            )
    for row, values in enumerate(batch["index"]):
        if len(values) != 1:
            raise TfvaeError(
                f"schema mismatch in {path} (record {record + row}): --stream needs each "
                "record's index feature, one integer (tfvae data pack writes it)"
            )
    if first is None:
        encoding = batch["encoding"][0][0].decode("utf-8", "replace")
        if encoding not in tfrecords.ENCODINGS:
            raise TfvaeError(
                f"schema mismatch in {path} (record {record}): encoding {encoding!r}; expected "
                f"an encoding in {list(tfrecords.ENCODINGS)}"
            )
        try:
            dtype = np.dtype(batch["dtype"][0][0].decode("ascii"))
        except (TypeError, ValueError, UnicodeDecodeError):
            dtype = None
        if (
            dtype is None
            or dtype.name not in RAW_DTYPES
            or (encoding != "raw" and dtype.name not in ("uint8", "uint16"))
        ):
            raise TfvaeError(
                f"--stream decodes records of {list(RAW_DTYPES)} (PNG and JPEG: uint8, "
                f"uint16). Received: dtype {batch['dtype'][0][0]!r} with encoding {encoding} in "
                f"{path}; drop --stream to read them in memory"
            )
        first = dict(
            shape=tuple(int(v) for v in batch["shape"][0]),
            dtype=dtype,
            encoding=encoding,
            labelled=len(batch["label"][0]) > 0,
            named=len(batch["label_name"][0]) > 0,
            raw_dtype=batch["dtype"][0][0],
        )
    for row in range(len(batch["index"])):
        same = (
            tuple(batch["shape"][row]) == first["shape"]
            and batch["dtype"][row][0] == first["raw_dtype"]
            and batch["encoding"][row][0].decode("utf-8", "replace") == first["encoding"]
            and (len(batch["label"][row]) > 0) == first["labelled"]
            and (len(batch["label_name"][row]) > 0) == first["named"]
        )
        if not same:
            raise TfvaeError(
                f"schema mismatch in {path}: record {record + row} holds "
                f"{batch['dtype'][row]} {batch['encoding'][row]} of shape "
                f"{tuple(batch['shape'][row])}, the first {first['dtype']} {first['encoding']} "
                f"of shape {first['shape']}, each with or without a label alike"
            )
    return first


def decoded_bytes(shape):
    """Bytes of one example once decoded to float32."""
    return 4 * math.prod(shape)


def sample_size(n_train, shape):
    """How many training examples the statistics sample holds."""
    by_bytes = max(1, SAMPLE_BYTES // max(decoded_bytes(shape), 1))
    return max(1, min(n_train, SAMPLE_EXAMPLES, by_bytes))


def check_fits(what, count, shape, hint):
    """Raises unless `count` decoded examples of `shape` fit in the memory available."""
    needed = count * decoded_bytes(shape)
    available = memory.available_memory()
    if available is not None and needed > available:
        raise TfvaeError(
            f"{what}: {count:,} examples of shape {tuple(shape)} need {needed:,} bytes "
            f"({memory.format_bytes(needed)}) as float32, more than the {available:,} bytes "
            f"({memory.format_bytes(available)}) of memory available; {hint}"
        )


def _decoder(shape, dtype, encoding):
    """A function from a serialized `x` to its stored values, of `shape` and `dtype`."""
    tf_dtype = tf.as_dtype(dtype.name)
    if encoding == "raw":
        little = dtype.byteorder in ("<", "=", "|")

        def decode(data):
            return tf.reshape(tf.io.decode_raw(data, tf_dtype, little_endian=little), shape)

    else:
        channels = shape[-1] if len(shape) == 3 else 1

        def decode(data):
            if encoding == "png":
                image = tf.io.decode_png(data, channels=channels, dtype=tf_dtype)
            else:
                image = tf.io.decode_jpeg(data, channels=channels)
            return tf.reshape(image, shape)

    return decode


def read_examples(index, wanted):
    """The stored values of the records whose `index` is in `wanted`, in `wanted`'s order.

    Reads every file once, in parallel, decoding only the records wanted.
    """
    wanted = np.asarray(wanted, np.int64)
    out = np.empty((len(wanted), *index["shape"]), index["dtype"])
    if not len(wanted):
        return out
    table = _position_table(wanted)
    decode = _decoder(index["shape"], index["dtype"], index["encoding"])

    def payload(serialized):
        features = tf.io.parse_single_example(serialized, _PAYLOAD_FEATURES)
        return features["x"], table.lookup(features["index"])

    dataset = (
        tf.data.Dataset.from_tensor_slices(index["files"])
        .interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(len(index["files"]), 16),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=False,
        )
        .map(payload, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .filter(lambda x, position: position >= 0)
        .map(lambda x, position: (decode(x), position), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(256)
        .prefetch(tf.data.AUTOTUNE)
    )
    seen = 0
    try:
        for x, positions in dataset.as_numpy_iterator():
            out[positions] = x
            seen += len(positions)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as error:
        text = " ".join(str(error.message).split())[:200]
        raise TfvaeError(
            f"schema mismatch in {', '.join(index['files'][:3])}: an x does not decode to shape "
            f"{index['shape']} of {index['dtype']} ({text})"
        ) from None
    if seen != len(wanted):
        raise TfvaeError(f"the TFRecord files changed while being read: {seen} of {len(wanted)}")
    return out


def _position_table(keys, values=None):
    keys = tf.constant(np.asarray(keys, np.int64))
    values = tf.range(len(keys), dtype=tf.int64) if values is None else tf.constant(values)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), -1)


def resolve_cache(cache, n_train, shape):
    """The cache `auto` means here: `"memory"` when the decoded training split fits, else `"none"`."""
    if cache != "auto":
        return cache
    available = memory.available_memory()
    needed = n_train * decoded_bytes(shape)
    return "memory" if available is not None and needed <= AUTO_CACHE_SHARE * available else "none"


def check_cache_fits(cache, n_train, shape):
    """Raises when `--cache memory` would hold more decoded examples than memory can."""
    if cache == "memory":
        check_fits(
            "--cache memory holds the decoded training split",
            n_train,
            shape,
            "use --cache disk or --cache none",
        )


class StreamedSplit:
    """The training split of TFRecord shards, read from disk every epoch.

    Args:
        index: dict from `index_records`.
        train_indices: int array. The `index` of every training record.
        labels: int array or None. The class of each of `train_indices`.
        preprocessing: `Preprocessing`. Applied to every decoded example.
        cache: str. One of `CACHES`. Defaults to `"auto"`.
        cache_dir: str or None. `--cache disk`'s directory; `None` is a
            temporary directory removed when the process ends. Defaults to `None`.
        shuffle_buffer: int or None. Examples in the shuffle buffer; `None`
            is at most `SHUFFLE_EXAMPLES` and `SHUFFLE_BYTES`. Defaults to `None`.
    """

    def __init__(
        self,
        index,
        train_indices,
        labels,
        preprocessing,
        cache="auto",
        cache_dir=None,
        shuffle_buffer=None,
    ):
        check_cache(cache, cache_dir)
        # === Config ===
        self.files = list(index["files"])
        self.shape = tuple(index["shape"])
        self.dtype = index["dtype"]
        self.encoding = index["encoding"]
        self.train_indices = np.asarray(train_indices, np.int64)
        self.labels = labels
        self.preprocessing = preprocessing
        self.cache = resolve_cache(cache, len(self.train_indices), self.shape)
        check_cache_fits(self.cache, len(self.train_indices), self.shape)
        self.cache_dir = cache_dir
        if shuffle_buffer is None:
            by_bytes = SHUFFLE_BYTES // max(decoded_bytes(self.output_shape), 1)
            shuffle_buffer = max(1, min(SHUFFLE_EXAMPLES, by_bytes))
        self.shuffle_buffer = int(shuffle_buffer)
        # === State ===
        member = np.isin(index["index"], self.train_indices)
        per_file = np.bincount(index["file"][member], minlength=len(self.files))
        self.records_per_file = per_file
        self._per_file = None
        self._cache_root = None

    def __len__(self):
        return len(self.train_indices)

    @property
    def output_shape(self):
        """The shape of one example as the model sees it (axes arranged)."""
        shape = self.shape
        if self.preprocessing.channels_first:
            shape = (shape[1], shape[2], shape[0])
        if self.preprocessing.channel_axis_added:
            shape = (*shape, 1)
        return tuple(shape)

    def transform(self, x):
        """The model's input for one example's stored values, as `Preprocessing.apply`."""
        record = self.preprocessing
        x = tf.cast(x, tf.float32)
        if record.channels_first:
            x = tf.transpose(x, (1, 2, 0))
        if record.channel_axis_added:
            x = x[..., tf.newaxis]
        x = (x - tf.constant(record.offset, tf.float32)) / tf.constant(record.divisor, tf.float32)
        if record.binarize_threshold is not None:
            x = tf.cast(x > record.binarize_threshold, tf.float32)
        return x

    def _cache_path(self, position, worker=(0, 1)):
        """File `position`'s cache; each of several workers has its own (they share no writer)."""
        tag = "" if worker[1] == 1 else f"-worker{worker[0]}of{worker[1]}"
        if self._cache_root is None:
            if self.cache_dir is None:
                self._cache_root = tempfile.mkdtemp(prefix="tfvae-cache-")
                _remove_at_exit(self._cache_root)
            else:
                os.makedirs(self.cache_dir, exist_ok=True)
                self._cache_root = self.cache_dir
            # A killed run leaves its writers' lock files; no writer of this process runs
            # yet, and another worker's files (another tag) are its own to clear.
            for name in os.listdir(self._cache_root):
                if name.endswith(".lockfile") and (tag in name if tag else "-worker" not in name):
                    os.remove(os.path.join(self._cache_root, name))
        return os.path.join(self._cache_root, f"train-{position:05d}{tag}")

    def per_file_datasets(self, labels=False, worker=(0, 1)):
        """One dataset per file: its training examples, decoded and transformed, cached.

        `worker` (`(w, W)`) names the disk cache's files, one set per worker.
        """
        worker = tuple(worker)
        if self._per_file is not None and (labels, worker) in self._per_file:
            return self._per_file[labels, worker]
        members = _position_table(self.train_indices)
        label_of = None
        if labels:
            if self.labels is None:
                raise TfvaeError("these TFRecord files have no labels")
            label_of = _position_table(self.train_indices, np.asarray(self.labels, np.int64))
        decode = _decoder(self.shape, self.dtype, self.encoding)

        def payload(serialized):
            features = tf.io.parse_single_example(serialized, _PAYLOAD_FEATURES)
            return features["x"], features["index"]

        def example(x, index):
            x = self.transform(decode(x))
            return (x, label_of.lookup(index)) if labels else x

        datasets = []
        for position, path in enumerate(self.files):
            dataset = (
                tf.data.TFRecordDataset(path)
                .map(payload)
                .filter(lambda x, index: members.lookup(index) >= 0)
                .map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            )
            if self.cache == "memory":
                dataset = dataset.cache()
            elif self.cache == "disk":
                suffix = "-labels" if labels else ""
                dataset = dataset.cache(self._cache_path(position, worker) + suffix)
            datasets.append(dataset)
        self._per_file = {**(self._per_file or {}), (labels, worker): datasets}
        return datasets

    def epoch_dataset(self, epoch, seed, labels=False, worker=(0, 1)):
        """The examples of `epoch` in their order (a pure function of `seed` and `epoch`).

        Args:
            epoch: int or scalar tensor.
            seed: int.
            labels: bool. `(x, y)` elements. Defaults to `False`.
            worker: `(w, W)`: this worker's part of the epoch, `worker_share(W)`
                examples (see the module's docstring). Defaults to `(0, 1)`.
        """
        worker_index, workers = worker
        share = self.worker_share(workers)
        datasets = self.per_file_datasets(labels, worker)
        count = len(datasets)
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = permutation(count, key)
        by_file = workers > 1 and count >= workers
        if workers > 1:
            # Where the workers' parts start in the epoch's stream: the examples
            # left out (the `len % workers` before it) move with the epoch.
            rotation = tf.random.stateless_uniform(
                [],
                seed=tf.random.experimental.stateless_fold_in(key, ROTATION_DRAW),
                maxval=len(self),
                dtype=tf.int64,
            )
        if by_file:
            datasets, order = self._file_run(datasets, order, rotation, worker, share)
        # One round more than the longest file: every file's end is read, so its cache completes.
        rounds = int(self.records_per_file.max()) + 1
        choice = tf.data.Dataset.from_tensor_slices(tf.tile(order, [rounds]))
        dataset = tf.data.Dataset.choose_from_datasets(
            datasets, choice, stop_on_empty_dataset=False
        )
        if workers > 1 and not by_file:
            # A filter, not `take`: every file is read to its end, so its cache completes.
            total, end = len(self), workers * share

            def mine(i, _):
                shifted = tf.math.floormod(i - rotation, total)
                return (shifted % workers == worker_index) & (shifted < end)

            dataset = dataset.enumerate().filter(mine).map(lambda _, example: example)
        return _block_shuffle(dataset, self.shuffle_buffer, key)

    def _file_run(self, datasets, order, rotation, worker, share):
        """Worker `w`'s files: examples `[w * share, (w + 1) * share)` of the files in `order`.

        The files' examples are concatenated in `order` and rotated left by
        `rotation` (cyclically). Returns every file's dataset cut to its
        examples in that range (read to its end, so its cache completes), and
        the files holding any of them, in `order`.
        """
        total = len(self)
        counts = tf.constant(self.records_per_file, tf.int64)
        ordered = tf.gather(counts, order)
        # Each file's first example's position in the rotated stream, by file.
        starts = tf.gather(tf.cumsum(ordered, exclusive=True), tf.math.invert_permutation(order))
        starts = tf.math.floormod(starts - rotation, total)
        low = worker[0] * share
        high = low + share
        # Two cyclic ranges meet when either starts inside the other.
        holds = (counts > 0) & (
            ((starts >= low) & (starts < high)) | (tf.math.floormod(low - starts, total) < counts)
        )

        def part(position, dataset):
            def mine(i, _):
                shifted = tf.math.floormod(starts[position] + i, total)
                return (shifted >= low) & (shifted < high)

            return dataset.enumerate().filter(mine).map(lambda _, example: example)

        parts = [part(position, dataset) for position, dataset in enumerate(datasets)]
        return parts, tf.boolean_mask(order, tf.gather(holds, order))

    def worker_share(self, workers):
        """The examples each of `workers` workers reads per epoch: `len(self) // workers`.

        The other `len(self) % workers` (fewer than `workers`) are left out
        of the epoch (see the module's docstring).
        """
        if workers > len(self):
            raise TfvaeError(
                f"--stream gives each of {workers} workers an equal part of the "
                f"{len(self)} training examples; it needs at least one example per worker"
            )
        return len(self) // workers

    def steps(self, batch_size, workers=1):
        """Batches of `batch_size` in one worker's part of an epoch (of `workers`)."""
        return math.ceil(self.worker_share(workers) / batch_size)

    def distributed_steps(self, strategy, batch_size):
        """Steps per epoch of `distributed_pipeline(strategy, batch_size)`: equal on every worker.

        Each worker reads `worker_share` examples in batches of
        `batch_size / replicas`, one batch per replica a step.
        """
        replicas = strategy.num_replicas_in_sync
        workers = strategy.extended._num_workers
        per_worker = self.steps(self.replica_batch_size(batch_size, replicas), workers)
        return math.ceil(per_worker / (replicas // workers))

    @staticmethod
    def replica_batch_size(batch_size, replicas):
        """`batch_size / replicas`; raises unless `replicas` divides `batch_size`."""
        if batch_size % replicas:
            raise TfvaeError(
                f"--stream splits --batch-size over the {replicas} replicas of the workers, "
                f"each reading its own batches; give a multiple of {replicas}. "
                f"Received: --batch-size {batch_size}"
            )
        return batch_size // replicas

    def pipeline(
        self, batch_size, seed=0, first_epoch=0, skip_batches=0, labels=False, worker=None
    ):
        """Batched, prefetched training examples; pass `k` is epoch `first_epoch + k`.

        As `DataSplits.pipeline`: a run restarted inside epoch `e` after `b`
        batches builds `pipeline(..., first_epoch=e, skip_batches=b)` for
        that epoch, then `first_epoch=e + 1` for the others.

        Args:
            batch_size: int. Examples per batch (per replica under several workers).
            seed, first_epoch, skip_batches, labels: as `DataSplits.pipeline`.
            worker: `(w, W)` or None: the part of worker `w` of `W`. Defaults to `None`.
        """
        # Built here, eagerly: the per-file datasets (and their caches) outlive every pass.
        self.per_file_datasets(labels, worker or (0, 1))
        epoch_of_pass = tf.Variable(
            first_epoch - 1, dtype=tf.int64, trainable=False, name="stream_epoch"
        )

        def one_pass(_):
            epoch = epoch_of_pass.assign_add(1)
            dataset = self.epoch_dataset(epoch, seed, labels, worker or (0, 1))
            return dataset.skip(skip_batches * batch_size).batch(batch_size)

        dataset = tf.data.Dataset.range(1).flat_map(one_pass)
        # Known to Keras, and the same on every worker: each reads `worker_share` examples.
        steps = self.steps(batch_size, (worker or (0, 1))[1])
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps - skip_batches))
        options = tf.data.Options()
        options.deterministic = True
        # Each worker's dataset is already its own part (see the module's docstring).
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    def distributed_pipeline(self, strategy, batch_size, **kwargs):
        """`pipeline` for every worker of `strategy`, each reading its own part."""

        replica_batch = self.replica_batch_size(batch_size, strategy.num_replicas_in_sync)

        def worker_dataset(context):
            return self.pipeline(
                replica_batch,
                worker=(context.input_pipeline_id, context.num_input_pipelines),
                **kwargs,
            )

        return strategy.distribute_datasets_from_function(worker_dataset)


def _block_shuffle(dataset, size, key):
    """Each block of `size` consecutive elements permuted, seeded by `key` and the block.

    `key` is `[seed, epoch]`; block `j` is permuted with the key folded with `j`.

    A shuffle buffer without state, the same in any process: `Dataset.shuffle`
    refuses a tensor seed (the epoch's) once a global seed is set.
    """

    def permute(block_number, block):
        count = tf.shape(tf.nest.flatten(block)[0], out_type=tf.int64)[0]
        rows = permutation(count, tf.random.experimental.stateless_fold_in(key, block_number))
        return tf.nest.map_structure(lambda a: tf.gather(a, rows), block)

    return dataset.batch(size).enumerate().map(permute).unbatch()


def _remove_at_exit(path):
    import atexit

    atexit.register(shutil.rmtree, path, ignore_errors=True)
