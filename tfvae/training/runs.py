"""Run directories: their file names, and loading or evaluating a run back.

A run directory holds `model.keras`, `config.json`, `history.json`,
`metrics.json`, PNG figures and TensorBoard logs under `logs/`. Training
writes it under a temporary name and renames it when complete, so a crash
never leaves a half-written run (see `tfvae.io.atomic`). Models load with
`safe_mode=True`: a file that would run Python code (a `Lambda` layer's
lambda) is refused (see `tfvae.io.model_files`).
"""

import os

from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation.metrics import DEFAULT_NLL_SAMPLES
from tfvae.evaluation.metrics import evaluate_model
from tfvae.io.model_files import load_model_file
from tfvae.training.config import TrainConfig

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"


def check_new_run_dir(path):
    """Raises unless `path` can become a new run directory (absent or empty)."""
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise TfvaeError(
            f"output directory {path} already exists and is not empty; choose a new --out"
        )


def load_run(run_dir):
    """Returns `(config, model)` of a run directory written by `tfvae.training.trainer.train`."""
    if not os.path.isdir(run_dir):
        raise TfvaeError(f"run directory not found: {run_dir}")
    config = TrainConfig.load(os.path.join(run_dir, CONFIG_FILE))
    model = load_model_file(os.path.join(run_dir, MODEL_FILE))
    return config, model


def evaluate_run(run_dir, batch_size=256, nll_samples=DEFAULT_NLL_SAMPLES, verbose=False):
    """Loads a run directory and evaluates its model on the test split of its data."""
    config, model = load_run(run_dir)
    data = load_dataset(
        config.dataset,
        binarize=config.resolved_binarize,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
    )
    metrics = evaluate_model(
        model,
        data,
        config.resolved_likelihood,
        batch_size,
        nll_samples=nll_samples,
        verbose=verbose,
    )
    return config, metrics
