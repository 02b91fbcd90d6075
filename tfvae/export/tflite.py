"""TFLite conversion with builtin ops only: float32, dynamic-range and full-integer int8."""

import contextlib
import dataclasses
import os
import re
import sys
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from tfvae import checks
from tfvae.errors import TfvaeError
from tfvae.export import layout
from tfvae.export import verification
from tfvae.export.saved_model import write_saved_model
from tfvae.export.signatures import OPTIONAL_TFLITE_SIGNATURES
from tfvae.export.signatures import float32_model
from tfvae.export.signatures import full_integer_left_out
from tfvae.export.signatures import tflite_signatures
from tfvae.io.atomic import staged_dir
from tfvae.io.atomic import write_bytes
from tfvae.io.atomic import write_json

TFLITE_FORMATS = ("float32", "dynamic_range", "int8")
# Calibration examples for int8: enough to see the tails of the training data
# (with 300, test-set latent means fell outside the calibrated range and
# were clipped), few enough to calibrate in a few seconds.
REPRESENTATIVE_EXAMPLES = 1000
VERIFICATION_FILE = "verification.json"


def representative_dataset(model, x, count=REPRESENTATIVE_EXAMPLES, seed=0, signatures=None):
    """A calibration generator for int8 conversion, from training inputs `x`.

    Draws `count` examples at random (the bundled sets are sorted by class,
    so the first rows would be one digit). Each example feeds `encode`,
    `reconstruct` and `score`, and its encoding (the posterior mean, or the
    code) feeds `decode`: then `decode` and `reconstruct` see the same
    activations, get the same quantization parameters, and share one copy
    of the quantized decoder weights in the file.

    Args:
        model: the tfvae model being converted.
        x: array. Training inputs.
        count: int. Examples to draw. Defaults to `1000`.
        seed: int. Seed of the draw. Defaults to `0`.
        signatures: iterable of str or None. The signatures being
            converted; only these are fed. `None` means all of
            `tflite_signatures(model)`. Defaults to `None`.

    Returns:
        A function returning a generator of `(signature, {input: array})`.
    """
    x = np.asarray(x, np.float32)
    if len(x) == 0:
        raise TfvaeError("int8 conversion needs representative data; received 0 examples")
    rows = np.random.default_rng(seed).permutation(len(x))[:count]
    picks = x[np.sort(rows)]
    # A model whose functions take labels gets seeded classes with its examples.
    labels = {}
    if any(spec.labels for spec in type(model).serving_functions.values()):
        labels["y"] = np.random.default_rng(seed).integers(0, model.num_classes, len(picks))
        labels["y"] = labels["y"].astype(np.int32)
    codes = model.encode(picks, *labels.values())
    codes = np.asarray(codes[0] if isinstance(codes, (tuple, list)) else codes, np.float32)

    on_device = set(tflite_signatures(model) if signatures is None else signatures)

    def generate():
        for i in range(len(picks)):
            example = picks[i : i + 1]
            given = {name: value[i : i + 1] for name, value in labels.items()}
            yield "encode", {"x": example, **given}
            if "reconstruct" in on_device:
                yield "reconstruct", {"x": example, **given}
            yield "decode", {"z": codes[i : i + 1], **given}
            if "score" in on_device:
                yield "score", {"x": example, **given}

    return generate


class BuiltinOpsError(TfvaeError):
    """A graph needs TensorFlow (Flex / Select) ops that TFLite's builtin ops lack.

    Attributes:
        ops: str. The ops the converter named, comma-separated.
    """

    def __init__(self, message, ops):
        super().__init__(message)
        self.ops = ops


def _flex_ops(error):
    match = re.search(r"TF Select ops: ([^\n]+)", str(error))
    if match:
        return match.group(1).strip()
    names = re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", str(error))
    return ", ".join(sorted(set(names)))


def convert_saved_model(
    saved_model_dir, signature_keys, quantization="float32", representative_data=None
):
    """Converts signatures of a SavedModel to one `.tflite` model, builtin ops only.

    A graph that needs TensorFlow (Flex / Select) ops fails here, at
    conversion, never later on a device.

    Args:
        saved_model_dir: str. A SavedModel directory.
        signature_keys: list of str. Signatures to convert; they keep their
            names in the `.tflite` file.
        quantization: str. `"float32"`; `"dynamic_range"` (int8 weights,
            float activations); or `"int8"` (full integer: int8 weights,
            activations, inputs and outputs, `TFLITE_BUILTINS_INT8`).
            Defaults to `"float32"`.
        representative_data: callable or None. Calibration generator for
            `"int8"` (see `representative_dataset`). Defaults to `None`.

    Returns:
        The `.tflite` model as bytes.
    """

    checks.choice("TFLite format", quantization, TFLITE_FORMATS)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        saved_model_dir, signature_keys=list(signature_keys)
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.allow_custom_ops = False
    if quantization in ("dynamic_range", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "int8":
        if representative_data is None:
            raise TfvaeError("int8 conversion needs representative_data; received None")
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        # The converter's native code writes its quantizer's settings
        # ("fully_quantize: 0, inference_type: 6, ...") to stderr: held back, so that a
        # command's output, and a failed command's one line, stay its own.
        with warnings.catch_warnings(), _native_stderr_held():
            # The calibrator uses TF's own deprecated tf.lite.Interpreter; the
            # verification that follows runs in LiteRT.
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
            return converter.convert()
    except Exception as error:  # ConverterError; its module path is private
        flex = _flex_ops(error)
        if flex:
            raise BuiltinOpsError(
                f"cannot convert {list(signature_keys)} to TFLite with builtin ops only: "
                f"the graph needs TensorFlow (Flex) ops {flex}; pass noise in as an input "
                "instead of drawing it in the graph",
                flex,
            ) from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TfvaeError(f"TFLite conversion ({quantization}) failed: {first}") from None


@dataclasses.dataclass
class TFLiteConversion:
    """What `convert_signatures` made.

    Attributes:
        files: dict. Format -> the `.tflite` model as bytes.
        signatures: dict. Format -> tuple of the signatures its file holds.
        left_out: dict. Signature -> `{format: reason}`: the files that go
            without it, and one line saying why.
    """

    files: dict
    signatures: dict
    left_out: dict


def convert_signatures(
    model, formats=TFLITE_FORMATS, representative_x=None, seed=0, leave_out=None
):
    """Converts `model`'s TFLite signatures to one `.tflite` model per format.

    Each file holds `tflite_signatures(model)`, less two kinds of `score`
    (the one of `OPTIONAL_TFLITE_SIGNATURES`):

    - one whose graph needs TensorFlow (Flex) ops, in every format. Found
      by converting: a format is converted with all its signatures, and
      only if the converter reports ops TFLite lacks is it converted again
      without `score` (a model whose `score` converts pays nothing extra).
      Flex ops are found before any quantization, so every format agrees.
    - in the int8 file, one the model keeps from full-integer arithmetic
      (see `full_integer_left_out`), declared rather than tried: the
      converter and LiteRT crash the process on some of these graphs.

    Args:
        model: a built tfvae `VAE` or `Autoencoder`.
        formats: iterable of str, from `TFLITE_FORMATS`. Defaults to all
            three.
        representative_x: array or None. Training inputs for int8
            calibration. Defaults to `None`.
        seed: int. Seed of the calibration draw. Defaults to `0`.
        leave_out: dict or None. Signature -> `{format: reason}`: optional
            signatures to leave out of those formats from the start (an
            int8 `score` that failed its verification). Defaults to `None`.

    Returns:
        A `TFLiteConversion`.
    """
    formats = list(formats)
    for quantization in formats:
        checks.choice("TFLite format", quantization, TFLITE_FORMATS)
    if "int8" in formats and representative_x is None:
        raise TfvaeError("int8 conversion needs representative_x; received None")
    model = float32_model(model)
    on_device = tflite_signatures(model)
    given = {name: {"int8": reason} for name, reason in full_integer_left_out(model).items()}
    for name, reasons in (leave_out or {}).items():
        if name not in OPTIONAL_TFLITE_SIGNATURES:
            raise TfvaeError(
                f"only {list(OPTIONAL_TFLITE_SIGNATURES)} may be left out of TFLite files. "
                f"Received: leave_out={{{name!r}: ...}}"
            )
        given.setdefault(name, {}).update(reasons)
    names, needs_flex = list(on_device), {}

    def held(quantization):
        return [n for n in names if quantization not in given.get(n, {})]

    with tempfile.TemporaryDirectory(prefix="tfvae-tflite-") as saved_model_dir:
        write_saved_model(model, saved_model_dir, on_device)

        def convert(quantization):
            data = None
            if quantization == "int8":
                data = representative_dataset(
                    model, representative_x, seed=seed, signatures=held(quantization)
                )
            return convert_saved_model(saved_model_dir, held(quantization), quantization, data)

        files = {}
        for quantization in formats:
            try:
                files[quantization] = convert(quantization)
            except BuiltinOpsError as error:
                optional = [n for n in held(quantization) if n in OPTIONAL_TFLITE_SIGNATURES]
                if not optional:
                    raise
                before = {q: held(q) for q in files}
                names = [n for n in names if n not in optional]
                needs_flex = {n: f"its graph needs TensorFlow ops ({error.ops})" for n in optional}
                files = {q: files[q] if held(q) == before[q] else convert(q) for q in files}
                files[quantization] = convert(quantization)
    left_out = {n: {q: reason for q in formats} for n, reason in needs_flex.items()}
    for name, reasons in given.items():
        if name in names:
            left_out[name] = {q: reason for q, reason in reasons.items() if q in formats}
    left_out = {name: reasons for name, reasons in left_out.items() if reasons}
    signatures = {q: tuple(held(q)) for q in formats}
    return TFLiteConversion(files, signatures, left_out)


def left_out_lines(left_out):
    """One line per signature and reason a `TFLiteConversion.left_out` holds."""
    lines = []
    for name, reasons in left_out.items():
        by_reason = {}
        for quantization, reason in reasons.items():
            by_reason.setdefault(reason, []).append(quantization)
        for reason, formats in by_reason.items():
            lines.append(f"TFLite files leave out {name} ({', '.join(formats)}): {reason}")
    return lines


def convert_model(model, formats=TFLITE_FORMATS, representative_x=None, seed=0):
    """Converts `model`'s TFLite signatures to TFLite in each format (see `convert_signatures`).

    Returns:
        `{format: bytes}`.
    """
    return convert_signatures(model, formats, representative_x, seed).files


@dataclasses.dataclass
class TFLiteExport:
    """Where `export_tflite` wrote a version.

    Attributes:
        model_name: str. The model name.
        version: int. The version number.
        path: str. `<base>/<model_name>/tflite/<version>`.
        files: dict. Format -> path of its `.tflite` file.
        verification: list of `VerificationRow`.
        left_out: dict. Signature -> `{format: reason}` for the files that
            go without it (see `TFLiteConversion`). Defaults to `{}`.
    """

    model_name: str
    version: int
    path: str
    files: dict
    verification: list
    left_out: dict = dataclasses.field(default_factory=dict)


def write_tflite_version(model, path, formats, representative_x, heldout_x, seed=0):
    """Converts, verifies in LiteRT, and writes `<format>.tflite` files into `path`.

    Each model is run by signature in the LiteRT interpreter right after
    conversion and compared with Keras on `heldout_x`; a file is written
    only once every format has passed. A `score` out of its format's
    tolerance (the int8 sum of every pixel's log-probability can be) is
    left out of that file, which is converted again without it.
    `verification.json` records the signatures, those left out and why,
    and the comparison.

    Returns:
        `(files, rows, left_out)`: format -> file path, the
        `VerificationRow`s, and `TFLiteConversion.left_out`.
    """

    model = float32_model(model)
    conversion = convert_signatures(model, formats, representative_x, seed=seed)
    contents = conversion.files
    rows = []
    for quantization in list(contents):
        checked = verification.compare_tflite(
            contents[quantization], quantization, model, heldout_x
        )
        failed = verification.failed_rows(checked)
        if failed and all(r.signature in OPTIONAL_TFLITE_SIGNATURES for r in failed):
            # A score the format computes too coarsely is left out of that file, not fatal.
            leave_out = {
                r.signature: {
                    quantization: f"its {quantization} form disagrees with Keras on held-out "
                    f"data: {verification.failure_text(r)}"
                }
                for r in failed
            }
            again = convert_signatures(model, [quantization], representative_x, seed, leave_out)
            contents[quantization] = again.files[quantization]
            conversion.signatures[quantization] = again.signatures[quantization]
            for name, reasons in leave_out.items():
                conversion.left_out.setdefault(name, {}).update(reasons)
            checked = verification.compare_tflite(
                contents[quantization], quantization, model, heldout_x
            )
        rows += verification.check_rows(checked)
    files = {}
    for quantization, content in contents.items():
        files[quantization] = os.path.join(path, f"{quantization}.tflite")
        write_bytes(files[quantization], content)
    write_json(
        os.path.join(path, VERIFICATION_FILE),
        {
            "signatures": {q: list(names) for q, names in conversion.signatures.items()},
            "left_out": conversion.left_out,
            "tolerances": {q: dataclasses.asdict(verification.TOLERANCES[q]) for q in contents},
            "rows": [row.to_dict() for row in rows],
        },
    )
    return files, rows, conversion.left_out


def export_tflite(
    model,
    representative_x,
    heldout_x,
    base_dir=layout.DEFAULT_BASE_DIR,
    model_name="model",
    formats=TFLITE_FORMATS,
    version=None,
    overwrite=False,
    seed=0,
):
    """Writes verified TFLite models to `<base_dir>/<model_name>/tflite/<version>/`.

    One `.tflite` file per format holds the signatures `encode`, `decode`,
    `reconstruct` and, where it converts with builtin ops only, `score`
    (builtin ops only, dynamic batch size; `left_out` says why a file goes
    without `score`). Every file is run in LiteRT and compared with Keras
    on `heldout_x` before the version directory is renamed into place.

    Args:
        model: a built tfvae `VAE` or `Autoencoder`.
        representative_x: array. Training inputs, for int8 calibration.
        heldout_x: array. Inputs the model never saw, for verification.
        base_dir: str. Defaults to `"saved_models"`.
        model_name: str. Defaults to `"model"`.
        formats: iterable of str from `TFLITE_FORMATS`. Defaults to all.
        version: int or None. `None` takes the next free number. Defaults to
            `None`.
        overwrite: bool. Replace an existing version. Defaults to `False`.
        seed: int. Seed of the calibration draw. Defaults to `0`.

    Returns:
        A `TFLiteExport`.

    Example:

    >>> export = export_tflite(vae, data.x_train, data.x_test, model_name="vae-mnist")
    >>> LiteRTModel(export.files["int8"])("encode", x=data.x_test[:4])["mean"].shape
    (4, 16)
    """
    target = layout.tflite_dir(base_dir, model_name)
    layout.check_model_dir(layout.model_dir(base_dir, model_name))
    version = layout.resolve_version([target], version, overwrite)
    final = os.path.join(target, str(version))
    with staged_dir(final, overwrite=overwrite) as staging:
        files, rows, left_out = write_tflite_version(
            model, staging, formats, representative_x, heldout_x, seed=seed
        )
    files = {q: os.path.join(final, os.path.basename(p)) for q, p in files.items()}
    return TFLiteExport(model_name, version, final, files, rows, left_out)


@contextlib.contextmanager
def _native_stderr_held():
    """Sends what native code writes to file descriptor 2 to a discarded file meanwhile."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
