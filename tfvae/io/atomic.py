"""Atomic writes: a file or directory appears complete under its final name, or not at all.

Everything is written under a hidden `.tmp-*` name beside its final place
and renamed when complete (a rename within one file system is atomic), so a
crash leaves at worst a `.tmp-*` name, which TF Serving and tfvae ignore.

Files and directories get the modes an ordinary `open()` or `os.makedirs()`
gives them: `0o666` and `0o777` less the process umask (`0o644` and `0o755`
under the usual umask 022). `tempfile.mkstemp` and `mkdtemp` would make them
private to their owner (`0o600`, `0o700`), and a server running as another
user could not read a model. The temporary names are created with those
ordinary modes and the kernel applies the umask, so the umask is never read
or changed (`os.umask` can only read it by setting it, for every thread).
"""

import contextlib
import datetime
import json
import os
import secrets
import shutil

from tfvae.errors import TfvaeError

__all__ = [
    "STAGING_PREFIX",
    "TIMESTAMP_FORMAT",
    "TIMESTAMP_PATTERN",
    "Transaction",
    "atomic_file",
    "move_into_place",
    "read_json",
    "staged_dir",
    "timestamp",
    "timestamped_dir",
    "write_bytes",
    "write_json",
    "write_text",
]

STAGING_PREFIX = ".tmp-"
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
# What `timestamp()` gives, as a regular expression (export strips it from run names).
TIMESTAMP_PATTERN = r"\d{8}-\d{6}"
# The modes `open()` and `os.mkdir()` ask for; the kernel takes the umask off.
FILE_MODE = 0o666
DIR_MODE = 0o777
_NAME_ATTEMPTS = 100


def _create_file(path):
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def _create_dir(path):
    os.mkdir(path, DIR_MODE)


def _new_path(directory, prefix, suffix, create):
    """Creates a file or directory under a new random name in `directory`; returns its path.

    A directory that cannot take it (read-only, not a directory, gone)
    raises a one-line `TfvaeError` rather than an `OSError`.
    """
    for _ in range(_NAME_ATTEMPTS):
        path = os.path.join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            create(path)
        except FileExistsError:
            continue
        except OSError as error:
            raise TfvaeError(f"cannot create files in {directory}: {error.strerror}") from None
        return path
    raise FileExistsError(f"no free temporary name in {directory} after {_NAME_ATTEMPTS} tries")


def _parent(path):
    return os.path.dirname(os.path.abspath(path))


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path` to write; renames it onto `path` when done.

    The temporary file exists, empty, with the umask's mode, and has the
    same suffix as `path` (Keras insists on `.keras`); the caller writes it
    (`model.save(tmp)`, `figure.savefig(tmp)`). When the block ends
    normally it replaces `path`; when it raises (Ctrl-C included) it is
    removed and `path` is left as it was.

    Example:

    >>> with atomic_file("run/model.keras") as tmp:
    ...     model.save(tmp)
    """
    path = os.fspath(path)
    stem, suffix = os.path.splitext(os.path.basename(path))
    tmp = _new_path(_parent(path), f"{STAGING_PREFIX}{stem}-", suffix, _create_file)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data):
    """Writes `data` (bytes) to `path` atomically."""
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)


def write_text(path, text):
    """Writes `text` to `path` atomically, UTF-8 encoded."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, data):
    """Writes `data` to `path` atomically as JSON: indented, keys sorted, a final newline."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path):
    """Reads a JSON file; a missing or unreadable file raises a one-line `TfvaeError`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise TfvaeError(f"missing file {path}") from None
    except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8
        raise TfvaeError(f"cannot read {path}: {error}") from None


def _is_empty_dir(path):
    return os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path)


def _check_free(final, overwrite):
    if os.path.lexists(final) and not overwrite and not _is_empty_dir(final):
        raise TfvaeError(
            f"{final} already exists (written meanwhile by another process?); "
            "nothing was replaced, run again"
        )


def _rename_into_place(staging, final, overwrite):
    """Renames `staging` to `final`; returns the directory holding the replaced `final`, or None.

    An existing `final` (an empty directory, or anything with `overwrite`)
    is moved aside rather than deleted first, so that a failed rename can
    put it back; the caller deletes it once it is sure.
    """
    _check_free(final, overwrite)
    aside = None
    if os.path.lexists(final):
        aside = _new_path(
            _parent(final), f"{STAGING_PREFIX}replaced-{os.path.basename(final)}-", "", _create_dir
        )
        os.rename(final, os.path.join(aside, "old"))
    try:
        os.rename(staging, final)
    except OSError as error:
        if aside is not None:
            os.rename(os.path.join(aside, "old"), final)
            os.rmdir(aside)
        raise TfvaeError(f"cannot rename {staging} to {final}: {error}") from None
    return aside


def _undo_rename(staging, final, aside):
    """Best effort: `final` back to `staging`, and the replaced `final` back in place."""
    with contextlib.suppress(OSError):
        os.rename(final, staging)
        if aside is not None:
            os.rename(os.path.join(aside, "old"), final)
            os.rmdir(aside)


def move_into_place(staging, final, overwrite=False):
    """Renames the complete directory `staging` to `final`, under `staged_dir`'s rules.

    For a directory that must outlive a failed attempt (a resumable run's
    `run/`); otherwise use `staged_dir`, which also cleans up.

    Args:
        staging: str. A complete directory on the file system of `final`.
        final: str. Absent, or an empty directory; with `overwrite=True`,
            anything, which is replaced.
        overwrite: bool. Replace an existing `final`. Defaults to `False`.
    """
    aside = _rename_into_place(staging, final, overwrite)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


class Transaction:
    """Stages directories under temporary names and renames them all on `commit`.

    Used as a context manager: leaving the block without `commit()` (an
    error, Ctrl-C) deletes every staged directory, so nothing appears under
    a final name. A commit checks every final name first, then renames; if
    one rename fails, the ones before it are undone. A process killed
    outright leaves only `.tmp-*` directories, which TF Serving ignores.

    Args:
        overwrite: bool. Replace final directories that exist. Without it,
            each must be absent or an empty directory. An existing one is
            moved aside, deleted after the commit, and put back if the
            commit fails. Defaults to `False`.

    Example:

    >>> with Transaction(overwrite=False) as transaction:
    ...     path = transaction.stage("saved_models/vae/3")
    ...     write_saved_model(model, path)
    ...     transaction.commit()
    """

    def __init__(self, overwrite=False):
        self.overwrite = overwrite
        self._staged = []  # (staging path, final path)

    def stage(self, final, prefix=None):
        """Creates and returns an empty staging directory that `commit` renames to `final`.

        Args:
            final: str. The directory's final path; its parent is created.
            prefix: str or None. The staging name's start. Defaults to
                `.tmp-<name of final>-`.
        """
        final = os.fspath(final)
        parent = _parent(final)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as error:
            raise TfvaeError(f"cannot write {final}: {error.strerror}") from None
        if prefix is None:
            prefix = f"{STAGING_PREFIX}{os.path.basename(final)}-"
        staging = _new_path(parent, prefix, "", _create_dir)
        self._staged.append((staging, final))
        return staging

    def commit(self):
        """Renames every staged directory to its final name."""
        for _, final in self._staged:
            _check_free(final, self.overwrite)
        done = []  # (staging, final, aside)
        try:
            for staging, final in self._staged:
                done.append((staging, final, _rename_into_place(staging, final, self.overwrite)))
        except BaseException:
            for staging, final, aside in reversed(done):
                _undo_rename(staging, final, aside)
            raise
        self._staged = []
        for _, _, aside in done:
            if aside is not None:
                shutil.rmtree(aside, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        for staging, _ in self._staged:
            shutil.rmtree(staging, ignore_errors=True)
        self._staged = []
        return False


@contextlib.contextmanager
def staged_dir(final, overwrite=False, prefix=None):
    """Yields a new staging directory beside `final`; renames it to `final` when done.

    When the block ends normally the staging directory becomes `final`,
    which must be absent or an empty directory (with `overwrite=True` an
    existing `final` is replaced, and put back if the rename fails); so
    `final` appears complete or not at all. When the block raises (Ctrl-C
    included) the staging directory is removed. A `Transaction` of one.

    Args:
        final: str. The directory to write; its parent is created.
        overwrite: bool. Replace an existing `final`. Defaults to `False`.
        prefix: str or None. The staging name's start. Defaults to
            `.tmp-<name of final>-`.

    Example:

    >>> with staged_dir("results/anomaly-20250101-120000") as staging:
    ...     write_json(os.path.join(staging, "results.json"), results)
    """
    with Transaction(overwrite=overwrite) as transaction:
        staging = transaction.stage(final, prefix=prefix)
        yield staging
        transaction.commit()


def timestamp():
    """The local time as `YYYYmmdd-HHMMSS`, the end of tfvae's output names."""
    return datetime.datetime.now().strftime(TIMESTAMP_FORMAT)


def timestamped_dir(root, *parts):
    """`root/<parts joined by "-">-<timestamp()>`: a new output directory's default name.

    Example:

    >>> timestamped_dir("saved_models", "vae", "mnist5k", "dense", "z16")
    'saved_models/vae-mnist5k-dense-z16-20250101-120000'
    """
    return os.path.join(root, "-".join([*(str(part) for part in parts), timestamp()]))
