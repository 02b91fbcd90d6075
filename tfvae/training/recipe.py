"""The recipe for training a model outside `tfvae train`: build it seeded, fit it on the seeded pipeline.

The applications (anomaly detection, pretraining, the PCA comparison) and
the tuner's hypermodel train through these functions, so a model they train
is the one `tfvae train` would train from the same config and data: the same
seed, initialization, optimizer and batch order. `tfvae train` itself runs
its own resumable loop with checkpoints (`tfvae.training.trainer.train`).
"""

from tfvae.training.distribute import make_strategy
from tfvae.training.trainer import build_compiled_model
from tfvae.training.trainer import count_steps_per_epoch


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
        callbacks: sequence of `keras.callbacks.Callback`. Defaults to `()`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"`.
    """
    return model.fit(
        data.pipeline("train", config.batch_size, seed=config.seed),
        validation_data=data.pipeline("val", config.batch_size) if validation else None,
        epochs=config.epochs if epochs is None else epochs,
        initial_epoch=initial_epoch,
        callbacks=list(callbacks),
        verbose=verbose,
        shuffle=False,  # the pipeline shuffles, seeded
    )


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
