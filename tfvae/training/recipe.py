"""The recipe for training a model outside `tfvae train`: build it seeded, fit it on the seeded pipeline.

`tfvae train` (`tfvae.training.trainer.train`, which adds checkpoints,
resuming and the run directory), the applications (anomaly detection,
pretraining, the PCA comparison) and the tuner's hypermodel all build and
fit through these functions, so a model trained anywhere is the one
`tfvae train` would train from the same config and data: the same seed,
initialization, optimizer and batch order.
"""

import contextlib
import math

import keras
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.models import build_model
from tfvae.training.distribute import make_strategy
from tfvae.training.fused_adam import FusedAdam


def build_optimizer(config, steps_per_epoch=None):
    """Adam, or AdamW with `config.weight_decay`, with the configured step-size schedule.

    `config.adam_epsilon` is Keras's `epsilon`: added to the square root of
    the uncorrected second moment (Kingma and Ba's "epsilon hat"), as in
    Keras and TensorFlow.
    """

    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        if not steps_per_epoch:
            raise TfvaeError("the cosine schedule needs steps_per_epoch to know the run's length")
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=config.epochs * steps_per_epoch
        )
    # Keras's Adam (AdamW with weight decay), each variable's update fused
    # into one kernel: a third of a default train step on CPU otherwise.
    optimizer = FusedAdam(
        learning_rate, epsilon=config.adam_epsilon, weight_decay=config.weight_decay or None
    )
    if config.weight_decay:
        # Decay pulls weights to 0; for the Gaussian's log-scale that means scale 1.
        optimizer.exclude_from_weight_decay(var_names=["observation_log_scale"])
    if config.resolved_precision == "mixed_float16":
        # float16 gradients underflow without loss scaling; the models are
        # float32 at the top, so Keras would not add it by itself.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def build_compiled_model(config, data_shape, steps_per_epoch=None, x_train=None):
    """The model `config` describes: seeded, built, initialised and compiled.

    Args:
        config: `TrainConfig`.
        data_shape: tuple of int.
        steps_per_epoch: int or None. Converts the cosine schedule's and the
            KL warm-up's lengths from epochs to steps; needed for either.
        x_train: array or None. When given, the decoder's output bias starts
            at the training data's mean (see `VAE.initialize_output_bias`).
    """

    if config.deterministic:
        enable_determinism()
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, data_shape, steps_per_epoch)
    if x_train is not None:
        model.initialize_output_bias(x_train)

    # Keras 3.15 cannot run several steps per graph call on several replicas.
    replicated = tf.distribute.get_strategy().num_replicas_in_sync > 1
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        jit_compile=config.jit_compile,
        steps_per_execution=1
        if replicated
        else graph_call_steps(config.steps_per_execution, steps_per_epoch, config.checkpoint_steps),
    )
    return model


def graph_call_steps(most, steps_per_epoch=None, checkpoint_steps=0):
    """The train steps of one graph call (Keras's `steps_per_execution`) for an epoch's steps.

    At most `most`, and fitted to the epoch: a divisor of `steps_per_epoch`
    when one lies in `[most / 2, most]`, so every call is whole, the
    progress bar counts exactly and `repeat_whole_passes` keeps one
    iterator (100 steps: 4 calls of 25, not 32, 32, 32 and 4); otherwise
    the epoch's calls evened out (43 steps: 22 and 21, where Keras would
    count 32 and 32 and show "64/43"). Checkpoints are written between
    calls, so with `checkpoint_steps` the result divides it, first of all.

    Args:
        most: int >= 1. The configured `steps_per_execution`.
        steps_per_epoch: int or None. `None` (unknown) fits no epoch.
        checkpoint_steps: int. 0 checkpoints at epoch ends only.

    Returns:
        int in `[1, most]`.
    """
    if steps_per_epoch:
        most = min(most, steps_per_epoch)
    allowed = [c for c in range(most, 0, -1) if not checkpoint_steps or checkpoint_steps % c == 0]
    if not steps_per_epoch:
        return allowed[0]
    whole = [c for c in allowed if 2 * c >= most and steps_per_epoch % c == 0]
    if whole:
        return whole[0]
    if checkpoint_steps:
        return allowed[0]
    return math.ceil(steps_per_epoch / math.ceil(steps_per_epoch / most))


def enable_determinism():
    """Makes TensorFlow's ops deterministic for the rest of the process.

    `tf.config.experimental.enable_op_determinism` is global and cannot be
    undone, so it runs only for a run that asks (`deterministic=True`).
    """

    tf.config.experimental.enable_op_determinism()


def count_steps_per_epoch(config, data, strategy=None):
    """Training steps per epoch of `config.batch_size` on `data`, under `strategy`.

    Under several workers a streamed split gives each worker an equal part
    (`StreamedSplit.distributed_steps`); `strategy` defaults to the current one.
    """
    strategy = strategy or tf.distribute.get_strategy()
    stream = getattr(data, "stream", None)
    if stream is not None and is_multi_worker(strategy):
        return stream.distributed_steps(strategy, config.batch_size)
    return data.steps_per_epoch("train", config.batch_size)


def is_multi_worker(strategy):
    """Whether `strategy` spans several workers (`MultiWorkerMirroredStrategy` with a cluster)."""
    return getattr(strategy.extended, "_in_multi_worker_mode", bool)()


def compiled_model(config, data):
    """The seeded, built and compiled model of `config`, sized and initialized for `data`.

    Built in the current `tf.distribute` scope (Keras Tuner enters its
    own); `fit_model` enters the config's.

    Args:
        config: `TrainConfig`.
        data: `DataSplits`. Its training split sets the steps per epoch and
            the decoder's initial output bias.
    """
    return build_compiled_model(
        config, data.data_shape, count_steps_per_epoch(config, data), x_train=data.x_train
    )


def fit_on_splits(
    model,
    config,
    data,
    *,
    validation=True,
    epochs=None,
    initial_epoch=0,
    skip_batches=0,
    callbacks=(),
    verbose="auto",
):
    """Fits `model` on the seeded training pipeline of `data`; returns Keras's `History`.

    Args:
        model: a compiled model, e.g. from `compiled_model`.
        config: `TrainConfig`. Its `batch_size`, `seed` and `epochs`.
        data: `DataSplits`.
        validation: bool. Report the loss on the validation split each
            epoch. Defaults to `True`.
        epochs: int or None. The epoch to stop after; `None` is
            `config.epochs`. Defaults to `None`.
        initial_epoch: int. The epoch to start at (a continued run).
            Defaults to `0`.
        skip_batches: int. Batches of `initial_epoch` already trained (a
            run resumed inside an epoch). Defaults to `0`.
        callbacks: sequence of `keras.callbacks.Callback`. Defaults to `()`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"`.
    """
    # A family that takes labels trains on (x, y) batches.
    labels = config.family.needs_labels
    strategy = model.distribute_strategy
    # In a multi-worker strategy's scope a streamed split gives each worker its own part.
    streamed = getattr(data, "stream", None) is not None and is_multi_worker(strategy)
    with strategy.scope() if streamed else contextlib.nullcontext():
        training = data.pipeline(
            "train",
            config.batch_size,
            seed=config.seed,
            first_epoch=initial_epoch,
            skip_batches=skip_batches,
            labels=labels,
        )
    steps_per_epoch = None
    if not streamed:
        training, steps_per_epoch = repeat_whole_passes(model, training)
    return model.fit(
        training,
        steps_per_epoch=steps_per_epoch,
        validation_data=(
            data.pipeline("val", config.batch_size, labels=labels) if validation else None
        ),
        epochs=config.epochs if epochs is None else epochs,
        initial_epoch=initial_epoch,
        callbacks=list(callbacks),
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles, seeded
    )


def repeat_whole_passes(model, dataset):
    """`(dataset, steps_per_epoch)` for `model.fit`: the pipeline repeated when that keeps epochs exact.

    Keras `fit` makes a new iterator over a finite dataset every epoch. On a
    2-core CPU that took up to a quarter of an epoch of the default VAE on
    mnist5k (tens of ms to build the iterator, then the first batch waits
    for the pass to be ordered). Repeated, with `steps_per_epoch` one pass,
    one iterator serves the whole `fit` and prefetches across epoch ends;
    the batches are the same, as each pass of a `DataSplits.pipeline` is
    the next epoch. Keras runs whole graph calls of `steps_per_execution`
    steps, and a call running past the end of a pass would take batches of
    the next epoch, so this applies only when `steps_per_execution` divides
    the batches of a pass (`graph_call_steps` makes it one where it can).

    Args:
        model: a compiled Keras model.
        dataset: `tf.data.Dataset`. One pass is one epoch.

    Returns:
        `(dataset.repeat(), batches of a pass)`, or `(dataset, None)` where
        the pass's length is unknown or not a whole number of graph calls.
    """
    steps = int(dataset.cardinality()) if isinstance(dataset, tf.data.Dataset) else -1
    per_call = int(getattr(model, "steps_per_execution", 1) or 1)
    if steps <= 0 or steps % per_call:
        return dataset, None
    return dataset.repeat(), steps


def fit_model(
    config,
    data,
    *,
    validation=True,
    epochs=None,
    initial_epoch=0,
    callbacks=(),
    verbose="auto",
    strategy=None,
    model=None,
):
    """Builds the model of `config` and fits it on `data`: the whole recipe.

    Args:
        config: `TrainConfig`.
        data: `DataSplits`, already checked for `config` (see
            `tfvae.training.trainer.prepare`).
        validation, epochs, initial_epoch, callbacks, verbose: as in
            `fit_on_splits`.
        strategy: `tf.distribute.Strategy` or None. The scope to build the
            model in; `None` makes `config.strategy`'s. Defaults to `None`.
        model: a compiled model to train further, or None to build one.
            Defaults to `None`.

    Returns:
        `(model, history)`: the trained model and its per-epoch metrics, a
        dict of lists of floats.

    Example:

    >>> config = TrainConfig(model="ae", dataset="digits", epochs=2)
    >>> model, history = fit_model(config, prepare(config), verbose=0)
    """
    if model is None:
        strategy = make_strategy(config.strategy) if strategy is None else strategy
        with strategy.scope():
            model = compiled_model(config, data)
    history = fit_on_splits(
        model,
        config,
        data,
        validation=validation,
        epochs=epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
    return model, {name: [float(v) for v in values] for name, values in history.history.items()}
