"""Ctrl-C while files are being written: stop at once and leave nothing behind.

Python turns SIGINT into a `KeyboardInterrupt` raised at whatever bytecode
the main thread runs next. Inside TensorFlow that may be a destructor or a
callback from C++, where the exception is swallowed (the command runs on
as if nothing happened) or turns into a `SystemError`; and once it has
unwound, the interpreter's shutdown with TensorFlow loaded takes seconds.

So a command that writes registers how to undo what it has written so far
(`undo_on_interrupt`) and marks the steps that must not be cut in half
(`held_back`: the renames of a commit). The command line turns Ctrl-C into
undo, one line on stderr, exit status 130, at once (`exit_on_interrupt`):
nothing is raised, so nothing can swallow it. A Ctrl-C inside `held_back`
waits for the block to end.

Without `exit_on_interrupt` (a library call) Ctrl-C raises
`KeyboardInterrupt` as usual and the callers' own cleanup runs; the
registrations cost nothing.
"""

import contextlib
import os
import signal
import sys
import threading

__all__ = ["EXIT_INTERRUPTED", "exit_on_interrupt", "held_back", "undo_on_interrupt"]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C

_undo = []  # callables, in registration order; run newest first
_state = {"held": 0, "pending": False, "exiting": False, "message_fd": None, "message": b""}


@contextlib.contextmanager
def undo_on_interrupt(undo):
    """Runs `undo()` if the process is ended by Ctrl-C inside the block.

    Args:
        undo: callable taking no argument. Removes what the block has
            written so far; it must tolerate being called at any point of
            the block, and must not raise.
    """
    _undo.append(undo)
    try:
        yield
    finally:
        _undo.remove(undo)


@contextlib.contextmanager
def held_back():
    """Holds Ctrl-C back until the block ends (under `exit_on_interrupt`).

    For steps that must not be cut in half, such as renaming a set of
    staged directories into place; they should take milliseconds.
    """
    _state["held"] += 1
    try:
        yield
    finally:
        _state["held"] -= 1
        if not _state["held"] and _state["pending"]:
            _exit()


@contextlib.contextmanager
def exit_on_interrupt(message):
    """Inside the block, Ctrl-C undoes the registered writes, prints `message` and exits 130.

    The exit is `os._exit`: no exception unwinds, no interpreter shutdown.
    Outside the main thread (where Python cannot set signal handlers) the
    block runs unchanged.

    Args:
        message: str. The one line written to stderr, e.g.
            `"tfvae: interrupted"`.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sys.stderr.flush()
    # A duplicate of stderr as it is now: the block may redirect file
    # descriptor 2 (to hold back native logs), and the line must still show.
    try:
        message_fd = os.dup(2)
    except OSError:
        message_fd = None
    saved = dict(_state)
    _state.update(
        held=0, pending=False, exiting=False, message_fd=message_fd, message=f"{message}\n".encode()
    )
    previous = signal.signal(signal.SIGINT, _on_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _state.update(saved)
        if message_fd is not None:
            os.close(message_fd)


def _on_interrupt(signum, frame):
    if _state["held"]:
        _state["pending"] = True
        return
    _exit()


def _exit():
    if _state["exiting"]:  # a second Ctrl-C while undoing
        return
    _state["exiting"] = True
    for undo in reversed(_undo):
        with contextlib.suppress(Exception):
            undo()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    if _state["message_fd"] is not None:
        with contextlib.suppress(OSError):
            os.write(_state["message_fd"], _state["message"])
    os._exit(EXIT_INTERRUPTED)
