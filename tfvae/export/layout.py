"""The TF Serving directory layout: model names, integer versions, atomic commits.

TF Serving watches `<base_path>/<version>/` and serves the highest integer
version; a directory whose name is not an integer is ignored. Everything is
therefore written under a hidden `.tmp-*` name beside its final place and
renamed when complete, so a crash never leaves a half-written version (at
worst a `.tmp-*` directory that the server ignores).

    <base>/models.config                TF Serving model config (all models under <base>)
    <base>/<name>/<version>/            SavedModel: saved_model.pb, variables/, ...
    <base>/<name>/tflite/<version>/     float32.tflite, dynamic_range.tflite, int8.tflite,
                                        verification.json
"""

import os
import re
import shutil
import tempfile

from tfvae.errors import TfvaeError

DEFAULT_BASE_DIR = "saved_models"
# Where the official docker image expects models (`-v "$PWD/saved_models:/models"`).
DEFAULT_SERVER_BASE_PATH = "/models"
MODEL_CONFIG_FILE = "models.config"
TFLITE_DIR = "tflite"
SAVED_MODEL_FILE = "saved_model.pb"
STAGING_PREFIX = ".tmp-"
# TF Serving names appear in URLs (`/v1/models/<name>:predict`).
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# `tfvae train` appends `-YYYYmmdd-HHMMSS` to a run's name; successive runs of
# one setup are successive versions of one served model.
RUN_TIMESTAMP = re.compile(r"-\d{8}-\d{6}$")
# Files that mark a training run directory, which must not become a model directory.
RUN_MARKERS = ("model.keras", "config.json")


def check_model_name(name):
    """Raises unless `name` can name a TF Serving model (letters, digits, `.`, `_`, `-`)."""
    if not isinstance(name, str) or not MODEL_NAME_PATTERN.match(name):
        raise TfvaeError(
            "a model name must start with a letter or digit and contain only letters, "
            f"digits, '.', '_' and '-'. Received: name={name!r}"
        )
    return name


def default_model_name(run_dir):
    """The model name for a run directory: its name without the timestamp, sanitized.

    Example: `saved_models/vae-mnist5k-dense-z16-20250101-120000` gives
    `vae-mnist5k-dense-z16`.
    """
    base = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    name = RUN_TIMESTAMP.sub("", base)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip("._-")
    if not name:
        raise TfvaeError(f"cannot derive a model name from {run_dir!r}; pass --name")
    return name


def check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise TfvaeError(f"version must be a positive integer. Received: version={version!r}")
    return version


def integer_dirs(path):
    """The integer-named subdirectories of `path` (TF Serving's version numbers)."""
    if not os.path.isdir(path):
        return []
    return sorted(
        int(entry)
        for entry in os.listdir(path)
        if entry.isdigit() and os.path.isdir(os.path.join(path, entry))
    )


def model_dir(base_dir, model_name):
    return os.path.join(base_dir, check_model_name(model_name))


def tflite_dir(base_dir, model_name):
    return os.path.join(model_dir(base_dir, model_name), TFLITE_DIR)


def check_model_dir(path, run_dir=None):
    """Raises if `path` is (or is inside) a training run rather than a model directory."""
    path = os.path.abspath(path)
    if run_dir is not None:
        run_dir = os.path.abspath(run_dir)
        if path == run_dir or path.startswith(run_dir + os.sep):
            raise TfvaeError(
                f"the export would be written inside the run directory {run_dir}; "
                "pass --name or --base to put it elsewhere"
            )
    if any(os.path.exists(os.path.join(path, marker)) for marker in RUN_MARKERS):
        raise TfvaeError(
            f"{path} is a training run directory, not a TF Serving model directory; "
            "pass --name or --base to put the export elsewhere"
        )


def resolve_version(targets, version=None, overwrite=False):
    """Returns the version to write under every directory in `targets`.

    Args:
        targets: list of str. Directories that will each get a `<version>/`
            (the SavedModel's model directory, the TFLite directory).
        version: int or None. `None` takes the next free number across all
            targets, so a SavedModel and its TFLite files share a number.
        overwrite: bool. Allow replacing an existing version.
    """
    if version is None:
        return 1 + max((v for target in targets for v in integer_dirs(target)), default=0)
    check_version(version)
    if not overwrite:
        for target in targets:
            existing = os.path.join(target, str(version))
            if os.path.exists(existing):
                raise TfvaeError(
                    f"version {version} already exists at {existing}; pass --overwrite to "
                    "replace it, or leave out --version to take the next free number"
                )
    return version


class Transaction:
    """Stages directories under temporary names and renames them all on `commit`.

    Used as a context manager: leaving the block without `commit()` (an
    error, Ctrl-C) deletes every staged directory, so nothing appears under
    a final name. A process killed outright leaves only `.tmp-*` directories,
    which TF Serving ignores.

    Example:

    >>> with Transaction(overwrite=False) as transaction:
    ...     path = transaction.stage("saved_models/vae/3")
    ...     write_saved_model(model, path)
    ...     transaction.commit()
    """

    def __init__(self, overwrite=False):
        self.overwrite = overwrite
        self._staged = []  # (staging path, final path)

    def stage(self, final_path):
        """Creates and returns an empty staging directory that `commit` renames to `final_path`."""
        parent = os.path.dirname(os.path.abspath(final_path))
        os.makedirs(parent, exist_ok=True)
        name = os.path.basename(final_path)
        staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{name}-", dir=parent)
        self._staged.append((staging, final_path))
        return staging

    def commit(self):
        """Renames every staged directory to its final name."""
        for staging, final in self._staged:
            replaced = None
            if os.path.exists(final):
                if not self.overwrite:
                    raise TfvaeError(
                        f"{final} appeared while exporting (another export?); run again"
                    )
                # Moved aside rather than deleted first, so a failed rename
                # below can put the old version back.
                replaced = tempfile.mkdtemp(
                    prefix=f"{STAGING_PREFIX}replaced-{os.path.basename(final)}-",
                    dir=os.path.dirname(os.path.abspath(final)),
                )
                os.rename(final, os.path.join(replaced, "old"))
            try:
                os.rename(staging, final)
            except OSError as error:
                if replaced is not None:
                    os.rename(os.path.join(replaced, "old"), final)
                    os.rmdir(replaced)
                raise TfvaeError(f"cannot rename {staging} to {final}: {error}") from None
            if replaced is not None:
                shutil.rmtree(replaced, ignore_errors=True)
        self._staged = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for staging, _ in self._staged:
            shutil.rmtree(staging, ignore_errors=True)
        self._staged = []
        return False


def _quoted(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def served_models(base_dir):
    """Names of the model directories under `base_dir` with at least one SavedModel version."""
    if not os.path.isdir(base_dir):
        return []
    names = []
    for entry in sorted(os.listdir(base_dir)):
        path = os.path.join(base_dir, entry)
        if not MODEL_NAME_PATTERN.match(entry) or not os.path.isdir(path):
            continue
        if any(
            os.path.isfile(os.path.join(path, str(v), SAVED_MODEL_FILE)) for v in integer_dirs(path)
        ):
            names.append(entry)
    return names


def model_config_text(names, server_base_path=DEFAULT_SERVER_BASE_PATH):
    """TF Serving's `ModelServerConfig` in protobuf text format, one `config` per model."""
    root = server_base_path.rstrip("/")
    entries = []
    for name in names:
        base_path = f"{root}/{name}"
        entries.append(
            "  config {\n"
            f"    name: {_quoted(name)}\n"
            f"    base_path: {_quoted(base_path)}\n"
            '    model_platform: "tensorflow"\n'
            "  }\n"
        )
    return "model_config_list {\n" + "".join(entries) + "}\n"


def write_model_config(base_dir, server_base_path=DEFAULT_SERVER_BASE_PATH):
    """Writes `<base_dir>/models.config` for every served model there; returns its path.

    Rewritten from the directory tree on each export, so it lists exactly
    the models that have a SavedModel version. `server_base_path` is
    `base_dir` as the server sees it: `/models` when the docker image
    mounts `base_dir` there.
    """
    path = os.path.join(base_dir, MODEL_CONFIG_FILE)
    text = model_config_text(served_models(base_dir), server_base_path)
    handle, tmp = tempfile.mkstemp(prefix=STAGING_PREFIX, suffix=".config", dir=base_dir)
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
