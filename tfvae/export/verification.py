"""Checks an exported model against the Keras model on held-out data, and times it.

Every signature runs on the same held-out inputs in the exported form and
in Keras. The absolute differences must stay within the format's tolerance,
`atol + rtol * max|Keras output|`, or the export fails before anything is
committed. The bound applies to the largest difference, except for int8:
there it applies to the 99.9th percentile, because full-integer models clip
every activation to the range seen in calibration, and a held-out input
beyond the training data's range (in one default mnist5k VAE, a test digit
whose latent mean is 4.58 where training reached 3.83) is clipped by
design. The largest int8 difference is still measured and reported.
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf

from tfvae.errors import TfvaeError
from tfvae.export.litert import LiteRTModel
from tfvae.export.signatures import OPTIONAL_TFLITE_SIGNATURES
from tfvae.export.signatures import float32_model
from tfvae.export.signatures import full_integer_left_out
from tfvae.export.signatures import serving_signatures
from tfvae.export.signatures import tflite_signatures


@dataclasses.dataclass(frozen=True)
class Tolerance:
    """How far an exported format may be from Keras.

    Attributes:
        atol: float. Absolute part of the bound.
        rtol: float. Part of the bound relative to max|Keras output|.
        statistic: str. The error the bound applies to: `"max"` (the
            largest absolute difference) or `"p99.9"` (its 99.9th
            percentile over all output values).
    """

    atol: float
    rtol: float
    statistic: str = "max"

    def bound(self, reference):
        scale = max(float(np.max(np.abs(v))) for v in reference.values())
        return self.atol + self.rtol * scale


# SavedModel and float32 TFLite compute the same float32 function: 1e-5 is
# the bound (measured: at most 3.1e-6). The quantized bounds hold
# the errors measured on seven models (the default mnist5k VAE under two
# sets of training defaults, the current one trained four times; dense and
# conv VAEs and AEs on mnist5k; a Gaussian VAE; a conv VAE on digits) with a margin of at least 1.5x: dynamic range, max
# error 0.062 on reconstructions of scale 1 (bound 0.10); int8, 99.9th
# percentile 0.058 on reconstructions of scale 1 (bound 0.10) and 0.047 on
# latent means of scale 3.7 (bound 0.18); the largest int8 error, 0.75, was
# one clipped latent mean.
TOLERANCES = {
    "saved_model": Tolerance(1e-5, 1e-6),
    "float32": Tolerance(1e-5, 1e-6),
    "dynamic_range": Tolerance(0.07, 0.03),
    "int8": Tolerance(0.07, 0.03, "p99.9"),
}
# Integer outputs (the VQ-VAE's code indices) are gated on the share of
# codes that differ from Keras's: an encoder output near the boundary of two
# codes may round either way under another order of float operations or
# quantized weights, and the index difference itself means nothing.
# Measured on mnist5k VQ-VAEs (7x7 maps of 32 codes, 1 and 10 epochs):
# float32 0, dynamic range 0.2% and 1.0%, int8 39% and 29%: a full-integer
# encoder rounds its code scores to 256 levels, so near codes swap often;
# the bound only catches a broken conversion.
CODE_MISMATCH_TOLERANCES = {
    "saved_model": 0.0,
    "float32": 0.01,
    "dynamic_range": 0.05,
    "int8": 0.5,
}
LATENCY_CALLS = 50
NOISE_SEED = 0


@dataclasses.dataclass
class VerificationRow:
    """One signature of one exported format, compared with Keras.

    Attributes:
        format: str. `"saved_model"`, `"float32"`, `"dynamic_range"` or `"int8"`.
        signature: str. Signature name.
        size_bytes: int. Size of the file (or SavedModel directory).
        max_abs_error: float. Largest |exported - Keras| over all outputs.
        p999_abs_error: float. Its 99.9th percentile (the largest over
            outputs).
        tolerance: float. The bound the gated error had to meet.
        statistic: str. Which error is gated: `"max"`, `"p99.9"` or, for
            integer outputs, `"mismatch"`.
        latency_s: float. Median seconds per call at batch size 1.
        examples: int. Held-out examples compared.
        mismatch: float or None. For integer outputs (code indices): the
            share of values that differ from Keras's. Defaults to `None`.
    """

    format: str
    signature: str
    size_bytes: int
    max_abs_error: float
    p999_abs_error: float
    tolerance: float
    statistic: str
    latency_s: float
    examples: int
    mismatch: float | None = None

    @property
    def gated_error(self):
        if self.statistic == "mismatch":
            return self.mismatch
        return self.max_abs_error if self.statistic == "max" else self.p999_abs_error

    def to_dict(self):
        return dataclasses.asdict(self)


def verification_inputs(model, x, seed=NOISE_SEED):
    """Held-out inputs for every signature: `x`, its encodings `z`, and seeded `eps`.

    For a model whose functions take labels, also `y`: seeded classes in
    `[0, num_classes)`, with which `x` is encoded.
    """
    x = np.asarray(x, np.float32)
    rng = np.random.default_rng(seed)
    eps = rng.standard_normal((len(x), model.latent_dim))
    given = {}
    if any(spec.labels for spec in type(model).serving_functions.values()):
        given["y"] = rng.integers(0, model.num_classes, len(x)).astype(np.int32)
    codes = model.encode(x, *given.values())
    codes = codes[0] if isinstance(codes, (tuple, list)) else codes
    return {"x": x, "z": np.asarray(codes, np.float32), "eps": eps.astype(np.float32), **given}


def keras_outputs(signature, inputs):
    """The signature's outputs computed eagerly by the Keras model."""
    outputs = signature.function(**{name: inputs[name] for name in signature.inputs})
    if sorted(outputs) != sorted(signature.outputs):
        raise TfvaeError(
            f"signature {signature.name} returns {sorted(outputs)}; "
            f"it declares {sorted(signature.outputs)}"
        )
    return {name: np.asarray(value) for name, value in outputs.items()}


def _row(quantization, signature, size, outputs, reference, latency_s, where):
    if set(outputs) != set(reference):
        raise TfvaeError(f"{where} returns outputs {sorted(outputs)}; expected {sorted(reference)}")
    errors = [np.abs(np.asarray(outputs[k]) - reference[k]).ravel() for k in reference]
    tolerance = TOLERANCES[quantization]
    if all(np.issubdtype(v.dtype, np.integer) for v in reference.values()):
        return VerificationRow(
            format=quantization,
            signature=signature,
            size_bytes=size,
            max_abs_error=max(float(e.max()) for e in errors),
            p999_abs_error=max(float(np.quantile(e, 0.999)) for e in errors),
            tolerance=CODE_MISMATCH_TOLERANCES[quantization],
            statistic="mismatch",
            latency_s=latency_s,
            examples=len(next(iter(reference.values()))),
            mismatch=max(float(np.mean(e != 0)) for e in errors),
        )
    return VerificationRow(
        format=quantization,
        signature=signature,
        size_bytes=size,
        max_abs_error=max(float(e.max()) for e in errors),
        p999_abs_error=max(float(np.quantile(e, 0.999)) for e in errors),
        tolerance=tolerance.bound(reference),
        statistic=tolerance.statistic,
        latency_s=latency_s,
        examples=len(next(iter(reference.values()))),
    )


def _median_latency(call, single_inputs):
    call(single_inputs[0])  # warm-up: tracing, allocation
    times = []
    for one in single_inputs:
        start = time.perf_counter()
        call(one)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _singles(inputs, names):
    count = min(LATENCY_CALLS, len(inputs[names[0]]))
    return [{n: inputs[n][i : i + 1] for n in names} for i in range(count)]


def failed_rows(rows):
    """The rows whose error exceeds their tolerance."""
    return [r for r in rows if not r.gated_error <= r.tolerance]


def failure_text(row):
    """`"<statistic> |error| <error> > <tolerance>"` for a failed row."""
    return f"{row.statistic} |error| {row.gated_error:.3g} > {row.tolerance:.3g}"


def check_rows(rows):
    """Raises `TfvaeError` naming every row whose error exceeds its tolerance."""
    failed = failed_rows(rows)
    if failed:
        detail = "; ".join(f"{r.format} {r.signature}: {failure_text(r)}" for r in failed)
        raise TfvaeError(f"exported model disagrees with Keras on held-out data: {detail}")
    return rows


def directory_size(path):
    return sum(
        os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files
    )


def verify_saved_model(path, model, x):
    """Loads the SavedModel at `path` and compares each signature with `model` on `x`.

    Returns:
        A list of `VerificationRow`; raises `TfvaeError` if one is out of
        tolerance.
    """

    model = float32_model(model)
    loaded = tf.saved_model.load(path)
    inputs = verification_inputs(model, x)
    size = directory_size(path)
    rows = []
    for name, signature in serving_signatures(model).items():
        function = loaded.signatures[name]
        names = list(signature.inputs)

        def call(feed, function=function):
            return function(**{n: tf.constant(v) for n, v in feed.items()})

        reference = keras_outputs(signature, inputs)
        outputs = {k: v.numpy() for k, v in call({n: inputs[n] for n in names}).items()}
        latency = _median_latency(call, _singles(inputs, names))
        rows.append(
            _row("saved_model", name, size, outputs, reference, latency, f"SavedModel {name}")
        )
    return check_rows(rows)


def verify_tflite(content, quantization, model, x, num_threads=None):
    """`compare_tflite`, raising `TfvaeError` if a row is out of tolerance (see `check_rows`)."""
    return check_rows(compare_tflite(content, quantization, model, x, num_threads))


def compare_tflite(content, quantization, model, x, num_threads=None):
    """Runs a converted model in LiteRT by signature and compares it with `model` on `x`.

    Every signature the file holds is compared (`score` too, where the file
    has it); the file must hold each of `tflite_signatures(model)` except
    the optional ones (`OPTIONAL_TFLITE_SIGNATURES`, and for int8
    `full_integer_left_out(model)`), and nothing else.

    Args:
        content: bytes. The `.tflite` model.
        quantization: str. Its format, which sets the tolerance.
        model: the Keras model it was converted from.
        x: array. Held-out inputs.
        num_threads: int or None. LiteRT interpreter threads.

    Returns:
        A list of `VerificationRow`, in or out of tolerance.
    """

    model = float32_model(model)
    lite = LiteRTModel(content, num_threads=num_threads)
    offered = tflite_signatures(model)
    held = set(lite.signatures)
    optional = set(OPTIONAL_TFLITE_SIGNATURES)
    if quantization == "int8":
        optional |= set(full_integer_left_out(model))
    missing = sorted(set(offered) - held - optional)
    unknown = sorted(held - set(offered))
    if missing or unknown:
        raise TfvaeError(
            f"the {quantization} TFLite file holds signatures {sorted(held)}; expected "
            f"{sorted(offered)} (only {sorted(optional)} may be left out)"
        )
    inputs = verification_inputs(model, x)
    rows = []
    for name, signature in offered.items():
        if name not in held:
            continue
        names = list(signature.inputs)
        reference = keras_outputs(signature, inputs)
        outputs = lite(name, **{n: inputs[n] for n in names})
        # Timed on stored (already quantized) inputs: what a device app pays.
        singles = [lite.quantize_inputs(name, **one) for one in _singles(inputs, names)]
        latency = _median_latency(lambda feed, name=name: lite.run_stored(name, feed), singles)
        rows.append(
            _row(quantization, name, len(content), outputs, reference, latency, f"TFLite {name}")
        )
    return rows


def _size(size_bytes):
    if size_bytes >= 1 << 20:
        return f"{size_bytes / (1 << 20):.2f} MiB"
    return f"{size_bytes / 1024:.1f} KiB"


def format_table(rows):
    """The verification rows as a plain-text table."""
    header = (
        "format",
        "signature",
        "size",
        "max |err| vs Keras",
        "p99.9 |err|",
        "tolerance",
        "latency/example",
    )
    lines = [
        (
            r.format,
            r.signature,
            _size(r.size_bytes),
            f"{r.max_abs_error:.2e}",
            f"{r.p999_abs_error:.2e}",
            f"{r.tolerance:.2e} on {r.statistic}",
            f"{r.latency_s * 1e6:.1f} us",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=True)]
    text = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in [header]]
    text.append("  ".join("-" * w for w in widths))
    text += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in lines]
    return "\n".join(text)
