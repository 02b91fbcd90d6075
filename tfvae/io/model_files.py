"""`.keras` model files: saved atomically, loaded with `safe_mode=True` and one-line errors.

Loading needs tfvae's Keras classes registered; `import tfvae`, which runs
before any `tfvae.io` module, registers them.

A file is read in three steps, and refused in one line at the first that
fails:

1. the archive: every member's declared size is checked (against the
   memory available, and against its stored size, as a decompression bomb
   inflates far beyond it) before any byte is decompressed, then every
   member's CRC is checked, streaming;
2. the model: built from its config by Keras (`safe_mode=True`), after an
   optional check of that config (a caller that knows the model's classes
   can refuse one too large for memory before it is built);
3. the weights: every array in the archive's `model.weights.h5` must have
   been restored into the model. Keras only warns, and leaves the weights
   as initialized, when a damaged config builds a model whose variables
   do not match the saved ones; such a model would score as random.
"""

import collections
import hashlib
import io
import json
import os
import warnings
import zipfile

import h5py
import keras
import numpy as np

from tfvae import memory
from tfvae.errors import TfvaeError
from tfvae.io.atomic import atomic_file

CONFIG_MEMBER = "config.json"
WEIGHTS_MEMBER = "model.weights.h5"
# Keras stores a .keras file's members uncompressed; a member that inflates
# to more than this many times its stored size is a decompression bomb.
MAX_EXPANSION = 100
# Small members (JSON) may compress well; the ratio applies above this size.
EXPANSION_FLOOR = 1 << 20
MAX_MEMBERS = 10_000
CRC_CHUNK = 1 << 20
# The optimizer's state in the weights file: not part of the model's weights.
# A model with a second optimizer (FactorVAE's `discriminator_optimizer`)
# keeps its state in a group whose name ends likewise.
OPTIMIZER_GROUP = "optimizer"


def save_model_file(model, path):
    """Saves `model` as a `.keras` file at `path` atomically (temporary file, then rename)."""
    with atomic_file(path) as tmp:
        model.save(tmp)


def load_model_file(path, check_config=None):
    """Loads a `.keras` file with `safe_mode=True`, turning failures into `TfvaeError`.

    A missing, truncated or corrupt file, a decompression bomb, one whose
    config holds a Python lambda (which `safe_mode` will not run), and one
    whose saved weights were not all restored into the model it describes
    (a damaged config), each raise a one-line `TfvaeError` naming the file
    and the problem.

    Args:
        path: str. The `.keras` file.
        check_config: callable or None. Called as
            `check_config(model_config, weights_bytes)` with the archive's
            model config (a dict) and the size of its weights file, before
            anything is built; raises `TfvaeError` to refuse the file.
            Defaults to `None`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise TfvaeError(f"no model file at {path}")
    problem = archive_problem(path)
    if problem:
        raise TfvaeError(f"cannot load {path}: {problem}")
    if check_config is not None:
        model_config, weights_bytes = _read_model_config(path)
        try:
            check_config(model_config, weights_bytes)
        except TfvaeError as error:
            raise TfvaeError(f"cannot load {path}: {error}") from None
    model = _load(path)
    problem = unrestored_weights(path, model)
    if problem:
        raise TfvaeError(f"cannot load {path}: {problem}")
    return model


def archive_problem(path):
    """What makes `path` an unsafe or damaged zip archive, or `None` when it is intact.

    Declared sizes are checked before anything is decompressed; then each
    member is decompressed in chunks to check its CRC, so memory stays
    bounded whatever the file declares.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                return f"the archive holds {len(members):,} files; a .keras file holds a few"
            declared = sum(member.file_size for member in members)
            available = memory.available_memory()
            if available is not None and declared > available:
                return (
                    f"its files declare {memory.format_bytes(declared)} uncompressed, more than "
                    f"the {memory.format_bytes(available)} of memory available"
                )
            for member in members:
                inflation = member.file_size / max(member.compress_size, 1)
                if member.file_size > EXPANSION_FLOOR and inflation > MAX_EXPANSION:
                    return (
                        f"{member.filename} declares {memory.format_bytes(member.file_size)} "
                        f"stored in {memory.format_bytes(member.compress_size)}, a "
                        "decompression bomb (tfvae saves model files uncompressed)"
                    )
            for member in members:
                with archive.open(member) as f:
                    while f.read(CRC_CHUNK):
                        pass
    except Exception:  # BadZipFile, OSError, EOFError, zlib.error, a bad CRC: all mean damaged
        return "the file is truncated or corrupt (not a valid .keras zip)"
    return None


def _read_model_config(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        if CONFIG_MEMBER not in names:
            raise TfvaeError(f"cannot load {path}: it holds no {CONFIG_MEMBER}")
        try:
            model_config = json.loads(archive.read(CONFIG_MEMBER))
        except (ValueError, RecursionError) as error:
            raise TfvaeError(
                f"cannot load {path}: its {CONFIG_MEMBER} is not JSON ({_first_line(error)})"
            ) from None
        weights = archive.getinfo(WEIGHTS_MEMBER).file_size if WEIGHTS_MEMBER in names else 0
    if not isinstance(model_config, dict):
        raise TfvaeError(f"cannot load {path}: its {CONFIG_MEMBER} is not a JSON object")
    return model_config, weights


def _load(path):
    try:
        # Keras warns, and carries on, when a damaged config leaves weights
        # unrestored; `unrestored_weights` refuses such a model in one line,
        # and what else it warns about (the optimizer's state, which
        # evaluation and export never use) is not the user's to act on.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
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


def unrestored_weights(path, model):
    """Why `model` does not hold every weight saved in the `.keras` file `path`, or `None`.

    Compares the arrays of the archive's `model.weights.h5` (the
    optimizer's state aside) with the model's weights, as multisets of
    values: each saved array must be in the model, and each of the model's
    weights must come from the file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if WEIGHTS_MEMBER not in archive.namelist():
                return None  # Keras refuses such a file itself
            data = archive.read(WEIGHTS_MEMBER)
    except Exception as error:
        return f"its {WEIGHTS_MEMBER} cannot be read ({type(error).__name__})"
    return unrestored_h5_weights(io.BytesIO(data), model)


def unrestored_h5_weights(weights_file, model):
    """Why `model` does not hold every weight of a `.weights.h5` file, or `None`.

    `unrestored_weights` for a weights file on its own (a preset's
    `model.weights.h5`). Values are compared as float64, so float16 arrays
    loaded into float32 weights match.

    Args:
        weights_file: str or file object. The `.weights.h5` file.
        model: the model its weights were loaded into.
    """
    try:
        saved = collections.Counter()
        with h5py.File(weights_file, "r") as weights:

            def collect(name, item):
                group = name.split("/")[0]
                if isinstance(item, h5py.Dataset) and not group.endswith(OPTIMIZER_GROUP):
                    saved[_fingerprint(item[()])] += 1

            weights.visititems(collect)
    except Exception as error:
        return f"its {WEIGHTS_MEMBER} cannot be read ({type(error).__name__})"
    held = collections.Counter(_fingerprint(np.asarray(w)) for w in model.weights)
    missing = sum((saved - held).values())
    extra = sum((held - saved).values())
    if not missing and not extra:
        return None
    problems = []
    if missing:
        problems.append(
            f"{missing} of the {sum(saved.values())} weight arrays it holds were not restored"
        )
    if extra:
        problems.append(f"{extra} of the model's {len(model.weights)} weights are not in it")
    return (
        f"{' and '.join(problems)}: its model config (build_config, layer sizes) does not "
        "match its weights, and the model would compute with initial weights"
    )


def _fingerprint(array):
    array = np.ascontiguousarray(np.asarray(array, dtype=np.float64))
    return array.shape, hashlib.sha256(array.tobytes()).hexdigest()


def _carries_lambda(error):
    text = str(error)
    return "lambda" in text.lower() and "safe_mode" in text


def _first_line(error):
    return str(error).splitlines()[0] if str(error).strip() else type(error).__name__
