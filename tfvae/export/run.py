"""`export_run`: a training run directory to a TF Serving version and verified TFLite files."""

import dataclasses
import os

import numpy as np

from tfvae import checks
from tfvae.data.datasets import load_dataset
from tfvae.export import layout
from tfvae.export import verification
from tfvae.export.saved_model import write_saved_model
from tfvae.export.signatures import float32_model
from tfvae.export.tflite import TFLITE_FORMATS
from tfvae.export.tflite import write_tflite_version
from tfvae.io.atomic import Transaction
from tfvae.training.runs import load_run

EXPORT_FORMATS = ("saved_model", "tflite", "all")
# Held-out examples compared per export: every test example up to this many,
# evenly spread (the bundled test splits are sorted by class).
VERIFICATION_EXAMPLES = 1000


@dataclasses.dataclass
class RunExport:
    """What `export_run` wrote.

    Attributes:
        model_name: str. The TF Serving model name.
        version: int. The version number shared by the SavedModel and TFLite files.
        saved_model_path: str or None. `<base>/<name>/<version>`.
        model_config_path: str or None. `<base>/models.config`.
        tflite_files: dict. Format -> `.tflite` path (empty without TFLite).
        verification: list of `VerificationRow`.
    """

    model_name: str
    version: int
    saved_model_path: str | None
    model_config_path: str | None
    tflite_files: dict
    verification: list


def heldout_examples(x, limit=VERIFICATION_EXAMPLES):
    """Up to `limit` rows of `x`, evenly spread over it."""
    if len(x) <= limit:
        return x
    return x[np.linspace(0, len(x) - 1, limit).round().astype(int)]


def export_run(
    run_dir,
    export_format="all",
    base_dir=layout.DEFAULT_BASE_DIR,
    model_name=None,
    version=None,
    overwrite=False,
    server_base_path=layout.DEFAULT_SERVER_BASE_PATH,
):
    """Exports a run written by `tfvae train` for TF Serving and for devices.

    Writes `<base_dir>/<model_name>/<version>/` (SavedModel) and/or
    `<base_dir>/<model_name>/tflite/<version>/` (float32, dynamic-range and
    int8 `.tflite` files and `verification.json`), under one version number,
    and rewrites `<base_dir>/models.config`. Calibration draws from the
    run's training split; every exported form is compared with the Keras
    model on the test split before anything is renamed into place.

    Args:
        run_dir: str. A directory written by `tfvae train`.
        export_format: str. `"saved_model"`, `"tflite"` or `"all"`.
            Defaults to `"all"`.
        base_dir: str. Defaults to `"saved_models"`.
        model_name: str or None. `None` takes the run directory's name
            without its timestamp. Defaults to `None`.
        version: int or None. `None` takes the next free number. Defaults
            to `None`.
        overwrite: bool. Replace an existing version. Defaults to `False`.
        server_base_path: str. `base_dir` as TF Serving sees it. Defaults to
            `"/models"`.

    Returns:
        A `RunExport`.
    """

    checks.choice("export format", export_format, EXPORT_FORMATS)
    name = layout.default_model_name(run_dir) if model_name is None else model_name
    layout.check_model_name(name)
    if version is not None:
        checks.positive_int("version", version)
    target = layout.model_dir(base_dir, name)
    layout.check_model_dir(target, run_dir)
    with_saved_model = export_format in ("saved_model", "all")
    with_tflite = export_format in ("tflite", "all")
    targets = ([target] if with_saved_model else []) + (
        [layout.tflite_dir(base_dir, name)] if with_tflite else []
    )
    version = layout.resolve_version(targets, version, overwrite)
    config, model = load_run(run_dir)
    model = float32_model(model)
    data = load_dataset(
        config.dataset,
        binarize=config.resolved_binarize,
        validation_fraction=config.validation_fraction,
        seed=config.seed,
    )
    heldout = heldout_examples(data.x_test)

    saved_model_path = config_path = None
    tflite_files, rows = {}, []
    with Transaction(overwrite=overwrite) as transaction:
        if with_saved_model:
            saved_model_path = os.path.join(target, str(version))
            staging = transaction.stage(saved_model_path)
            write_saved_model(model, staging)
            rows += verification.verify_saved_model(staging, model, heldout)
        if with_tflite:
            tflite_path = os.path.join(layout.tflite_dir(base_dir, name), str(version))
            staging = transaction.stage(tflite_path)
            files, tflite_rows = write_tflite_version(
                model, staging, TFLITE_FORMATS, data.x_train, heldout, seed=config.seed
            )
            rows += tflite_rows
            tflite_files = {
                q: os.path.join(tflite_path, os.path.basename(p)) for q, p in files.items()
            }
        transaction.commit()
    if with_saved_model:
        config_path = layout.write_model_config(base_dir, server_base_path)
    return RunExport(name, version, saved_model_path, config_path, tflite_files, rows)
