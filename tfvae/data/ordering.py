"""Seeded orders of examples: each epoch's order a pure function of (seed, epoch)."""

import tensorflow as tf


def permutation(count, key):
    """A permutation of `range(count)`, a pure function of the `[2]` int64 `key`.

    The order of `count` stateless uniform draws. Philox reads all 128 bits
    of the key, so keys that differ anywhere give independent orders.
    (`tf.random.experimental.index_shuffle` is not used: it reads only the
    low 8 bits of each seed element, so seeds or epochs 256 apart would
    repeat an order.)

    Args:
        count: int or scalar int tensor. The number of elements.
        key: `[2]` int64 tensor, e.g. `[seed, epoch]`.

    Returns:
        A `[count]` int64 tensor holding each of `0 .. count - 1` once.
    """
    draws = tf.random.stateless_uniform([count], seed=key, dtype=tf.float64)
    return tf.cast(tf.argsort(draws, stable=True), tf.int64)
