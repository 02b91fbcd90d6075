"""`train(config)`: data, model, `fit`, and a complete run directory.

A run in progress lives next to its final place, in `<run_dir>.partial/`:

    config.json     the run's settings; `--resume` must match them
    backup/         the newest checkpoint, `step-<global step>/` (see `TrainingBackup`)
    run/            the run directory being built: `logs/`, then every file
    last_good.keras the last good model, written only when training diverged

When everything is written, `run/` is renamed to `<run_dir>` and the rest is
deleted, so `<run_dir>` is complete or absent. A killed run leaves
`<run_dir>.partial/`, which `train(config, resume=True)` continues.
"""

import dataclasses
import os
import shutil

import numpy as np

from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation import plots
from tfvae.evaluation.figures import write_figures
from tfvae.evaluation.metrics import evaluate_model
from tfvae.io.atomic import move_into_place
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import timestamped_dir
from tfvae.io.atomic import write_json
from tfvae.io.locks import claim_dir
from tfvae.io.model_files import save_model_file
from tfvae.models.decoder import check_conv_shape
from tfvae.training import runs
from tfvae.training.callbacks import DivergenceGuard
from tfvae.training.callbacks import TrainingBackup
from tfvae.training.callbacks import TrainingDiverged
from tfvae.training.callbacks import latest_checkpoint
from tfvae.training.config import TrainConfig
from tfvae.training.distribute import make_strategy
from tfvae.training.recipe import build_compiled_model
from tfvae.training.recipe import count_steps_per_epoch
from tfvae.training.recipe import fit_on_splits
from tfvae.training.recipe import is_multi_worker
from tfvae.training.tensorboard import tensorboard_callbacks
from tfvae.training.tensorboard import write_projector

DEFAULT_RUNS_ROOT = "saved_models"
PARTIAL_SUFFIX = ".partial"
BACKUP_DIR = "backup"
STAGING_DIR = "run"
LAST_GOOD_MODEL = "last_good.keras"
# Settings a resumed run may change: they do not change what is computed.
# The cache changes the speed of a streamed run, never its order.
RESUMABLE_CHANGES = ("checkpoint_steps", "out", "cache", "cache_dir")


@dataclasses.dataclass
class RunResult:
    """What `train` returns: where the run lives and what it measured.

    `resumed_from` is `(epoch, batch)` of the checkpoint a resumed run
    started from (epochs finished, batches of the next), or `None`.
    """

    run_dir: str
    history: dict
    test_metrics: dict
    model: object
    resumed_from: tuple | None = None
    notices: tuple = ()


def default_run_dir(config, root=DEFAULT_RUNS_ROOT):
    """`<root>/<model>-<dataset>-<arch>-z<latent_dim>-<YYYYmmdd-HHMMSS>`."""
    dataset = os.path.splitext(os.path.basename(config.dataset))[0]
    return timestamped_dir(
        root, config.model, dataset, config.resolved_arch, f"z{config.latent_dim}"
    )


def prepare(config):
    """Loads and checks the data for `config`; raises `TfvaeError` before anything is written."""
    config.validate()
    data = load_dataset(config.dataset, **config.data_options())
    config.adopt_data(data)
    check_data(config, data)
    return data


def cap_batch_size(config, data):
    """Caps `config.batch_size` at the training split's size; returns the notice, or None."""
    n = data.num_examples("train")
    if config.batch_size <= n:
        return None
    notice = (
        f"batch size {config.batch_size} is more than the {n} training examples of "
        f"{data.name}; using {n}"
    )
    config.batch_size = n
    return notice


def split_batch_size(config, data, strategy):
    """Rounds a streamed run's batch size to a multiple of the workers' replicas; returns the notice.

    Under several workers each replica reads its own batches of
    `batch_size / replicas` of a streamed split (`StreamedSplit.distributed_pipeline`),
    so `config.batch_size` becomes a multiple of the replicas (at least one
    example each). Returns None when nothing changes.
    """
    replicas = strategy.num_replicas_in_sync
    if data.stream is None or not is_multi_worker(strategy) or config.batch_size % replicas == 0:
        return None
    size = max(replicas, config.batch_size // replicas * replicas)
    notice = (
        f"batch size {config.batch_size} does not split over the {replicas} replicas of the "
        f"workers, each reading its own batches of the streamed split; using {size} "
        f"({size // replicas} each)"
    )
    config.batch_size = size
    return notice


def baseline_notice(data, metrics):
    """A line when the test metric is worse than the trivial baseline's, else None.

    A likelihood model's negative ELBO is compared with the independent-
    features NLL (a model that ignores z); an autoencoder's reconstruction
    MSE with that of predicting every test example as the training mean.
    """
    if "neg_elbo" in metrics and "baseline_nll" in metrics:
        ours, baseline, what = metrics["neg_elbo"], metrics["baseline_nll"], "negative ELBO"
    elif "reconstruction_mse" in metrics:
        x_train = data.x_train.reshape(len(data.x_train), -1).astype(np.float64)
        x_test = data.x_test.reshape(len(data.x_test), -1).astype(np.float64)
        ours, what = metrics["reconstruction_mse"], "reconstruction MSE"
        baseline = float(np.mean((x_test - x_train.mean(axis=0)) ** 2))
    else:
        return None
    if not ours > baseline:
        return None
    return (
        f"warning: the test {what} ({ours:.4g}) is worse than the trivial baseline's "
        f"({baseline:.4g}): the model has learned nothing useful; try more data, more "
        "epochs or a smaller model"
    )


def check_data(config, data):
    """Raises `TfvaeError` unless the model `config` describes can train on `data`.

    The data must suit the architecture (images for conv, of a size the
    strides divide), the likelihood (Bernoulli needs [0, 1]) and the range
    the model family declares.
    """
    config.validate()
    data.check_for(config.arch, config.resolved_likelihood)
    family = config.family
    if family.value_range is not None:
        low, high = float(np.min(data.x_train)), float(np.max(data.x_train))
        bottom, top = family.value_range
        if low < bottom or high > top:
            raise TfvaeError(
                f"the {family.description} needs data in [{bottom:g}, {top:g}]. Received "
                f"values in [{low:g}, {high:g}] in {data.name}"
            )
    if config.arch == "conv":
        check_conv_shape(data.data_shape, config.filters)
    if family.needs_labels:
        family.check_labels(config, _labels_by_split(data), data.name)


def _labels_by_split(data):
    return {split: data.arrays(split)[1] for split in ("train", "val", "test")}


def write_run_files(model, config, data, history, directory):
    """Writes a trained model's run files into the existing `directory`.

    `model.keras`, `config.json`, `history.json`, `metrics.json` (test
    metrics) and the figures; `tfvae evaluate` reads the result.

    Returns:
        The test metrics (a dict).
    """
    metrics = evaluate_model(model, data, config.resolved_likelihood)
    save_model_file(model, os.path.join(directory, runs.MODEL_FILE))
    write_json(os.path.join(directory, runs.CONFIG_FILE), config.to_dict())
    if data.preprocessing is not None:
        write_json(os.path.join(directory, runs.PREPROCESSING_FILE), data.preprocessing.to_dict())
    write_json(os.path.join(directory, runs.HISTORY_FILE), history)
    write_json(os.path.join(directory, runs.METRICS_FILE), metrics)
    write_figures(model, config, data, directory)
    plots.save_figure(plots.history_figure(history), os.path.join(directory, "training_curves.png"))
    return metrics


def write_run_dir(model, config, data, history, run_dir, logs_dir=None):
    """Writes a complete run directory for a model trained elsewhere (e.g. by a tuner).

    Staged and renamed like `train`'s, so `run_dir` is complete or absent.

    Args:
        model: the trained, compiled model.
        config: `TrainConfig` that describes it.
        data: `DataSplits` of `config`.
        history: dict. Per-epoch metrics, as `History.history`.
        run_dir: str. A new or empty directory.
        logs_dir: str or None. TensorBoard logs to copy to `run_dir/logs`.
            Defaults to `None`.

    Returns:
        The test metrics (a dict).
    """
    runs.check_new_run_dir(run_dir)
    with staged_dir(run_dir) as staging:
        if logs_dir is not None:
            shutil.copytree(logs_dir, os.path.join(staging, "logs"))
        metrics = write_run_files(model, config, data, history, staging)
    return metrics


def partial_dir(run_dir):
    """Where the run that will become `run_dir` lives while in progress: `<run_dir>.partial`."""
    return os.path.normpath(run_dir) + PARTIAL_SUFFIX


def _check_start(config, run_dir, partial, resume):
    """Raises unless the run can start (or resume) here; writes nothing."""
    finished = os.path.exists(run_dir) and (not os.path.isdir(run_dir) or os.listdir(run_dir))
    if finished and resume and os.path.isfile(os.path.join(run_dir, runs.MODEL_FILE)):
        raise TfvaeError(f"run {run_dir} is already complete; there is nothing to resume")
    runs.check_new_run_dir(run_dir)
    if os.path.islink(partial):
        raise TfvaeError(f"{partial} is a symbolic link; delete it or choose another --out")
    if not os.path.exists(partial):
        return
    if not resume:
        raise TfvaeError(
            f"{partial} holds an unfinished run of {run_dir}; rerun with --resume to continue "
            f"it, or delete {partial} to start over"
        )
    saved_path = os.path.join(partial, runs.CONFIG_FILE)
    if not os.path.isdir(partial) or not os.path.isfile(saved_path):
        raise TfvaeError(
            f"{partial} is not a tfvae run in progress (no {runs.CONFIG_FILE}); delete it or "
            "choose another --out"
        )
    saved = TrainConfig.load(saved_path).to_dict()
    current = config.to_dict()
    changed = [
        f"{name} ({saved[name]!r} then, {current[name]!r} now)"
        for name in current
        if name not in RESUMABLE_CHANGES and saved.get(name) != current[name]
    ]
    if changed:
        raise TfvaeError(
            f"cannot resume {run_dir} with other settings: {'; '.join(changed)}. Rerun with "
            f"the settings it was started with, or delete {partial} to start over"
        )


def _fit(model, config, data, steps, backup, staging, verbose, callbacks):
    """Trains from the backup's checkpoint (or from scratch) to `config.epochs`; returns the history."""

    logs = os.path.join(staging, "logs")
    tensorboard = tensorboard_callbacks(config, data, logs) if config.tensorboard else []
    epoch, batch = backup.resume_position

    def fit(first_epoch, skip_batches, last_epoch):
        # The guard comes first: a non-finite step stops training before
        # the backup could save it.
        guard = DivergenceGuard(steps, skip_batches=skip_batches)
        fit_on_splits(
            model,
            config,
            data,
            epochs=last_epoch,
            initial_epoch=first_epoch,
            skip_batches=skip_batches,
            callbacks=[guard, backup, *tensorboard, *callbacks],
            verbose=verbose,
        )

    if batch:
        # The rest of the interrupted epoch, exactly the batches it had left.
        fit(epoch, batch, epoch + 1)
        epoch += 1
    if epoch < config.epochs:
        fit(epoch, 0, config.epochs)
    if config.tensorboard:
        write_projector(model, data, logs)
    return {name: list(values) for name, values in backup.history.items()}


def _diverged(error, config, data, steps, partial, backup_dir, run_dir):
    """The error to raise for a diverged run; keeps (or writes) the last good model."""

    message = f"{error}; {run_dir} was not written"
    state = latest_checkpoint(backup_dir)
    if state is None:
        shutil.rmtree(partial, ignore_errors=True)
        return TfvaeError(f"{message}, and no checkpoint had been saved yet")
    model = build_compiled_model(config, data.data_shape, steps)
    TrainingBackup(backup_dir, steps).restore(model)
    last_good = os.path.join(partial, LAST_GOOD_MODEL)
    save_model_file(model, last_good)
    if state["batch"]:
        where = f"epoch {state['epoch'] + 1}, step {state['batch']}"
    else:
        where = f"end of epoch {state['epoch']}"
    return TfvaeError(
        f"{message}; the last good checkpoint ({where}) is kept in {backup_dir} and its "
        f"model in {last_good}"
    )


def train(config, verbose="auto", runs_root=DEFAULT_RUNS_ROOT, resume=False, callbacks=()):
    """Trains the model `config` describes and writes a run directory.

    The run is built in `<run_dir>.partial/` (see this module's docstring)
    and its directory renamed into place when everything is written, so
    `run_dir` is either complete or absent. It holds `model.keras`,
    `config.json`, `history.json`, `metrics.json` (test metrics),
    `reconstructions.png`, `latent_space.png`, `samples.png` (VAE),
    `training_curves.png` and TensorBoard logs in `logs/`.

    A checkpoint (weights, optimizer state, position in the data) is saved
    at the end of every epoch and every `config.checkpoint_steps` steps; a
    run that is killed keeps `<run_dir>.partial/`, and `resume=True`
    continues it from its last checkpoint. Each epoch's data order depends
    only on the seed and the epoch, so with `config.deterministic` a
    resumed run ends with the weights of an uninterrupted one. Training
    that produces NaN or Inf stops with a `TfvaeError` naming the epoch and
    step; the last good checkpoint stays, with its model as
    `<run_dir>.partial/last_good.keras`.

    Args:
        config: `TrainConfig`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"` (progress bars).
        runs_root: str. Parent of the run directory when `config.out` is
            `None`. Defaults to `"saved_models"`.
        resume: bool. Continue the run in `<config.out>.partial/` if there
            is one (its settings must match `config`), else start it.
            Needs `config.out`. Defaults to `False`.
        callbacks: list of `keras.callbacks.Callback`. Passed to `fit`
            after tfvae's own. Defaults to `()`.

    Returns:
        A `RunResult`.
    """

    if resume and not config.out:
        raise TfvaeError(
            "--resume needs --out DIR, the run to continue (a killed run keeps its "
            "checkpoints in DIR.partial)"
        )

    # First: MultiWorkerMirroredStrategy must exist before TensorFlow runs an op.
    strategy = make_strategy(config.strategy)
    config.validate()
    run_dir = default_run_dir(config, runs_root) if config.out is None else config.out
    partial = partial_dir(run_dir)
    # One writer per run: the lock is held from the checks to the final rename.
    with claim_dir(run_dir, check=lambda _: _check_start(config, run_dir, partial, resume)):
        return _train_claimed(config, strategy, run_dir, partial, resume, verbose, list(callbacks))


def _train_claimed(config, strategy, run_dir, partial, resume, verbose, callbacks):
    """`train` once the run directory is checked and locked."""
    data = prepare(config)
    # The settings as asked: a resumed run is compared with them, and caps again.
    requested = config.to_dict()
    notices = [cap_batch_size(config, data), split_batch_size(config, data, strategy)]
    # Under several workers a streamed split's steps are each worker's equal part's.
    steps = count_steps_per_epoch(config, data, strategy)
    with strategy.scope():
        model = build_compiled_model(config, data.data_shape, steps, x_train=data.x_train)

    backup_dir = os.path.join(partial, BACKUP_DIR)
    staging = os.path.join(partial, STAGING_DIR)
    backup = TrainingBackup(
        backup_dir, steps, save_freq=config.checkpoint_steps or "epoch", delete_checkpoint=False
    )
    # In the strategy's scope: restoring builds the optimizer's variables.
    with strategy.scope():
        state = backup.restore(model) if os.path.isdir(partial) else None
    if state is None:
        # A fresh start; a resumed run killed before its first checkpoint
        # leaves nothing worth keeping.
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(staging)
        write_json(os.path.join(partial, runs.CONFIG_FILE), requested)
    os.makedirs(staging, exist_ok=True)
    if verbose != 0:
        # Said once everything is checked, before the first step.
        if data.preprocessing is not None:
            print(f"data: {data.name}: {data.preprocessing.describe()}", flush=True)
        for notice in filter(None, notices):
            print(f"notice: {notice}", flush=True)
    try:
        history = _fit(model, config, data, steps, backup, staging, verbose, callbacks)
        metrics = write_run_files(model, config, data, history, staging)
        move_into_place(staging, run_dir)
    except TrainingDiverged as error:
        raise _diverged(error, config, data, steps, partial, backup_dir, run_dir) from None
    except BaseException:
        # Killed runs keep their checkpoint for --resume; without one there
        # is nothing to resume and nothing stays behind.

        if latest_checkpoint(backup_dir) is None:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(partial, ignore_errors=True)
    return RunResult(
        run_dir=run_dir,
        history=history,
        test_metrics=metrics,
        model=model,
        resumed_from=None if state is None else (state["epoch"], state["batch"]),
        notices=tuple(n for n in (*notices, baseline_notice(data, metrics)) if n),
    )
