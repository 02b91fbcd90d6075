"""`.keras` model files: saved atomically, loaded with `safe_mode=True` and one-line errors.

Loading needs tfvae's Keras classes registered; `import tfvae`, which runs
before any `tfvae.io` module, registers them.
"""

import os
import zipfile

import keras

from tfvae.errors import TfvaeError
from tfvae.io.atomic import atomic_file


def save_model_file(model, path):
    """Saves `model` as a `.keras` file at `path` atomically (temporary file, then rename)."""
    with atomic_file(path) as tmp:
        model.save(tmp)


def load_model_file(path):
    """Loads a `.keras` file with `safe_mode=True`, turning failures into `TfvaeError`.

    A missing, truncated or corrupt file, and one whose config holds a
    Python lambda (which `safe_mode` will not run), each raise a one-line
    `TfvaeError` naming the file and the problem.
    """
    if not os.path.isfile(path):
        raise TfvaeError(f"no model file at {path}")
    if not _is_intact_zip(path):
        raise TfvaeError(
            f"cannot load {path}: the file is truncated or corrupt (not a valid .keras zip)"
        )
    try:
        return keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise TfvaeError(
            f"cannot load {path}: the file is truncated or corrupt ({_first_line(error)})"
        ) from None
    except (ValueError, TypeError, KeyError) as error:
        if _carries_lambda(error):
            raise TfvaeError(
                f"refusing to load {path}: it carries a Python lambda (a Lambda layer), "
                "which would run code from the file; tfvae loads models with safe_mode=True"
            ) from None
        raise TfvaeError(f"cannot load {path}: {_first_line(error)}") from None
    except Exception as error:
        # A file that passes the zip check can still hold anything; whatever
        # breaks while reading it is a bad file, not a bug to trace.
        raise TfvaeError(
            f"cannot load {path}: the file is corrupt ({type(error).__name__}: {_first_line(error)})"
        ) from None


def _is_intact_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except Exception:  # BadZipFile, OSError, EOFError, zlib.error: all mean damaged
        return False


def _carries_lambda(error):
    text = str(error)
    return "lambda" in text.lower() and "safe_mode" in text


def _first_line(error):
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__
