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
