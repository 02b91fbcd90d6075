"""What the benchmarks share: the data protocol, epoch timing, the reference's likelihood."""

import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvae.data.datasets import load_dataset  # noqa: E402

BATCH_SIZE = 128
LATENT_DIM = 16
HIDDEN = 512
# The reference clips probabilities as keras.losses.binary_crossentropy does.
REFERENCE_EPSILON = 1e-7


def benchmark_data():
    """Binarized mnist5k: per class first 400 rows train (360 + 40 validation), last 100 test."""
    return load_dataset("mnist5k", binarize=True)


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of every epoch."""

    def __init__(self):
        super().__init__()
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def examples_per_second(epoch_seconds, examples):
    """Median throughput over epochs 2..N (epoch 1 pays for tracing)."""
    return float(examples / np.median(epoch_seconds[1:]))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reference_log_weights(reference):
    """`log p(x, z) - log q(z | x)` for the reference VAE, under its own clipped Bernoulli."""
    encoder, decoder = reference.encoder, reference.decoder
    log_2pi = float(np.log(2 * np.pi))

    def log_weights(x, eps):
        z_mean, z_log_var, _ = encoder(x)
        z = z_mean + tf.exp(0.5 * z_log_var) * eps
        k, batch = tf.shape(eps)[0], tf.shape(eps)[1]
        probs = decoder(tf.reshape(z, [k * batch, LATENT_DIM]))
        probs = tf.clip_by_value(probs, REFERENCE_EPSILON, 1 - REFERENCE_EPSILON)
        probs = tf.reshape(probs, [k, batch, -1])
        flat_x = tf.reshape(x, [1, batch, -1])
        log_px_z = tf.reduce_sum(
            flat_x * tf.math.log(probs) + (1 - flat_x) * tf.math.log(1 - probs), axis=-1
        )
        log_pz = tf.reduce_sum(-0.5 * tf.square(z) - 0.5 * log_2pi, axis=-1)
        log_qz = tf.reduce_sum(-0.5 * tf.square(eps) - 0.5 * z_log_var - 0.5 * log_2pi, axis=-1)
        return log_px_z + log_pz - log_qz

    return log_weights


def print_json_line(result):
    print(json.dumps(result, sort_keys=True), flush=True)
