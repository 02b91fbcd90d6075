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
from tfvae.io.atomic import STAGING_PREFIX
from tfvae.io.atomic import TIMESTAMP_PATTERN
from tfvae.io.atomic import write_text
from tfvae.io.locks import check_target

DEFAULT_BASE_DIR = "saved_models"
# Where the official docker image expects models (`-v "$PWD/saved_models:/models"`).
DEFAULT_SERVER_BASE_PATH = "/models"
MODEL_CONFIG_FILE = "models.config"
TFLITE_DIR = "tflite"
SAVED_MODEL_FILE = "saved_model.pb"
# TF Serving names appear in URLs (`/v1/models/<name>:predict`). Matched
# whole (`fullmatch`): `$` would also match before a final newline.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A model name is a directory name, which most file systems cap at 255 bytes.
MAX_MODEL_NAME_LENGTH = 255
# TF Serving reads versions as int64.
MAX_VERSION = 2**63 - 1
# `tfvae train` appends `-YYYYmmdd-HHMMSS` to a run's name; successive runs of
# one setup are successive versions of one served model.
RUN_TIMESTAMP = re.compile(rf"-{TIMESTAMP_PATTERN}$")
# Files that mark a training run directory, which must not become a model directory.
RUN_MARKERS = ("model.keras", "config.json")


def is_model_name(name):
    """Whether `name` can name a TF Serving model; see `check_model_name`."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_MODEL_NAME_LENGTH
        and MODEL_NAME_PATTERN.fullmatch(name) is not None
        and name != MODEL_CONFIG_FILE
    )


def check_model_name(name):
    """Raises unless `name` can name a TF Serving model.

    A name starts with an ASCII letter or digit, holds only ASCII letters,
    digits, `.`, `_` and `-`, is at most 255 characters long and is not
    `models.config` (the file beside the model directories).
    """
    if not is_model_name(name):
        if name == MODEL_CONFIG_FILE:
            raise TfvaeError(
                f"a model cannot be named {MODEL_CONFIG_FILE}: that is the TF Serving config "
                f"file beside the model directories. Received: name={name!r}"
            )
        if isinstance(name, str) and len(name) > MAX_MODEL_NAME_LENGTH:
            raise TfvaeError(
                f"a model name must be at most {MAX_MODEL_NAME_LENGTH} characters long. "
                f"Received: a name of {len(name)} characters, {name[:20]!r}..."
            )
        raise TfvaeError(
            "a model name must start with a letter or digit and contain only letters, "
            f"digits, '.', '_' and '-'. Received: name={name!r}"
        )
    return name


def check_version(version):
    """`version` as an `int`; raises unless it is in [1, 2**63 - 1] (TF Serving's int64)."""
    version = checks.positive_int("version", version)
    if version > MAX_VERSION:
        raise TfvaeError(
            f"version must be at most {MAX_VERSION} (TF Serving reads versions as int64). "
            f"Received: version={version}"
        )
    return version


def check_server_base_path(path):
    """Returns `path` unless it cannot stand in `models.config` (empty, or not UTF-8 text)."""
    if not isinstance(path, str) or not path:
        raise TfvaeError(
            f"the server base path must be a non-empty path. Received: server_base_path={path!r}"
        )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise TfvaeError(
            "the server base path must be UTF-8 text (TF Serving reads models.config as "
            f"UTF-8). Received: server_base_path={path!r}"
        ) from None
    return path


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
    # ASCII digits only (`"²".isdigit()` is true); numbers beyond int64 are
    # not versions to TF Serving either.
    return sorted(
        int(entry)
        for entry in os.listdir(path)
        if entry.isascii()
        and entry.isdigit()
        and int(entry) <= MAX_VERSION
        and os.path.isdir(os.path.join(path, entry))
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
        version = 1 + max((v for target in targets for v in integer_dirs(target)), default=0)
        if version > MAX_VERSION:
            raise TfvaeError(
                f"the next free version would be {version}, beyond TF Serving's int64 "
                "versions; pass --version"
            )
        return version
    version = check_version(version)
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
    """`text` as a protobuf text-format string: UTF-8, every byte outside printable ASCII escaped.

    A raw newline or control character inside the quotes would make TF
    Serving reject the whole file.
    """
    escaped = []
    for byte in text.encode("utf-8"):
        if byte in b'"\\':
            escaped.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            escaped.append(chr(byte))
        else:
            escaped.append(f"\\{byte:03o}")
    return '"' + "".join(escaped) + '"'


def _versioned_dirs(base_dir):
    """Entries of `base_dir` that are directories holding at least one SavedModel version."""
    if not os.path.isdir(base_dir):
        return []
    found = []
    for entry in sorted(os.listdir(base_dir)):
        path = os.path.join(base_dir, entry)
        if entry.startswith(STAGING_PREFIX) or not os.path.isdir(path):
            continue
        if any(
            os.path.isfile(os.path.join(path, str(v), SAVED_MODEL_FILE)) for v in integer_dirs(path)
        ):
            found.append(entry)
    return found


def served_models(base_dir):
    """Names of the model directories under `base_dir` with at least one SavedModel version."""
    return [entry for entry in _versioned_dirs(base_dir) if is_model_name(entry)]


def unservable_models(base_dir):
    """Directories under `base_dir` with a SavedModel version but a name TF Serving rejects.

    `write_model_config` leaves them out: a name with a newline, say,
    would make the server refuse the whole file.
    """
    return [entry for entry in _versioned_dirs(base_dir) if not is_model_name(entry)]


def model_config_text(names, server_base_path=DEFAULT_SERVER_BASE_PATH):
    """TF Serving's `ModelServerConfig` in protobuf text format, one `config` per model.

    Every name is checked (`check_model_name`) and every string escaped, so
    the text always parses.
    """
    check_server_base_path(server_base_path)
    root = server_base_path.rstrip("/")
    entries = []
    for name in names:
        check_model_name(name)
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
    the models that have a SavedModel version; an existing file, broken or
    not, is replaced. A directory whose name TF Serving would reject is
    left out (`unservable_models` lists them). `server_base_path` is
    `base_dir` as the server sees it: `/models` when the docker image
    mounts `base_dir` there.
    """
    path = os.path.join(base_dir, MODEL_CONFIG_FILE)
    text = model_config_text(served_models(base_dir), server_base_path)
    write_text(path, text)
    return path


def check_base_dir(base_dir, model_name, with_saved_model=True):
    """Raises unless exports can be written under `base_dir`; writes nothing.

    Refused: an empty path; a `base_dir`, model directory or `tflite`
    directory that exists but is not a directory; a `base_dir` below a
    file or in a read-only directory; a `models.config` that is not a
    file (it is rewritten after a SavedModel export). What only an attempt
    can tell (`/proc`, `/sys`) fails when the export's lock is taken.
    """
    base_dir = os.fspath(base_dir)
    if not base_dir:
        raise TfvaeError("--base must name a directory. Received: --base ''")
    if os.path.isdir(base_dir):
        if not os.access(base_dir, os.W_OK | os.X_OK):
            raise TfvaeError(f"cannot write exports in {base_dir}: it is not writable")
    elif os.path.islink(base_dir):
        raise TfvaeError(
            f"--base {base_dir} is a symbolic link to {os.readlink(base_dir)}, which is not a "
            "directory"
        )
    elif os.path.lexists(base_dir):
        raise TfvaeError(f"--base {base_dir} exists and is not a directory")
    else:
        check_target(base_dir, "--base")
    target = model_dir(base_dir, model_name)
    for path in (target, os.path.join(target, TFLITE_DIR)):
        if os.path.lexists(path) and not os.path.isdir(path):
            raise TfvaeError(f"{path} exists and is not a directory; pass another --name or --base")
    config = os.path.join(base_dir, MODEL_CONFIG_FILE)
    if with_saved_model and os.path.lexists(config) and not os.path.isfile(config):
        raise TfvaeError(
            f"{config} exists and is not a file; tfvae rewrites it after each SavedModel export"
        )
