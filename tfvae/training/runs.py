"""Run directories: their file names, and loading or evaluating a run back.

A run directory holds `model.keras`, `config.json`, `history.json`,
`metrics.json`, PNG figures and TensorBoard logs under `logs/`. Training
writes it under a temporary name and renames it when complete, so a crash
never leaves a half-written run (see `tfvae.io.atomic`). Models load with
`safe_mode=True`: a file that would run Python code (a `Lambda` layer's
lambda) is refused (see `tfvae.io.model_files`).
"""

import os

from tfvae import memory
from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation.metrics import DEFAULT_NLL_SAMPLES
from tfvae.evaluation.metrics import evaluate_model
from tfvae.io.atomic import read_json
from tfvae.io.locks import check_target
from tfvae.io.model_files import load_model_file
from tfvae.models import registry
from tfvae.training.config import TrainConfig

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
# The data's transform (`tfvae.data.preprocessing.Preprocessing`), applied again by evaluation.
PREPROCESSING_FILE = "preprocessing.json"
# The fewest bytes a saved weight takes (float16); a weights file smaller
# than this per parameter cannot hold the model its config describes.
MIN_BYTES_PER_WEIGHT = 2


def check_new_run_dir(path, flag="--out"):
    """Raises unless `path` can become a new run directory (absent or empty); writes nothing.

    Also refuses an empty path, a symbolic link and a path below a file
    (see `tfvae.io.locks.check_target`).
    """
    check_target(path, flag)
    if os.path.isfile(path):
        raise TfvaeError(f"output directory {path} is a file; choose a new {flag}")
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        raise TfvaeError(
            f"output directory {path} already exists and is not empty; choose a new {flag}"
        )


def load_run(run_dir):
    """Returns `(config, model)` of a run directory written by `tfvae.training.trainer.train`.

    The model is checked against its config before it is returned: it must
    be of a registered tfvae family, and be the model `config.json`
    describes (family, latent size, likelihood, networks); a run whose files
    disagree is refused in one line rather than reported under the wrong
    name. A model file whose config describes a model far larger than its
    weights, or than the memory available, is refused before it is built.
    """
    if not os.path.isdir(run_dir):
        raise TfvaeError(f"run directory not found: {run_dir}")
    config = TrainConfig.load(os.path.join(run_dir, CONFIG_FILE))
    transform = load_preprocessing(run_dir)
    if transform is not None:
        config.adopt_binarized(transform.get("binarize_threshold") is not None)
    model = load_model_file(os.path.join(run_dir, MODEL_FILE), check_config=check_saved_model_size)
    check_run_model(run_dir, config, model)
    return config, model


def load_preprocessing(run_dir):
    """The run's `preprocessing.json` as a dict, or None for a run that has none."""
    path = os.path.join(run_dir, PREPROCESSING_FILE)
    if not os.path.isfile(path):
        return None
    record = read_json(path)
    if not isinstance(record, dict):
        raise TfvaeError(f"cannot read {path}: expected a JSON object")
    return record


def check_saved_model_size(model_config, weights_bytes):
    """Refuses a saved model whose config describes more weights than its file or memory holds.

    Args:
        model_config: dict. The `.keras` file's model config.
        weights_bytes: int. The size of its weights file.
    """
    parameters = registry.saved_network_parameters(model_config)
    if parameters is None:
        return
    if parameters * MIN_BYTES_PER_WEIGHT > weights_bytes:
        raise TfvaeError(
            f"its config describes a model of {parameters:,} parameters, but its weights file "
            f"holds {memory.format_bytes(weights_bytes)}, less than "
            f"{MIN_BYTES_PER_WEIGHT} bytes a parameter: the config is damaged"
        )
    registry.check_model_size(parameters, registry.BYTES_PER_LOADED_PARAMETER, "its model", "load")


def check_run_model(run_dir, config, model):
    """Raises `TfvaeError` unless `model` is the model `config` describes.

    Compares the settings the model records (`registry.model_settings`)
    with the config's: the family, the latent size, the networks, the
    likelihood and the family's own settings; and checks that the model's
    encoder reads what its decoder writes.
    """
    model_path = os.path.join(run_dir, MODEL_FILE)
    try:
        found = registry.model_settings(model)
    except TfvaeError:
        raise TfvaeError(
            f"{model_path} holds a {type(model).__name__}, not a tfvae model (one of "
            f"{', '.join(family.model_class.__name__ for family in registry.families())}); "
            "tfvae reads run directories written by tfvae train"
        ) from None
    input_shape = found.pop("input_shape", None)
    data_shape = found.pop("data_shape")
    if input_shape is not None and tuple(input_shape) != tuple(data_shape):
        raise TfvaeError(
            f"{model_path} is damaged: its encoder reads examples of shape "
            f"{tuple(input_shape)} but its decoder writes examples of shape {tuple(data_shape)}"
        )
    expected = config.to_dict()
    expected["likelihood"] = config.resolved_likelihood
    if found.get("arch") != "conv":
        found.pop("filters", None)  # a dense network has none; the setting is unused
    differences = [
        f"{name} ({_as_tuple(expected[name])!r} in {CONFIG_FILE}, {_as_tuple(value)!r} in "
        f"{MODEL_FILE})"
        for name, value in found.items()
        if name in expected and _as_tuple(expected[name]) != _as_tuple(value)
    ]
    if differences:
        raise TfvaeError(
            f"run {run_dir} does not hold the model its {CONFIG_FILE} describes: "
            f"{'; '.join(differences)}"
        )


def check_run_data(run_dir, config, model, data):
    """Raises `TfvaeError` unless `data` still suits the run's model.

    The data set a run names may have changed since it was trained (a
    `.npz` file written again): its examples must have the shape the model
    was built for, and suit the run's architecture and likelihood. Call it
    before anything is computed or written.

    Args:
        run_dir: str. The run directory, for the message.
        config: `TrainConfig`. The run's config.
        model: the run's model, from `load_run`.
        data: `DataSplits` of `config`'s data set.
    """
    shape = tuple(registry.model_settings(model)["data_shape"])
    if tuple(data.data_shape) != shape:
        raise TfvaeError(
            f"the model of run {run_dir} takes examples of shape {shape}, but {data.name} "
            f"now holds examples of shape {tuple(data.data_shape)}; the data set has changed "
            "since the run was trained"
        )
    data.check_for(config.arch, config.resolved_likelihood)
    family = registry.family_of(model)
    if family.needs_labels:
        labels = {split: data.arrays(split)[1] for split in ("train", "val", "test")}
        family.check_labels(config, labels, f"{data.name} (run {run_dir})")


def load_run_data(run_dir, config, model):
    """The `DataSplits` a run was trained on, loaded as it was, and checked against its model.

    Args:
        run_dir: str. The run directory, for messages.
        config: `TrainConfig`. The run's config, from `load_run`.
        model: the run's model, from `load_run`.
    """
    # The run's own transform (scale statistics, threshold), when it recorded one.
    transform = load_preprocessing(run_dir)
    data = load_dataset(config.dataset, **config.data_options(), transform=transform)
    config.adopt_data(data)
    check_run_data(run_dir, config, model, data)
    return data


def evaluate_run(run_dir, batch_size=256, nll_samples=DEFAULT_NLL_SAMPLES, verbose=False):
    """Loads a run directory and evaluates its model on the test split of its data."""
    config, model = load_run(run_dir)
    data = load_run_data(run_dir, config, model)
    metrics = evaluate_model(
        model,
        data,
        config.resolved_likelihood,
        batch_size,
        nll_samples=nll_samples,
        verbose=verbose,
    )
    return config, metrics


def _as_tuple(value):
    return tuple(value) if isinstance(value, list) else value
