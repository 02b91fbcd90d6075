"""The TF Serving directory layout: model names, integer versions, atomic commits.

TF Serving watches `<base_path>/<version>/` and serves the highest integer
version; a directory whose name is not an integer is ignored. Everything is
therefore written under a hidden `.tmp-*` name beside its final place and
renamed when complete (`tfvae.io.atomic.Transaction`), so a crash never
leaves a half-written version (at worst a `.tmp-*` directory that the
server ignores).

    <base>/models.config                TF Serving model config (all models under <base>)
    <base>/<name>/<version>/            SavedModel: saved_model.pb, variables/, ...
    <base>/<name>/tflite/<version>/     float32.tflite, dynamic_range.tflite, int8.tflite,
                                        verification.json
"""

import os
import re

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.io.atomic import TIMESTAMP_PATTERN
from tfvae.io.atomic import write_text

DEFAULT_BASE_DIR = "saved_models"
# Where the official docker image expects models (`-v "$PWD/saved_models:/models"`).
DEFAULT_SERVER_BASE_PATH = "/models"
MODEL_CONFIG_FILE = "models.config"
TFLITE_DIR = "tflite"
SAVED_MODEL_FILE = "saved_model.pb"
# TF Serving names appear in URLs (`/v1/models/<name>:predict`).
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# `tfvae train` appends `-YYYYmmdd-HHMMSS` to a run's name; successive runs of
# one setup are successive versions of one served model.
RUN_TIMESTAMP = re.compile(rf"-{TIMESTAMP_PATTERN}$")
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
    checks.positive_int("version", version)
    if not overwrite:
        for target in targets:
            existing = os.path.join(target, str(version))
            if os.path.exists(existing):
                raise TfvaeError(
                    f"version {version} already exists at {existing}; pass --overwrite to "
                    "replace it, or leave out --version to take the next free number"
                )
    return version


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
    write_text(path, text)
    return path
