"""A streamed training split under `MultiWorkerMirroredStrategy`: each example once per epoch.

Two worker processes on 127.0.0.1 (`TF_CONFIG`, CPU only) read TFRecord
shards whose every record carries its `index` as its first value; each
worker reports the indices it was given, and together they must be the
training split, each index once, in every epoch. Four shards are split
between the workers by file; one shard, by data. The two processes take
about two minutes on two busy cores (`slow`); the default twin checks the
same parts in one process, without the strategy.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tfvae.data import tfrecords
from tfvae.data.datasets import load_dataset

EXAMPLES = 203
BATCH = 16  # global: 8 per worker
EPOCHS = 2
TIMEOUT_S = 240

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
    seen = []
    for _ in range(epochs):
        iterator, indices = iter(dataset), []
        while True:
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            for part in strategy.experimental_local_results(optional.get_value()):
                indices.extend(int(v) for v in np.asarray(part)[:, 0])
        seen.append(indices)
    report[pattern] = seen
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


def _run_workers(patterns, tmp_path):
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes, outs = [], []
    for index in range(2):
        env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        out = tmp_path / f"worker{index}.json"
        outs.append(out)
        command = [sys.executable, "-c", WORKER, str(BATCH), str(EPOCHS), str(out), *patterns]
        processes.append(
            subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    logs = [p.communicate(timeout=TIMEOUT_S)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [log[-3000:] for log in logs]
    return [json.loads(out.read_text()) for out in outs]


def _train_indices(pattern):
    data = load_dataset(pattern, scale="none", stream=True)
    return data, sorted(int(v) for v in data.stream.train_indices)


def _assert_each_once(parts, train):
    """`parts`: per worker, the indices it saw in one epoch."""
    assert all(parts) and sum(len(p) for p in parts) == len(train)
    assert sorted(i for p in parts for i in p) == train


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("multi_worker")
    return {"by_file": _shards(root / "four", 4), "by_data": _shards(root / "one", 1)}


@pytest.mark.parametrize("layout", ["by_file", "by_data"])
@pytest.mark.parametrize("workers", [2, 3])
def test_the_workers_parts_hold_every_example_once(layouts, layout, workers):
    data, train = _train_indices(layouts[layout])
    # 203 records: 41 test, 16 validation, 146 training.
    assert len(train) == 146
    for epoch in range(2):
        parts = []
        for worker in range(workers):
            dataset = data.stream.pipeline(4, seed=5, first_epoch=epoch, worker=(worker, workers))
            parts.append([int(v) for v in np.concatenate(list(dataset.as_numpy_iterator()))[:, 0]])
        _assert_each_once(parts, train)
    whole = data.stream.pipeline(4, seed=5)
    assert [int(v) for v in np.concatenate(list(whole.as_numpy_iterator()))[:, 0]] != train


@pytest.mark.slow
def test_two_workers_see_every_example_exactly_once_per_epoch(layouts, tmp_path):
    patterns = [layouts["by_file"], layouts["by_data"]]
    reports = _run_workers(patterns, tmp_path)
    assert [r["workers"] for r in reports] == [2, 2]
    for pattern in patterns:
        _, train = _train_indices(pattern)
        for epoch in range(EPOCHS):
            parts = [r[pattern][epoch] for r in reports]
            _assert_each_once(parts, train)
        # The order moves on with the epoch.
        assert reports[0][pattern][0] != reports[0][pattern][1]
