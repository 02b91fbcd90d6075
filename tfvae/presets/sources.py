"""Presets where run directories are expected: loading, evaluating and exporting either."""

import contextlib
import os
import re
import tempfile

from tfvae.data.datasets import load_dataset
from tfvae.errors import TfvaeError
from tfvae.evaluation.metrics import DEFAULT_NLL_SAMPLES
from tfvae.evaluation.metrics import evaluate_model
from tfvae.io.atomic import write_text
from tfvae.io.model_files import save_model_file
from tfvae.presets import catalog
from tfvae.presets import hubs
from tfvae.presets.preset_files import METADATA_FILE
from tfvae.presets.preset_files import WEIGHTS_FILE
from tfvae.presets.preset_files import load_preset
from tfvae.presets.preset_files import training_config
from tfvae.training.runs import CONFIG_FILE
from tfvae.training.runs import MODEL_FILE
from tfvae.training.runs import load_run


def from_preset(preset, model_class=None):
    """Loads the model a preset holds: a shipped name, a directory or a hub handle.

    Args:
        preset: str. A shipped preset's name (`tfvae presets` lists them),
            a preset directory (written by `save_to_preset`), or a hub
            handle (`hf://owner/repo`, `kaggle://owner/model/keras/variation`;
            needs `huggingface_hub` or `kagglehub`, and a network).
        model_class: type or None. Refuse a preset that does not hold this
            class (or a subclass). Defaults to `None`: any tfvae model.

    Returns:
        The model, built, its weights loaded (as float32), compiled with Adam.

    Example:

    >>> vae = from_preset("vae_dense_mnist5k")
    >>> images = vae.sample(16)
    """
    directory, where = catalog.locate(preset)
    model, _ = load_preset(directory, model_class=model_class, where=where)
    return model


def is_preset_dir(path):
    """Whether `path` is laid out as a preset (not a run directory, which holds `model.keras`)."""
    return (
        os.path.isdir(path)
        and not os.path.exists(os.path.join(path, MODEL_FILE))
        and any(os.path.exists(os.path.join(path, n)) for n in (METADATA_FILE, WEIGHTS_FILE))
    )


def _is_run(source):
    if not isinstance(source, (str, os.PathLike)):
        return False
    source = os.fspath(source)
    return (
        os.path.isdir(source)
        and not is_preset_dir(source)
        and source not in catalog.shipped_names()
    )


def _names_preset(source):
    """Whether `source` names a preset: a hub handle, a shipped name or a preset directory."""
    if not isinstance(source, (str, os.PathLike)):
        return False
    source = os.fspath(source)
    return hubs.is_handle(source) or source in catalog.shipped_names() or is_preset_dir(source)


def load_run_or_preset(source):
    """Returns `(config, model, where)` of a run directory or a preset.

    `config` is the run's `TrainConfig`, or the one the preset records
    (`None` if it records none); `where` names the source in messages.
    """
    if _is_run(source):
        config, model = load_run(source)
        return config, model, os.fspath(source)
    directory, where = catalog.locate(source)
    model, metadata = load_preset(directory, where=where)
    return training_config(metadata, where), model, where


def evaluate_preset(preset, batch_size=256, nll_samples=DEFAULT_NLL_SAMPLES):
    """The test metrics of a preset on the test split of the data it was trained on.

    The same evaluation as `tfvae evaluate` of a run (`evaluate_model`,
    and `-log p(x)` with `nll_samples` importance samples for a family
    that bounds it), on the split its training config describes.

    Returns:
        `(model, metrics)`.
    """
    config, model, where = load_run_or_preset(preset)
    if config is None:
        raise TfvaeError(
            f"preset {where} records no training config, so its test split is unknown; "
            "save it with save_to_preset(..., train_config=config)"
        )
    data = load_dataset(
        config.dataset,
        binarize=config.resolved_binarize,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
    )
    data.check_for(config.arch, config.resolved_likelihood)
    metrics = evaluate_model(
        model, data, config.resolved_likelihood, batch_size, nll_samples=nll_samples
    )
    return model, metrics


@contextlib.contextmanager
def resolve_run_or_preset(path_or_name):
    """Yields a run directory for `path_or_name`: a run as it is, a preset written out as one.

    A preset (a shipped name, a preset directory or a hub handle) is
    written into a temporary run-like directory named after the preset,
    holding `config.json` (its training config) and `model.keras`; it is
    removed when the block ends. Whatever reads run directories
    (`tfvae.export.export_run`) then takes presets too. Anything else (a
    run directory, a path that does not exist) is yielded as it is, for the
    reader of runs to take or refuse.

    Example:

    >>> with resolve_run_or_preset("vae_dense_mnist5k") as run_dir:
    ...     export_run(run_dir)
    """
    if not _names_preset(path_or_name):
        # A run directory, or a path that is neither: the reader of runs says which.
        yield path_or_name
        return
    directory, where = catalog.locate(path_or_name)
    model, metadata = load_preset(directory, where=where)
    config = training_config(metadata, where)
    if config is None:
        raise TfvaeError(
            f"preset {where} records no training config, so it cannot stand for a run (its data "
            "set is unknown); save it with save_to_preset(..., train_config=config)"
        )
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(metadata.get("name") or "preset")).lstrip("._-")
    with tempfile.TemporaryDirectory(prefix="tfvae-preset-") as parent:
        run_dir = os.path.join(parent, name or "preset")
        os.mkdir(run_dir)
        write_text(os.path.join(run_dir, CONFIG_FILE), config.to_json())
        save_model_file(model, os.path.join(run_dir, MODEL_FILE))
        yield run_dir
