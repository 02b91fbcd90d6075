"""`HyperAutoencoder`: the Keras Tuner search space over AE and VAE settings."""

import dataclasses
import os

import keras
import keras_tuner

from tfvae.training.recipe import compiled_model
from tfvae.training.recipe import fit_on_splits
from tfvae.training.tensorboard import IMAGES_RUN
from tfvae.training.tensorboard import ImageSummaries


class HyperAutoencoder(keras_tuner.HyperModel):
    """Builds and trains the AE or VAE of a `SearchConfig` for one set of choices.

    `build(hp)` returns the compiled model (weights created, as Keras Tuner
    saves weights of built models only) that `search_config.train`
    describes with the latent size, and optionally the KL weight, the
    learning rate and the hidden width, drawn from `hp`. `fit` trains it on
    the training split and validates on the validation split, with fresh
    `tf.data` pipelines so that a trial sees the same batches whether it runs
    first, after others, or again after a crash.

    Each trial is therefore the run `tfvae train` would do with
    `trial_config(hp)`: same seed, same data order, same model. When the
    search logs to TensorBoard, a trial also writes the pictures `tfvae
    train` writes after every epoch (`ImageSummaries`), beside Keras's
    scalars in the trial's log directory.

    Args:
        search_config: `SearchConfig`.
        data: `DataSplits`. The data of `search_config.train`, from
            `tfvae.training.trainer.prepare`.
        **kwargs: Base `keras_tuner.HyperModel` arguments (`name`,
            `tunable`).

    Example:

    >>> hypermodel = HyperAutoencoder(search_config, prepare(search_config.train))
    >>> hp = keras_tuner.HyperParameters()
    >>> model = hypermodel.build(hp)  # the first choice of each setting
    >>> hypermodel.fit(hp, model, epochs=2)
    """

    def __init__(self, search_config, data, **kwargs):
        super().__init__(**kwargs)
        self.search_config = search_config
        self.data = data

    def trial_config(self, hp):
        """The `TrainConfig` of the choices in `hp` (declaring them on first use)."""
        search = self.search_config
        base = search.train
        changes = {
            "latent_dim": hp.Choice("latent_dim", [int(v) for v in search.latent_dims]),
        }
        if search.betas is not None:
            changes["beta"] = hp.Choice("beta", [float(v) for v in search.betas])
        if search.learning_rates is not None:
            changes["learning_rate"] = hp.Choice(
                "learning_rate", [float(v) for v in search.learning_rates]
            )
        if search.widths is not None:
            width = hp.Choice("width", [int(v) for v in search.widths])
            changes["hidden_units"] = (width,) * len(base.hidden_units)
        return dataclasses.replace(base, **changes)

    def search_space(self):
        """`{name: values}`: the settings searched and the choices of each, as `hp` names them."""
        hp = keras_tuner.HyperParameters()
        self.trial_config(hp)
        return {h.name: tuple(h.values) for h in hp.space}

    def build(self, hp):
        model = compiled_model(self.trial_config(hp), self.data)
        # Keras Tuner restores checkpoints (the best model, a Hyperband trial
        # continuing another) into a fresh model; with the optimizer's
        # variables in place, Adam's moments are restored as well.
        model.optimizer.build(model.trainable_variables)
        return model

    def fit(self, hp, model, epochs=None, initial_epoch=0, verbose=0, **kwargs):
        """Trains `model` on the training split, validating on the validation split.

        Keras Tuner passes `callbacks` (checkpointing, TensorBoard) and, for
        Hyperband, `epochs` and `initial_epoch`. With a `TensorBoard`
        callback, whose `log_dir` Keras Tuner has pointed at the trial's
        own directory, the trial's pictures go to its `images/`.
        """
        config = self.trial_config(hp)
        callbacks = list(kwargs.pop("callbacks", None) or ())
        logs = [c.log_dir for c in callbacks if isinstance(c, keras.callbacks.TensorBoard)]
        if logs:
            callbacks.append(
                ImageSummaries(os.path.join(logs[0], IMAGES_RUN), self.data, seed=config.seed)
            )
        return fit_on_splits(
            model,
            config,
            self.data,
            epochs=epochs,
            initial_epoch=initial_epoch,
            callbacks=callbacks,
            verbose=verbose,
            **kwargs,
        )
