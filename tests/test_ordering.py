"""`tfvae.data.ordering.permutation` and the in-memory pipeline's order of each epoch."""

import numpy as np
import tensorflow as tf

from tfvae.data.ordering import permutation


def _order(count, seed, epoch):
    return permutation(count, tf.constant([seed, epoch], tf.int64)).numpy()


def test_a_permutation_holds_every_index_once_and_is_a_pure_function_of_the_key():
    order = _order(1000, 3, 7)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    np.testing.assert_array_equal(order, _order(1000, 3, 7))
    assert not np.array_equal(order, np.arange(1000))


def test_keys_that_differ_only_in_high_bits_give_different_orders():
    # index_shuffle read only the low 8 bits of each seed element: these keys
    # all gave it one order.
    orders = [_order(500, seed, epoch) for seed, epoch in [(5, 1), (5, 257), (261, 1), (65541, 1)]]
    for i in range(len(orders)):
        for j in range(i):
            # Two independent random orders of 500 agree in about one place.
            assert np.mean(orders[i] == orders[j]) < 0.02


def test_pipeline_epochs_256_apart_and_seeds_256_apart_differ(digits):
    def first_batch(seed, first_epoch):
        dataset = digits.pipeline("train", 64, seed=seed, first_epoch=first_epoch)
        return next(iter(dataset.as_numpy_iterator()))

    base = first_batch(1, 0)
    np.testing.assert_array_equal(base, first_batch(1, 0))
    assert not np.array_equal(base, first_batch(1, 256))
    assert not np.array_equal(base, first_batch(257, 0))
