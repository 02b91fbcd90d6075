"""One writer per output: the checks and the lock every command takes before writing.

A command that writes a directory (a run, a search, a comparison, an export
base) first checks the path without writing anything (`check_target`), then
holds an exclusive lock on it for the whole operation (`exclusive_lock`,
or `claim_dir` for both): a second process that asks for the same path is
refused at once with `"DIR is being written by process PID"` instead of
mixing its files with the first's.

The lock is `fcntl.flock` on a hidden file beside the target,
`.tmp-<name>.lock`, created by whoever takes the lock and removed by it
when done, so a finished or refused command leaves nothing behind (a
process killed outright leaves the file, but the kernel drops its lock, and
the next writer takes it over). The refused process opens the holder's
file and never creates or removes anything. Creating the lock file is also
the first write, so an unwritable target (a read-only file system, `/proc`,
a path under a regular file) fails here, in one line, before any
expensive work.
"""

import contextlib
import fcntl
import os
import time

from tfvae.errors import TfvaeError
from tfvae.io.atomic import DIR_MODE
from tfvae.io.atomic import FILE_MODE
from tfvae.io.atomic import STAGING_PREFIX

__all__ = ["LOCK_SUFFIX", "check_target", "claim_dir", "exclusive_lock", "lock_path"]

LOCK_SUFFIX = ".lock"
# How long a refused process waits at most for the holder to write its pid.
_HOLDER_WAIT_S = 1.0
_ATTEMPTS = 20


def lock_path(target):
    """The lock file of `target`: `.tmp-<name>.lock` in its parent directory."""
    parent, name = os.path.split(os.path.abspath(os.fspath(target)))
    return os.path.join(parent, f"{STAGING_PREFIX}{name}{LOCK_SUFFIX}")


def check_target(target, flag="--out"):
    """Raises `TfvaeError` unless a new directory could be written at `target`; writes nothing.

    Refused: an empty path; `.`, `..` or `/` (a run is renamed into place,
    and these cannot be replaced); a symbolic link, dangling or not (tfvae renames
    a complete directory into place, which would replace the link, so the
    link's own target is never written; give that directory instead); a
    path below something that is not a directory; a parent directory that
    the file system makes read-only. What only an attempt can tell (`/proc`,
    `/sys`, permissions checked by a server) fails when the lock is taken.

    Args:
        target: str. The directory a command will write.
        flag: str. The flag that named it, for the message. Defaults to
            `"--out"`.
    """
    target = os.fspath(target)
    if not target:
        raise TfvaeError(f"{flag} must name a directory. Received: {flag}=''")
    if os.path.basename(os.path.normpath(target)) in ("", os.curdir, os.pardir):
        raise TfvaeError(
            f"{flag} {target} cannot be renamed into place; name a new directory, e.g. "
            f"{os.path.join(target, 'run')}"
        )
    # normpath: "link/" names the link's target, but the rename would hit the link.
    if os.path.islink(os.path.normpath(target)):
        raise TfvaeError(
            f"{flag} {target} is a symbolic link (to {os.readlink(os.path.normpath(target))}); "
            "tfvae would replace the link, not write where it points: give the real "
            "directory instead"
        )
    ancestor = _parent(target)
    while not os.path.lexists(ancestor) and _parent(ancestor) != ancestor:
        ancestor = _parent(ancestor)
    if not os.path.isdir(ancestor):
        raise TfvaeError(f"cannot write {target}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise TfvaeError(f"cannot write {target}: {ancestor} is not writable")


def _parent(path):
    """The parent of `path` as the user wrote it (`"."` for a bare name)."""
    return os.path.dirname(os.path.normpath(path)) or os.curdir


def _make_parents(directory):
    """Creates `directory` and its missing parents; returns those it created, deepest last."""
    missing = []
    while not os.path.lexists(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    created = []
    try:
        for path in reversed(missing):
            try:
                os.mkdir(path, DIR_MODE)
            except FileExistsError:
                continue
            created.append(path)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(directories):
    for path in reversed(directories):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def _busy(fd, target):
    """The error for a `target` whose lock file `fd` another process holds."""
    # The holder writes its pid just after taking the lock.
    deadline = time.monotonic() + _HOLDER_WAIT_S
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    while not text.isdigit() and time.monotonic() < deadline:
        time.sleep(0.02)
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    holder = text if text.isdigit() else "another process"
    return TfvaeError(f"{target} is being written by process {holder}")


def _acquire(path, target):
    """Opens and locks `path`; returns its file descriptor, or raises `TfvaeError`."""
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as error:
            raise TfvaeError(
                f"cannot write {target}: cannot create files in {_parent(target)} "
                f"({error.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            error = _busy(fd, target)
            os.close(fd)
            raise error from None
        except OSError as error:
            os.close(fd)
            raise TfvaeError(f"cannot lock {target} ({path}): {error.strerror}") from None
        # The previous holder removes the file before it lets go: a lock
        # on a file no longer at `path` guards nothing, so open it again.
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        if current is not None and os.path.samestat(os.fstat(fd), current):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            return fd
        os.close(fd)
    raise TfvaeError(f"cannot lock {target}: {path} keeps being replaced")


def _refuse_if_held(target):
    """Raises the "being written" error if a process holds `target`'s lock; creates nothing."""
    try:
        fd = os.open(lock_path(target), os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(fd, target) from None
    except OSError:
        return
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(target):
    """Holds the one-writer lock of the directory `target` for the block.

    Missing parent directories of `target` are created, and removed again
    on the way out if they are still empty (the block failed before
    writing anything there). The lock is not re-entrant: a process that
    holds it and asks again is refused like any other.

    Args:
        target: str. The directory the block writes (it need not exist).

    Raises:
        TfvaeError: another process holds the lock (`"<target> is being
            written by process <pid>"`), or the lock file cannot be created
            (the target is not writable).

    Example:

    >>> with exclusive_lock("exports/vae"):
    ...     write_next_version("exports/vae")
    """
    target = os.fspath(target)
    path = lock_path(target)
    try:
        created = _make_parents(os.path.dirname(path))
    except OSError as error:
        raise TfvaeError(
            f"cannot write {target}: cannot create {error.filename} ({error.strerror})"
        ) from None
    try:
        fd = _acquire(path, target)
    except BaseException:
        _remove_empty(created)
        raise
    try:
        yield
    finally:
        # Removed while still locked, so nobody can take a lock on it and
        # then find it gone (see `_acquire`).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
        _remove_empty(created)


@contextlib.contextmanager
def claim_dir(target, check=None, flag="--out"):
    """Checks `target`, then holds its lock for the block and checks it again.

    `check_target` and `check(target)` run first, so a mistake is reported
    without taking the lock; `check` runs again under the lock, since
    another process may have written `target` in between.

    Args:
        target: str. The directory the block writes.
        check: callable taking `target`, raising `TfvaeError` when the
            command cannot write there (e.g. `check_new_run_dir`), or
            `None`. Defaults to `None`.
        flag: str. The flag that named `target`, for messages. Defaults
            to `"--out"`.
    """
    check_target(target, flag)
    if check is not None:
        try:
            check(target)
        except TfvaeError:
            # What the check saw (a `.partial`, a half-written directory)
            # may be the work of a writer still running: say so instead.
            _refuse_if_held(target)
            raise
    with exclusive_lock(target):
        if check is not None:
            check(target)
        yield
