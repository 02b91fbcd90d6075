"""Run directories: atomic writes, and loading a run back with clear errors.

A run directory holds `model.keras`, `config.json`, `history.json`,
`metrics.json`, PNG figures and TensorBoard logs under `logs/`. Training
writes it under a temporary name and renames it when complete, so a crash
never leaves a half-written run; each file is also written to a temporary
name and renamed. Models load with `safe_mode=True`: a file that would run
Python code (a `Lambda` layer's lambda) is refused.
"""

import contextlib
import json
import os
import shutil
import tempfile
import zipfile

from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation.metrics import DEFAULT_NLL_SAMPLES
from tfvae.evaluation.metrics import evaluate_model
from tfvae.training.config import TrainConfig

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"


def write_json(path, data):
    """Writes `data` as JSON to `path` atomically (temporary file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(handle, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_model_file(model, path):
    """Saves `model` as a `.keras` file at `path` atomically (temporary file, then rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    handle, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".keras", dir=directory)
    os.close(handle)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise TfvaeError(f"missing file {path}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise TfvaeError(f"cannot read {path}: {error}") from None


@contextlib.contextmanager
def staged_output_dir(out, prefix=".tmp-"):
    """Yields a new staging directory beside `out` to write an output into.

    When the block ends normally the staging directory is renamed to `out`
    (absent, or an empty directory), so `out` appears complete or not at
    all; when it raises (Ctrl-C included) the staging directory is removed.
    """
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield staging
        if os.path.isdir(out):
            os.rmdir(out)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_new_run_dir(path):
    """Raises unless `path` can become a new run directory (absent or empty)."""
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise TfvaeError(
            f"output directory {path} already exists and is not empty; choose a new --out"
        )


def _is_intact_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except Exception:  # BadZipFile, OSError, EOFError, zlib.error: all mean damaged
        return False


def _carries_lambda(error):
    text = str(error)
    return "lambda" in text.lower() and "safe_mode" in text


def load_model_file(path):
    """Loads a `.keras` file with `safe_mode=True`, turning failures into `TfvaeError`.

    A missing, truncated or corrupt file, and one whose config holds a
    Python lambda (which `safe_mode` will not run), each raise a one-line
    `TfvaeError` naming the file and the problem.
    """
    import keras

    import tfvae.models  # noqa: F401  (registers the tfvae classes)

    if not os.path.isfile(path):
        raise TfvaeError(f"no model file at {path}")
    if not _is_intact_zip(path):
        raise TfvaeError(
            f"cannot load {path}: the file is truncated or corrupt (not a valid .keras zip)"
        )
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise TfvaeError(
            f"cannot load {path}: the file is truncated or corrupt ({_first_line(error)})"
        ) from None
    except (ValueError, TypeError, KeyError) as error:
        if _carries_lambda(error):
            raise TfvaeError(
                f"refusing to load {path}: it carries a Python lambda (a Lambda layer), "
                "which would run code from the file; tfvae loads models with safe_mode=True"
            ) from None
        raise TfvaeError(f"cannot load {path}: {_first_line(error)}") from None
    except Exception as error:
        # A file that passes the zip check can still hold anything; whatever
        # breaks while reading it is a bad file, not a bug to trace.
        raise TfvaeError(
            f"cannot load {path}: the file is corrupt ({type(error).__name__}: {_first_line(error)})"
        ) from None


def _first_line(error):
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__


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
