"""Which `tf.distribute` strategy a run uses. tfvae builds no cluster code of its own."""

import json
import os

import tensorflow as tf

from tfvae import checks
from tfvae.errors import TfvaeError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


def _tf_config_cluster():
    text = os.environ.get("TF_CONFIG", "")
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise TfvaeError(f"TF_CONFIG is not valid JSON: {error}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(config.get("task"), dict):
        raise TfvaeError(
            'TF_CONFIG must hold \'cluster\' (e.g. {"worker": ["host:port", ...]}) and '
            '\'task\' (e.g. {"type": "worker", "index": 0})'
        )
    return cluster


def make_strategy(name="auto"):
    """Returns the `tf.distribute.Strategy` named `name`.

    - `"one"`: the default strategy (one device).
    - `"mirrored"`: `MirroredStrategy` over every visible GPU (or the CPU).
    - `"multiworker"`: `MultiWorkerMirroredStrategy` configured by the
      `TF_CONFIG` environment variable, one process per worker.
    - `"auto"`: multiworker when `TF_CONFIG` names a cluster, mirrored when
      several GPUs are visible, else one device.

    Models, optimizer and metrics must be created inside `strategy.scope()`;
    Keras then shards the input pipeline across replicas in `fit`.
    """

    checks.choice("strategy", name, STRATEGIES)
    if name == "auto":
        if _tf_config_cluster():
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one"
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if not _tf_config_cluster():
        raise TfvaeError(
            "--strategy multiworker needs TF_CONFIG describing the cluster and this task; "
            "see docs/distributed.md"
        )
    return tf.distribute.MultiWorkerMirroredStrategy()
