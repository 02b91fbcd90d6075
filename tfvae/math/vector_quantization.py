"""Vector quantization: nearest codes, EMA codebook updates and codebook statistics.

Pure functions of tensors, used by `tfvae.models.vqvae.VectorQuantizer`
and tested against a direct numpy computation. Vectors are rows: `z` is
`[n, code_dim]`, the codebook `[codebook_size, code_dim]`.
"""

import tensorflow as tf


def squared_distances(z, codebook):
    """`||z_i - e_k||^2` for every vector `z_i` and code `e_k`, `[n, codebook_size]`.

    Computed from the differences, not as `|z|^2 - 2 z.e + |e|^2`, which
    cancels.
    """
    z = tf.cast(z, tf.float32)
    codebook = tf.cast(codebook, tf.float32)
    return tf.reduce_sum(tf.square(z[:, tf.newaxis, :] - codebook[tf.newaxis]), axis=2)


def nearest_codes(z, codebook):
    """The index of the nearest code of each vector of `z`, int32 `[n]`.

    `argmin_k ||z - e_k||^2 = argmax_k (z . e_k - ||e_k||^2 / 2)`: one matrix
    product and a bias, which an int8 TFLite model accumulates in int32
    (the squared differences would each be rounded to int8 first).
    """
    z = tf.cast(z, tf.float32)
    codebook = tf.cast(codebook, tf.float32)
    scores = tf.matmul(z, codebook, transpose_b=True) - 0.5 * tf.reduce_sum(
        tf.square(codebook), axis=1
    )
    return tf.cast(tf.argmax(scores, axis=1), tf.int32)


def code_statistics(z, indices, codebook_size):
    """`(counts [K], sums [K, d])`: how many vectors each code took and their sum."""
    one_hot = tf.one_hot(indices, codebook_size, dtype=tf.float32)
    return tf.reduce_sum(one_hot, axis=0), tf.matmul(one_hot, tf.cast(z, tf.float32), True)


def ema_update(average, value, decay):
    """`decay * average + (1 - decay) * value`: one step of an exponential moving average."""
    return decay * average + (1.0 - decay) * value


def smoothed_counts(ema_count, epsilon=1e-5):
    """Laplace-smoothed counts with the same total: no code divides by zero."""
    total = tf.reduce_sum(ema_count)
    size = tf.cast(tf.shape(ema_count)[0], tf.float32)
    return (ema_count + epsilon) / (total + size * epsilon) * total


def codebook_from_ema(ema_count, ema_sum, epsilon=1e-5):
    """The codebook the moving averages give: each code the mean of the vectors it took."""
    return ema_sum / smoothed_counts(ema_count, epsilon)[:, tf.newaxis]


def perplexity(counts):
    """`exp(H(p))` of the code frequencies `p = counts / sum(counts)`: the codes in effective use."""
    counts = tf.cast(counts, tf.float32)
    p = counts / tf.maximum(tf.reduce_sum(counts), 1e-12)
    return tf.exp(-tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(p), p)))


def codebook_usage(counts):
    """The fraction of codes that took at least one vector."""
    return tf.reduce_mean(tf.cast(tf.cast(counts, tf.float32) > 0, tf.float32))


def commitment_loss(z, quantized):
    """`mean ||z - sg(quantized)||^2` per example over every other axis, `[batch]`.

    The gradient reaches the encoder only: the codebook follows its moving
    averages.
    """
    z = tf.cast(z, tf.float32)
    difference = tf.square(z - tf.stop_gradient(tf.cast(quantized, tf.float32)))
    return tf.reduce_mean(tf.reshape(difference, [tf.shape(z)[0], -1]), axis=1)


def straight_through(z, quantized):
    """`quantized` in the forward pass, the identity's gradient to `z` in the backward pass."""
    return z + tf.stop_gradient(tf.cast(quantized, z.dtype) - z)
