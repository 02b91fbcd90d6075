"""`train(config)`: data, model, `fit`, and a complete run directory."""

import dataclasses
import datetime
import math
import os
import shutil
import tempfile

import numpy as np

from tfvae import plots
from tfvae import runs
from tfvae.data import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation import evaluate_model
from tfvae.models.decoder import check_conv_shape

DEFAULT_RUNS_ROOT = "saved_models"
FIGURE_EXAMPLES = 10
PRIOR_SAMPLES = 64


@dataclasses.dataclass
class RunResult:
    """What `train` returns: where the run lives and what it measured."""

    run_dir: str
    history: dict
    test_metrics: dict
    model: object


def default_run_dir(config, root=DEFAULT_RUNS_ROOT):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    dataset = os.path.splitext(os.path.basename(config.dataset))[0]
    return os.path.join(
        root, f"{config.model}-{dataset}-{config.arch}-z{config.latent_dim}-{stamp}"
    )


def prepare(config):
    """Loads and checks the data for `config`; raises `TfvaeError` before anything is written."""
    config.validate()
    data = load_dataset(
        config.dataset,
        binarize=config.resolved_binarize,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
    )
    data.check_for(config.arch, config.resolved_likelihood)
    if config.arch == "conv":
        check_conv_shape(data.data_shape, config.filters)
    return data


def build_optimizer(config, steps_per_epoch=None):
    """Adam, or AdamW with `config.weight_decay`, with the configured step-size schedule."""
    import keras

    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        if not steps_per_epoch:
            raise TfvaeError("the cosine schedule needs steps_per_epoch to know the run's length")
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=config.epochs * steps_per_epoch
        )
    if not config.weight_decay:
        return keras.optimizers.Adam(learning_rate)
    optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=config.weight_decay)
    # Decay pulls weights to 0; for the Gaussian's log-scale that means scale 1.
    optimizer.exclude_from_weight_decay(var_names=["observation_log_scale"])
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
    import keras

    from tfvae.models import build_model

    keras.utils.set_random_seed(config.seed)
    model = build_model(config, data_shape, steps_per_epoch)
    if x_train is not None:
        model.initialize_output_bias(x_train)
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        jit_compile=config.jit_compile,
        steps_per_execution=config.steps_per_execution,
    )
    return model


def count_steps_per_epoch(config, data):
    return math.ceil(len(data.x_train) / config.batch_size)


def write_figures(model, config, data, run_dir):
    """Writes the PNG figures of a trained model into `run_dir`."""
    import keras

    x_test, y_test = data.arrays("test")
    picks = x_test[:: max(1, len(x_test) // FIGURE_EXAMPLES)][:FIGURE_EXAMPLES]
    reconstructions = model.predict(picks, verbose=0)
    plots.save_figure(
        plots.reconstructions_figure(picks, reconstructions),
        os.path.join(run_dir, "reconstructions.png"),
    )
    codes = model.encode(x_test)
    codes = codes[0] if isinstance(codes, (tuple, list)) else codes
    what = "posterior means" if config.model == "vae" else "codes"
    plots.save_figure(
        plots.latent_figure(np.asarray(codes), y_test, title=f"Latent {what} of the test set"),
        os.path.join(run_dir, "latent_space.png"),
    )
    if config.model == "vae":
        eps = keras.random.normal((PRIOR_SAMPLES, config.latent_dim), seed=config.seed)
        samples = np.asarray(model.sample(PRIOR_SAMPLES, eps=eps))
        plots.save_figure(
            plots.grid_figure(samples, "Decoded samples from the prior N(0, I)"),
            os.path.join(run_dir, "samples.png"),
        )


def write_run_files(model, config, data, history, directory):
    """Writes a trained model's run files into the existing `directory`.

    `model.keras`, `config.json`, `history.json`, `metrics.json` (test
    metrics) and the figures; `tfvae evaluate` reads the result.

    Returns:
        The test metrics (a dict).
    """
    metrics = evaluate_model(model, data, config.resolved_likelihood)
    model.save(os.path.join(directory, runs.MODEL_FILE))
    runs.write_json(os.path.join(directory, runs.CONFIG_FILE), config.to_dict())
    runs.write_json(os.path.join(directory, runs.HISTORY_FILE), history)
    runs.write_json(os.path.join(directory, runs.METRICS_FILE), metrics)
    write_figures(model, config, data, directory)
    plots.save_figure(plots.history_figure(history), os.path.join(directory, "training_curves.png"))
    return metrics


def _staging_dir(run_dir):
    parent = os.path.dirname(os.path.abspath(run_dir))
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(run_dir)}-", dir=parent)


def _move_into_place(staging, run_dir):
    if os.path.isdir(run_dir):
        os.rmdir(run_dir)
    os.rename(staging, run_dir)


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
    staging = _staging_dir(run_dir)
    try:
        if logs_dir is not None:
            shutil.copytree(logs_dir, os.path.join(staging, "logs"))
        metrics = write_run_files(model, config, data, history, staging)
        _move_into_place(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metrics


def train(config, verbose="auto", runs_root=DEFAULT_RUNS_ROOT):
    """Trains the model `config` describes and writes a run directory.

    The run directory is staged under a temporary name next to its final
    place and renamed when everything is written, so it is either complete or
    absent. It holds `model.keras`, `config.json`, `history.json`,
    `metrics.json` (test metrics), `reconstructions.png`, `latent_space.png`,
    `samples.png` (VAE), `training_curves.png` and TensorBoard logs in `logs/`.

    Args:
        config: `TrainConfig`.
        verbose: Keras `fit` verbosity. Defaults to `"auto"` (progress bars).
        runs_root: str. Parent of the run directory when `config.out` is
            `None`. Defaults to `"saved_models"`.

    Returns:
        A `RunResult`.
    """
    import keras

    data = prepare(config)
    run_dir = config.out or default_run_dir(config, runs_root)
    runs.check_new_run_dir(run_dir)
    model = build_compiled_model(
        config, data.data_shape, count_steps_per_epoch(config, data), x_train=data.x_train
    )

    staging = _staging_dir(run_dir)
    try:
        callbacks = [keras.callbacks.TensorBoard(log_dir=os.path.join(staging, "logs"))]
        history = model.fit(
            data.pipeline("train", config.batch_size, seed=config.seed),
            validation_data=data.pipeline("val", config.batch_size),
            epochs=config.epochs,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the pipeline shuffles, seeded
        )
        history = {name: [float(v) for v in values] for name, values in history.history.items()}
        metrics = write_run_files(model, config, data, history, staging)
        _move_into_place(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RunResult(run_dir=run_dir, history=history, test_metrics=metrics, model=model)
