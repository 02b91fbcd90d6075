"""What the autoencoder and the VAE share: data unpacking and loss averaging."""

import keras
import tensorflow as tf


def unpack_inputs(data):
    """Returns `(x, target)` from what `fit` passes to `train_step`.

    Accepts `x`, `(x,)`, `(x, y)` or `(x, y, sample_weight)`. A generative
    model reconstructs its input, so `y` is ignored unless it has the shape
    of `x` (a denoising pair `(noisy, clean)`).
    """
    if isinstance(data, (tuple, list)):
        x = data[0]
        y = data[1] if len(data) > 1 else None
    else:
        x, y = data, None
    if y is not None and tuple(y.shape[1:]) == tuple(x.shape[1:]):
        return x, y
    return x, x


def global_batch_size(x):
    """The number of examples in this step across all replicas.

    Summed over replicas instead of `per_replica * num_replicas`, so an
    uneven last batch under `tf.distribute` is averaged exactly as on one
    device.
    """
    local = tf.shape(x)[0]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local
    return context.all_reduce(tf.distribute.ReduceOp.SUM, local)


def global_batch_position(x):
    """`(offset, total)`: where this replica's examples sit in the global batch, and its size.

    Training noise drawn for the whole global batch from a stateless
    generator and sliced at `offset` is the same, example for example,
    however the batch is split over `tf.distribute` replicas.
    """
    local = tf.shape(x)[0]
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return 0, local
    sizes = context.all_gather(tf.reshape(local, [1]), axis=0)
    return tf.reduce_sum(sizes[: context.replica_id_in_sync_group]), tf.reduce_sum(sizes)


def noise_key(seed, step):
    """The stateless-generator key of a train step's noise: `(seed, step)` as int64."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(step, tf.int64)])


def average_over_global_batch(per_example_loss, x):
    """`sum(loss) / global_batch`: the loss whose replica gradients sum correctly."""
    return tf.nn.compute_average_loss(per_example_loss, global_batch_size=global_batch_size(x))


def build_sequence(sequence, input_shape):
    """Builds each layer of `sequence` in turn and returns the final output shape."""
    shape = tuple(input_shape)
    for layer in sequence:
        if not layer.built:
            layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


def regularization_loss(model):
    if not model.losses:
        return 0.0
    return tf.nn.scale_regularization_loss(tf.add_n([tf.cast(v, tf.float32) for v in model.losses]))


def apply_gradients(model, tape, loss):
    """Differentiates `loss` (loss-scaled under mixed precision) and steps the optimizer."""
    scaled = model.optimizer.scale_loss(loss) if hasattr(model.optimizer, "scale_loss") else loss
    variables = model.trainable_variables
    gradients = tape.gradient(scaled, variables)
    model.optimizer.apply(gradients, variables)


def metric_results(model):
    """Returns `{name: result}` of `model.metrics`, as a `train_step` returns them.

    Under `MultiWorkerMirroredStrategy`, Keras 3.15 averages a step's outputs
    with `strategy.reduce("MEAN", value, axis=0)`, which needs an axis to
    reduce: the results (equal on every replica once the metrics are synced)
    get a length-1 axis there, and the reduction gives back the same scalar.
    """
    results = {m.name: m.result() for m in model.metrics}
    if isinstance(model.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
        results = {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results


def mean_trackers(*names):
    return [keras.metrics.Mean(name=name) for name in names]
