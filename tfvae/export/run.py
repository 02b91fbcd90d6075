"""`export_run`: a training run directory to a TF Serving version and verified TFLite files."""

import contextlib
import dataclasses
import os
import shutil

import numpy as np

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.export import layout
from tfvae.export import verification
from tfvae.export.saved_model import write_saved_model
from tfvae.export.signatures import float32_model
from tfvae.export.tflite import TFLITE_FORMATS
from tfvae.export.tflite import write_tflite_version
from tfvae.io import interrupts
from tfvae.io.atomic import STAGING_PREFIX
from tfvae.io.atomic import Transaction
from tfvae.io.atomic import write_json
from tfvae.io.locks import exclusive_lock
from tfvae.io.locks import lock_path
from tfvae.training.runs import load_run
from tfvae.training.runs import load_run_data

EXPORT_FORMATS = ("saved_model", "tflite", "all")
# The run's data transform, in the SavedModel's `assets.extra/` (TF Serving's place for
# extra files): what a client does to raw values before calling the model.
PREPROCESSING_ASSET = os.path.join("assets.extra", "preprocessing.json")
# Held-out examples compared per export: every test example up to this many,
# evenly spread (the bundled test splits are sorted by class).
VERIFICATION_EXAMPLES = 1000
# The temporary name `models.config` is written under (`tfvae.io.atomic.atomic_file`).
_CONFIG_STAGING = f"{STAGING_PREFIX}{os.path.splitext(layout.MODEL_CONFIG_FILE)[0]}-"


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
        left_out: tuple of str. Directories under the base with a SavedModel
            version that `models.config` leaves out, their names being ones
            TF Serving rejects.
        tflite_left_out: dict. Signature -> `{format: reason}` for the
            TFLite files that go without it (a `score` that needs TensorFlow
            ops, or kept from int8; see `tfvae.export.tflite.TFLiteConversion`).
    """

    model_name: str
    version: int
    saved_model_path: str | None
    model_config_path: str | None
    tflite_files: dict
    verification: list
    left_out: tuple = ()
    tflite_left_out: dict = dataclasses.field(default_factory=dict)


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

    Every argument, the base directory and the run are checked before the
    first write; the base's lock (`tfvae.io.locks`) is held from then to
    the end, so a second export to the same base is refused. An export
    that fails, or is interrupted, removes what it wrote: its staging
    directories, and the base, model and TFLite directories it created.

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
        version = layout.check_version(version)
    layout.check_server_base_path(server_base_path)
    with_saved_model = export_format in ("saved_model", "all")
    with_tflite = export_format in ("tflite", "all")
    target = layout.model_dir(base_dir, name)
    targets = ([target] if with_saved_model else []) + (
        [layout.tflite_dir(base_dir, name)] if with_tflite else []
    )

    def check_targets():
        layout.check_base_dir(base_dir, name, with_saved_model)
        layout.check_model_dir(target, run_dir)
        return layout.resolve_version(targets, version, overwrite)

    # The checks come before the first write, the lock file (taken before
    # the slow loading, so that an unwritable base fails at once), and again
    # under the lock: another process may have exported meanwhile.
    check_targets()
    missing_parents = _missing_parents(base_dir)
    saved_model_path = config_path = None
    tflite_files, rows, tflite_left_out = {}, [], {}
    with contextlib.ExitStack() as held:
        # The lock and the undo that removes its file come together, or not at all.
        with interrupts.held_back():
            held.enter_context(exclusive_lock(base_dir))
            written = _Written(
                base_dir, [target, layout.tflite_dir(base_dir, name)], missing_parents
            )
            held.enter_context(interrupts.undo_on_interrupt(written.remove_all))
        version = check_targets()
        config, model = load_run(run_dir)
        model = float32_model(model)
        data = load_run_data(run_dir, config, model)
        heldout = heldout_examples(data.x_test)
        try:
            with Transaction(overwrite=overwrite) as transaction:
                if with_saved_model:
                    saved_model_path = os.path.join(target, str(version))
                    staging = transaction.stage(saved_model_path)
                    write_saved_model(model, staging)
                    _write_preprocessing(data, os.path.join(staging, PREPROCESSING_ASSET))
                    rows += verification.verify_saved_model(staging, model, heldout)
                if with_tflite:
                    tflite_path = os.path.join(layout.tflite_dir(base_dir, name), str(version))
                    staging = transaction.stage(tflite_path)
                    files, tflite_rows, tflite_left_out = write_tflite_version(
                        model, staging, TFLITE_FORMATS, data.x_train, heldout, seed=config.seed
                    )
                    rows += tflite_rows
                    tflite_files = {
                        q: os.path.join(tflite_path, os.path.basename(p)) for q, p in files.items()
                    }
                with interrupts.held_back():
                    transaction.commit()
                    if with_saved_model:
                        config_path = layout.write_model_config(base_dir, server_base_path)
        except BaseException as error:
            written.remove()
            if isinstance(error, OSError):  # a full disk, a directory the base does not let us make
                raise TfvaeError(
                    f"cannot write the export in {base_dir}: {error.strerror or error}"
                    + (f" ({error.filename})" if error.filename else "")
                ) from None
            raise
    left_out = tuple(layout.unservable_models(base_dir)) if with_saved_model else ()
    return RunExport(
        name, version, saved_model_path, config_path, tflite_files, rows, left_out, tflite_left_out
    )


def _write_preprocessing(data, path):
    """Writes the transform a client applies to raw values before the model (the run's)."""
    if data.preprocessing is None:
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    record = {**data.preprocessing.to_dict(), "description": data.preprocessing.describe()}
    write_json(path, record)


def _missing_parents(path):
    """The missing ancestors of `path`, outermost first (the export's lock creates them)."""
    missing = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    return missing[::-1]


class _Written:
    """What an export adds under its base directory, to remove if it stops before its commit.

    Noted under the base's lock, before the first write: which of the
    base, the model and the TFLite directory do not exist yet, and which
    temporary (`.tmp-*`) entries each already holds. Under the lock every
    new temporary entry in the model directories is the export's own.

    Args:
        base_dir: str. The export's base directory.
        model_dirs: list of str. The model and TFLite directories.
        missing_parents: list of str. The base's ancestors that were
            missing before the lock was taken, outermost first.
    """

    def __init__(self, base_dir, model_dirs, missing_parents):
        base_dir = os.path.abspath(base_dir)
        self.lock_file = lock_path(base_dir)
        self.dirs = [base_dir, *(os.path.abspath(d) for d in model_dirs)]
        self.missing = [*missing_parents, *(d for d in self.dirs if not os.path.lexists(d))]
        self.before = {d: self._temporary(d) for d in self.dirs}

    @staticmethod
    def _temporary(directory):
        try:
            entries = os.listdir(directory)
        except OSError:
            return set()
        return {entry for entry in entries if entry.startswith(STAGING_PREFIX)}

    def remove(self):
        """Removes the new temporary entries and the directories that were missing."""
        for directory in reversed(self.dirs):
            for entry in self._temporary(directory) - self.before[directory]:
                if directory == self.dirs[0] and not entry.startswith(_CONFIG_STAGING):
                    continue  # another command's lock or staging beside the model directories
                path = os.path.join(directory, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        for directory in reversed(self.missing):
            with contextlib.suppress(OSError):
                os.rmdir(directory)

    def remove_all(self):
        """`remove`, and the lock file: for a process that ends without unwinding."""
        with contextlib.suppress(OSError):
            os.unlink(self.lock_file)
        self.remove()
