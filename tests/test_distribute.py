import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.io.model_files import load_model_file
from tfvae.training.config import TrainConfig
from tfvae.training.distribute import make_strategy


def test_auto_is_one_device_without_gpus_or_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = make_strategy("auto")
    assert strategy.num_replicas_in_sync == 1


def test_multiworker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(TfvaeError, match="needs TF_CONFIG"):
        make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(TfvaeError, match="TF_CONFIG is not valid JSON"):
        make_strategy("auto")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(TfvaeError, match="must hold 'cluster'"):
        make_strategy("multiworker")


def test_unknown_strategy_is_named():
    with pytest.raises(TfvaeError, match="unknown strategy 'tpu'"):
        make_strategy("tpu")
    with pytest.raises(TfvaeError, match="unknown strategy 'ps'"):
        TrainConfig(strategy="ps")


def test_replicated_models_run_one_step_per_graph_call(digits_binary, two_cpu_strategies):
    """Keras 3.15 fails with several steps per call on several replicas, so tfvae uses one."""
    from tfvae.training.recipe import build_compiled_model
    from tfvae.training.recipe import count_steps_per_epoch

    _, mirrored = two_cpu_strategies
    config = TrainConfig(dataset="digits", hidden_units=(16,), latent_dim=2, epochs=1)
    steps = count_steps_per_epoch(config, digits_binary)
    with mirrored.scope():
        model = build_compiled_model(config, digits_binary.data_shape, steps)
    assert model.steps_per_execution == 1
    history = model.fit(digits_binary.pipeline("train", 128), epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    single = build_compiled_model(config, digits_binary.data_shape, steps)
    # One device: as many steps per call as asked, but no more than an epoch has.
    assert steps < config.steps_per_execution
    assert single.steps_per_execution == steps


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_workers_train_identical_models(tmp_path):
    """Two processes on 127.0.0.1 under MultiWorkerMirroredStrategy end with the same weights."""
    workers = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ)
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tfvae.cli",
                    "train",
                    "--strategy",
                    "multiworker",
                    "--epochs",
                    "1",
                    "--out",
                    str(tmp_path / f"worker{index}"),
                    "--quiet",
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    models = [load_model_file(str(tmp_path / f"worker{i}" / "model.keras")) for i in range(2)]
    for a, b in zip(models[0].weights, models[1].weights, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    histories = [
        json.loads((tmp_path / f"worker{i}" / "history.json").read_text()) for i in range(2)
    ]
    assert histories[0]["loss"] == histories[1]["loss"]
    assert tf.reduce_all(tf.math.is_finite(models[0].weights[0])).numpy()
