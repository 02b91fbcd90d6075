"""Errors raised for user mistakes."""


class TfvaeError(ValueError):
    """A user-facing error: bad argument, bad data or a bad file.

    The CLI prints its message on one line and exits with status 2, without a
    traceback. Library users can catch it as a `ValueError`.
    """
