"""Callbacks that make training resumable, exactly, and stop it when it diverges.

`TrainingBackup` is Keras's `BackupAndRestore` made exact and crash-safe:
Keras 3's callback restores the epoch but not the position inside it (its
`batch` field is written and never read), so a run resumed from a mid-epoch
backup trains that epoch's first batches twice; and it overwrites its
weights file in place, so a kill during a save destroys the only backup.
`DivergenceGuard` stops training at the first non-finite loss, naming the
epoch and the step, before anything non-finite is saved.
"""

import math
import os
import shutil

import keras
import numpy as np

from tfvae import checks
from tfvae import settings
from tfvae.errors import TfvaeError
from tfvae.io.atomic import STAGING_PREFIX
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import write_json

CHECKPOINT_PREFIX = "step-"
WEIGHTS_FILE = "checkpoint.weights.h5"
STATE_FILE = "state.json"
# What `TrainingBackup._save` writes into STATE_FILE (see `tfvae.settings.check_json`).
STATE_SCHEMA = {
    "epoch": "int",
    "batch": "int",
    "steps_per_epoch": "int",
    "history": ("map", ("list", "number")),
    "metrics": ("map", ("list", "array")),
    "variables": ("map", "array"),
}


class TrainingDiverged(TfvaeError):
    """Training produced a non-finite loss or metric.

    Attributes:
        epoch: int. The epoch, counted from 0.
        first_step, last_step: int. The steps of that epoch, counted from 1,
            that ran since the last check: the value went non-finite in
            one of them.
        metric: str. The first non-finite entry of the logs.
    """

    def __init__(self, message, epoch, first_step, last_step, metric):
        super().__init__(message)
        self.epoch = epoch
        self.first_step = first_step
        self.last_step = last_step
        self.metric = metric


def _checkpoint_dirs(backup_dir):
    """`[(global_step, path)]` of the complete checkpoints in `backup_dir`, oldest first."""
    if not os.path.isdir(backup_dir):
        return []
    found = []
    for name in os.listdir(backup_dir):
        if name.startswith(CHECKPOINT_PREFIX) and name[len(CHECKPOINT_PREFIX) :].isdigit():
            found.append((int(name[len(CHECKPOINT_PREFIX) :]), os.path.join(backup_dir, name)))
    return sorted(found)


def latest_checkpoint(backup_dir):
    """The newest complete checkpoint in `backup_dir`, or `None`.

    Returns:
        The checkpoint's state (a dict: `epoch` epochs finished, `batch`
        batches of the next one, `steps_per_epoch`, `history` of the
        finished epochs, `metrics` and `variables`) with `path`, the
        checkpoint directory, and `weights`, its weights file, added.
    """
    found = _checkpoint_dirs(backup_dir)
    if not found:
        return None
    step, path = found[-1]
    state = settings.load_json(os.path.join(path, STATE_FILE))
    check_state(state, path, step)
    state.update(path=path, weights=os.path.join(path, WEIGHTS_FILE))
    return state


def check_state(state, path, step):
    """Raises `TfvaeError` unless `state` is a checkpoint's state that `TrainingBackup` wrote.

    Checked against its schema (`STATE_SCHEMA`) and for consistency: the
    position is inside an epoch, it is the step the checkpoint is named
    after, and the history holds one value per finished epoch. A state
    edited by hand (an epoch of 1000) would otherwise resume past the end
    of the run and write a run directory that was never trained.

    Args:
        state: the parsed `state.json`.
        path: str. The checkpoint directory, for the message.
        step: int. The global step its name says.
    """
    where = f"damaged checkpoint {os.path.join(path, STATE_FILE)}"
    settings.check_json(state, STATE_SCHEMA, where)
    epoch, batch, steps = state["epoch"], state["batch"], state["steps_per_epoch"]
    if steps < 1 or epoch < 0 or not 0 <= batch < steps:
        raise TfvaeError(
            f"{where}: epoch {epoch}, batch {batch} with {steps} steps per epoch is not a "
            "position in a run"
        )
    if epoch * steps + batch != step:
        raise TfvaeError(
            f"{where}: epoch {epoch}, batch {batch} with {steps} steps per epoch is step "
            f"{epoch * steps + batch}, but the checkpoint is named for step {step}"
        )
    for name, values in state["history"].items():
        if len(values) != epoch:
            raise TfvaeError(
                f"{where}: history.{name} holds {len(values)} values for {epoch} finished epochs"
            )
    if not os.path.isfile(os.path.join(path, WEIGHTS_FILE)):
        raise TfvaeError(f"{where}: its weights file {WEIGHTS_FILE} is missing")


class TrainingBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that resumes exactly, also from inside an epoch.

    Saves the model's weights with the optimizer's state (its step counter,
    which the learning-rate schedule and the VAE's seeded noise read, and
    its moments), the seed generators' states, the epoch's metric
    accumulators and the history so far. Each checkpoint is a directory
    `step-<global step>` written under a temporary name and renamed, and
    older ones are removed only after it is in place: a process killed at
    any moment leaves at least one complete checkpoint.

    A checkpoint is saved at the end of every epoch and, with an integer
    `save_freq`, after every `save_freq` batches counted from the start of
    each epoch. Batches run in groups of the model's `steps_per_execution`,
    so `save_freq` must be a multiple of it.

    On `on_train_begin` the newest checkpoint is restored (unless the
    model already holds it) and `fit` continues at its epoch. A checkpoint
    taken inside an epoch records how many batches of it were done,
    `resume_position`; `fit` must then start with a pipeline that leaves
    those batches out (`DataSplits.pipeline(..., skip_batches=b)`) for that
    epoch alone, as `tfvae.training.trainer.train` does. The restored metric
    accumulators make that epoch's logs the uninterrupted run's.

    Args:
        backup_dir: str. Directory of the checkpoints; used by nothing else.
        steps_per_epoch: int. Batches per epoch.
        save_freq: `"epoch"` or int. Also save every `save_freq` batches of
            an epoch. Defaults to `"epoch"`.
        delete_checkpoint: bool. Delete `backup_dir` when `fit` ends.
            Defaults to `True`, as Keras's.

    Example:

    >>> backup = TrainingBackup("run.partial/backup", steps_per_epoch=29, save_freq=8)
    >>> state = backup.restore(model)  # None on a fresh start
    >>> epoch, batch = backup.resume_position
    """

    def __init__(self, backup_dir, steps_per_epoch, save_freq="epoch", delete_checkpoint=True):
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)
        if save_freq != "epoch" and (not checks.is_integer(save_freq) or save_freq < 1):
            raise TfvaeError(
                f"save_freq must be 'epoch' or a positive integer. Received: save_freq={save_freq!r}"
            )
        # === Config ===
        self.steps_per_epoch = int(steps_per_epoch)
        # === State ===
        self.history = {}
        self.resume_position = (0, 0)
        self._position = None  # (epoch, batch) the model holds, if this callback knows it
        self._epoch = 0
        self._batch_offset = 0
        self._pending_metrics = None

    def _global_step(self, epoch, batch):
        return epoch * self.steps_per_epoch + batch

    def restore(self, model):
        """Loads the newest checkpoint into `model`; returns its state, or `None`."""
        state = latest_checkpoint(self.backup_dir)
        if state is None:
            return None
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise TfvaeError(
                f"checkpoint {state['path']} has {state['steps_per_epoch']} steps per epoch, "
                f"this run {self.steps_per_epoch}: it belongs to another run"
            )
        if model.optimizer is not None and not model.optimizer.built:
            # The optimizer's variables must exist to receive their saved values.
            model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(state["weights"])
        except Exception as error:  # a damaged file or another model's: not resumable
            message = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
            raise TfvaeError(f"cannot restore checkpoint {state['path']}: {message}") from None
        where = f"damaged checkpoint {os.path.join(state['path'], STATE_FILE)}"
        by_path = {v.path: v for v in _unsaved_variables(model)}
        if set(state["variables"]) != set(by_path):
            raise TfvaeError(
                f"{where}: it holds the variables {sorted(state['variables'])}, the model "
                f"{sorted(by_path)}"
            )
        for path, value in state["variables"].items():
            variable = by_path[path]
            variable.assign(_checked_value(value, variable, f"{where}: variables.{path}"))
        if state["batch"]:
            for metric in model.metrics:
                values = state["metrics"].get(metric.name, [])
                if len(values) != len(metric.variables):
                    raise TfvaeError(
                        f"{where}: metrics.{metric.name} holds {len(values)} values, the "
                        f"metric {len(metric.variables)}"
                    )
                for variable, value in zip(metric.variables, values, strict=True):
                    _checked_value(value, variable, f"{where}: metrics.{metric.name}")
        self.history = {name: list(values) for name, values in state["history"].items()}
        self.resume_position = (state["epoch"], state["batch"])
        self._position = self.resume_position
        self._pending_metrics = state["metrics"] if state["batch"] else None
        return state

    def _load_model(self):
        """Keras's restore hook, called by `on_train_begin`."""
        if not self.model.built:
            raise TfvaeError("TrainingBackup needs a built model; build it before fit()")
        state = latest_checkpoint(self.backup_dir)
        if state is None:
            return
        if self._position != (state["epoch"], state["batch"]):
            self.restore(self.model)
        self.model._initial_epoch = state["epoch"]

    def on_train_begin(self, logs=None):
        steps_per_execution = getattr(self.model, "steps_per_execution", 1) or 1
        if self.save_freq != "epoch" and self.save_freq % steps_per_execution:
            raise TfvaeError(
                f"save_freq must be a multiple of the model's steps_per_execution. Received: "
                f"save_freq={self.save_freq} with steps_per_execution={steps_per_execution}"
            )
        self._load_model()

    def on_train_end(self, logs=None):
        # The restored epoch applies to the fit that restored it, not to later ones.
        self.model._initial_epoch = None
        super().on_train_end(logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        resumed_epoch, resumed_batch = self.resume_position
        self._batch_offset = resumed_batch if epoch == resumed_epoch else 0
        if self._pending_metrics is not None and epoch == resumed_epoch:
            # `fit` has just reset the metrics; the batches done before the
            # interruption count towards this epoch's logs again.
            for metric in self.model.metrics:
                for variable, value in zip(
                    metric.variables, self._pending_metrics.get(metric.name, []), strict=False
                ):
                    variable.assign(np.asarray(value, dtype=variable.dtype))
            self._pending_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        done = self._batch_offset + batch + 1
        # The epoch's last group may be shorter than steps_per_execution; its
        # end is saved by on_epoch_end, with the epoch's logs.
        if done < self.steps_per_epoch and done % self.save_freq == 0:
            self._save(self._epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        self._save(epoch + 1, 0)

    def _save(self, epoch, batch):
        os.makedirs(self.backup_dir, exist_ok=True)
        step = self._global_step(epoch, batch)
        state = {
            "epoch": epoch,
            "batch": batch,
            "steps_per_epoch": self.steps_per_epoch,
            "history": self.history,
            "metrics": {
                m.name: [np.asarray(v).tolist() for v in m.variables] for m in self.model.metrics
            },
            "variables": {v.path: np.asarray(v).tolist() for v in _unsaved_variables(self.model)},
        }
        final = os.path.join(self.backup_dir, f"{CHECKPOINT_PREFIX}{step:09d}")
        # A checkpoint of the same step (saved again after a resume) is
        # replaced only once the new one is complete.
        with staged_dir(final, overwrite=True) as staging:
            self.model.save_weights(os.path.join(staging, WEIGHTS_FILE))
            write_json(os.path.join(staging, STATE_FILE), state)
        self._position = (epoch, batch)
        for older_step, path in _checkpoint_dirs(self.backup_dir):
            if older_step < step:
                shutil.rmtree(path, ignore_errors=True)
        for name in os.listdir(self.backup_dir):
            if name.startswith(STAGING_PREFIX):
                shutil.rmtree(os.path.join(self.backup_dir, name), ignore_errors=True)


def _checked_value(value, variable, where):
    """`value` as an array of `variable`'s shape and dtype; raises `TfvaeError` otherwise."""
    try:
        array = np.asarray(value, dtype=variable.dtype)
    except (ValueError, TypeError, OverflowError):
        array = None
    if array is None or array.shape != tuple(variable.shape):
        raise TfvaeError(
            f"{where} must be an array of shape {tuple(variable.shape)} and dtype "
            f"{variable.dtype}. Received: {np.asarray(value, dtype=object).shape} values"
        )
    return array


def _unsaved_variables(model):
    """Model state that `save_weights` leaves out: the seed generators' states."""
    saved = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in saved]


class DivergenceGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or Inf in the logs, naming the epoch and step.

    Checks the logs after every call into the compiled train step (every
    `steps_per_execution` steps: a mean that has seen one non-finite batch
    stays non-finite, so none is missed) and at the end of every epoch,
    validation included. Raises `TrainingDiverged`, a `TfvaeError`. Put it
    before checkpointing callbacks, so that no non-finite state is saved.

    Args:
        steps_per_epoch: int. Batches per epoch.
        skip_batches: int. Batches of the first epoch done before this `fit`
            (a resumed run); step numbers count them. Defaults to `0`.
    """

    def __init__(self, steps_per_epoch, skip_batches=0):
        super().__init__()
        self.steps_per_epoch = int(steps_per_epoch)
        self.skip_batches = int(skip_batches)
        self._epoch = 0
        self._offset = 0
        self._begin = 0
        self._first_epoch = True

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        self._offset = self.skip_batches if self._first_epoch else 0
        self._first_epoch = False
        self._epoch = epoch
        self._begin = 0

    def on_train_batch_begin(self, batch, logs=None):
        self._begin = batch

    def on_train_batch_end(self, batch, logs=None):
        first = self._offset + self._begin + 1
        last = min(self._offset + batch + 1, self.steps_per_epoch)
        self._check(logs, first, last)
        self._begin = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, self.steps_per_epoch, self.steps_per_epoch, after="validation")

    def _check(self, logs, first, last, after=None):
        for name, value in (logs or {}).items():
            value = float(np.asarray(value))
            if math.isfinite(value):
                continue
            where = f"step {last}" if first == last else f"steps {first}-{last}"
            if after:
                when = f"in {after} after epoch {self._epoch + 1}"
            else:
                when = f"at epoch {self._epoch + 1}, {where} of {self.steps_per_epoch}"
            raise TrainingDiverged(
                f"training diverged: {name} is {value} {when}",
                epoch=self._epoch,
                first_step=first,
                last_step=last,
                metric=name,
            )
