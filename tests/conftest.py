"""Shared fixtures: bundled real data, loaded once per session."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The environment's own tools (`saved_model_cli`, `tfvae`) sit next to its
# python: found there, so `venv/bin/python -m pytest` passes without activating.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPUs, so MirroredStrategy can be tested on a CPU-only machine.
# This must happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

from tfvae.data.datasets import load_dataset  # noqa: E402

# Memory one test worker may need at its peak (a TFLite int8 export, a search).
WORKER_MEMORY_GIB = 4
MAX_WORKERS = 8


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject.toml): one worker per CPU, as memory allows, at most `MAX_WORKERS`.

    Each worker is a process of its own that imports TensorFlow and trains
    small models: on 2 cores, two workers take the suite from 26 to about 14
    minutes, and three are slower than two (the cores are then saturated).
    `-n 0` runs everything in this one process.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return max(1, min(cpus or 1, int(memory_gib // WORKER_MEMORY_GIB), MAX_WORKERS))


@pytest.fixture(scope="session")
def mnist5k_binary():
    return load_dataset("mnist5k", binarize=True)


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def digits_binary():
    return load_dataset("digits", binarize=True)


@pytest.fixture(scope="session")
def two_cpu_strategies():
    """`(one_device, mirrored)` over the two logical CPUs, shared by every test.

    One MirroredStrategy per process: separate instances can hand out the same
    collective-op keys, and their all-reduces then collide.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:2]
    assert len(devices) == 2
    return tf.distribute.OneDeviceStrategy(devices[0]), tf.distribute.MirroredStrategy(devices)
